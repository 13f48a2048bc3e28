//! The GPU forward pass against the CPU's on the real models (Mesa's lavapipe where there
//! is no GPU: `.ci/run` installs it).

use std::path::PathBuf;
use std::sync::Arc;

use edgeslm_engine::remote::{RemoteForward, Step};
use edgeslm_engine::Model;
use edgeslm_gpu::{Gpu, GpuForward, GpuModel};

fn model_path(file: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models").join(file);
    assert!(p.exists(), "{} is missing: run scripts/fetch-models", p.display());
    p.to_str().unwrap().to_string()
}

fn gpu() -> Gpu {
    Gpu::open().unwrap_or_else(|e| panic!("{e}: install a Vulkan driver (Mesa's lavapipe: mesa-vulkan-drivers)"))
}

fn compare(file: &str) {
    let cpu = Arc::new(Model::open(&model_path(file)).unwrap());
    let gpu = GpuForward(Arc::new(GpuModel::new(gpu(), cpu.clone()).unwrap()));
    let prompts = ["The capital of France is", "Once upon a time, there was a little robot who", "fn main() { println!("];
    for prompt in prompts {
        let ids = cpu.tokenizer.encode(prompt, true, false);
        let mut s = cpu.new_session();
        let want = cpu.forward(&mut s, &ids).unwrap();
        let mut seq = gpu.new_sequence().unwrap();
        let got = seq.step(&Step { position: None, tokens: &ids, allowed: None }).unwrap();
        let max = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let argmax = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        eprintln!("{file} {prompt:?}: max |Δ| {max:.4}, argmax cpu {} gpu {}", argmax(&want), argmax(&got));
    }
}

#[test]
fn gemma3_logits_match_the_cpu() {
    compare("gemma-3-270m-q4_k_m.gguf");
}

#[test]
fn smollm2_logits_match_the_cpu() {
    compare("SmolLM2-135M-Instruct.Q4_1.gguf");
}
