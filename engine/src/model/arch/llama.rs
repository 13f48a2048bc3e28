//! Llama (and the families that reuse its GGUF layout: SmolLM2, TinyLlama, Mistral 7B…):
//! pre-norm blocks, SiLU-gated feed-forward, adjacent-pair RoPE, grouped-query attention.

use super::{Activation, Architecture, AttentionScale, Presence, RopeStyle};

pub const LLAMA: Architecture = Architecture {
    name: "llama",
    activation: Activation::Silu,
    rope: RopeStyle::Adjacent,
    qk_norm: Presence::Optional,
    post_norms: false,
    attention_scale: AttentionScale::Scores,
    scale_embeddings: false,
    sliding_window: None,
    hparams: |_, _| Ok(()),
};
