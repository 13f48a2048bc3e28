//! Gemma 3 (text): embeddings scaled by √d, per-head RMSNorm of queries and keys, the
//! outputs of attention and feed-forward normalised again before the residual add, GELU,
//! NeoX RoPE, and five sliding-window layers (local RoPE base 10 000) to each global one.

use super::{Activation, Architecture, AttentionScale, Presence, RopeStyle, SlidingWindowRule};
use crate::error::Result;
use crate::gguf::Gguf;
use crate::model::config::Config;

pub const GEMMA3: Architecture = Architecture {
    name: "gemma3",
    activation: Activation::Gelu,
    rope: RopeStyle::Neox,
    qk_norm: Presence::Required,
    post_norms: true,
    attention_scale: AttentionScale::Queries,
    scale_embeddings: true,
    sliding_window: Some(SlidingWindowRule { default_window: 4096, default_pattern: 6, local_rope_base: 10_000.0 }),
    hparams,
};

fn hparams(c: &mut Config, _: &Gguf) -> Result<()> {
    // Gemma 3 27B scales queries by the model width per head; the others by the head size.
    if c.n_layer == 62 {
        c.attn_scale = 1.0 / ((c.n_embd / c.n_head) as f32).sqrt();
    }
    Ok(())
}
