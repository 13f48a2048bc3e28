//! Constrained-decoding benchmark, natively, 1 thread: the seed job (ticket JSON after a
//! few-shot prefix) over the 40 support messages.
//!   cargo run --release -p edgeslm-engine --example bench_constrained -- MODEL
//! Reports: token-trie build time, token-mask time per step (p50/p99), decode time per
//! token constrained vs unconstrained, seed-job latency p50/p99 with and without the
//! prompt-prefix cache, and how many outputs have the right category.
use edgeslm_engine::prompt_cache::PromptCache;
use edgeslm_engine::{Constrainer, Constraint, GenerateOptions, Model};
use std::time::Instant;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: bench_constrained MODEL");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let model = Model::open(&path).unwrap();
    let t = Instant::now();
    let cons = Constrainer::new(&model).unwrap();
    let trie_ms = t.elapsed().as_secs_f64() * 1000.0;
    let schema = std::fs::read_to_string(format!("{root}/examples/support/ticket.schema.json")).unwrap();
    let prefix = std::fs::read_to_string(format!("{root}/examples/support/seed-prefix.txt")).unwrap();
    let messages: Vec<(String, String)> = std::fs::read_to_string(format!("{root}/examples/support/messages.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["text"].as_str().unwrap().to_string(), v["label"].as_str().unwrap().to_string())
        })
        .collect();
    let c = Constraint::JsonSchema(schema);
    let opts = GenerateOptions { max_tokens: 48, ..Default::default() };
    let prompt = |m: &str| format!("{prefix}Message: {m}\nTicket:");

    let mut cache = PromptCache::default();
    model.generate_constrained(&cons, &mut cache, &prompt("warm-up"), &c, &opts).unwrap();
    let (mut cached, mut masks, mut per_token_c) = (vec![], vec![], vec![]);
    let mut correct = 0;
    for (m, label) in &messages {
        let t = Instant::now();
        let g = model.generate_constrained(&cons, &mut cache, &prompt(m), &c, &opts).unwrap();
        cached.push(t.elapsed().as_secs_f64() * 1000.0);
        masks.extend(g.timings.mask_ms.iter().copied());
        if g.timings.decode_tokens > 0 {
            per_token_c.push(g.timings.decode_ms / g.timings.decode_tokens as f64);
        }
        let v: serde_json::Value = serde_json::from_str(&g.text).unwrap();
        correct += (v["category"] == label.as_str()) as usize;
    }
    let mut uncached = vec![];
    for (m, _) in messages.iter().take(10) {
        let mut fresh = PromptCache::default();
        let t = Instant::now();
        model.generate_constrained(&cons, &mut fresh, &prompt(m), &c, &opts).unwrap();
        uncached.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut per_token_u = vec![];
    for (m, _) in messages.iter().take(10) {
        let g = model.generate(&prompt(m), &GenerateOptions { max_tokens: 24, ..Default::default() }).unwrap();
        per_token_u.push(g.timings.decode_ms / g.timings.decode_tokens.max(1) as f64);
    }
    let name = std::path::Path::new(&path).file_name().unwrap().to_string_lossy();
    println!("model: {name}");
    println!("token trie + constraint engine: {trie_ms:.0} ms (once per model)");
    println!("token mask per step: p50 {:.3} ms, p99 {:.3} ms ({} steps)", pct(&mut masks, 0.5), pct(&mut masks, 0.99), masks.len());
    println!(
        "decode per token: constrained {:.1} ms (sparse head, jump-forward), unconstrained {:.1} ms",
        pct(&mut per_token_c, 0.5),
        pct(&mut per_token_u, 0.5)
    );
    println!("seed job with prefix cache: p50 {:.0} ms, p99 {:.0} ms (40 messages)", pct(&mut cached, 0.5), pct(&mut cached, 0.99));
    println!("seed job without prefix cache: p50 {:.0} ms, p99 {:.0} ms (10 messages)", pct(&mut uncached, 0.5), pct(&mut uncached, 0.99));
    println!("category correct: {correct}/40 (every output valid JSON for the schema)");
}
