//! Tokenizers of every vocabulary type (SentencePiece, GPT-2 byte-level BPE with each
//! pre-tokenizer): encode and decode arbitrary text, with and without special tokens. A
//! byte-level BPE vocabulary must give the text back exactly.
#![no_main]
use std::sync::OnceLock;

use edgeslm_engine::Model;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn vocabularies() -> &'static Vec<(String, Model)> {
    static V: OnceLock<Vec<(String, Model)>> = OnceLock::new();
    V.get_or_init(|| {
        let dir = common::models_dir().join("vocab");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (scripts/fetch-vocab)", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no vocabulary files in {}", dir.display());
        files.iter().map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), common::load(p))).collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let v = vocabularies();
    if data.len() < 2 {
        return;
    }
    let (name, model) = &v[data[0] as usize % v.len()];
    let (add_special, parse_special) = (data[1] & 1 != 0, data[1] & 2 != 0);
    let text = String::from_utf8_lossy(&data[2..]);
    let tok = &model.tokenizer;
    let ids = tok.encode(&text, add_special, parse_special);
    assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()), "{name}: an id past the vocabulary");
    let back = tok.decode(&ids);
    let byte_level = model.gguf.get_str("tokenizer.ggml.model") == Some("gpt2");
    if byte_level && !add_special && !parse_special {
        assert_eq!(back, text, "{name}: byte-level BPE does not give the text back");
    }
});
