//! Quick native check: `cargo run --release -p edgeslm-engine --example run -- MODEL PROMPT [N]`
//! (EDGESLM_THREADS=N for N threads)
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Ok(n) = std::env::var("EDGESLM_THREADS") {
        edgeslm_engine::parallel::set_threads(n.parse().expect("EDGESLM_THREADS")).unwrap();
    }
    let model = edgeslm_engine::Model::open(&args[1]).unwrap_or_else(|e| panic!("{e}"));
    let ids = model.tokenizer.encode(&args[2], true, false);
    eprintln!("prompt ids: {ids:?}");
    let opts = edgeslm_engine::GenerateOptions {
        max_tokens: args.get(3).map(|s| s.parse().unwrap()).unwrap_or(32),
        ..Default::default()
    };
    let g = model.generate(&args[2], &opts).unwrap();
    println!("{:?}\n{:?}\n{:?} prefill {:.1} tok/s decode {:.1} tok/s", g.text, g.tokens, g.finish_reason, g.timings.prefill_tok_s(), g.timings.decode_tok_s());
}
