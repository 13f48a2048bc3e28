//! Qwen2 / Qwen2.5: the llama block with biases on Q, K and V (loaded wherever a file has
//! them) and NeoX RoPE.

use super::{Activation, Architecture, AttentionScale, Presence, RopeStyle};

pub const QWEN2: Architecture = Architecture {
    name: "qwen2",
    activation: Activation::Silu,
    rope: RopeStyle::Neox,
    qk_norm: Presence::Optional,
    post_norms: false,
    attention_scale: AttentionScale::Scores,
    scale_embeddings: false,
    sliding_window: None,
    hparams: |_, _| Ok(()),
};
