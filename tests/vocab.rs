//! llama.cpp's own tokenizer tests (`models/ggml-vocab-*.gguf` with `.inp`/`.out`, copied
//! fetched by scripts/fetch-vocab into models/vocab/ from the llama.cpp source node-llama-cpp ships, MIT; their tests in tests/fixtures/vocab/): every
//! input gives llama.cpp's ids, natively, through the component, and through the
//! `edgeslm tokenize` CLI, on the vocabulary-only files themselves.

use std::path::PathBuf;
use std::process::Command;

use edgeslm_engine::gguf::Gguf;
use edgeslm_engine::tokenizer::Tokenizer;
use edgeslm_engine::Model;
use edgeslm_host::Host;
use edgeslm_tests::root;
use serde_json::Value;

/// Llama 3 (byte-level BPE, `llama-bpe`), Qwen2 (`qwen2`), Phi-3 and Llama 2 (SentencePiece).
const VOCABS: [&str; 4] = ["llama-bpe", "qwen2", "phi-3", "llama-spm"];

/// The `.gguf` files, fetched by `scripts/fetch-vocab` (git-ignored).
fn dir() -> PathBuf {
    root().join("models/vocab")
}

/// (input, llama.cpp's ids) of one vocabulary's test: inputs are separated by
/// `\n__ggml_vocab_test__\n` (after each one), ids are one line per input.
fn cases(vocab: &str) -> Vec<(String, Vec<u32>)> {
    let read = |ext: &str| std::fs::read_to_string(root().join(format!("tests/fixtures/vocab/ggml-vocab-{vocab}.gguf.{ext}"))).unwrap();
    let inp = read("inp");
    let mut inputs: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    assert_eq!(inputs.pop(), Some(""), "{vocab}.inp ends with a separator");
    let out = read("out");
    let ids: Vec<Vec<u32>> = out.lines().map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect()).collect();
    assert_eq!(inputs.len(), ids.len(), "{vocab}: inputs and outputs");
    inputs.into_iter().map(str::to_string).zip(ids).collect()
}

/// Vocabularies of other families that share a pre-tokenizer with the ones above (GPT-2,
/// MPT, StarCoder, Refact, Command-R) or have their own (Qwen3.5: Qwen2's split, with
/// combining marks counted as letters): their tokenizers, without a model to run.
const TOKENIZER_ONLY: [&str; 6] = ["gpt-2", "mpt", "starcoder", "refact", "command-r", "qwen35"];

#[test]
fn llama_cpp_tokenizer_tests_of_other_families() {
    for vocab in TOKENIZER_ONLY {
        let bytes = std::fs::read(dir().join(format!("ggml-vocab-{vocab}.gguf"))).unwrap_or_else(|e| panic!("{vocab}: {e} (scripts/fetch-vocab)"));
        let mut gguf = Gguf::parse(&bytes).unwrap();
        let tokenizer = Tokenizer::from_gguf(&mut gguf).unwrap_or_else(|e| panic!("{vocab}: {e}"));
        let cases = cases(vocab);
        assert!(cases.len() >= 40, "{vocab}: {} cases", cases.len());
        for (text, want) in &cases {
            assert_eq!(&tokenizer.encode(text, false, false), want, "{vocab}: {text:?}");
        }
    }
}

/// Byte-level BPE gives any text back, less the bytes the vocabulary has no token for:
/// StarCoder's and Refact's lack 0xf1 (the lead byte of U+40000..U+7FFFF, the fuzzer's
/// `3.9\u{5f662}`); MPT's, StarCoder's and Refact's lack bytes UTF-8 never uses. The
/// others have all 256.
#[test]
fn byte_level_vocabularies_give_the_text_back() {
    let texts = ["\u{0}3.9\u{5f662}b\u{0}b", "\u{10ffff}\u{e000}\u{fffd}", "tab\tnl\ncr\r", "ÿ€😀 ü", "  \u{a0}x"];
    let table = edgeslm_engine::tokenizer::byte_to_char();
    for (vocab, lacking) in [
        ("llama-bpe", &[][..]),
        ("qwen2", &[]),
        ("gpt-2", &[]),
        ("command-r", &[]),
        ("qwen35", &[]),
        ("mpt", &[0xc0, 0xc1, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff]),
        ("starcoder", &[0xc0, 0xc1, 0xf1, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff]),
        ("refact", &[0xc0, 0xc1, 0xf1, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff]),
    ] {
        let bytes = std::fs::read(dir().join(format!("ggml-vocab-{vocab}.gguf"))).unwrap_or_else(|e| panic!("{vocab}: {e} (scripts/fetch-vocab)"));
        let tokenizer = Tokenizer::from_gguf(&mut Gguf::parse(&bytes).unwrap()).unwrap();
        let missing: Vec<u8> = (0..=255u8).filter(|&b| tokenizer.token_id(&table[b as usize].to_string()).is_none()).collect();
        assert_eq!(missing, lacking, "{vocab}: bytes without a token");
        for text in texts {
            let ids = tokenizer.encode(text, false, false);
            let kept: Vec<u8> = text.bytes().filter(|b| !lacking.contains(b)).collect();
            assert_eq!(tokenizer.decode_bytes(&ids), kept, "{vocab}: {text:?} {ids:?}");
        }
    }
}

/// The gpt-4o pre-tokenizer (Phi-4-mini, Llama 4), whose vocabularies are not among llama.cpp's
/// files: Llama 3's vocabulary with `tokenizer.ggml.pre = gpt-4o`
/// (`tiny_vocab::vocab_with_pre`), on llama.cpp's llama-bpe inputs and
/// tests/fixtures/vocab/gpt-4o-extra.json (case splits, contractions, slashes, marks,
/// scripts), against llama.cpp's ids on the same file (tools/llamacpp/record-tokenizer.mjs).
#[test]
fn gpt_4o_pre_tokenizer_matches_llama_cpp() {
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(root().join("tests/fixtures/vocab/gpt-4o-on-llama-bpe.json")).unwrap()).unwrap();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let bytes = edgeslm_tests::tiny_vocab::vocab_with_pre("llama-bpe", "gpt-4o");
    let tokenizer = Tokenizer::from_gguf(&mut Gguf::parse(&bytes).unwrap()).unwrap();
    let mut differ = 0;
    for case in &cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect();
        let got = tokenizer.encode(text, false, false);
        if got != want {
            differ += 1;
            eprintln!("{text:?}\n  llama.cpp {want:?}\n  edgeslm   {got:?}");
        }
    }
    assert_eq!(differ, 0, "{differ} of {} cases differ from llama.cpp", cases.len());
    // The cases tell the two splits apart: Llama 3's own split gives other ids on some.
    let llama3 = Tokenizer::from_gguf(&mut Gguf::parse(&std::fs::read(dir().join("ggml-vocab-llama-bpe.gguf")).unwrap()).unwrap()).unwrap();
    let apart = cases.iter().filter(|c| c["ids"] != serde_json::json!(llama3.encode(c["text"].as_str().unwrap(), false, false))).count();
    eprintln!("{apart} of {} cases tokenize differently under Llama 3's split", cases.len());
    assert!(apart >= 5, "{apart}");
}

#[test]
fn llama_cpp_tokenizer_tests_natively() {
    for vocab in VOCABS {
        let path = dir().join(format!("ggml-vocab-{vocab}.gguf"));
        let model = Model::open(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{vocab}: {e}"));
        let cases = cases(vocab);
        assert!(cases.len() >= 40, "{vocab}: {} cases", cases.len());
        for (text, want) in &cases {
            assert_eq!(&model.tokenizer.encode(text, false, false), want, "{vocab}: {text:?}");
        }
    }
}

#[test]
fn llama_cpp_tokenizer_tests_through_the_component_and_cli() {
    let host = Host::new(&root().join("target/release/edgeslm-component.wasm")).unwrap();
    let mut s = host.instantiate(Some(&dir())).unwrap();
    for vocab in VOCABS {
        let path = dir().join(format!("ggml-vocab-{vocab}.gguf"));
        let m = s.load(&path).unwrap().unwrap_or_else(|e| panic!("{vocab}: {}", e.message()));
        let info = s.info(m).unwrap();
        assert_eq!(info.backend, "none (vocabulary only)");
        let cases = cases(vocab);
        for (text, want) in &cases {
            assert_eq!(&s.tokenize(m, text, false, false).unwrap(), want, "{vocab}: {text:?}");
        }
        // Evaluating is a typed error, and the instance goes on.
        let err = s.generate(m, "hello", &Default::default()).unwrap().unwrap_err();
        assert_eq!(err.code(), "invalid-option", "{}", err.message());

        // The CLI, on the longest input.
        let (text, want) = cases.iter().max_by_key(|(t, _)| t.len()).unwrap();
        let out = Command::new(root().join("target/release/edgeslm"))
            .args(["tokenize", "--model", path.to_str().unwrap(), text])
            .output()
            .unwrap();
        assert!(out.status.success(), "{vocab}: {}", String::from_utf8_lossy(&out.stderr));
        let got: Vec<u32> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(&got, want, "{vocab} through the CLI");
    }
}
