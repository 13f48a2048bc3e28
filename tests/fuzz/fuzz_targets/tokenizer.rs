//! Tokenizers of every vocabulary type (SentencePiece, GPT-2 byte-level BPE with each
//! pre-tokenizer): encode and decode arbitrary text, with and without special tokens. A
//! byte-level BPE vocabulary must give the text back exactly, less the bytes it has no
//! token for (StarCoder's and Refact's lack 0xf1, the lead byte of U+40000..U+7FFFF).
#![no_main]
use std::sync::OnceLock;

use edgeslm_engine::gguf::{Gguf, Value};
use edgeslm_engine::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

/// A byte-level vocabulary's byte tokens: which of the 256 bytes it can encode.
type ByteLevel = Option<[bool; 256]>;

/// Each vocabulary file's tokenizer (name, tokenizer, byte tokens if byte-level): only the
/// tokenizer, so that files of architectures the engine does not run (command-r,
/// qwen35...) count too.
fn vocabularies() -> &'static Vec<(String, Tokenizer, ByteLevel)> {
    static V: OnceLock<Vec<(String, Tokenizer, ByteLevel)>> = OnceLock::new();
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
        let load = |p: &std::path::PathBuf, pre: Option<&str>| {
            let mut name = p.file_name().unwrap().to_string_lossy().into_owned();
            let mut g = Gguf::parse(&std::fs::read(p).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(pre) = pre {
                g.metadata.insert("tokenizer.ggml.pre".into(), Value::String(pre.into()));
                name = format!("{name} with pre-tokenizer {pre}");
            }
            let byte_level = g.get_str("tokenizer.ggml.model") == Some("gpt2");
            let tok = Tokenizer::from_gguf(&mut g).unwrap_or_else(|e| panic!("{name}: {e}"));
            let table = edgeslm_engine::tokenizer::byte_to_char();
            let bytes = byte_level.then(|| std::array::from_fn(|b| tok.token_id(&table[b].to_string()).is_some()));
            (name, tok, bytes)
        };
        let mut v: Vec<_> = files.iter().map(|p| load(p, None)).collect();
        // gpt-4o's split (Phi-4-mini, Llama 4), whose vocabularies llama.cpp has no file of.
        v.push(load(&dir.join("ggml-vocab-llama-bpe.gguf"), Some("gpt-4o")));
        v
    })
}

fuzz_target!(|data: &[u8]| {
    let v = vocabularies();
    if data.len() < 2 {
        return;
    }
    let (name, tok, byte_level) = &v[data[0] as usize % v.len()];
    let (add_special, parse_special) = (data[1] & 1 != 0, data[1] & 2 != 0);
    let text = String::from_utf8_lossy(&data[2..]);
    let ids = tok.encode(&text, add_special, parse_special);
    assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()), "{name}: an id past the vocabulary");
    let back = tok.decode_bytes(&ids);
    if let (Some(has), false, false) = (byte_level, add_special, parse_special) {
        let kept: Vec<u8> = text.bytes().filter(|&b| has[b as usize]).collect();
        assert_eq!(back, kept, "{name}: byte-level BPE does not give the text back");
    }
});
