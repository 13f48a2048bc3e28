//! Hyperparameters read from GGUF metadata (`<arch>.*` keys), with llama.cpp's defaults;
//! what differs by family comes from the architecture table (`arch`).

use super::arch::{self, Architecture, RopeStyle};
use crate::error::{Error, Result};
use crate::gguf::Gguf;

#[derive(Debug, Clone)]
pub struct Config {
    pub arch: &'static Architecture,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope_style: RopeStyle,
    pub n_rot: usize,
    /// RoPE base for global-attention layers, and the multiplier applied to positions.
    pub rope_base: f32,
    pub rope_freq_scale: f32,
    /// RoPE base for sliding-window layers (Gemma 3 uses 10 000 there).
    pub rope_base_local: f32,
    pub rope_freq_scale_local: f32,
    /// Sliding-window size and which layers use it (every layer but each `swa_pattern`-th).
    pub sliding_window: Option<usize>,
    pub swa_pattern: usize,
    /// The attention scale, on the queries or the scores (`arch.attention_scale`).
    pub attn_scale: f32,
    /// Token embeddings are multiplied by this (√n_embd for Gemma).
    pub embed_scale: f32,
    /// RoPE's cos and sin are multiplied by this (`rope.scaling.attn_factor`: LongRoPE).
    pub rope_attn_factor: f32,
    /// The context the model was first trained for (`rope.scaling.original_context_length`):
    /// past it, LongRoPE's long factors apply.
    pub n_ctx_orig: usize,
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let arch_name = g.require_str("general.architecture")?;
        let arch = arch::lookup(arch_name).ok_or_else(|| Error::UnsupportedArchitecture(arch_name.to_string()))?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let req = |k: &str| -> Result<usize> {
            let v = g.require_u64(&key(k))?;
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0 && v < (1 << 24))
                .ok_or_else(|| Error::Corrupt(format!("{} = {v} is out of range", key(k))))
        };
        let opt = |k: &str| g.get_u64(&key(k)).map(|v| v as usize);
        let n_embd = req("embedding_length")?;
        let n_layer = req("block_count")?;
        let n_head = req("attention.head_count")?;
        let n_head_kv = opt("attention.head_count_kv").unwrap_or(n_head);
        let n_ff = req("feed_forward_length")?;
        let n_ctx_train = req("context_length")?;
        if n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(Error::Corrupt(format!("{n_head} attention heads cannot share {n_head_kv} KV heads")));
        }
        let head_dim = opt("attention.key_length").unwrap_or(n_embd / n_head);
        if head_dim == 0 || head_dim % 2 != 0 || head_dim > 1024 {
            return Err(Error::Corrupt(format!("attention head size {head_dim}")));
        }
        if let Some(v) = opt("attention.value_length") {
            if v != head_dim {
                return Err(Error::UnsupportedArchitecture(format!("{arch_name} with value length {v} != key length {head_dim}")));
            }
        }
        let n_rot = opt("rope.dimension_count").unwrap_or(head_dim);
        if n_rot > head_dim || n_rot % 2 != 0 || n_rot > 2 * super::ops::MAX_ROPE_PAIRS {
            return Err(Error::Corrupt(format!("rope dimension count {n_rot} for head size {head_dim} (at most {})", 2 * super::ops::MAX_ROPE_PAIRS)));
        }
        let rms_eps = g.get_f64(&key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-6) as f32;
        // Linear RoPE scaling divides positions by the factor; converters sometimes write
        // only the factor, without the type.
        let linear_scale = match g.get_str(&key("rope.scaling.type")) {
            None | Some("linear") | Some("longrope") => match g.get_f64(&key("rope.scaling.factor")) {
                Some(f) if f > 0.0 => (1.0 / f) as f32,
                _ => 1.0,
            },
            Some("none") => 1.0,
            Some(other) => return Err(Error::UnsupportedArchitecture(format!("rope scaling '{other}'"))),
        };
        let rope_base = g.get_f64(&key("rope.freq_base")).unwrap_or(10_000.0) as f32;

        let mut cfg = Config {
            arch,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            n_ctx_train,
            rms_eps,
            rope_style: arch.rope,
            n_rot,
            rope_base,
            rope_freq_scale: linear_scale,
            rope_base_local: rope_base,
            rope_freq_scale_local: linear_scale,
            sliding_window: None,
            swa_pattern: 1,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            embed_scale: if arch.scale_embeddings { (n_embd as f32).sqrt() } else { 1.0 },
            rope_attn_factor: g.get_f64(&key("rope.scaling.attn_factor")).filter(|f| *f > 0.0).unwrap_or(1.0) as f32,
            n_ctx_orig: opt("rope.scaling.original_context_length").unwrap_or(n_ctx_train),
        };
        if let Some(rule) = arch.sliding_window {
            // Sliding-window layers use their own base, without scaling.
            cfg.rope_base_local = rule.local_rope_base;
            cfg.rope_freq_scale_local = 1.0;
            cfg.sliding_window = Some(opt("attention.sliding_window").unwrap_or(rule.default_window));
            cfg.swa_pattern = opt("attention.sliding_window_pattern").filter(|&p| p > 0).unwrap_or(rule.default_pattern);
        }
        (arch.hparams)(&mut cfg, g)?;
        Ok(cfg)
    }

    /// Sliding-window layers: all but every `swa_pattern`-th (layers 5, 11, 17 are global in Gemma 3).
    pub fn is_sliding(&self, layer: usize) -> bool {
        self.sliding_window.is_some() && layer % self.swa_pattern < self.swa_pattern - 1
    }

    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}
