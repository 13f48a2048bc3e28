fn main() {
    let args: Vec<String> = std::env::args().collect();
    let m = edgeslm_engine::Model::open(&args[1]).unwrap();
    let st = |n: &str, v: &[f32]| { let mean = v.iter().sum::<f32>() / v.len() as f32; println!("{n}: mean {mean:.4} min {:.4} max {:.4}", v.iter().cloned().fold(f32::MAX, f32::min), v.iter().cloned().fold(f32::MIN, f32::max)); };
    st("output_norm", &m.output_norm);
    let l = &m.layers[0];
    st("attn_norm", &l.attn_norm); st("ffn_norm", &l.ffn_norm);
    if let Some(w) = &l.q_norm { st("q_norm", w); }
    if let Some(w) = &l.post_attn_norm { st("post_attn", w); }
    let mut row = vec![0.0; m.config.n_embd]; m.token_embd.row(2, &mut row); st("embd[2]", &row);
    println!("{:?}", m.config);
}
