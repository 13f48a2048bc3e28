//! `edgeslm`: run the edgeslm component in wasmtime from the command line.
//!
//!   edgeslm info     --model FILE
//!   edgeslm tokenize --model FILE [--special] TEXT
//!   edgeslm generate --model FILE [--max-tokens N] [--temperature T] [--top-k K] [--top-p P]
//!                    [--seed S] [--stop STR]... [--special] [--chat] [--json]
//!                    [--schema FILE.json | --regex RE | --grammar FILE.lark] (PROMPT | --batch FILE.jsonl)
//!   edgeslm classify --model FILE --labels A,B,C [--instruction TEXT] [--examples FILE.jsonl]
//!                    [--no-calibrate] (TEXT | --batch FILE.jsonl)
//!
//!   edgeslm perplexity --model FILE [--tokens N] [--threads N] TEXT_FILE
//!   edgeslm prune    --model FILE (--drop-layers K [--keep-last N] | --layers I,J-K) --out FILE
//!
//!   edgeslm bake     --model FILE --out SERVICE.wasm [--warm /v1/classify=REQUEST.json]...
//!   edgeslm serve    [--addr 127.0.0.1:8080] [--env KEY=VALUE]... [--model FILE] [SERVICE.wasm]
//!
//! Common: --backend wasi-nn|portable (default wasi-nn: the forward pass runs natively in this
//! host, multi-threaded, behind wasi:nn; portable: inside the component), --threads N,
//! --component PATH (default: the build for the backend, from `cargo xtask build`).
//! Output goes to stdout; progress and timings to stderr; errors are one line and exit 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use edgeslm_host::nn::Device;
use edgeslm_host::{
    open_model, Backend, ClassifyOptions, Constraint, Example, FinishReason, GenerateOptions,
    Host,
};
use serde_json::json;

const USAGE: &str = "usage:
  edgeslm info     --model FILE
  edgeslm tokenize --model FILE [--special] TEXT
  edgeslm generate --model FILE [--max-tokens N] [--temperature T] [--top-k K] [--top-p P]
                   [--seed S] [--stop STR]... [--special] [--chat] [--json]
                   [--schema FILE.json | --regex RE | --grammar FILE.lark] (PROMPT | --batch FILE.jsonl)
     with a constraint, the output is guaranteed to match it (JSON Schema, regex, Lark grammar);
     --chat wraps the prompt as a user turn in the model's chat template
  edgeslm classify --model FILE --labels A,B,C [--instruction TEXT] [--examples FILE.jsonl]
                   [--no-calibrate] (TEXT | --batch FILE.jsonl)
     examples: one {\"text\": ..., \"label\": ...} per line; batch: one {\"text\": ...} (or a JSON
     string) per line, one JSON result per line out, p50/p99 latency on stderr
  edgeslm perplexity --model FILE [--tokens N] [--threads N] TEXT_FILE
     perplexity of the text's first N tokens (512), BOS first, each token predicted from all
     before it in one causal pass (llama-perplexity's measure on one window); the native
     engine, not the component
  edgeslm prune    --model FILE (--drop-layers K [--keep-last N] | --layers I,J-K) --out FILE
     write a copy of the model without K transformer blocks: the K before the last N (1), or
     the blocks listed (0-based); llama.cpp loads the copy too. Faster and smaller, at some
     cost in accuracy: measure it (bench/results/pruning.md, scripts/prune-report)
  edgeslm bake     --model FILE --out SERVICE.wasm [--warm /v1/classify=REQUEST.json]...
                   [--component edgeslm-service.wasm]
     pre-initialize the HTTP service with the model (and the warm-up requests' prompt state):
     the output's memory image holds the parsed model, so an instance starts in microseconds
  edgeslm serve    [--addr 127.0.0.1:8080] [--env KEY[=VALUE]]... [--model FILE] [SERVICE.wasm]
                   [--max-instances N] [--max-queue N] [--timeout SECONDS] [--quiet]
     serve a wasi:http component (default: the unbaked service, which then needs --model) with
     a fresh instance per request, as `wasmtime serve` does; EDGESLM_* variables of this
     process are passed to the guest (see docs/http-service.md); at most N instances run at
     once (default: the cores), N more wait (64), the rest get 503; with --timeout a request is
     stopped after SECONDS (costs ~15-20% speed: epoch checks); one access-log line per request
     on stderr unless --quiet
options for model commands:
  --backend B        wasi-nn (default): the forward pass runs natively in this host, behind
                     wasi:nn, with the tokenizer, constraints and sampling in the component;
                     portable: everything inside the component, one thread (its relaxed-simd
                     build by default, the SIMD128 one where wasmtime cannot compile that)
  --device D         cpu (default) or gpu: where the wasi-nn backend runs the forward pass;
                     gpu goes through wgpu (Vulkan, Metal, DX12) and falls back to the CPU,
                     with a message, where no GPU adapter is found
  --threads N        native threads for the wasi-nn backend (default: all cores)
  --component PATH   the edgeslm component (default: the backend's build, from `cargo xtask build`;
                     or $EDGESLM_COMPONENT / $EDGESLM_COMPONENT_NN)
  --quiet            no progress on stderr";

struct Args {
    command: String,
    model: Option<PathBuf>,
    component: Option<PathBuf>,
    backend: Backend,
    device: Device,
    threads: Option<usize>,
    positional: Vec<String>,
    opts: GenerateOptions,
    json: bool,
    special: bool,
    quiet: bool,
    labels: Vec<String>,
    classify: ClassifyOptions,
    examples_file: Option<PathBuf>,
    batch: Option<PathBuf>,
    constraint: Option<Constraint>,
}

fn parse(argv: Vec<String>) -> Result<Args> {
    let mut it = argv.into_iter();
    let command = it.next().ok_or_else(|| anyhow!("no command given"))?;
    if command == "--help" || command == "-h" || command == "help" {
        println!("{USAGE}");
        std::process::exit(0);
    }
    let mut a = Args {
        command,
        model: None,
        component: None,
        backend: Backend::WasiNn,
        device: Device::Cpu,
        threads: None,
        positional: vec![],
        opts: GenerateOptions::default(),
        json: false,
        special: false,
        quiet: false,
        labels: vec![],
        classify: ClassifyOptions::default(),
        examples_file: None,
        batch: None,
        constraint: None,
    };
    fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T> {
        let v = v.ok_or_else(|| anyhow!("{flag} needs a value"))?;
        v.parse().map_err(|_| anyhow!("{flag}: cannot parse '{v}'"))
    }
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--model" | "-m" => a.model = Some(PathBuf::from(value::<String>(&arg, it.next())?)),
            "--component" => a.component = Some(PathBuf::from(value::<String>(&arg, it.next())?)),
            "--backend" => a.backend = value::<String>(&arg, it.next())?.parse()?,
            "--device" => a.device = value::<String>(&arg, it.next())?.parse()?,
            "--threads" | "-t" => a.threads = Some(value(&arg, it.next())?),
            "--max-tokens" | "-n" => a.opts.max_tokens = Some(value(&arg, it.next())?),
            "--temperature" => a.opts.temperature = Some(value(&arg, it.next())?),
            "--top-k" => a.opts.top_k = Some(value(&arg, it.next())?),
            "--top-p" => a.opts.top_p = Some(value(&arg, it.next())?),
            "--seed" => a.opts.seed = Some(value(&arg, it.next())?),
            "--stop" => a.opts.stop.push(value(&arg, it.next())?),
            "--json" => a.json = true,
            "--labels" => a.labels = value::<String>(&arg, it.next())?.split(',').map(|l| l.trim().to_string()).collect(),
            "--instruction" => a.classify.instruction = Some(value(&arg, it.next())?),
            "--examples" => a.examples_file = Some(PathBuf::from(value::<String>(&arg, it.next())?)),
            "--no-calibrate" => a.classify.calibrate = Some(false),
            "--batch" => a.batch = Some(PathBuf::from(value::<String>(&arg, it.next())?)),
            "--schema" | "--grammar" | "--regex" => {
                if a.constraint.is_some() {
                    bail!("give one of --schema, --regex, --grammar");
                }
                let v: String = value(&arg, it.next())?;
                let read = read_text;
                a.constraint = Some(match arg.as_str() {
                    "--schema" => Constraint::JsonSchema(read(&v)?),
                    "--grammar" => Constraint::Grammar(read(&v)?),
                    _ => Constraint::Regex(v),
                });
            }
            "--special" => a.special = true,
            "--chat" => a.opts.chat = Some(true),
            "--quiet" | "-q" => a.quiet = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--" => a.positional.extend(it.by_ref()),
            s if s.starts_with("--") => bail!("unknown option {s}"),
            _ => a.positional.push(arg),
        }
    }
    if a.special {
        a.opts.parse_special = Some(true);
    }
    Ok(a)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line: the outermost context and its root cause.
            let msg = e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ");
            eprintln!("edgeslm: error: {}", edgeslm_engine::error::one_line(&msg));
            if e.chain().any(|c| matches!(c.downcast_ref(), Some(CliError::Usage(_)))) {
                eprintln!("{USAGE}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What the command line got wrong: a mistake in it (its line is followed by the usage
/// text, and only then), or a file it names that cannot be used (missing, unreadable, not
/// UTF-8: one line alone).
#[derive(Debug)]
enum CliError {
    Usage(String),
    Input(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Input(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CliError {}

fn usage(message: String) -> anyhow::Error {
    anyhow::Error::new(CliError::Usage(message))
}

/// A schema or grammar file's text, or one line saying why not.
fn read_text(path: &str) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| CliError::Input(format!("cannot read {path}: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::Error::new(CliError::Input(format!("{path} is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to())))
    })
}

/// `serve` and `bake` in a CLI built without the HTTP service (as `scripts/demo` builds it).
#[cfg(not(feature = "service"))]
fn serve(_: &[String]) -> Result<()> {
    bail!("this edgeslm was built without the HTTP service (cargo feature `service`); `cargo xtask build` builds the full CLI")
}
#[cfg(not(feature = "service"))]
fn bake(argv: &[String]) -> Result<()> {
    serve(argv)
}

fn run(argv: Vec<String>) -> Result<()> {
    match argv.first().map(String::as_str) {
        Some("serve") => return serve(&argv[1..]),
        Some("bake") => return bake(&argv[1..]),
        Some("perplexity") => return perplexity(&argv[1..]),
        Some("prune") => return prune(&argv[1..]),
        _ => {}
    }
    // The usage text follows a mistake on the command line, not a file that cannot be read.
    let args = parse(argv).map_err(|e| if e.is::<CliError>() { e } else { usage(format!("{e:#}")) })?;
    let env = match args.backend {
        Backend::Portable => "EDGESLM_COMPONENT",
        Backend::WasiNn => "EDGESLM_COMPONENT_NN",
    };
    let explicit = args.component.clone().or_else(|| std::env::var_os(env).map(PathBuf::from));
    let threads = args.threads.or_else(|| {
        (args.backend == Backend::WasiNn).then(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    });
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        edgeslm_engine::parallel::set_threads(n).map_err(|e| anyhow!("--threads {n}: {e}"))?;
    }
    if !["info", "tokenize", "generate", "classify"].contains(&args.command.as_str()) {
        return Err(usage(format!("unknown command '{}'", args.command)));
    }
    let model_path = args.model.clone().ok_or_else(|| anyhow!("--model FILE is required"))?;
    edgeslm_host::check_model_file(&model_path)?;
    if args.device == Device::Gpu && args.backend != Backend::WasiNn {
        return Err(usage("--device gpu runs the forward pass in the host: use it with --backend wasi-nn (the default)".into()));
    }
    let say = |m: String| {
        if !args.quiet {
            eprintln!("{m}");
        }
    };

    let host = match &explicit {
        Some(component) => Host::with_backend(component, args.backend)
            .with_context(|| format!("loading component {}", component.display()))?,
        None => Host::open_default(args.backend)?,
    };
    host.registry.set_device(args.device);
    let size = std::fs::metadata(&model_path).map(|m| m.len()).unwrap_or(0);
    say(format!(
        "edgeslm: loading {} ({:.1} MB), backend {}{}{}...",
        model_path.display(),
        size as f64 / 1e6,
        args.backend.name(),
        if host.is_relaxed_simd() { " (relaxed-simd kernels)" } else { "" },
        if args.backend == Backend::WasiNn {
            format!(" ({} threads)", edgeslm_engine::parallel::threads())
        } else {
            String::new()
        }
    ));
    let (mut session, model, load_ms) = open_model(&host, &model_path)?;
    // Where the host runs the forward pass ("portable": the native engine; "gpu: ADAPTER").
    let device = match args.backend {
        Backend::WasiNn => host.registry.backend_of(&edgeslm_host::guest_path(&model_path.canonicalize()?)?),
        Backend::Portable => None,
    };
    match (&device, args.device) {
        (Some(d), Device::Gpu) => {
            let on = if d.starts_with("gpu") { d.as_str() } else { "the CPU" };
            say(format!("edgeslm: loaded in {load_ms:.0} ms, forward pass on {on}"))
        }
        _ => say(format!("edgeslm: loaded in {load_ms:.0} ms")),
    }

    match args.command.as_str() {
        "info" => {
            let i = session.info(model)?;
            let types: serde_json::Map<String, serde_json::Value> =
                i.tensor_types.iter().map(|t| (t.type_name.clone(), json!(t.tensors))).collect();
            let out = json!({
                "architecture": i.architecture,
                "name": i.name,
                "parameter_count": i.parameter_count,
                "layers": i.layers,
                "context_length": i.context_length,
                "embedding_length": i.embedding_length,
                "heads": i.heads,
                "kv_heads": i.kv_heads,
                "vocab_size": i.vocab_size,
                "tokenizer": i.tokenizer,
                "tensor_types": types,
                "file_size": i.file_size,
                "backend": i.backend,
                "device": device.as_deref().map(|d| if d.starts_with("gpu") { d } else { "cpu" }),
                "component": host.component_path.file_name().map(|n| n.to_string_lossy().into_owned()),
            });
            println!("{}", serde_json::to_string_pretty(&sorted(out))?);
        }
        "tokenize" => {
            let text = one_positional(&args, "TEXT")?;
            let ids = session.tokenize(model, &text, false, args.special)?;
            println!("{}", serde_json::to_string(&ids)?);
        }
        "generate" => generate(&args, &mut session, model, load_ms, &say)?,
        "classify" => classify(&args, &mut session, model, &say)?,
        other => return Err(usage(format!("unknown command '{other}'"))),
    }
    Ok(())
}

fn one_positional(args: &Args, what: &str) -> Result<String> {
    match args.positional.as_slice() {
        [one] => Ok(one.clone()),
        [] => return Err(usage(format!("{what} is missing"))),
        _ => bail!("expected one {what} argument, got {} (quote it)", args.positional.len()),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// `{"text": ..., "label": ...}` per line.
fn read_examples(path: &PathBuf) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = vec![];
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| anyhow!("{}:{}: missing string field \"{k}\"", path.display(), n + 1))
        };
        out.push(Example { text: field("text")?, label: field("label")? });
    }
    Ok(out)
}

/// One batch line: a JSON string, or an object with "text" (or "prompt").
fn batch_text(line: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| anyhow!("not JSON: {e}"))?;
    match v {
        serde_json::Value::String(s) => Ok(s),
        v => v
            .get("text")
            .or_else(|| v.get("prompt"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no \"text\" or \"prompt\" field")),
    }
}

/// One model load, one JSON result line per input line (a failing line gets an error line
/// and the batch goes on), and a latency summary on stderr.
fn run_batch(path: &PathBuf, say: &dyn Fn(String), run: &mut dyn FnMut(&str) -> Result<serde_json::Value>) -> Result<()> {
    let input = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut latencies = vec![];
    let (mut ok, mut failed) = (0, 0);
    for (n, line) in input.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let t = std::time::Instant::now();
        match batch_text(line).and_then(|text| run(&text)) {
            Ok(v) => {
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                ok += 1;
                println!("{}", sorted(v));
            }
            Err(e) => {
                failed += 1;
                println!("{}", sorted(json!({ "line": n + 1, "error": e.to_string() })));
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    say(format!("edgeslm: {ok} done, {failed} failed; latency p50 {:.1} ms, p99 {:.1} ms", pct(0.5), pct(0.99)));
    Ok(())
}

fn generate(
    args: &Args,
    session: &mut edgeslm_host::Session,
    model: edgeslm_host::Model,
    load_ms: f64,
    say: &dyn Fn(String),
) -> Result<()> {
    let mut run = |prompt: &str| -> Result<serde_json::Value> {
        let g = match &args.constraint {
            Some(c) => session.generate_constrained(model, prompt, c, &args.opts)?,
            None => session.generate(model, prompt, &args.opts)?,
        }
        .map_err(|e| anyhow!(e.message()))?;
        let t = &g.timings;
        let finish = match g.finish_reason {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::StopString => "stop-string",
        };
        let mut out = json!({
            "text": g.text,
            "tokens": g.tokens,
            "prompt_tokens": g.prompt_tokens,
            "finish_reason": finish,
            "budget_steered": g.budget_steered,
            "timings": {
                "load_ms": round2(load_ms),
                "prefill_ms": round2(t.prefill_ms),
                "decode_ms": round2(t.decode_ms),
                "prefill_tok_s": round2(t.prefill_tok_s),
                "decode_tok_s": round2(t.decode_tok_s),
            },
        });
        if matches!(args.constraint, Some(Constraint::JsonSchema(_))) {
            out["value"] = serde_json::from_str(&g.text).unwrap_or(serde_json::Value::Null);
        }
        say(format!(
            "edgeslm: {} prompt tokens, {} generated ({finish}); prefill {:.1} tok/s, decode {:.1} tok/s",
            g.prompt_tokens,
            g.tokens.len(),
            t.prefill_tok_s,
            t.decode_tok_s
        ));
        Ok(out)
    };
    match &args.batch {
        Some(batch) => run_batch(batch, say, &mut run),
        None => {
            let out = run(&one_positional(args, "PROMPT")?)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&sorted(out))?);
            } else {
                println!("{}", out["text"].as_str().unwrap_or_default());
            }
            Ok(())
        }
    }
}

fn classify(args: &Args, session: &mut edgeslm_host::Session, model: edgeslm_host::Model, say: &dyn Fn(String)) -> Result<()> {
    if args.labels.is_empty() {
        bail!("--labels A,B,C is required");
    }
    let mut opts = args.classify.clone();
    if let Some(p) = &args.examples_file {
        opts.examples = read_examples(p)?;
    }
    let mut run = |text: &str| -> Result<serde_json::Value> {
        let c = session.classify(model, text, &args.labels, &opts)?.map_err(|e| anyhow!(e.message()))?;
        let t = &c.timings;
        let scores: serde_json::Map<String, serde_json::Value> =
            c.scores.iter().map(|s| (s.label.clone(), json!(s.probability))).collect();
        let raw: serde_json::Map<String, serde_json::Value> =
            c.scores.iter().map(|s| (s.label.clone(), json!(s.uncalibrated))).collect();
        Ok(json!({
            "label": c.label,
            "confidence": c.confidence,
            "scores": scores,
            "uncalibrated": raw,
            "timings": {
                "prompt_tokens": t.prompt_tokens,
                "reused_tokens": t.reused_tokens,
                "prompt_ms": round2(t.prompt_ms),
                "scoring_ms": round2(t.scoring_ms),
                "calibration_ms": round2(t.calibration_ms),
                "total_ms": round2(t.total_ms),
            },
        }))
    };
    match &args.batch {
        None => {
            let text = one_positional(args, "TEXT")?;
            println!("{}", serde_json::to_string_pretty(&sorted(run(&text)?))?);
            Ok(())
        }
        Some(batch) => run_batch(batch, say, &mut run),
    }
}

/// JSON objects with their keys sorted, whatever serde_json's map type is in this build
/// (its `preserve_order` feature can be switched on by any crate in the build); the Node
/// CLI prints the same.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut entries: Vec<(String, serde_json::Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.into_iter().map(sorted).collect()),
        v => v,
    }
}

/// `edgeslm serve`: a wasi:http component, one instance per request.
#[cfg(feature = "service")]
fn serve(argv: &[String]) -> Result<()> {
    let mut addr: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let mut options = edgeslm_host::service::ServeOptions { access_log: true, ..Default::default() };
    let mut component = None;
    // The service's configuration: EDGESLM_* of this process, then --env.
    options.env = std::env::vars().filter(|(k, _)| k.starts_with("EDGESLM_") && !k.starts_with("EDGESLM_COMPONENT")).collect();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| usage(format!("{arg} needs a value")));
        match arg.as_str() {
            "--addr" => addr = value()?.parse().map_err(|e| anyhow!("--addr: {e} (e.g. 127.0.0.1:8080)"))?,
            "--model" | "-m" => options.model = Some(PathBuf::from(value()?)),
            "--component" => component = Some(PathBuf::from(value()?)),
            "--max-instances" => options.max_instances = value()?.parse().map_err(|e| anyhow!("--max-instances: {e}"))?,
            "--max-queue" => options.max_queue = value()?.parse().map_err(|e| anyhow!("--max-queue: {e}"))?,
            "--timeout" => {
                let secs: f64 = value()?.parse().map_err(|e| anyhow!("--timeout: {e} (seconds)"))?;
                if !(secs > 0.0 && secs.is_finite()) {
                    bail!("--timeout must be a positive number of seconds");
                }
                options.timeout = Some(std::time::Duration::from_secs_f64(secs));
            }
            "--quiet" | "-q" => options.access_log = false,
            "--env" => {
                let v = value()?;
                let (k, v) = match v.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (v.clone(), std::env::var(&v).map_err(|_| anyhow!("--env {v}: not set in this environment"))?),
                };
                options.env.retain(|(key, _)| *key != k);
                options.env.push((k, v));
            }
            s if s.starts_with('-') => return Err(usage(format!("unknown option {s}"))),
            s => component = Some(PathBuf::from(s)),
        }
    }
    let component = match component {
        Some(c) => c,
        None => edgeslm_host::service::service_beside_exe().ok_or_else(|| {
            anyhow!("the service component was not found; build it with `cargo xtask build` or pass SERVICE.wasm")
        })?,
    };
    if let Some(m) = &options.model {
        edgeslm_host::check_model_file(m)?;
    }
    eprintln!("edgeslm serve: compiling {} ...", component.display());
    edgeslm_host::service::serve(&component, addr, options, |bound, server| {
        eprintln!("edgeslm serve: listening on http://{bound} (ready in {:.0} ms)", server.compile_ms);
    })
}

/// `edgeslm bake`: the service with the model in its memory image.
fn perplexity(argv: &[String]) -> Result<()> {
    let (mut model, mut text_file, mut window, mut threads) = (None, None, 512usize, None);
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| usage(format!("{arg} needs a value")));
        match arg.as_str() {
            "--model" | "-m" => model = Some(value()?),
            "--tokens" => window = value()?.parse().map_err(|_| anyhow!("--tokens takes a number"))?,
            "--threads" => threads = Some(value()?.parse::<usize>().map_err(|_| anyhow!("--threads takes a number"))?),
            s if s.starts_with('-') => return Err(usage(format!("unknown argument {s}"))),
            s if text_file.is_none() => text_file = Some(s.to_string()),
            s => return Err(usage(format!("unexpected argument {s}"))),
        }
    }
    let model = model.ok_or_else(|| anyhow!("--model FILE is required"))?;
    let text_file = text_file.ok_or_else(|| anyhow!("TEXT_FILE is required"))?;
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    edgeslm_engine::parallel::set_threads(n).map_err(|e| anyhow!("--threads {n}: {e}"))?;
    let text = std::fs::read_to_string(&text_file).with_context(|| format!("reading {text_file}"))?;
    let t = std::time::Instant::now();
    let m = edgeslm_engine::Model::open(&model).map_err(|e| anyhow!("{e}"))?;
    let p = m.perplexity(&text, window).map_err(|e| anyhow!("{e}"))?;
    let out = json!({
        "model": model,
        "tokens": p.scored + 1,
        "scored": p.scored,
        "nll": p.nll,
        "perplexity": p.perplexity,
        "threads": n,
        "ms": t.elapsed().as_secs_f64() * 1000.0,
    });
    println!("{out}");
    Ok(())
}

fn prune(argv: &[String]) -> Result<()> {
    use edgeslm_engine::prune::{self, Drop};
    use std::io::Write;
    let (mut model, mut out, mut count, mut keep_last, mut layers) = (None, None, None, 1usize, None);
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| usage(format!("{arg} needs a value")));
        match arg.as_str() {
            "--model" | "-m" => model = Some(PathBuf::from(value()?)),
            "--out" | "-o" => out = Some(PathBuf::from(value()?)),
            "--drop-layers" => count = Some(value()?.parse::<usize>().map_err(|_| usage("--drop-layers takes a number".into()))?),
            "--keep-last" => keep_last = value()?.parse().map_err(|_| usage("--keep-last takes a number".into()))?,
            "--layers" => layers = Some(parse_layer_list(&value()?)?),
            s => return Err(usage(format!("unknown argument {s}"))),
        }
    }
    let model = model.ok_or_else(|| usage("--model FILE is required".into()))?;
    let out = out.ok_or_else(|| usage("--out FILE is required".into()))?;
    let which = match (count, layers) {
        (Some(count), None) => Drop::Count { count, keep_last },
        (None, Some(l)) => Drop::Layers(l),
        _ => return Err(usage("give one of --drop-layers K or --layers LIST".into())),
    };
    edgeslm_host::check_model_file(&model)?;
    if out.exists() && std::fs::canonicalize(&out).ok() == std::fs::canonicalize(&model).ok() {
        bail!("--out is the model itself; write the pruned copy to another file");
    }
    let t = std::time::Instant::now();
    // Mapped, as the engine opens a model: the header parsed from it, each tensor's bytes
    // copied from it (extents checked against the file by the parser).
    let source = edgeslm_engine::Storage::open(&model.to_string_lossy()).map_err(|e| anyhow!("{e}"))?;
    let bytes = source.whole().unwrap_or_default();
    let file_len = bytes.len();
    let gguf = edgeslm_engine::gguf::Gguf::parse(bytes).map_err(|e| anyhow!("{}: {e}", model.display()))?;
    let plan = prune::plan(&gguf, &which).map_err(|e| anyhow!("{e}"))?;
    let entries: Vec<edgeslm_engine::gguf_write::TensorEntry> = plan
        .tensors
        .iter()
        .map(|(name, t)| edgeslm_engine::gguf_write::TensorEntry { name, dims: &t.dims, ggml_type: t.ggml_type })
        .collect();
    // Written beside the target and renamed when complete: a failure leaves no half file.
    let partial = out.with_extension("gguf.partial");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?);
    let written = edgeslm_engine::gguf_write::write_gguf(&mut w, &plan.metadata, &entries, gguf.alignment, |i, w| {
        let t = plan.tensors[i].1;
        w.write_all(&bytes[t.offset..t.offset + t.size])
    });
    let written = written.and_then(|n| w.flush().map(|_| n));
    let written = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(anyhow!("writing {}: {e}", out.display()));
        }
    };
    drop(w);
    std::fs::rename(&partial, &out).with_context(|| format!("moving {} to {}", partial.display(), out.display()))?;
    // The copy must load as a model, or it is not written at all.
    if let Err(e) = edgeslm_engine::Model::open(&out.to_string_lossy()) {
        let _ = std::fs::remove_file(&out);
        bail!("the pruned copy does not load ({e}); nothing written");
    }
    let n = plan.source_layers;
    eprintln!(
        "edgeslm prune: {} -> {}: {}, {} left; {:.1} MB -> {:.1} MB in {:.1} s",
        model.display(),
        out.display(),
        if plan.dropped.is_empty() { format!("no block of {n} dropped") } else { format!("blocks {} of {n} dropped", prune::ranges(&plan.dropped)) },
        n - plan.dropped.len(),
        file_len as f64 / 1e6,
        written as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// "3,5-7" → [3, 5, 6, 7].
fn parse_layer_list(s: &str) -> Result<Vec<usize>> {
    let bad = || usage(format!("--layers takes block numbers and ranges, like 3,5-7 (got '{s}')"));
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

#[cfg(feature = "service")]
fn bake(argv: &[String]) -> Result<()> {
    let (mut model, mut out, mut component) = (None, None, None);
    let mut warm = Vec::new();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| usage(format!("{arg} needs a value")));
        match arg.as_str() {
            "--model" | "-m" => model = Some(PathBuf::from(value()?)),
            "--out" | "-o" => out = Some(PathBuf::from(value()?)),
            "--component" => component = Some(PathBuf::from(value()?)),
            "--warm" => warm.push(edgeslm_host::service::warm_request(&value()?)?),
            s => return Err(usage(format!("unknown argument {s}"))),
        }
    }
    let model = model.ok_or_else(|| anyhow!("--model FILE is required"))?;
    let out = out.ok_or_else(|| anyhow!("--out SERVICE.wasm is required"))?;
    edgeslm_host::check_model_file(&model)?;
    let component = match component {
        Some(c) => c,
        None => edgeslm_host::service::service_beside_exe()
            .ok_or_else(|| anyhow!("the service component was not found; build it with `cargo xtask build` or pass --component"))?,
    };
    let r = edgeslm_host::service::bake(&component, &model, &warm, &out, &|m| eprintln!("{m}"))?;
    eprintln!(
        "edgeslm bake: wrote {} ({:.1} MB) in {:.1} s (model push + parse {:.1} s, warm-up {:.1} s)",
        out.display(),
        r.out_bytes as f64 / 1e6,
        r.total_ms / 1000.0,
        r.push_ms / 1000.0,
        r.warm_ms / 1000.0
    );
    Ok(())
}
