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
mod scratch;

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gguf::Gguf;
use crate::quant::QuantizedRow;
use crate::remote::{self, RemoteForward, RemoteOutput, RemoteSequenceState};
use crate::storage::Storage;
use crate::tensor::{load_vector, Matrix};
use crate::tokenizer::Tokenizer;
pub use config::{Arch, Config, RopeStyle};
use kv_cache::LayerCache;
use ops::{attend, gelu, rms_norm, rope, silu};
use scratch::{Dims, Scratch, KEEP_TOKENS};

/// Tokens per forward batch. 128 rather than 256: the batch's activations (~5 MB for Gemma 3
/// 270M) stay nearer the cache and take half the memory, at no cost in speed.
pub const UBATCH: usize = 128;

/// Sliding-window caches hold `window + RING_SLACK` slots. A batch's first query looks back a
/// window from before the batch (so the slack is at least `UBATCH`); the rest lets a session
/// roll back up to this many tokens (prompt reuse: a new input after the same instruction).
pub const RING_SLACK: usize = 256;
const _: () = assert!(RING_SLACK >= UBATCH);

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
    /// The file's header; its vocabulary arrays have moved into `tokenizer`.
    pub gguf: Gguf,
    pub file_size: usize,
    /// Where the forward pass runs.
    pub backend: Backend,
}

/// Where a model's forward pass runs.
pub enum Backend {
    /// Here, with this build's kernels over weights in this process's memory.
    Portable(Weights),
    /// Elsewhere (the host, through wasi:nn): only the tokenizer and config live here.
    Remote(Arc<dyn RemoteForward>),
}

/// The weights of the portable forward pass.
pub struct Weights {
    pub token_embd: Matrix,
    pub layers: Vec<Layer>,
    pub output_norm: Vec<f32>,
    /// The vocabulary projection; the same matrix as `token_embd` when tied.
    pub output: Matrix,
    storage: Arc<Storage>,
    /// The forward pass's buffers, reused by short calls (decode steps). A caller that finds
    /// them taken (another thread's forward pass on the same model) works in fresh ones.
    scratch: Mutex<Scratch>,
}

/// The last evaluated token's state, ready for the vocabulary projection.
pub enum Output {
    Local(QuantizedRow),
    Remote(RemoteOutput),
}

/// The state of one sequence: its KV cache and the tokens already evaluated.
pub struct Session {
    caches: Vec<LayerCache>,
    /// The remote backend's sequence (created on first use).
    pub(crate) remote: Option<Arc<Mutex<RemoteSequenceState>>>,
    pub tokens: Vec<u32>,
    /// One past the highest position ever written since the last reset: how far back
    /// sliding-window rings still hold what a rollback needs.
    high_water: usize,
    has_rings: bool,
    /// The positions `reserve` made room for.
    reserved: usize,
}

impl Session {
    pub fn pos(&self) -> usize {
        self.tokens.len()
    }

    /// Forget everything after the first `n` tokens, so evaluation can resume from there
    /// (prefix reuse). Returns false, leaving the session as it was, when a sliding-window
    /// ring has already overwritten keys position `n` would need; the caller then restarts.
    /// (A remote sequence follows the same rule, so guest and host agree on what is possible.)
    pub fn truncate(&mut self, n: usize) -> bool {
        if n >= self.pos() {
            return n == self.pos();
        }
        if self.has_rings && self.high_water - n >= RING_SLACK {
            return false;
        }
        self.tokens.truncate(n);
        true
    }

    /// Make room in the caches for `positions` positions in all, so that evaluating up to
    /// there allocates nothing (a generation knows how far it may go).
    pub fn reserve(&mut self, positions: usize) {
        self.caches.iter_mut().for_each(|c| c.reserve(positions));
        self.tokens.reserve(positions.saturating_sub(self.tokens.len()));
        self.reserved = self.reserved.max(positions);
    }

    /// Start over (the caches' memory is kept).
    pub fn reset(&mut self) {
        self.tokens.clear();
        self.high_water = 0;
    }

    pub(crate) fn advance(&mut self, tokens: &[u32]) {
        self.tokens.extend_from_slice(tokens);
        self.high_water = self.high_water.max(self.pos());
    }
}

impl Model {
    /// A model from a whole GGUF file's bytes.
    pub fn load(storage: Storage) -> Result<Model> {
        let gguf = Gguf::parse(storage.held())?;
        Model::load_parsed(gguf, storage)
    }

    /// A model from a parsed header and storage holding (at least) its tensor data.
    pub fn load_parsed(gguf: Gguf, storage: Storage) -> Result<Model> {
        let storage = Arc::new(storage);
        let file_size = storage.base() + storage.held().len();
        Model::assemble(gguf, file_size, |gguf, config, tokenizer| {
            Weights::load(gguf, storage, config, tokenizer.vocab_size()).map(Backend::Portable)
        })
    }

    /// A model whose forward pass runs elsewhere: `header` is the file's first bytes up to
    /// its tensor data (metadata and tensor table), enough for the tokenizer and config.
    pub fn remote(header: &[u8], file_size: u64, forward: Arc<dyn RemoteForward>) -> Result<Model> {
        let gguf = Gguf::parse_header(header, file_size)?;
        Model::assemble(gguf, file_size as usize, |_, _, _| Ok(Backend::Remote(forward)))
    }

    /// Config and tokenizer from the GGUF metadata, then the backend that runs the forward pass.
    fn assemble(
        mut gguf: Gguf,
        file_size: usize,
        backend: impl FnOnce(&Gguf, &Config, &Tokenizer) -> Result<Backend>,
    ) -> Result<Model> {
        let config = Config::from_gguf(&gguf)?;
        let tokenizer = Arc::new(Tokenizer::from_gguf(&mut gguf)?);
        let backend = backend(&gguf, &config, &tokenizer)?;
        Ok(Model { config, tokenizer, gguf, file_size, backend })
    }

    /// What runs the forward pass: "portable", or the remote backend's name.
    pub fn backend_name(&self) -> String {
        match &self.backend {
            Backend::Portable(_) => "portable".into(),
            Backend::Remote(r) => r.name(),
        }
    }

    /// The GGUF header (metadata and tensor table), for serving this model to a remote guest.
    pub fn header(&self) -> Option<&[u8]> {
        match &self.backend {
            // Only while the storage holds the file from its start (not a wasm tail).
            Backend::Portable(w) if w.storage.base() == 0 => Some(&w.storage.held()[..self.gguf.data_offset]),
            _ => None,
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.vocab_size()
    }

    /// Number of weights in all tensors.
    pub fn parameter_count(&self) -> u64 {
        self.gguf.tensors.iter().map(|t| t.n_elements()).sum()
    }

    pub fn new_session(&self) -> Session {
        let c = &self.config;
        let caches = match self.backend {
            Backend::Portable(_) => (0..c.n_layer)
                .map(|l| {
                    let ring = if c.is_sliding(l) { c.sliding_window.map(|w| w + RING_SLACK) } else { None };
                    LayerCache::new(c.kv_dim(), ring)
                })
                .collect(),
            Backend::Remote(_) => Vec::new(),
        };
        let has_rings = (0..c.n_layer).any(|l| c.is_sliding(l));
        Session { caches, remote: None, tokens: Vec::new(), high_water: 0, has_rings, reserved: 0 }
    }

    /// Evaluate `tokens` after what the session holds; returns the logits of the last one.
    pub fn forward(&self, s: &mut Session, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut logits = Vec::new();
        self.forward_into(s, tokens, &mut logits)?;
        Ok(logits)
    }

    /// `forward`, writing the logits into `logits` (resized to the vocabulary). With the
    /// portable backend a decode step this way allocates nothing once the buffers have grown
    /// (the session's caches: see [`Session::reserve`]).
    pub fn forward_into(&self, s: &mut Session, tokens: &[u32], logits: &mut Vec<f32>) -> Result<()> {
        let w = match &self.backend {
            Backend::Portable(w) => w,
            Backend::Remote(_) => {
                *logits = self.logits(&self.forward_to_output(s, tokens)?)?;
                return Ok(());
            }
        };
        self.forward_local(w, s, tokens, |out| {
            logits.resize(w.output.rows, 0.0);
            w.output.matvec(out, logits);
        })
    }

    /// Evaluate `tokens` and return the last one's output state (normalised and quantized
    /// for the vocabulary projection), for callers that want only some logits.
    pub fn forward_to_output(&self, s: &mut Session, tokens: &[u32]) -> Result<Output> {
        let w = match &self.backend {
            Backend::Portable(w) => w,
            Backend::Remote(r) => {
                self.check_batch(s, tokens)?;
                return remote::forward(r.as_ref(), s, tokens).map(Output::Remote);
            }
        };
        self.forward_local(w, s, tokens, |out| Output::Local(out.clone()))
    }

    /// The portable forward pass over `tokens` (checked first), then `finish` on the last
    /// token's quantized output state. Short calls work in the kept buffers (when no other
    /// thread holds them), long ones in buffers of their own.
    fn forward_local<R>(&self, w: &Weights, s: &mut Session, tokens: &[u32], finish: impl FnOnce(&QuantizedRow) -> R) -> Result<R> {
        self.check_batch(s, tokens)?;
        let mut held = if tokens.len() <= KEEP_TOKENS { w.scratch.try_lock().ok() } else { None };
        let mut fresh = Scratch::default();
        let sc = held.as_deref_mut().unwrap_or(&mut fresh);
        self.forward_last(w, s, tokens, sc);
        Ok(finish(sc.out.as_ref().expect("forward_last quantizes the output")))
    }

    fn dims(&self) -> Dims {
        let c = &self.config;
        Dims { d: c.n_embd, q_dim: c.q_dim(), kv_dim: c.kv_dim(), n_ff: c.n_ff }
    }

    /// What every batch must satisfy before anything is evaluated.
    fn check_batch(&self, s: &Session, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(Error::InvalidOption("no tokens to evaluate".into()));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.vocab_size()) {
            return Err(Error::InvalidOption(format!("token id {bad} is outside the vocabulary ({})", self.vocab_size())));
        }
        if s.pos() + tokens.len() > self.config.n_ctx_train {
            return Err(Error::ContextOverflow { needed: s.pos() + tokens.len(), limit: self.config.n_ctx_train });
        }
        Ok(())
    }

    /// The transformer over `tokens` (checked), in batches of `UBATCH`; leaves the last
    /// token's normalised, quantized hidden state in `sc.out`.
    fn forward_last(&self, w: &Weights, s: &mut Session, tokens: &[u32], sc: &mut Scratch) {
        let batches = tokens.len().div_ceil(UBATCH);
        for (i, chunk) in tokens.chunks(UBATCH).enumerate() {
            self.forward_batch(w, s, chunk, sc, i + 1 == batches);
        }
        let d = self.config.n_embd;
        sc.last.clear();
        sc.last.extend_from_slice(&sc.x[sc.x.len() - d..]);
        rms_norm(&mut sc.last, &w.output_norm, self.config.rms_eps);
        let out = sc.out.get_or_insert_with(|| QuantizedRow::new(w.output.dot_type()));
        out.quantize(&sc.last);
    }

    /// Logits over the whole vocabulary.
    pub fn logits(&self, out: &Output) -> Result<Vec<f32>> {
        match (&self.backend, out) {
            (Backend::Portable(w), Output::Local(q)) => {
                let mut logits = vec![0.0; w.output.rows];
                w.output.matvec(q, &mut logits);
                Ok(logits)
            }
            (_, Output::Remote(r)) => r.logits(None, self.vocab_size()),
            _ => Err(Error::InvalidOption("this output belongs to another backend".into())),
        }
    }

    /// Logits for `ids` only, the others -inf: the sparse output head, for when a constraint
    /// allows few tokens (Gemma's 262k-row projection otherwise dominates a step).
    pub fn logits_for(&self, out: &Output, ids: &[u32]) -> Result<Vec<f32>> {
        let mut logits = vec![f32::NEG_INFINITY; self.vocab_size()];
        for (&id, v) in ids.iter().zip(self.logits_of(out, ids)?) {
            logits[id as usize] = v;
        }
        Ok(logits)
    }

    /// The logits of `ids`, in their order (the sparse head, without the full vector).
    pub fn logits_of(&self, out: &Output, ids: &[u32]) -> Result<Vec<f32>> {
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= self.vocab_size()) {
            return Err(Error::InvalidOption(format!("token id {bad} is outside the vocabulary ({})", self.vocab_size())));
        }
        match (&self.backend, out) {
            (Backend::Portable(w), Output::Local(q)) => {
                let mut some = vec![0.0; ids.len()];
                w.output.matvec_rows(q, ids, &mut some);
                Ok(some)
            }
            (_, Output::Remote(r)) => r.logits(Some(ids), self.vocab_size()),
            _ => Err(Error::InvalidOption("this output belongs to another backend".into())),
        }
    }

    /// The transformer over one batch of consecutive tokens; leaves the final hidden states
    /// in `sc.x`. With `last_only`, only the last token's is final: in the last layer the
    /// others just leave their keys and values in the cache (what later tokens attend to),
    /// as no output of theirs is read (llama.cpp skips these rows the same way).
    fn forward_batch(&self, w: &Weights, s: &mut Session, tokens: &[u32], sc: &mut Scratch, last_only: bool) {
        let c = &self.config;
        let (n, d) = (tokens.len(), c.n_embd);
        let pos0 = s.pos();
        let hd = c.head_dim;
        sc.resize(n, self.dims());
        let Scratch { x, h, q, k, v, att, proj, gate, up, scores, q16, acts, .. } = sc;
        // A query group's attention weights: one per head and position it sees, up to the
        // whole reservation.
        let group = c.n_head / c.n_head_kv;
        scores.clear();
        scores.reserve(group * s.reserved.max(pos0 + n));

        // Token embeddings (Gemma scales them by √d).
        for (t, &tok) in tokens.iter().enumerate() {
            let row = &mut x[t * d..(t + 1) * d];
            w.token_embd.row(tok as usize, row);
            if c.embed_scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= c.embed_scale);
            }
        }

        for (l, layer) in w.layers.iter().enumerate() {
            // The first token whose output this layer must compute (its queries, attention,
            // feed-forward); keys and values are computed for all.
            let t0 = if last_only && l + 1 == w.layers.len() { n - 1 } else { 0 };
            let cache = &mut s.caches[l];
            let sliding = c.is_sliding(l);
            let (base, freq_scale) =
                if sliding { (c.rope_base_local, c.rope_freq_scale_local) } else { (c.rope_base, c.rope_freq_scale) };

            // --- attention ---
            h.copy_from_slice(x);
            h.chunks_exact_mut(d).for_each(|r| rms_norm(r, &layer.attn_norm, c.rms_eps));
            acts.set(h, d);
            layer.wq.matmul(&acts.get(layer.wq.dot_type())[t0..], &mut q[t0 * c.q_dim()..]);
            layer.wk.matmul(acts.get(layer.wk.dot_type()), k);
            layer.wv.matmul(acts.get(layer.wv.dot_type()), v);
            for t in t0..n {
                for head in q[t * c.q_dim()..(t + 1) * c.q_dim()].chunks_exact_mut(hd) {
                    if let Some(w) = &layer.q_norm {
                        rms_norm(head, w, c.rms_eps);
                    }
                    rope(head, pos0 + t, c.n_rot, base, freq_scale, c.rope_style);
                    head.iter_mut().for_each(|v| *v *= c.attn_scale);
                }
            }
            for t in 0..n {
                let pos = pos0 + t;
                for head in k[t * c.kv_dim()..(t + 1) * c.kv_dim()].chunks_exact_mut(hd) {
                    if let Some(w) = &layer.k_norm {
                        rms_norm(head, w, c.rms_eps);
                    }
                    rope(head, pos, c.n_rot, base, freq_scale, c.rope_style);
                }
                cache.store(pos, &k[t * c.kv_dim()..(t + 1) * c.kv_dim()], &v[t * c.kv_dim()..(t + 1) * c.kv_dim()]);
            }
            let cache = &*cache;
            for t in t0..n {
                let pos = pos0 + t;
                // A sliding-window query sees the last `window` positions, itself included.
                let first = match (sliding, c.sliding_window) {
                    (true, Some(w)) => (pos + 1).saturating_sub(w),
                    _ => 0,
                };
                // Each KV head with the query heads that share it (grouped-query attention).
                for kvh in 0..c.n_head_kv {
                    let at = t * c.q_dim() + kvh * group * hd;
                    let heads = at..at + group * hd;
                    let kv = |i: usize| cache.get(first + i, kvh, hd);
                    attend(&q[heads.clone()], hd, pos + 1 - first, kv, q16, scores, &mut att[heads]);
                }
            }
            // From here on, the rows from `t0`.
            let (x, h, proj) = (&mut x[t0 * d..], &mut h[t0 * d..], &mut proj[t0 * d..]);
            let (gate, up) = (&mut gate[t0 * c.n_ff..], &mut up[t0 * c.n_ff..]);
            acts.set(&att[t0 * c.q_dim()..], c.q_dim());
            layer.wo.matmul(acts.get(layer.wo.dot_type()), proj);
            if let Some(w) = &layer.post_attn_norm {
                proj.chunks_exact_mut(d).for_each(|r| rms_norm(r, w, c.rms_eps));
            }
            x.iter_mut().zip(proj.iter()).for_each(|(a, b)| *a += b);

            // --- feed-forward: down(act(gate(h)) * up(h)) ---
            h.copy_from_slice(x);
            h.chunks_exact_mut(d).for_each(|r| rms_norm(r, &layer.ffn_norm, c.rms_eps));
            acts.set(h, d);
            layer.w_gate.matmul(acts.get(layer.w_gate.dot_type()), gate);
            layer.w_up.matmul(acts.get(layer.w_up.dot_type()), up);
            let act: fn(f32) -> f32 = if c.arch == Arch::Gemma3 { gelu } else { silu };
            gate.iter_mut().zip(up.iter()).for_each(|(g, u)| *g = act(*g) * u);
            acts.set(gate, c.n_ff);
            layer.w_down.matmul(acts.get(layer.w_down.dot_type()), proj);
            if let Some(w) = &layer.post_ffn_norm {
                proj.chunks_exact_mut(d).for_each(|r| rms_norm(r, w, c.rms_eps));
            }
            x.iter_mut().zip(proj.iter()).for_each(|(a, b)| *a += b);
        }
        s.advance(tokens);
    }
}

impl Weights {
    fn load(gguf: &Gguf, storage: Arc<Storage>, c: &Config, vocab: usize) -> Result<Weights> {
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
        let vector = |name: &str, len: usize| load_vector(gguf, &storage, name, len);
        let opt_vector = |name: &str, len: usize| -> Result<Option<Vec<f32>>> {
            if gguf.tensor(name).is_some() { vector(name, len).map(Some) } else { Ok(None) }
        };

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
        Ok(Weights { token_embd, layers, output_norm, output, storage, scratch: Mutex::default() })
    }
}
