//! Transformer models: weights, the per-sequence state, and the forward pass.
//!
//! One forward pass handles a batch of consecutive tokens (prefill) or a single token
//! (decode): embeddings, then the shared block (`block`: attention, feed-forward) per
//! layer. Architectures differ in a few places only, and those are rows of the table in
//! `arch` (Gemma 3, for one, scales embeddings, normalises Q and K per head, normalises the
//! outputs of attention and FFN again before the residual add, uses GELU, and interleaves
//! sliding-window layers with global ones).

pub mod arch;
mod block;
pub mod config;
pub mod kv_cache;
pub mod ops;
mod remote;
mod scratch;

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gguf::Gguf;
use crate::quant::QuantizedRow;
use crate::remote::RemoteForward;
use remote::{RemoteOutput, RemoteSequenceState};
use crate::storage::Storage;
use crate::tensor::{load_vector, Matrix};
use crate::tokenizer::Tokenizer;
use arch::Presence;
pub use arch::{Architecture, RopeStyle};
pub use config::Config;
use kv_cache::LayerCache;
use ops::rms_norm;
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
    /// Biases of Q, K, V and the output projection, where the file has them (Qwen2 has Q, K, V).
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub wo: Matrix,
    pub bo: Option<Vec<f32>>,
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
    /// Nowhere: a vocabulary-only GGUF (no tensors, as llama.cpp's `ggml-vocab-*.gguf`),
    /// which can tokenize, detokenize and describe itself, but not evaluate. The file's
    /// bytes when they are here (a host serves its header to a wasi:nn guest).
    VocabOnly(Option<Arc<Storage>>),
}

/// The weights of the portable forward pass.
pub struct Weights {
    pub token_embd: Matrix,
    pub layers: Vec<Layer>,
    pub output_norm: Vec<f32>,
    /// The vocabulary projection; the same matrix as `token_embd` when tied.
    pub output: Matrix,
    /// Divisors of the RoPE angles of each dimension pair (Llama 3.x, Phi-3 LongRoPE).
    pub rope_factors: Option<Vec<f32>>,
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
        let gguf = Gguf::parse(storage.whole().unwrap_or_default())?;
        Model::load_parsed(gguf, storage)
    }

    /// A model from a parsed header and storage holding (at least) its tensor data.
    pub fn load_parsed(gguf: Gguf, storage: Storage) -> Result<Model> {
        let storage = Arc::new(storage);
        let file_size = storage.file_len();
        Model::assemble(gguf, file_size, |gguf, config, tokenizer| {
            if gguf.tensors.is_empty() {
                return Ok(Backend::VocabOnly(Some(storage)));
            }
            Weights::load(gguf, storage, config, tokenizer.vocab_size()).map(Backend::Portable)
        })
    }

    /// A model whose forward pass runs elsewhere: `header` is the file's first bytes up to
    /// its tensor data (metadata and tensor table), enough for the tokenizer and config.
    pub fn remote(header: &[u8], file_size: u64, forward: Arc<dyn RemoteForward>) -> Result<Model> {
        let gguf = Gguf::parse_header(header, file_size)?;
        // A vocabulary-only file has nothing to run remotely either.
        Model::assemble(gguf, file_size as usize, |gguf, _, _| {
            Ok(if gguf.tensors.is_empty() { Backend::VocabOnly(None) } else { Backend::Remote(forward) })
        })
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
            Backend::VocabOnly(_) => "none (vocabulary only)".into(),
        }
    }

    /// The GGUF header (metadata and tensor table), for serving this model to a remote guest.
    pub fn header(&self) -> Option<&[u8]> {
        match &self.backend {
            // Only while the storage holds the whole file (not a wasm tail).
            Backend::Portable(Weights { storage, .. }) | Backend::VocabOnly(Some(storage)) => {
                storage.whole().map(|file| &file[..self.gguf.data_offset])
            }
            Backend::Remote(r) => r.header(),
            Backend::VocabOnly(None) => None,
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
            Backend::Remote(_) | Backend::VocabOnly(_) => Vec::new(),
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
            _ => {
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
            Backend::VocabOnly(_) => return Err(self.no_weights()),
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

    /// The error for evaluating a model without weights.
    pub(crate) fn no_weights(&self) -> Error {
        Error::InvalidOption(
            "this is a vocabulary-only GGUF (no tensors): it can tokenize, detokenize and describe itself, not evaluate".into(),
        )
    }

    /// What every batch must satisfy before anything is evaluated.
    fn check_batch(&self, s: &Session, tokens: &[u32]) -> Result<()> {
        if matches!(self.backend, Backend::VocabOnly(_)) {
            return Err(self.no_weights());
        }
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

    /// Evaluate `tokens` and hand every position's logits to `each(i, logits)`, `i` counting
    /// from the first of `tokens` (perplexity: position i predicts token i + 1). The output
    /// head runs on a few positions at a time, so memory stays at a few vocabularies' worth.
    /// Portable backend only.
    pub fn forward_each(&self, s: &mut Session, tokens: &[u32], mut each: impl FnMut(usize, &[f32])) -> Result<()> {
        let w = match &self.backend {
            Backend::Portable(w) => w,
            Backend::VocabOnly(_) => return Err(self.no_weights()),
            Backend::Remote(_) => {
                return Err(Error::InvalidOption("every position's logits need the portable backend".into()));
            }
        };
        self.check_batch(s, tokens)?;
        const HEAD_ROWS: usize = 8;
        let (d, vocab) = (self.config.n_embd, w.output.rows);
        let mut sc = Scratch::default();
        let mut rows: Vec<QuantizedRow> = Vec::new();
        let mut logits = vec![0.0f32; HEAD_ROWS * vocab];
        let mut done = 0;
        for chunk in tokens.chunks(UBATCH) {
            self.forward_batch(w, s, chunk, &mut sc, false);
            for (g, group) in sc.x.chunks(HEAD_ROWS * d).enumerate() {
                rows.resize_with(group.len() / d, || QuantizedRow::new(w.output.dot_type()));
                for (row, x) in rows.iter_mut().zip(group.chunks_exact(d)) {
                    sc.last.clear();
                    sc.last.extend_from_slice(x);
                    rms_norm(&mut sc.last, &w.output_norm, self.config.rms_eps);
                    row.quantize(&sc.last);
                }
                w.output.matmul(&rows, &mut logits);
                for (r, l) in logits.chunks_exact(vocab).take(rows.len()).enumerate() {
                    each(done + g * HEAD_ROWS + r, l);
                }
            }
            done += chunk.len();
        }
        Ok(())
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
        sc.resize(n, self.dims());
        // A query group's attention weights: one per head and position it sees, up to the
        // whole reservation.
        sc.scores.clear();
        sc.scores.reserve(c.n_head / c.n_head_kv * s.reserved.max(pos0 + n));

        // Token embeddings (scaled by √d in the families that do).
        for (t, &tok) in tokens.iter().enumerate() {
            let row = &mut sc.x[t * d..(t + 1) * d];
            w.token_embd.row(tok as usize, row);
            if c.embed_scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= c.embed_scale);
            }
        }

        for (l, layer) in w.layers.iter().enumerate() {
            // The first token whose output this layer must compute (its queries, attention,
            // feed-forward); keys and values are computed for all.
            let t0 = if last_only && l + 1 == w.layers.len() { n - 1 } else { 0 };
            block::attention(c, layer, l, w.rope_factors.as_deref(), &mut s.caches[l], pos0, t0, sc);
            block::feed_forward(c, layer, t0, sc);
        }
        s.advance(tokens);
    }
}

impl Weights {
    fn load(gguf: &Gguf, storage: Arc<Storage>, c: &Config, vocab: usize) -> Result<Weights> {
        // Every tensor the forward pass reads; one it would not read is refused below.
        let used = std::cell::RefCell::new(std::collections::HashSet::<String>::new());
        let has = |name: &str| gguf.tensor(name).is_some();
        let any_matrix = |name: &str| -> Result<Matrix> {
            let info = gguf.tensor(name).ok_or_else(|| Error::Corrupt(format!("missing tensor '{name}'")))?;
            used.borrow_mut().insert(name.to_string());
            Matrix::from_info(info, &storage)
        };
        let check = |m: Matrix, rows: usize, cols: usize| -> Result<Matrix> {
            if m.rows != rows || m.cols != cols {
                return Err(Error::Corrupt(format!("tensor '{}' is {}x{}, expected {rows}x{cols}", m.name, m.rows, m.cols)));
            }
            Ok(m)
        };
        let matrix = |name: &str, rows: usize, cols: usize| check(any_matrix(name)?, rows, cols);
        let vector = |name: &str, len: usize| {
            used.borrow_mut().insert(name.to_string());
            load_vector(gguf, &storage, name, len)
        };
        let opt_vector = |name: &str, len: usize| -> Result<Option<Vec<f32>>> {
            if has(name) { vector(name, len).map(Some) } else { Ok(None) }
        };

        let token_embd = matrix("token_embd.weight", vocab, c.n_embd)?;
        let output = if has("output.weight") { matrix("output.weight", vocab, c.n_embd)? } else { token_embd.clone() };
        // RoPE frequency factors: Llama 3's `rope_freqs`, or Phi-3's LongRoPE pair, the long
        // one when the context reaches past the original (llama.cpp decides by the context
        // it was given; edgeslm's is the trained one).
        let pairs = c.n_rot / 2;
        let rope_factors = match opt_vector("rope_freqs.weight", pairs)? {
            Some(f) => Some(f),
            None => {
                let (long, short) = (opt_vector("rope_factors_long.weight", pairs)?, opt_vector("rope_factors_short.weight", pairs)?);
                if c.n_ctx_train > c.n_ctx_orig { long.or(short) } else { short.or(long) }
            }
        };
        if let Some(f) = &rope_factors {
            if let Some(bad) = f.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                return Err(Error::Corrupt(format!("RoPE frequency factor {bad} is not a positive number")));
            }
        }

        // `block_count` is the file's word: nothing is sized by it before the layers' tensors
        // are found (a lying header fails at the first missing one, not in a huge allocation).
        let mut layers = Vec::new();
        for l in 0..c.n_layer {
            let p = |s: &str| format!("blk.{l}.{s}.weight");
            let bias = |s: &str, len: usize| opt_vector(&format!("blk.{l}.{s}.bias"), len);
            // The table says which of a layer's norms the family has, and which it requires.
            let qk_norm = |name: &str| match c.arch.qk_norm {
                Presence::Required => vector(&p(name), c.head_dim).map(Some),
                Presence::Optional => opt_vector(&p(name), c.head_dim),
            };
            let post_norm = |name: &str| if c.arch.post_norms { vector(&p(name), c.n_embd).map(Some) } else { Ok(None) };
            // Q, K and V: three tensors, or one fused `attn_qkv` whose rows are Q, K, V.
            let (q, kv) = (c.q_dim(), c.kv_dim());
            let (wq, wk, wv, bq, bk, bv) = if has(&p("attn_qkv")) {
                let qkv = matrix(&p("attn_qkv"), q + 2 * kv, c.n_embd)?;
                let b = bias("attn_qkv", q + 2 * kv)?;
                let part = |b: &Option<Vec<f32>>, r: std::ops::Range<usize>| b.as_ref().map(|b| b[r].to_vec());
                (
                    qkv.split_rows(0..q, &p("attn_qkv[q]"))?,
                    qkv.split_rows(q..q + kv, &p("attn_qkv[k]"))?,
                    qkv.split_rows(q + kv..q + 2 * kv, &p("attn_qkv[v]"))?,
                    part(&b, 0..q),
                    part(&b, q..q + kv),
                    part(&b, q + kv..q + 2 * kv),
                )
            } else {
                (
                    matrix(&p("attn_q"), q, c.n_embd)?,
                    matrix(&p("attn_k"), kv, c.n_embd)?,
                    matrix(&p("attn_v"), kv, c.n_embd)?,
                    bias("attn_q", q)?,
                    bias("attn_k", kv)?,
                    bias("attn_v", kv)?,
                )
            };
            // Gate and up: two tensors, or one `ffn_up` of twice the rows, the gate first.
            let (w_gate, w_up) = if has(&p("ffn_gate")) {
                (matrix(&p("ffn_gate"), c.n_ff, c.n_embd)?, matrix(&p("ffn_up"), c.n_ff, c.n_embd)?)
            } else {
                let fused = matrix(&p("ffn_up"), 2 * c.n_ff, c.n_embd)?;
                (fused.split_rows(0..c.n_ff, &p("ffn_up[gate]"))?, fused.split_rows(c.n_ff..2 * c.n_ff, &p("ffn_up[up]"))?)
            };
            let layer = Layer {
                attn_norm: vector(&p("attn_norm"), c.n_embd)?,
                wq,
                wk,
                wv,
                bq,
                bk,
                bv,
                wo: matrix(&p("attn_output"), c.n_embd, q)?,
                bo: bias("attn_output", c.n_embd)?,
                q_norm: qk_norm("attn_q_norm")?,
                k_norm: qk_norm("attn_k_norm")?,
                post_attn_norm: post_norm("post_attention_norm")?,
                ffn_norm: vector(&p("ffn_norm"), c.n_embd)?,
                w_gate,
                w_up,
                w_down: matrix(&p("ffn_down"), c.n_embd, c.n_ff)?,
                post_ffn_norm: post_norm("post_ffw_norm")?,
            };
            layers.push(layer);
        }
        let output_norm = vector("output_norm.weight", c.n_embd)?;
        // A tensor of the text model that nothing reads would be silently wrong output (a
        // bias or norm of a variant not implemented): refused. Other modalities' tensors
        // (a vision tower in the same file) are not the text model's and are left alone.
        let used = used.into_inner();
        let text_model = |n: &str| ["blk.", "token_embd.", "output", "rope_"].iter().any(|p| n.starts_with(p));
        if let Some(t) = gguf.tensors.iter().find(|t| text_model(&t.name) && !used.contains(&t.name)) {
            return Err(Error::UnsupportedArchitecture(format!("{} with tensor '{}', which this engine does not implement", c.arch.name, t.name)));
        }
        Ok(Weights { token_embd, layers, output_norm, output, rope_factors, storage, scratch: Mutex::default() })
    }
}
