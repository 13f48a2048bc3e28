//! Shared helpers for the conformance and component tests: fixture loading and model paths.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Fixture {
    pub model: String,
    pub sha256: String,
    pub reference: String,
    pub add_bos: bool,
    pub max_tokens: usize,
    pub tokenize: Vec<TokenizeCase>,
    pub greedy: Vec<GreedyCase>,
    pub logits: Vec<LogitsCase>,
}

#[derive(Debug, Deserialize)]
pub struct TokenizeCase {
    pub text: String,
    pub ids: Vec<u32>,
    pub ids_special: Vec<u32>,
}

#[derive(Debug, Deserialize)]
pub struct GreedyCase {
    pub prompt: String,
    pub prompt_ids: Vec<u32>,
    pub tokens: Vec<u32>,
    pub eog: bool,
    pub text: String,
}

#[derive(Debug, Deserialize)]
pub struct LogitsCase {
    pub prompt: String,
    pub prompt_ids: Vec<u32>,
    /// (token id, logit), highest first.
    pub top: Vec<(u32, f32)>,
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn fixture(name: &str) -> Fixture {
    let p = root().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The real models, fetched by `scripts/fetch-models`. Tests that need one fail with a clear
/// message when it is missing: CI fetches them, so a missing model is a setup error.
pub fn model_path(file: &str) -> PathBuf {
    let p = root().join("models").join(file);
    assert!(p.exists(), "{} is missing: run scripts/fetch-models first", p.display());
    p
}

pub const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";
pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA_FIXTURE: &str = "gemma3-270m-q4_k_m.json";
pub const SMOLLM2_FIXTURE: &str = "smollm2-135m-q4_1.json";

/// Largest absolute difference between our logits and the reference top-20.
pub fn max_logit_diff(reference: &[(u32, f32)], logits: &[f32]) -> f32 {
    reference.iter().map(|&(id, l)| (logits[id as usize] - l).abs()).fold(0.0, f32::max)
}
