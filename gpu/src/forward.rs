//! The transformer on the GPU, behind the step protocol (`edgeslm_engine::remote`): tokens
//! in, the last position's logits (all, or for the allowed ids only) out. It follows the
//! engine's `model::block` step for step: the same architecture table, the same optional
//! tensors, f16 precision where the CPU path keeps it (KV cache, GELU, the queries in q·k).
//!
//! Everything runs on the GPU, the token embedding lookup included: per step only the new
//! token ids go up and the requested logits come back.

use std::sync::{Arc, Mutex};

use edgeslm_engine::model::arch::{Activation, AttentionScale};
use edgeslm_engine::model::{Backend, Config, RopeStyle, UBATCH};
use edgeslm_engine::quant::GgmlType;
use edgeslm_engine::remote::{RemoteForward, RemoteSequence, Step};
use edgeslm_engine::{Error, Model, Result};

use crate::device::Gpu;
use crate::kernels::{params_buffer, AttentionParams, Kernels, Op, OpParams, Pass};
use crate::weights::{GpuMatrix, Vectors};

struct GpuLayer {
    attn_norm: u32,
    wq: GpuMatrix,
    wk: GpuMatrix,
    wv: GpuMatrix,
    bq: Option<u32>,
    bk: Option<u32>,
    bv: Option<u32>,
    wo: GpuMatrix,
    bo: Option<u32>,
    q_norm: Option<u32>,
    k_norm: Option<u32>,
    post_attn_norm: Option<u32>,
    ffn_norm: u32,
    w_gate: GpuMatrix,
    w_up: GpuMatrix,
    w_down: GpuMatrix,
    post_ffn_norm: Option<u32>,
}

/// A batch's activations (`UBATCH` tokens at most), shared by the sequences of a model:
/// one forward pass runs at a time.
struct Scratch {
    x: wgpu::Buffer,
    h: wgpu::Buffer,
    q: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    att: wgpu::Buffer,
    proj: wgpu::Buffer,
    gate: wgpu::Buffer,
    up: wgpu::Buffer,
    logits: wgpu::Buffer,
    /// (row within a piece, output slot) pairs of the sparse head.
    ids: wgpu::Buffer,
    params: wgpu::Buffer,
}

/// A model whose forward pass runs on the GPU.
pub struct GpuModel {
    gpu: Gpu,
    kernels: Kernels,
    /// The portable model: its config, and its file's header for wasi:nn guests.
    cpu: Arc<Model>,
    token_embd: Arc<GpuMatrix>,
    layers: Vec<GpuLayer>,
    output_norm: u32,
    /// The same matrix as `token_embd` when the model ties them (uploaded once).
    output: Arc<GpuMatrix>,
    rope_factors: Option<u32>,
    vectors: wgpu::Buffer,
    scratch: Mutex<Scratch>,
}

/// Dispatches of one batch: per layer 21 besides the matrix products (at most: the optional
/// biases and norms), one product per piece of each matrix, and the final copy and norm.
fn dispatches_per_batch(layers: &[GpuLayer]) -> usize {
    let products = |l: &GpuLayer| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down].iter().map(|m| m.pieces.len()).sum::<usize>();
    layers.iter().map(|l| 21 + products(l)).sum::<usize>() + 2
}

impl GpuModel {
    /// Upload `cpu`'s weights (a portable model) to `gpu`.
    pub fn new(gpu: Gpu, cpu: Arc<Model>) -> Result<GpuModel> {
        let Backend::Portable(w) = &cpu.backend else {
            return Err(Error::InvalidOption("the GPU runs models loaded with their weights".into()));
        };
        let c = &cpu.config;
        if c.head_dim > 256 {
            return Err(Error::UnsupportedArchitecture(format!("heads of {} dimensions on the GPU (at most 256)", c.head_dim)));
        }
        let mut types: Vec<GgmlType> = vec![w.output.ty];
        let token_embd = Arc::new(GpuMatrix::upload(&gpu, &w.token_embd)?);
        let mut vectors = Vectors::default();
        let mut layers = Vec::new();
        for layer in &w.layers {
            let m = |m| GpuMatrix::upload(&gpu, m);
            for t in [&layer.wq, &layer.wk, &layer.wv, &layer.wo, &layer.w_gate, &layer.w_up, &layer.w_down] {
                types.push(t.ty);
            }
            layers.push(GpuLayer {
                attn_norm: vectors.add(&layer.attn_norm),
                wq: m(&layer.wq)?,
                wk: m(&layer.wk)?,
                wv: m(&layer.wv)?,
                bq: vectors.add_opt(&layer.bq),
                bk: vectors.add_opt(&layer.bk),
                bv: vectors.add_opt(&layer.bv),
                wo: m(&layer.wo)?,
                bo: vectors.add_opt(&layer.bo),
                q_norm: vectors.add_opt(&layer.q_norm),
                k_norm: vectors.add_opt(&layer.k_norm),
                post_attn_norm: vectors.add_opt(&layer.post_attn_norm),
                ffn_norm: vectors.add(&layer.ffn_norm),
                w_gate: m(&layer.w_gate)?,
                w_up: m(&layer.w_up)?,
                w_down: m(&layer.w_down)?,
                post_ffn_norm: vectors.add_opt(&layer.post_ffn_norm),
            });
        }
        let output_norm = vectors.add(&w.output_norm);
        let rope_factors = vectors.add_opt(&w.rope_factors);
        let tied = w.output.name == w.token_embd.name;
        let output = if tied { token_embd.clone() } else { Arc::new(GpuMatrix::upload(&gpu, &w.output)?) };
        let vectors = vectors.upload(&gpu);
        let kernels = Kernels::new(&gpu, types, [w.token_embd.ty]);
        let f32s = |label: &str, n: usize| gpu.buffer(label, 4 * n as u64, wgpu::BufferUsages::empty());
        let b = UBATCH;
        let vocab = w.output.rows;
        let scratch = Scratch {
            x: f32s("x", b * c.n_embd),
            h: f32s("h", b * c.n_embd),
            q: f32s("q", b * c.q_dim()),
            k: f32s("k", b * c.kv_dim()),
            v: f32s("v", b * c.kv_dim()),
            att: f32s("att", b * c.q_dim()),
            proj: f32s("proj", b * c.n_embd),
            gate: f32s("gate", b * c.n_ff),
            up: f32s("up", b * c.n_ff),
            logits: f32s("logits", vocab),
            ids: f32s("ids", 2 * vocab.max(b)),
            params: params_buffer(&gpu, dispatches_per_batch(&layers) + token_embd.pieces.len() + 1),
        };
        gpu.wait()?;
        gpu.check("uploading the weights")?;
        Ok(GpuModel { gpu, kernels, cpu, token_embd, layers, output_norm, output, rope_factors, vectors, scratch: Mutex::new(scratch) })
    }

    pub fn name(&self) -> &str {
        &self.gpu.name
    }

    fn config(&self) -> &Config {
        &self.cpu.config
    }

    /// Evaluate `tokens` at positions `seq.pos..`, leaving the last one's normalised state
    /// in `seq.last`.
    fn forward(&self, seq: &mut GpuSequence, tokens: &[u32]) -> Result<()> {
        let c = self.config();
        let end = seq.pos + tokens.len();
        if end > c.n_ctx_train {
            return Err(Error::ContextOverflow { needed: end, limit: c.n_ctx_train });
        }
        seq.reserve(self, end)?;
        let sc = self.scratch.lock().map_err(|_| Error::Io("GPU scratch poisoned".into()))?;
        for chunk in tokens.chunks(UBATCH) {
            self.batch(&sc, seq, chunk);
            seq.pos += chunk.len();
        }
        self.gpu.wait()?;
        self.gpu.check("evaluating tokens")
    }

    /// One batch of at most `UBATCH` tokens (checked) at `seq.pos`.
    fn batch(&self, sc: &Scratch, seq: &GpuSequence, tokens: &[u32]) {
        let c = self.config();
        let (n, d) = (tokens.len(), c.n_embd);
        let (hd, q_dim, kv_dim) = (c.head_dim, c.q_dim(), c.kv_dim());
        let pos0 = seq.pos;
        let (pairs, per_piece) = self.token_embd.pairs(tokens);
        self.gpu.queue.write_buffer(&sc.ids, 0, &pairs);

        let mut pass = Pass::new(&self.gpu, &self.kernels, &sc.params);
        let vecs = &self.vectors;
        let n32 = n as u32;
        // Token embeddings (scaled by √d in the families that do).
        pass.embed(&self.token_embd, &sc.x, &sc.ids, &per_piece);
        if c.embed_scale != 1.0 {
            let p = OpParams { count: (n * d) as u32, post_scale: c.embed_scale, ..Default::default() };
            pass.op(Op::Scale, p, &sc.x, vecs, (n * d) as u32);
        }
        let norm = |pass: &mut Pass, buf: &wgpu::Buffer, at: u32, rows: usize, width: usize| {
            let p = OpParams { count: rows as u32, width: width as u32, b_offset: at, eps: c.rms_eps, ..Default::default() };
            pass.op(Op::RmsNorm, p, buf, vecs, rows as u32);
        };
        let elementwise = |pass: &mut Pass, op: Op, a: &wgpu::Buffer, b: &wgpu::Buffer, b_offset: u32, count: usize, width: usize| {
            let p = OpParams { count: count as u32, width: width as u32, b_offset, ..Default::default() };
            pass.op(op, p, a, b, count as u32);
        };
        for (l, layer) in self.layers.iter().enumerate() {
            // Attention: h = norm(x); q, k, v; per-head norms and RoPE; cache; attend; x += wo·att.
            elementwise(&mut pass, Op::Copy, &sc.h, &sc.x, 0, n * d, d);
            norm(&mut pass, &sc.h, layer.attn_norm, n, d);
            pass.matmul(&layer.wq, (&sc.h, 0), (&sc.q, 0), q_dim as u32, n32);
            pass.matmul(&layer.wk, (&sc.h, 0), (&sc.k, 0), kv_dim as u32, n32);
            pass.matmul(&layer.wv, (&sc.h, 0), (&sc.v, 0), kv_dim as u32, n32);
            for (bias, buf, width) in [(layer.bq, &sc.q, q_dim), (layer.bk, &sc.k, kv_dim), (layer.bv, &sc.v, kv_dim)] {
                if let Some(at) = bias {
                    elementwise(&mut pass, Op::AddBias, buf, vecs, at, n * width, width);
                }
            }
            if let Some(at) = layer.q_norm {
                norm(&mut pass, &sc.q, at, n * c.n_head, hd);
            }
            if let Some(at) = layer.k_norm {
                norm(&mut pass, &sc.k, at, n * c.n_head_kv, hd);
            }
            let sliding = c.is_sliding(l);
            let (base, freq_scale) = if sliding { (c.rope_base_local, c.rope_freq_scale_local) } else { (c.rope_base, c.rope_freq_scale) };
            let rope = OpParams {
                width: hd as u32,
                b_offset: self.rope_factors.unwrap_or(u32::MAX),
                pos0: pos0 as u32,
                n_rot: c.n_rot as u32,
                base,
                freq_scale,
                attn_factor: c.rope_attn_factor,
                neox: (c.rope_style == RopeStyle::Neox) as u32,
                post_scale: 1.0,
                ..Default::default()
            };
            let q_scale = if c.arch.attention_scale == AttentionScale::Queries { c.attn_scale } else { 1.0 };
            let pairs = (hd / 2) as u32;
            let heads = (n * c.n_head) as u32;
            pass.op(Op::Rope, OpParams { count: heads, heads: c.n_head as u32, post_scale: q_scale, ..rope }, &sc.q, vecs, heads * pairs);
            let kv_heads = (n * c.n_head_kv) as u32;
            pass.op(Op::Rope, OpParams { count: kv_heads, heads: c.n_head_kv as u32, ..rope }, &sc.k, vecs, kv_heads * pairs);
            for (cache, src) in [(&seq.k[l], &sc.k), (&seq.v[l], &sc.v)] {
                let p = OpParams { count: (n * kv_dim) as u32, a_offset: (pos0 * kv_dim) as u32, ..Default::default() };
                pass.op(Op::StoreKv, p, cache, src, (n * kv_dim / 2) as u32);
            }
            let attention = AttentionParams {
                pos0: pos0 as u32,
                n_head: c.n_head as u32,
                n_head_kv: c.n_head_kv as u32,
                head_dim: hd as u32,
                window: if sliding { c.sliding_window.unwrap_or(0) as u32 } else { 0 },
                scale: if c.arch.attention_scale == AttentionScale::Scores { c.attn_scale } else { 1.0 },
                q_dim: q_dim as u32,
                kv_dim: kv_dim as u32,
            };
            pass.attention(attention, &sc.q, &seq.k[l], &seq.v[l], &sc.att, n32);
            pass.matmul(&layer.wo, (&sc.att, 0), (&sc.proj, 0), d as u32, n32);
            self.residual(&mut pass, sc, layer.bo, layer.post_attn_norm, n);

            // Feed-forward: h = norm(x); x += down(act(gate·h) ⊙ up·h).
            elementwise(&mut pass, Op::Copy, &sc.h, &sc.x, 0, n * d, d);
            norm(&mut pass, &sc.h, layer.ffn_norm, n, d);
            pass.matmul(&layer.w_gate, (&sc.h, 0), (&sc.gate, 0), c.n_ff as u32, n32);
            pass.matmul(&layer.w_up, (&sc.h, 0), (&sc.up, 0), c.n_ff as u32, n32);
            let kind = match c.arch.activation {
                Activation::Silu => 0,
                Activation::Gelu => 1,
            };
            let count = (n * c.n_ff) as u32;
            pass.op(Op::Gated, OpParams { count, kind, ..Default::default() }, &sc.gate, &sc.up, count);
            pass.matmul(&layer.w_down, (&sc.gate, 0), (&sc.proj, 0), d as u32, n32);
            self.residual(&mut pass, sc, None, layer.post_ffn_norm, n);
        }
        // The last token's state, normalised for the output head.
        let p = OpParams { count: d as u32, b_offset: ((n - 1) * d) as u32, ..Default::default() };
        pass.op(Op::Copy, p, &seq.last, &sc.x, d as u32);
        let p = OpParams { count: 1, width: d as u32, b_offset: self.output_norm, eps: c.rms_eps, ..Default::default() };
        pass.op(Op::RmsNorm, p, &seq.last, vecs, 1);
        pass.submit();
    }

    /// x += post_norm(proj + bias), for n rows.
    fn residual(&self, pass: &mut Pass, sc: &Scratch, bias: Option<u32>, post_norm: Option<u32>, n: usize) {
        let c = self.config();
        let d = c.n_embd;
        if let Some(at) = bias {
            pass.op(Op::AddBias, OpParams { count: (n * d) as u32, width: d as u32, b_offset: at, ..Default::default() }, &sc.proj, &self.vectors, (n * d) as u32);
        }
        if let Some(at) = post_norm {
            let p = OpParams { count: n as u32, width: d as u32, b_offset: at, eps: c.rms_eps, ..Default::default() };
            pass.op(Op::RmsNorm, p, &sc.proj, &self.vectors, n as u32);
        }
        pass.op(Op::Add, OpParams { count: (n * d) as u32, ..Default::default() }, &sc.x, &sc.proj, (n * d) as u32);
    }

    /// The output head over `seq.last`: every logit, or those of `ids` in their order.
    fn logits(&self, seq: &GpuSequence, ids: Option<&[u32]>) -> Result<Vec<f32>> {
        let vocab = self.output.rows;
        // The scratch holds a logit (and an id pair) per vocabulary entry; ids may repeat.
        if let Some(ids) = ids.filter(|ids| ids.len() > vocab as usize) {
            return Err(Error::InvalidOption(format!("{} ids asked for, more than the vocabulary ({vocab})", ids.len())));
        }
        if let Some(&bad) = ids.into_iter().flatten().find(|&&t| t >= vocab) {
            return Err(Error::InvalidOption(format!("token id {bad} is outside the vocabulary ({vocab})")));
        }
        let sc = self.scratch.lock().map_err(|_| Error::Io("GPU scratch poisoned".into()))?;
        let mut pass = Pass::new(&self.gpu, &self.kernels, &sc.params);
        let count = match ids {
            None => {
                pass.matmul(&self.output, (&seq.last, 0), (&sc.logits, 0), 0, 1);
                vocab as usize
            }
            Some(ids) => {
                let (pairs, per_piece) = self.output.pairs(ids);
                self.gpu.queue.write_buffer(&sc.ids, 0, &pairs);
                pass.gather(&self.output, (&seq.last, 0), (&sc.logits, 0), &sc.ids, &per_piece);
                ids.len()
            }
        };
        pass.submit();
        if count == 0 {
            return Ok(Vec::new());
        }
        self.gpu.read_f32s(&sc.logits, count)
    }
}

/// One sequence on the GPU: its KV cache (every position, f16 values packed in pairs) and
/// its last evaluated state.
pub struct GpuSequence {
    model: Arc<GpuModel>,
    k: Vec<wgpu::Buffer>,
    v: Vec<wgpu::Buffer>,
    /// Positions the cache buffers hold.
    capacity: usize,
    pos: usize,
    last: wgpu::Buffer,
    /// Whether `last` is the state of position `pos - 1` (no rollback since).
    ready: bool,
}

impl GpuSequence {
    fn new(model: Arc<GpuModel>) -> GpuSequence {
        let last = model.gpu.buffer("last", 4 * model.config().n_embd as u64, wgpu::BufferUsages::empty());
        GpuSequence { model, k: Vec::new(), v: Vec::new(), capacity: 0, pos: 0, last, ready: false }
    }

    /// Grow the cache to hold `positions` (doubling, up to the trained context), keeping
    /// what it holds.
    fn reserve(&mut self, model: &GpuModel, positions: usize) -> Result<()> {
        if positions <= self.capacity {
            return Ok(());
        }
        let c = model.config();
        // f16 values, two to a word (kv.wgsl).
        let row = 2 * c.kv_dim() as u64;
        let most = (model.gpu.max_binding() / row) as usize;
        let capacity = (self.capacity * 2).max(positions).max(256).min(c.n_ctx_train).min(most);
        if capacity < positions {
            return Err(Error::ContextOverflow { needed: positions, limit: capacity });
        }
        let mut encoder = model.gpu.device.create_command_encoder(&Default::default());
        let mut grow = |old: &mut Vec<wgpu::Buffer>, label: &str| {
            let new: Vec<wgpu::Buffer> = (0..c.n_layer).map(|_| model.gpu.buffer(label, row * capacity as u64, wgpu::BufferUsages::empty())).collect();
            for (o, n) in old.iter().zip(&new) {
                encoder.copy_buffer_to_buffer(o, 0, n, 0, row * self.pos as u64);
            }
            *old = new;
        };
        grow(&mut self.k, "k cache");
        grow(&mut self.v, "v cache");
        model.gpu.queue.submit([encoder.finish()]);
        self.capacity = capacity;
        model.gpu.check("growing the KV cache")
    }
}

impl RemoteSequence for GpuSequence {
    fn step(&mut self, step: &Step) -> Result<Vec<f32>> {
        let model = self.model.clone();
        if let Some(p) = step.position {
            if p > self.pos {
                return Err(Error::InvalidOption(format!("cannot roll back to position {p}: the sequence holds {} tokens", self.pos)));
            }
            if p < self.pos {
                self.pos = p;
                self.ready = false;
            }
        }
        if !step.tokens.is_empty() {
            let vocab = model.cpu.vocab_size();
            if let Some(&bad) = step.tokens.iter().find(|&&t| t as usize >= vocab) {
                return Err(Error::InvalidOption(format!("token id {bad} is outside the vocabulary ({vocab})")));
            }
            self.ready = false;
            let start = self.pos;
            if let Err(e) = model.forward(self, step.tokens) {
                self.pos = start;
                return Err(e);
            }
            self.ready = true;
        }
        match step.allowed {
            Some([]) => Ok(Vec::new()),
            _ if !self.ready => Err(Error::InvalidOption("no evaluated position to take logits from (send tokens first)".into())),
            allowed => model.logits(self, allowed),
        }
    }
}

/// The GPU as a remote backend: a model whose forward pass runs here, shared by sequences.
pub struct GpuForward(pub Arc<GpuModel>);

impl RemoteForward for GpuForward {
    fn name(&self) -> String {
        format!("gpu: {}", self.0.name())
    }
    fn new_sequence(&self) -> Result<Box<dyn RemoteSequence>> {
        Ok(Box::new(GpuSequence::new(self.0.clone())))
    }
    fn header(&self) -> Option<&[u8]> {
        self.0.cpu.header()
    }
}
