//! The engine, natively, against llama.cpp fixtures recorded on the same files.

use edgeslm_engine::{GenerateOptions, Model};
use edgeslm_tests::*;

/// Logits may differ from llama.cpp's in the last bits (different summation order in the
/// SIMD kernels, libm differences); this is the largest absolute difference we accept on
/// the reference top-20, for logits of magnitude ~10-30.
pub const LOGIT_TOLERANCE: f32 = 0.05;

fn check_tokenizer(model_file: &str, fixture_file: &str) {
    let model = Model::open(model_path(model_file).to_str().unwrap()).unwrap();
    let fx = fixture(fixture_file);
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

fn check_greedy_and_logits(model_file: &str, fixture_file: &str) {
    let model = Model::open(model_path(model_file).to_str().unwrap()).unwrap();
    let fx = fixture(fixture_file);
    for case in &fx.logits {
        let ids = model.tokenizer.encode(&case.prompt, true, false);
        assert_eq!(ids, case.prompt_ids, "prompt ids for {:?}", case.prompt);
        let mut s = model.new_session();
        let logits = model.forward(&mut s, &ids).unwrap();
        let diff = max_logit_diff(&case.top, &logits);
        assert!(diff < LOGIT_TOLERANCE, "{:?}: max top-20 logit difference {diff}", case.prompt);
    }
    for case in &fx.greedy {
        let opts = GenerateOptions { max_tokens: fx.max_tokens as u32, ..Default::default() };
        let g = model.generate_from_tokens(&case.prompt_ids, &opts).unwrap();
        assert_eq!(g.tokens, case.tokens, "greedy continuation of {:?}", case.prompt);
        assert_eq!(g.text, case.text, "detokenized continuation of {:?}", case.prompt);
    }
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
fn gemma3_greedy_and_logits_match_llama_cpp() {
    check_greedy_and_logits(GEMMA, GEMMA_FIXTURE);
}

#[test]
fn smollm2_greedy_and_logits_match_llama_cpp() {
    check_greedy_and_logits(SMOLLM2, SMOLLM2_FIXTURE);
}
