//! Phi-3 / Phi-3.5 / Phi-4-mini: fused `attn_qkv` and fused gate-and-up `ffn_up` (split
//! where the weights are loaded), NeoX RoPE over the leading `rope.dimension_count`
//! dimensions of each head, LongRoPE factors and attention factor. A sliding window in the
//! file is not applied, as llama.cpp does not apply it either: every layer attends globally.

use super::{Activation, Architecture, AttentionScale, Presence, RopeStyle};

pub const PHI3: Architecture = Architecture {
    name: "phi3",
    activation: Activation::Silu,
    rope: RopeStyle::Neox,
    qk_norm: Presence::Optional,
    post_norms: false,
    attention_scale: AttentionScale::Queries,
    scale_embeddings: false,
    sliding_window: None,
    hparams: |_, _| Ok(()),
};
