//! The wasi:nn step protocol as the host serves it: tensor data decoded from arbitrary bytes
//! (I32 ids, FP32 logits) and sequences of steps (roll back to a position, append tokens,
//! ask for some ids' logits) with arbitrary values, against a tiny model. Every step is
//! logits or a typed error, and the sequence stays usable after an error.
#![no_main]
use std::sync::OnceLock;

use edgeslm_engine::remote::{codec, Step};
use edgeslm_engine::serve::ServedSequence;
use edgeslm_engine::Model;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

/// A tiny random-weight llama (`cargo run -p edgeslm-tests --example write-tiny-models`):
/// `EDGESLM_FUZZ_TINY`, else SmolLM2.
fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| match std::env::var_os("EDGESLM_FUZZ_TINY") {
        Some(p) => common::load(std::path::Path::new(&p)),
        None => common::load(&common::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")),
    })
}

fuzz_target!(|data: &[u8]| {
    let model = model();
    let _ = codec::f32s_from_bytes(data);
    let mut seq = ServedSequence::new(model);
    // Steps of up to 4 tokens and 4 allowed ids: [flags, position, n_tokens*4 bytes, n_allowed*4 bytes].
    let mut rest = data;
    for _ in 0..4 {
        let Some((&flags, r)) = rest.split_first() else { break };
        let Some((&pos, r)) = r.split_first() else { break };
        let (n_tok, n_allowed) = ((flags & 3) as usize + 1, ((flags >> 2) & 3) as usize);
        let take = |r: &[u8], n: usize| r.len().min(4 * n);
        let (tok_bytes, r) = r.split_at(take(r, n_tok) & !3);
        let (allowed_bytes, r) = r.split_at(take(r, n_allowed) & !3);
        rest = r;
        let Ok(tokens) = codec::ids_from_bytes(tok_bytes) else { continue };
        let Ok(allowed) = codec::ids_from_bytes(allowed_bytes) else { continue };
        let step = Step {
            position: (flags & 0x10 != 0).then_some(pos as usize),
            tokens: &tokens,
            allowed: (flags & 0x20 != 0).then_some(allowed.as_slice()),
        };
        if let Ok(logits) = seq.step(model, &step) {
            let want = if step.allowed.is_some() { allowed.len() } else { model.vocab_size() };
            assert_eq!(logits.len(), want, "logits for {step:?}");
        }
    }
});
