//! The architecture table: what one transformer family does differently from another, as
//! data read by the one shared block (`model::block`). Each family is a file here that
//! defines its row and the hyperparameter rules of its own; adding one is a row in
//! [`ARCHITECTURES`] and a file (llama.cpp's `src/models/*.cpp` over `build_attn`/`build_ffn`
//! is the same split).

mod gemma3;
mod llama;
mod phi3;
mod qwen2;
mod qwen3;

use crate::error::Result;
use crate::gguf::Gguf;

use super::config::Config;

/// Every architecture this engine runs, by `general.architecture`.
pub const ARCHITECTURES: &[&Architecture] = &[&llama::LLAMA, &gemma3::GEMMA3, &qwen2::QWEN2, &qwen3::QWEN3, &phi3::PHI3];

pub fn lookup(name: &str) -> Option<&'static Architecture> {
    ARCHITECTURES.iter().copied().find(|a| a.name == name)
}

#[derive(Debug)]
pub struct Architecture {
    /// `general.architecture`, and the prefix of its hyperparameter keys.
    pub name: &'static str,
    /// The feed-forward block's gate: down(act(gate(h)) * up(h)).
    pub activation: Activation,
    /// How RoPE pairs a head's dimensions.
    pub rope: RopeStyle,
    /// Per-head RMSNorm of queries and keys before RoPE (`attn_q_norm`, `attn_k_norm`).
    pub qk_norm: Presence,
    /// RMSNorm of the attention and feed-forward outputs before each residual add
    /// (`post_attention_norm`, `post_ffw_norm`).
    pub post_norms: bool,
    /// Token embeddings scaled by √n_embd.
    pub scale_embeddings: bool,
    /// Where the attention scale (1/√head_dim) is applied. It matters at f16 precision:
    /// the queries are rounded to f16 for q·k, and a scale that is not a power of two
    /// rounds differently before that rounding than after it.
    pub attention_scale: AttentionScale,
    /// Interleaved sliding-window layers, when the family has them.
    pub sliding_window: Option<SlidingWindowRule>,
    /// The family's own hyperparameter rules, applied to the llama defaults.
    pub hparams: fn(&mut Config, &Gguf) -> Result<()>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// GELU, tanh approximation.
    Gelu,
}

/// How RoPE pairs dimensions: adjacent (llama) or split halves (NeoX, Gemma).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    Adjacent,
    Neox,
}

/// Where a family applies its attention scale (as llama.cpp's graph for it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionScale {
    /// To the queries, after RoPE (Gemma 3, Phi-3).
    Queries,
    /// To the scores q·k, in the softmax (llama, Qwen).
    Scores,
}

/// Whether a family's layers carry an optional tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Used when the file has it.
    Optional,
    /// The file must have it.
    Required,
}

/// Sliding-window layers: all but every `pattern`-th, with their own RoPE base.
#[derive(Debug, Clone, Copy)]
pub struct SlidingWindowRule {
    /// `attention.sliding_window` when the file does not say.
    pub default_window: usize,
    /// `attention.sliding_window_pattern` when the file does not say.
    pub default_pattern: usize,
    /// RoPE base of the sliding-window layers (unscaled).
    pub local_rope_base: f32,
}
