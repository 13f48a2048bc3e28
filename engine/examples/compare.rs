//! Compare the engine with a llama.cpp fixture, verbosely: per-prompt max logit difference,
//! greedy agreement and llama.cpp's margin where they part.
//! `cargo run --release -p edgeslm-engine --example compare -- MODEL FIXTURE.json`
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = edgeslm_engine::Model::open(&args[1]).unwrap();
    let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&args[2]).unwrap()).unwrap();
    for c in fx["logits"].as_array().unwrap() {
        let ids: Vec<u32> = c["prompt_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let mut s = model.new_session();
        let l = model.forward(&mut s, &ids).unwrap();
        let mut md = 0f32;
        for t in c["top"].as_array().unwrap() { let id = t[0].as_u64().unwrap() as usize; md = md.max((l[id] - t[1].as_f64().unwrap() as f32).abs()); }
        println!("n={} maxdiff {md:.4}", ids.len());
    }
    for c in fx["greedy"].as_array().unwrap() {
        let ids: Vec<u32> = c["prompt_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let want: Vec<u32> = c["tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let g = model.generate_from_tokens(&ids, &edgeslm_engine::GenerateOptions { max_tokens: 64, ..Default::default() }).unwrap();
        let same = g.tokens.iter().zip(&want).take_while(|(a, b)| a == b).count();
        let m = c["margins"].as_array().unwrap();
        let margin = m.get(same).map(|v| v.as_f64().unwrap()).unwrap_or(-1.0);
        let minm = m.iter().map(|v| v.as_f64().unwrap()).fold(f64::MAX, f64::min);
        println!("greedy: {} of {} same (ours {} tokens) {} margin at divergence {margin:.3} min margin {minm:.3}", same, want.len(), g.tokens.len(), if g.tokens == want {"OK"} else {"DIFF"});
    }
}
