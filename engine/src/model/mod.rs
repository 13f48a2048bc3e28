//! Transformer models: weights, the per-sequence state, and the forward pass.
//!
//! One forward pass handles a batch of consecutive tokens (prefill) or a single token
//! (decode). Architectures differ in a few places only, and each difference is spelled out
//! where it happens: Gemma 3 scales embeddings, normalises Q and K per head, normalises the
//! outputs of attention and FFN again before the residual add, uses GELU, and interleaves
//! sliding-window layers (local RoPE base) with global ones.

pub mod config;
pub mod kv_cache;
pub mod ops;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gguf::Gguf;
use crate::quant::{DotType, QuantizedRow};
use crate::storage::Storage;
use crate::tensor::{load_vector, Matrix};
use crate::tokenizer::Tokenizer;
pub use config::{Arch, Config, RopeStyle};
use kv_cache::LayerCache;
use ops::{attend, gelu, rms_norm, rope, silu};

/// Tokens per forward batch; sliding-window caches hold `window + UBATCH` slots.
pub const UBATCH: usize = 256;

#[derive(Debug)]
pub struct Layer {
    pub attn_norm: Vec<f32>,
    pub wq: Matrix,
    pub wk: Matrix,
    pub wv: Matrix,
    pub wo: Matrix,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub post_attn_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub w_gate: Matrix,
    pub w_up: Matrix,
    pub w_down: Matrix,
    pub post_ffn_norm: Option<Vec<f32>>,
}

pub struct Model {
    pub config: Config,
    /// Shared with the constraint engine, which tokenizes grammar literals.
    pub tokenizer: Arc<Tokenizer>,
    pub token_embd: Matrix,
    pub layers: Vec<Layer>,
    pub output_norm: Vec<f32>,
    /// The vocabulary projection; the same matrix as `token_embd` when tied.
    pub output: Matrix,
    pub gguf: Gguf,
    pub file_size: usize,
}

/// The last evaluated token's state, ready for the vocabulary projection.
pub struct Output(QuantizedRow);

/// The state of one sequence: its KV cache and the tokens already evaluated.
pub struct Session {
    caches: Vec<LayerCache>,
    pub tokens: Vec<u32>,
    /// One past the highest position ever written since the last reset: how far back
    /// sliding-window rings still hold what a rollback needs.
    high_water: usize,
    has_rings: bool,
}

impl Session {
    pub fn pos(&self) -> usize {
        self.tokens.len()
    }

    /// Forget everything after the first `n` tokens, so evaluation can resume from there
    /// (prefix reuse). Returns false, leaving the session as it was, when a sliding-window
    /// ring has already overwritten keys position `n` would need; the caller then restarts.
    pub fn truncate(&mut self, n: usize) -> bool {
        if n >= self.pos() {
            return n == self.pos();
        }
        if self.has_rings && self.high_water - n >= UBATCH {
            return false;
        }
        self.tokens.truncate(n);
        true
    }

    /// Start over (the caches' memory is kept).
    pub fn reset(&mut self) {
        self.tokens.clear();
        self.high_water = 0;
    }
}

impl Model {
    pub fn load(storage: Storage) -> Result<Model> {
        let storage = Arc::new(storage);
        let gguf = Gguf::parse(&storage)?;
        let config = Config::from_gguf(&gguf)?;
        let tokenizer = Arc::new(Tokenizer::from_gguf(&gguf)?);
        let c = &config;

        let matrix = |name: &str, rows: usize, cols: usize| -> Result<Matrix> {
            let info = gguf.tensor(name).ok_or_else(|| Error::Corrupt(format!("missing tensor '{name}'")))?;
            let m = Matrix::from_info(info, &storage)?;
            if m.rows != rows || m.cols != cols {
                return Err(Error::Corrupt(format!(
                    "tensor '{name}' is {}x{}, expected {rows}x{cols}",
                    m.rows, m.cols
                )));
            }
            Ok(m)
        };
        let vector = |name: &str, len: usize| load_vector(&gguf, &storage, name, len);
        let opt_vector = |name: &str, len: usize| -> Result<Option<Vec<f32>>> {
            if gguf.tensor(name).is_some() { vector(name, len).map(Some) } else { Ok(None) }
        };

        let vocab = tokenizer.vocab_size();
        let token_embd = matrix("token_embd.weight", vocab, c.n_embd)?;
        let output = if gguf.tensor("output.weight").is_some() {
            matrix("output.weight", vocab, c.n_embd)?
        } else {
            token_embd.clone()
        };
        let mut layers = Vec::with_capacity(c.n_layer);
        for l in 0..c.n_layer {
            let p = |s: &str| format!("blk.{l}.{s}.weight");
            let gemma = c.arch == Arch::Gemma3;
            let layer = Layer {
                attn_norm: vector(&p("attn_norm"), c.n_embd)?,
                wq: matrix(&p("attn_q"), c.q_dim(), c.n_embd)?,
                wk: matrix(&p("attn_k"), c.kv_dim(), c.n_embd)?,
                wv: matrix(&p("attn_v"), c.kv_dim(), c.n_embd)?,
                wo: matrix(&p("attn_output"), c.n_embd, c.q_dim())?,
                q_norm: if gemma { Some(vector(&p("attn_q_norm"), c.head_dim)?) } else { opt_vector(&p("attn_q_norm"), c.head_dim)? },
                k_norm: if gemma { Some(vector(&p("attn_k_norm"), c.head_dim)?) } else { opt_vector(&p("attn_k_norm"), c.head_dim)? },
                post_attn_norm: if gemma { Some(vector(&p("post_attention_norm"), c.n_embd)?) } else { None },
                ffn_norm: vector(&p("ffn_norm"), c.n_embd)?,
                w_gate: matrix(&p("ffn_gate"), c.n_ff, c.n_embd)?,
                w_up: matrix(&p("ffn_up"), c.n_ff, c.n_embd)?,
                w_down: matrix(&p("ffn_down"), c.n_embd, c.n_ff)?,
                post_ffn_norm: if gemma { Some(vector(&p("post_ffw_norm"), c.n_embd)?) } else { None },
            };
            layers.push(layer);
        }
        let output_norm = vector("output_norm.weight", c.n_embd)?;
        let file_size = storage.len();
        Ok(Model { config, tokenizer, token_embd, layers, output_norm, output, gguf, file_size })
    }

    pub fn vocab_size(&self) -> usize {
        self.output.rows
    }

    /// Number of weights in all tensors.
    pub fn parameter_count(&self) -> u64 {
        self.gguf.tensors.iter().map(|t| t.n_elements()).sum()
    }

    pub fn new_session(&self) -> Session {
        let c = &self.config;
        let caches = (0..c.n_layer)
            .map(|l| {
                let ring = if c.is_sliding(l) { c.sliding_window.map(|w| w + UBATCH) } else { None };
                LayerCache::new(c.kv_dim(), ring)
            })
            .collect();
        let has_rings = (0..c.n_layer).any(|l| c.is_sliding(l));
        Session { caches, tokens: Vec::new(), high_water: 0, has_rings }
    }

    /// Evaluate `tokens` after what the session holds; returns the logits of the last one.
    pub fn forward(&self, s: &mut Session, tokens: &[u32]) -> Result<Vec<f32>> {
        let out = self.forward_to_output(s, tokens)?;
        Ok(self.logits(&out))
    }

    /// Evaluate `tokens` and return the last one's output state (normalised and quantized
    /// for the vocabulary projection), for callers that want only some logits.
    pub fn forward_to_output(&self, s: &mut Session, tokens: &[u32]) -> Result<Output> {
        if tokens.is_empty() {
            return Err(Error::InvalidOption("no tokens to evaluate".into()));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.vocab_size()) {
            return Err(Error::InvalidOption(format!("token id {bad} is outside the vocabulary ({})", self.vocab_size())));
        }
        if s.pos() + tokens.len() > self.config.n_ctx_train {
            return Err(Error::ContextOverflow { needed: s.pos() + tokens.len(), limit: self.config.n_ctx_train });
        }
        let mut hidden = Vec::new();
        for chunk in tokens.chunks(UBATCH) {
            hidden = self.forward_batch(s, chunk);
        }
        let mut last = hidden[hidden.len() - self.config.n_embd..].to_vec();
        rms_norm(&mut last, &self.output_norm, self.config.rms_eps);
        let mut q = QuantizedRow::new(self.output.dot_type());
        q.quantize(&last);
        Ok(Output(q))
    }

    /// Logits over the whole vocabulary.
    pub fn logits(&self, out: &Output) -> Vec<f32> {
        let mut logits = vec![0.0; self.output.rows];
        self.output.matvec(&out.0, &mut logits);
        logits
    }

    /// Logits for `ids` only, the others -inf: the sparse output head, for when a constraint
    /// allows few tokens (Gemma's 262k-row projection otherwise dominates a step).
    pub fn logits_for(&self, out: &Output, ids: &[u32]) -> Vec<f32> {
        let mut logits = vec![f32::NEG_INFINITY; self.output.rows];
        let mut some = vec![0.0; ids.len()];
        self.output.matvec_rows(&out.0, ids, &mut some);
        for (&id, v) in ids.iter().zip(some) {
            logits[id as usize] = v;
        }
        logits
    }

    /// The transformer over one batch of consecutive tokens; returns the final hidden states.
    fn forward_batch(&self, s: &mut Session, tokens: &[u32]) -> Vec<f32> {
        let c = &self.config;
        let (n, d) = (tokens.len(), c.n_embd);
        let pos0 = s.pos();
        let hd = c.head_dim;

        // Token embeddings (Gemma scales them by √d).
        let mut x = vec![0.0f32; n * d];
        for (t, &tok) in tokens.iter().enumerate() {
            let row = &mut x[t * d..(t + 1) * d];
            self.token_embd.row(tok as usize, row);
            if c.embed_scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= c.embed_scale);
            }
        }

        let mut acts = Activations::default();
        let mut q = vec![0.0f32; n * c.q_dim()];
        let mut k = vec![0.0f32; n * c.kv_dim()];
        let mut v = vec![0.0f32; n * c.kv_dim()];
        let mut att = vec![0.0f32; n * c.q_dim()];
        let mut proj = vec![0.0f32; n * d];
        let mut gate = vec![0.0f32; n * c.n_ff];
        let mut up = vec![0.0f32; n * c.n_ff];
        let mut scores = Vec::new();

        for (l, layer) in self.layers.iter().enumerate() {
            let cache = &mut s.caches[l];
            let sliding = c.is_sliding(l);
            let (base, freq_scale) =
                if sliding { (c.rope_base_local, c.rope_freq_scale_local) } else { (c.rope_base, c.rope_freq_scale) };

            // --- attention ---
            let mut h = x.clone();
            h.chunks_exact_mut(d).for_each(|r| rms_norm(r, &layer.attn_norm, c.rms_eps));
            acts.set(&h, d);
            layer.wq.matmul(acts.get(layer.wq.dot_type()), &mut q);
            layer.wk.matmul(acts.get(layer.wk.dot_type()), &mut k);
            layer.wv.matmul(acts.get(layer.wv.dot_type()), &mut v);
            for t in 0..n {
                let pos = pos0 + t;
                for head in q[t * c.q_dim()..(t + 1) * c.q_dim()].chunks_exact_mut(hd) {
                    if let Some(w) = &layer.q_norm {
                        rms_norm(head, w, c.rms_eps);
                    }
                    rope(head, pos, c.n_rot, base, freq_scale, c.rope_style);
                    head.iter_mut().for_each(|v| *v *= c.attn_scale);
                }
                for head in k[t * c.kv_dim()..(t + 1) * c.kv_dim()].chunks_exact_mut(hd) {
                    if let Some(w) = &layer.k_norm {
                        rms_norm(head, w, c.rms_eps);
                    }
                    rope(head, pos, c.n_rot, base, freq_scale, c.rope_style);
                }
                cache.store(pos, &k[t * c.kv_dim()..(t + 1) * c.kv_dim()], &v[t * c.kv_dim()..(t + 1) * c.kv_dim()]);
            }
            let group = c.n_head / c.n_head_kv;
            for t in 0..n {
                let pos = pos0 + t;
                // A sliding-window query sees the last `window` positions, itself included.
                let first = match (sliding, c.sliding_window) {
                    (true, Some(w)) => (pos + 1).saturating_sub(w),
                    _ => 0,
                };
                // Query heads share their KV head (grouped-query attention): gather it once.
                for kvh in 0..c.n_head_kv {
                    let (keys, values): (Vec<&[f32]>, Vec<&[f32]>) =
                        (first..=pos).map(|p| cache.get(p, kvh, hd)).unzip();
                    for head in kvh * group..(kvh + 1) * group {
                        let at = t * c.q_dim() + head * hd;
                        attend(&q[at..at + hd], &keys, &values, &mut scores, &mut att[at..at + hd]);
                    }
                }
            }
            acts.set(&att, c.q_dim());
            layer.wo.matmul(acts.get(layer.wo.dot_type()), &mut proj);
            if let Some(w) = &layer.post_attn_norm {
                proj.chunks_exact_mut(d).for_each(|r| rms_norm(r, w, c.rms_eps));
            }
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);

            // --- feed-forward: down(act(gate(h)) * up(h)) ---
            let mut h = x.clone();
            h.chunks_exact_mut(d).for_each(|r| rms_norm(r, &layer.ffn_norm, c.rms_eps));
            acts.set(&h, d);
            layer.w_gate.matmul(acts.get(layer.w_gate.dot_type()), &mut gate);
            layer.w_up.matmul(acts.get(layer.w_up.dot_type()), &mut up);
            let act: fn(f32) -> f32 = if c.arch == Arch::Gemma3 { gelu } else { silu };
            gate.iter_mut().zip(&up).for_each(|(g, u)| *g = act(*g) * u);
            acts.set(&gate, c.n_ff);
            layer.w_down.matmul(acts.get(layer.w_down.dot_type()), &mut proj);
            if let Some(w) = &layer.post_ffn_norm {
                proj.chunks_exact_mut(d).for_each(|r| rms_norm(r, w, c.rms_eps));
            }
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        s.tokens.extend_from_slice(tokens);
        s.high_water = s.high_water.max(s.pos());
        x
    }
}

/// A batch of activation rows, quantized on demand once per dot type.
#[derive(Default)]
struct Activations {
    rows: Vec<f32>,
    width: usize,
    quantized: Vec<(DotType, Vec<QuantizedRow>)>,
}

impl Activations {
    fn set(&mut self, rows: &[f32], width: usize) {
        self.rows.clear();
        self.rows.extend_from_slice(rows);
        self.width = width;
        self.quantized.clear();
    }

    fn get(&mut self, kind: DotType) -> &[QuantizedRow] {
        if let Some(i) = self.quantized.iter().position(|(k, _)| *k == kind) {
            return &self.quantized[i].1;
        }
        let rows = self
            .rows
            .chunks_exact(self.width)
            .map(|r| {
                let mut q = QuantizedRow::new(kind);
                q.quantize(r);
                q
            })
            .collect();
        self.quantized.push((kind, rows));
        &self.quantized.last().unwrap().1
    }
}
