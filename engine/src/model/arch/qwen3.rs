//! Qwen3 (dense): no biases, a per-head RMSNorm of queries and keys before RoPE (NeoX),
//! and heads that may be wider than n_embd / n_head (`attention.key_length`).

use super::{Activation, Architecture, AttentionScale, Presence, RopeStyle};

pub const QWEN3: Architecture = Architecture {
    name: "qwen3",
    activation: Activation::Silu,
    rope: RopeStyle::Neox,
    qk_norm: Presence::Required,
    post_norms: false,
    attention_scale: AttentionScale::Scores,
    scale_embeddings: false,
    sliding_window: None,
    hparams: |_, _| Ok(()),
};
