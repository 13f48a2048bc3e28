//! Tiny random-weight GGUF files written by the test itself: every architecture with every
//! supported tensor type loads, generates, and gives the same logits batched and token by
//! token, including across the wrap-around of the sliding-window KV ring.

use edgeslm_engine::quant::GgmlType;
use edgeslm_engine::{GenerateOptions, Model};
use edgeslm_tests::*;

#[test]
fn every_architecture_and_tensor_type_runs_consistently() {
    for arch in tiny::ARCHS {
        for ty in GgmlType::ALL {
            let model = Model::from_bytes(tiny::model(arch, ty))
                .unwrap_or_else(|e| panic!("{arch} {}: {e}", ty.name()));
            assert_eq!(model.config.arch.name, arch);
            // Long enough to wrap the sliding-window ring (window + 256 slots).
            let ids: Vec<u32> = (0..300u32).map(|t| 4 + (t * 37) % 256).collect();
            let (batched, diff) = batched_vs_sequential(&model, &ids);
            assert!(batched.iter().all(|v| v.is_finite()), "{arch} {}: non-finite logits", ty.name());
            let scale = batched.iter().map(|v| v.abs()).fold(0.0, f32::max).max(1.0);
            assert!(diff / scale < 1e-4, "{arch} {}: batched vs sequential differ by {diff}", ty.name());
            let g = model.generate("the answer", &GenerateOptions { max_tokens: 8, ..Default::default() }).unwrap();
            assert!(!g.tokens.is_empty(), "{arch} {}", ty.name());
        }
    }
}

/// The tiny models against llama.cpp fixtures recorded on the same bytes
/// (`tools/llamacpp/record-tiny-fixtures.sh`): every tensor type, both architectures.
/// Random weights give logits of magnitude ~10-300, so the real models' tolerances grow to
/// 2% of the top logit where that is larger.
#[test]
fn every_tiny_model_matches_llama_cpp() {
    let mut identical = 0;
    let mut total = 0;
    for arch in tiny::ARCHS {
        for ty in GgmlType::ALL {
            let name = tiny::name(arch, ty);
            let fx = fixture(&format!("tiny/{name}.json"));
            let model = Model::from_bytes(tiny::model(arch, ty)).unwrap();
            for case in &fx.tokenize {
                assert_eq!(model.tokenizer.encode(&case.text, false, false), case.ids, "{name}: {:?}", case.text);
                assert_eq!(model.tokenizer.encode(&case.text, false, true), case.ids_special, "{name}: {:?}", case.text);
            }
            for case in &fx.logits {
                let mut s = model.new_session();
                let logits = model.forward(&mut s, &case.prompt_ids).unwrap();
                let scale = case.top[0].1.abs().max(10.0);
                let tolerance = LOGIT_TOLERANCE.max(0.02 * scale);
                check_top_logits_within(&format!("{name} {}", case.prompt), &case.top, &logits, tolerance, NEAR_TIE.max(0.02 * scale));
            }
            for (case, at_prompt) in fx.greedy.iter().zip(&fx.logits) {
                let opts = GenerateOptions { max_tokens: fx.max_tokens as u32, ..Default::default() };
                let g = model.generate_from_tokens(&case.prompt_ids, &opts).unwrap();
                let near_tie = NEAR_TIE.max(0.02 * at_prompt.top[0].1.abs());
                total += 1;
                if check_greedy_case_within(case, &g.tokens, near_tie) {
                    identical += 1;
                }
            }
        }
    }
    eprintln!("tiny models: {identical}/{total} greedy continuations identical to llama.cpp");
    assert!(identical * 10 >= total * 9, "only {identical} of {total} tiny-model continuations identical");
}

/// Vocabulary-only files (metadata, no tensors; llama.cpp ships its tokenizer tests as such)
/// load: they tokenize as the full model does and describe themselves; evaluating is a
/// typed error.
#[test]
fn vocabulary_only_files_tokenize_and_refuse_to_evaluate() {
    for arch in tiny::ARCHS {
        let full = Model::from_bytes(tiny::model(arch, GgmlType::F32)).unwrap();
        for padded in [false, true] {
            let vocab = Model::from_bytes(tiny::vocab_only(arch, padded)).unwrap_or_else(|e| panic!("{arch} padded={padded}: {e}"));
            assert_eq!(vocab.backend_name(), "none (vocabulary only)");
            assert_eq!(vocab.config.n_layer, full.config.n_layer);
            for text in ["the answer", "héllo wörld  \n\tthe a", ""] {
                let ids = vocab.tokenizer.encode(text, true, false);
                assert_eq!(ids, full.tokenizer.encode(text, true, false), "{arch} {text:?}");
                assert_eq!(vocab.tokenizer.decode(&ids), full.tokenizer.decode(&ids));
            }
            let err = vocab.generate("the answer", &GenerateOptions::default()).unwrap_err();
            assert_eq!(err.code(), edgeslm_engine::ErrorCode::InvalidOption, "{err}");
            assert!(err.to_string().contains("vocabulary-only"), "{err}");
            let mut s = vocab.new_session();
            assert!(vocab.forward(&mut s, &[4, 5]).is_err());
            let mut instance = edgeslm_engine::Instance::new(vocab);
            let labels = vec!["a".to_string(), "b".to_string()];
            assert!(instance.classify("x", &labels, &Default::default()).is_err());
            assert_eq!(instance.info().parameter_count, 0);
        }
    }
}

/// A model held in pieces (as wasm32 holds one over 2 GiB: `storage::MAX_PIECE`) computes what
/// the whole file computes: read from a file and received in pushes, with pieces far smaller
/// than the tensors' total, so many boundaries fall between tensors.
#[test]
fn a_model_held_in_pieces_computes_the_same() {
    use edgeslm_engine::storage::{Receiver, Storage};
    let bytes = tiny_vocab::model("tiny-qwen3-q6_k");
    let prompt = [9707u32, 11, 1879, 0, 151643, 42];
    let whole = Model::from_bytes(bytes.clone()).unwrap();
    let want = whole.forward(&mut whole.new_session(), &prompt).unwrap();

    let path = std::env::temp_dir().join(format!("edgeslm-pieces-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let (gguf, storage) = Storage::read_gguf_in_pieces(path.to_str().unwrap(), 64 << 10).unwrap();
    std::fs::remove_file(&path).ok();
    let read = Model::load_parsed(gguf, storage).unwrap();
    assert_eq!(read.forward(&mut read.new_session(), &prompt).unwrap(), want);

    let mut receiver = Receiver::in_pieces(bytes.len(), 64 << 10);
    for chunk in bytes.chunks(10_007) {
        receiver.push(chunk).unwrap();
    }
    let (gguf, storage) = receiver.finish().unwrap();
    let received = Model::load_parsed(gguf, storage).unwrap();
    assert_eq!(received.forward(&mut received.new_session(), &prompt).unwrap(), want);
}
