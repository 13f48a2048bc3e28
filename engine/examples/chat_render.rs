//! Show how a prompt is wrapped by the model's chat template and tokenized:
//! `cargo run --release -p edgeslm-engine --example chat_render -- MODEL PROMPT`
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let m = edgeslm_engine::Model::open(&a[1]).unwrap();
    println!("{:?}", edgeslm_engine::chat::render_user_turn(&m, &a[2]).unwrap());
    let ids = m.prompt_tokens(&a[2], &edgeslm_engine::GenerateOptions { chat: true, ..Default::default() }).unwrap();
    println!("{ids:?}");
}
