//! The engine, natively, against llama.cpp fixtures recorded on the same files
//! (`tools/llamacpp/record-fixtures.mjs`).

use edgeslm_engine::{GenerateOptions, Model};
use edgeslm_tests::*;

fn check_tokenizer(model_file: &str, fixture_file: &str) {
    let model = Model::open(model_path(model_file).to_str().unwrap()).unwrap();
    let fx = fixture(fixture_file);
    assert!(fx.tokenize.len() >= 200);
    let mut bad = vec![];
    for case in &fx.tokenize {
        let ids = model.tokenizer.encode(&case.text, false, false);
        if ids != case.ids {
            bad.push(format!("{:?}: ours {:?} llama.cpp {:?}", case.text, ids, case.ids));
        }
        let ids = model.tokenizer.encode(&case.text, false, true);
        if ids != case.ids_special {
            bad.push(format!("(special) {:?}: ours {:?} llama.cpp {:?}", case.text, ids, case.ids_special));
        }
    }
    assert!(bad.is_empty(), "{} of {} tokenizations differ:\n{}", bad.len(), fx.tokenize.len() * 2, bad.join("\n"));
}

fn check_logits(model_file: &str, fixture_file: &str) {
    let model = Model::open(model_path(model_file).to_str().unwrap()).unwrap();
    check_fixture_logits(&model, &fixture(fixture_file), LOGIT_TOLERANCE);
}

fn check_greedy(model_file: &str, fixture_file: &str) {
    let model = Model::open(model_path(model_file).to_str().unwrap()).unwrap();
    let fx = fixture(fixture_file);
    let mut identical = 0;
    for case in &fx.greedy {
        let opts = GenerateOptions { max_tokens: fx.max_tokens as u32, ..Default::default() };
        let g = model.generate_from_tokens(&case.prompt_ids, &opts).unwrap();
        if check_greedy_case(case, &g.tokens) {
            identical += 1;
            assert_eq!(g.text, case.text, "detokenized continuation of {:?}", case.prompt);
        }
    }
    eprintln!("{model_file}: {identical} of {} greedy continuations identical to llama.cpp", fx.greedy.len());
}

#[test]
fn gemma3_tokenizer_matches_llama_cpp() {
    check_tokenizer(GEMMA, GEMMA_FIXTURE);
}

#[test]
fn smollm2_tokenizer_matches_llama_cpp() {
    check_tokenizer(SMOLLM2, SMOLLM2_FIXTURE);
}

#[test]
fn gemma3_logits_match_llama_cpp() {
    check_logits(GEMMA, GEMMA_FIXTURE);
}

#[test]
fn smollm2_logits_match_llama_cpp() {
    check_logits(SMOLLM2, SMOLLM2_FIXTURE);
}

#[test]
fn gemma3_greedy_matches_llama_cpp() {
    check_greedy(GEMMA, GEMMA_FIXTURE);
}

#[test]
fn smollm2_greedy_matches_llama_cpp() {
    check_greedy(SMOLLM2, SMOLLM2_FIXTURE);
}

/// Prefill in one batch and token by token must give the same state (the KV cache, the
/// sliding-window ring, the batched matmuls).
#[test]
fn batched_prefill_equals_token_by_token() {
    for file in [GEMMA, SMOLLM2] {
        let model = Model::open(model_path(file).to_str().unwrap()).unwrap();
        let ids = model.tokenizer.encode("The quick brown fox jumps over the lazy dog, again and again.", true, false);
        let (_, diff) = batched_vs_sequential(&model, &ids);
        assert!(diff < 1e-3, "{file}: batched vs sequential logits differ by {diff}");
    }
}
