//! Token ids and attributes: `cargo run --release -p edgeslm-engine --example tok -- MODEL TEXT|ID...`
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = edgeslm_engine::Model::open(&args[1]).unwrap();
    let t = &model.tokenizer;
    for a in &args[2..] {
        if let Ok(id) = a.parse::<u32>() {
            println!("{id}: {:?} {:?} {}", &t.tokens[id as usize], t.attrs[id as usize], t.scores[id as usize]);
        } else {
            let ids = t.encode(a, false, false);
            println!("{a:?} -> {ids:?} {:?}", ids.iter().map(|&i| &t.tokens[i as usize]).collect::<Vec<_>>());
        }
    }
}
