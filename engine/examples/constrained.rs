//! Constrained generation natively: `cargo run --release -p edgeslm-engine --example constrained -- MODEL SCHEMA.json PROMPT`
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let model = edgeslm_engine::Model::open(&a[1]).unwrap();
    let t = std::time::Instant::now();
    let c = edgeslm_engine::Constrainer::new(&model).unwrap();
    eprintln!("constraint engine ready in {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
    let schema = std::fs::read_to_string(&a[2]).unwrap();
    let opts = edgeslm_engine::GenerateOptions { max_tokens: 64, ..Default::default() };
    let mut cache = edgeslm_engine::prompt_cache::PromptCache::default();
    for _ in 0..2 {
        let t = std::time::Instant::now();
        match model.generate_constrained(&c, &mut cache, &a[3], &edgeslm_engine::Constraint::JsonSchema(schema.clone()), &opts) {
            Ok(g) => println!("{} ({} tokens, {:.0} ms)", g.text, g.tokens.len(), t.elapsed().as_secs_f64() * 1000.0),
            Err(e) => println!("error: {e}"),
        }
    }
}
