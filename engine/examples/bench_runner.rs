//! Benchmark runner: the native engine on one model and one workload spec (written by
//! `bench/run.mjs`), printing one JSON result in the shape every runner shares.
//!   cargo run --release -p edgeslm-engine --example bench_runner -- --model FILE --spec SPEC.json [--threads N]
use std::time::Instant;

use edgeslm_engine::prompt_cache::PromptCache;
use edgeslm_engine::{Constrainer, Constraint, GenerateOptions, Model};
use serde_json::{json, Value};

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Peak resident set in MB of 10^6 bytes (as the report compares it with the file's size).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0 / 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let model_path = flag("--model").expect("--model FILE");
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(flag("--spec").expect("--spec FILE")).unwrap()).unwrap();
    let text = |v: &Value| v.as_str().expect("spec: string").to_string();
    let threads: usize = flag("--threads").map_or(1, |t| t.parse().expect("--threads N"));
    edgeslm_engine::parallel::set_threads(threads).unwrap();

    let t0 = Instant::now();
    let model = Model::open(&model_path).unwrap_or_else(|e| panic!("{e}"));
    let load_ms = ms(t0);
    let one = GenerateOptions { max_tokens: 1, ..Default::default() };
    model.generate(&text(&spec["cold_prompt"]), &one).unwrap();
    let cold_start_ms = ms(t0);

    let mut prefill = serde_json::Map::new();
    for p in spec["prefill"].as_array().unwrap() {
        let g = model.generate(&text(&p["text"]), &one).unwrap();
        prefill.insert(text(&p["name"]), json!({ "tokens": g.timings.prefill_tokens, "ms": g.timings.prefill_ms }));
    }
    let n = spec["decode"]["tokens"].as_u64().unwrap_or(128) as u32;
    let g = model.generate(&text(&spec["decode"]["prompt"]), &GenerateOptions { max_tokens: n, ..Default::default() }).unwrap();
    let decode = json!({ "tokens": g.timings.decode_tokens, "ms": g.timings.decode_ms });

    let seed = &spec["seed"];
    let t = Instant::now();
    let cons = Constrainer::new(&model).unwrap();
    let constrainer_ms = ms(t);
    let schema = Constraint::JsonSchema(text(&seed["schema"]));
    let opts = GenerateOptions { max_tokens: seed["max_tokens"].as_u64().unwrap_or(48) as u32, ..Default::default() };
    let prefix = text(&seed["prefix"]);
    let prompt = |m: &str| format!("{prefix}Message: {m}\nTicket:");
    let mut cache = PromptCache::default();
    let t = Instant::now();
    model.generate_constrained(&cons, &mut cache, &prompt("Hello, I have a question."), &schema, &opts).unwrap();
    let first_ms = ms(t) + constrainer_ms;
    let (mut latencies, mut outputs, mut splits) = (vec![], vec![], vec![]);
    for m in seed["messages"].as_array().unwrap() {
        let t = Instant::now();
        let out = model.generate_constrained(&cons, &mut cache, &prompt(&text(m)), &schema, &opts);
        latencies.push(ms(t));
        outputs.push(match &out {
            Ok(g) => json!(g.text),
            Err(e) => json!({ "error": e.to_string() }),
        });
        // Where the call's time went: the prompt's batch, the batches after it, the masks.
        if let Ok(g) = &out {
            let t = &g.timings;
            splits.push(json!({ "prefill_tokens": t.prefill_tokens, "prefill_ms": t.prefill_ms, "decode_tokens": t.decode_tokens,
                                "decode_ms": t.decode_ms, "mask_ms": t.mask_ms.iter().sum::<f64>() }));
        }
    }
    println!(
        "{}",
        json!({
            "runtime": "edgeslm native engine",
            "threads": threads,
            "load_ms": load_ms,
            "cold_start_ms": cold_start_ms,
            "prefill": prefill,
            "decode": decode,
            "seed": { "first_ms": first_ms, "latencies_ms": latencies, "outputs": outputs, "splits": splits },
            "peak_rss_mb": peak_rss_mb(),
        })
    );
}
