//! Benchmark runner: the component in wasmtime on one model and one workload spec (written
//! by `bench/run.mjs`), printing one JSON result. Every runtime of the benchmark has a
//! runner with this input and output. Portable backend: the forward pass in the component
//! (1 thread); wasi-nn: in this host, natively, with `--threads N`.
//!   edgeslm-bench --model FILE --spec SPEC.json [--backend portable|wasi-nn] [--threads N] [--component PATH]
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use edgeslm_host::{component_beside_exe, open_model, Backend, Constraint, GenerateOptions, Host};
use serde_json::{json, Value};

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Peak resident set of this process, in MB of 10^6 bytes (the report compares it with the
/// model file's size in those units); /proc counts KiB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0 / 1e6)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let model_path = flag("--model").ok_or_else(|| anyhow!("--model FILE is required"))?;
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(flag("--spec").ok_or_else(|| anyhow!("--spec is required"))?)?)?;
    let backend: Backend = flag("--backend").as_deref().unwrap_or("portable").parse()?;
    let threads: usize = flag("--threads").map(|t| t.parse()).transpose()?.unwrap_or(1);
    edgeslm_engine::parallel::set_threads(threads).map_err(|e| anyhow!(e))?;
    let component = flag("--component")
        .map(Into::into)
        .or_else(|| component_beside_exe(backend))
        .ok_or_else(|| anyhow!("component not found; run `cargo xtask build`"))?;
    let text = |v: &Value| v.as_str().map(str::to_string).ok_or_else(|| anyhow!("spec: expected a string"));
    let fail = |e: edgeslm_host::WitError| anyhow!(e.message());

    // Cold start: engine + (cached) compilation + instantiate + load + first token.
    let t0 = Instant::now();
    let host = Host::with_backend(std::path::Path::new(&component), backend).context("loading the component")?;
    // `--device gpu`: the wasi-nn host's forward pass on the GPU (the cold start then includes
    // opening the adapter, uploading the weights and compiling the kernels).
    if let Some(d) = flag("--device") {
        host.registry.set_device(d.parse()?);
    }
    let compile_ms = host.compile_ms;
    let (mut session, model, load_ms) = open_model(&host, std::path::Path::new(&model_path))?;
    let one = GenerateOptions { max_tokens: Some(1), ..Default::default() };
    session.generate(model, &text(&spec["cold_prompt"])?, &one)?.map_err(fail)?;
    let cold_start_ms = ms(t0);

    let mut prefill = serde_json::Map::new();
    for p in spec["prefill"].as_array().ok_or_else(|| anyhow!("spec: prefill"))? {
        let g = session.generate(model, &text(&p["text"])?, &one)?.map_err(fail)?;
        prefill.insert(text(&p["name"])?, json!({ "tokens": g.timings.prefill_tokens, "ms": g.timings.prefill_ms }));
    }

    let n = spec["decode"]["tokens"].as_u64().unwrap_or(128) as u32;
    let g = session
        .generate(model, &text(&spec["decode"]["prompt"])?, &GenerateOptions { max_tokens: Some(n), ..Default::default() })?
        .map_err(fail)?;
    let decode = json!({ "tokens": g.timings.decode_tokens, "ms": g.timings.decode_ms });

    let seed = &spec["seed"];
    let schema = Constraint::JsonSchema(text(&seed["schema"])?);
    let opts = GenerateOptions { max_tokens: Some(seed["max_tokens"].as_u64().unwrap_or(48) as u32), ..Default::default() };
    let prefix = text(&seed["prefix"])?;
    let prompt = |m: &str| format!("{prefix}Message: {m}\nTicket:");
    let t = Instant::now();
    session.generate_constrained(model, &prompt("Hello, I have a question."), &schema, &opts)?.map_err(fail)?;
    let first_ms = ms(t);
    let (mut latencies, mut outputs, mut timings) = (vec![], vec![], vec![]);
    for m in seed["messages"].as_array().ok_or_else(|| anyhow!("spec: seed.messages"))? {
        let t = Instant::now();
        let out = session.generate_constrained(model, &prompt(&text(m)?), &schema, &opts)?;
        latencies.push(ms(t));
        outputs.push(match out {
            Ok(g) => {
                // Where each call's time goes: the new prompt tokens (with the opening the
                // schema forces) in one batch, then the steps after each choice.
                let t = &g.timings;
                timings.push(json!({ "prefill_tokens": t.prefill_tokens, "prefill_ms": t.prefill_ms,
                                     "decode_tokens": t.decode_tokens, "decode_ms": t.decode_ms }));
                json!(g.text)
            }
            Err(e) => json!({ "error": e.message() }),
        });
    }

    let result = json!({
        "runtime": format!("edgeslm component (wasmtime, {})", backend.name()),
        "backend": session.info(model)?.backend,
        "device": host.registry.backend_of(&edgeslm_host::guest_path(&std::path::Path::new(&model_path).canonicalize()?)?),
        "threads": threads,
        "compile_ms": compile_ms,
        "load_ms": load_ms,
        "cold_start_ms": cold_start_ms,
        "prefill": prefill,
        "decode": decode,
        "seed": { "first_ms": first_ms, "latencies_ms": latencies, "outputs": outputs, "timings": timings },
        "peak_rss_mb": peak_rss_mb(),
    });
    println!("{result}");
    Ok(())
}
