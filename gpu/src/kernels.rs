//! The WGSL kernels (`shaders/`), compiled once per device, and [`Pass`], which records a
//! forward pass's dispatches into one compute pass.
//!
//! Every dispatch takes its parameters from a slot of one uniform buffer: the pass writes
//! each slot's bytes as it goes and uploads them all before submitting, so a step costs
//! one buffer write and one submission however many layers the model has.

use std::collections::HashMap;

use edgeslm_engine::quant::GgmlType;
use wgpu::util::DeviceExt as _;

use crate::device::Gpu;
use crate::weights::GpuMatrix;

pub const QUANT_WGSL: &str = include_str!("shaders/quant.wgsl");
pub const MATMUL_WGSL: &str = include_str!("shaders/matmul.wgsl");
pub const OPS_WGSL: &str = include_str!("shaders/ops.wgsl");
pub const ATTENTION_WGSL: &str = include_str!("shaders/attention.wgsl");
pub const KV_WGSL: &str = include_str!("shaders/kv.wgsl");

/// Bytes between two dispatches' parameters (`min_uniform_buffer_offset_alignment` is at most 256).
const SLOT: u64 = 256;
/// Bytes of one dispatch's parameters (the largest `Params` struct, padded).
const PARAMS: u64 = 64;
/// Threads per workgroup in every kernel.
const WG: u32 = 64;
/// Tokens per matmul workgroup (`TILE` in matmul.wgsl).
const TILE: u32 = 8;
/// Rows per matmul workgroup (`ROWS` in matmul.wgsl).
const ROWS: u32 = 4;
/// Workgroups along x before a dispatch spills into y (the limit is 65,535).
const MAX_X: u32 = 32768;

/// The WGSL of the matrix product for weights of type `ty`: the decoders, the kernel, and
/// the `dequant_group` that picks the type's decoder.
pub fn matmul_source(ty: GgmlType) -> String {
    let f = match ty {
        GgmlType::F32 => "group_f32",
        GgmlType::F16 => "group_f16",
        GgmlType::BF16 => "group_bf16",
        GgmlType::Q4_0 => "group_q4_0",
        GgmlType::Q4_1 => "group_q4_1",
        GgmlType::Q5_0 => "group_q5_0",
        GgmlType::Q5_1 => "group_q5_1",
        GgmlType::Q8_0 => "group_q8_0",
        GgmlType::Q4K => "group_q4_k",
        GgmlType::Q5K => "group_q5_k",
        GgmlType::Q6K => "group_q6_k",
    };
    format!(
        "{QUANT_WGSL}\n{MATMUL_WGSL}\nfn dequant_group(base: u32, g: u32, v: ptr<function, array<f32, 32>>) {{\n    {f}(base, g, v);\n}}\n"
    )
}

/// The element-wise kernels (entry points of ops.wgsl, and kv.wgsl's `store`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Copy,
    Scale,
    Add,
    AddBias,
    /// Values into the KV cache, as f16 pairs (kv.wgsl); `count` values from `a_offset`.
    StoreKv,
    Gated,
    RmsNorm,
    Rope,
}

impl Op {
    const ALL: [Op; 8] = [Op::Copy, Op::Scale, Op::Add, Op::AddBias, Op::StoreKv, Op::Gated, Op::RmsNorm, Op::Rope];
    /// The kernel's source and entry point.
    fn source(self) -> (&'static str, &'static str) {
        let entry = match self {
            Op::StoreKv => return (KV_WGSL, "store"),
            Op::Copy => "copy",
            Op::Scale => "scale",
            Op::Add => "add",
            Op::AddBias => "add_bias",
            Op::Gated => "gated",
            Op::RmsNorm => "rms_norm",
            Op::Rope => "rope",
        };
        (OPS_WGSL, entry)
    }
}

pub struct Kernels {
    matmul_layout: wgpu::BindGroupLayout,
    ops_layout: wgpu::BindGroupLayout,
    attention_layout: wgpu::BindGroupLayout,
    matmul: HashMap<GgmlType, wgpu::ComputePipeline>,
    /// The row lookup (`embed` in matmul.wgsl), for the token embeddings' type.
    embed: HashMap<GgmlType, wgpu::ComputePipeline>,
    ops: HashMap<Op, wgpu::ComputePipeline>,
    attention: wgpu::ComputePipeline,
}

fn storage(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Storage { read_only }, has_dynamic_offset: false, min_binding_size: None },
        count: None,
    }
}

fn uniform() -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: false, min_binding_size: None },
        count: None,
    }
}

impl Kernels {
    /// Compile the kernels a model needs: the element-wise ones, attention, a matrix
    /// product for each of `types`, and the row lookup for each of `lookups`.
    pub fn new(gpu: &Gpu, types: impl IntoIterator<Item = GgmlType>, lookups: impl IntoIterator<Item = GgmlType>) -> Kernels {
        let device = &gpu.device;
        let layout = |label, entries: &[wgpu::BindGroupLayoutEntry]| {
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries })
        };
        let matmul_layout = layout("matmul", &[uniform(), storage(1, true), storage(2, true), storage(3, false), storage(4, true)]);
        let ops_layout = layout("ops", &[uniform(), storage(1, false), storage(2, true)]);
        let attention_layout = layout("attention", &[uniform(), storage(1, true), storage(2, true), storage(3, true), storage(4, false)]);
        let pipeline = |label: &str, source: &str, layout: &wgpu::BindGroupLayout, entry: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(layout)],
                immediate_size: 0,
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let mut matmul = HashMap::new();
        for ty in types {
            matmul.entry(ty).or_insert_with(|| pipeline(&format!("matmul {}", ty.name()), &matmul_source(ty), &matmul_layout, "main"));
        }
        let mut embed = HashMap::new();
        for ty in lookups {
            embed.entry(ty).or_insert_with(|| pipeline(&format!("embed {}", ty.name()), &matmul_source(ty), &matmul_layout, "embed"));
        }
        let ops = Op::ALL
            .iter()
            .map(|&op| {
                let (source, entry) = op.source();
                (op, pipeline(entry, source, &ops_layout, entry))
            })
            .collect();
        let attention = pipeline("attention", ATTENTION_WGSL, &attention_layout, "main");
        Kernels { matmul_layout, ops_layout, attention_layout, matmul, embed, ops, attention }
    }
}

/// Parameters of an element-wise kernel (`Params` in ops.wgsl; unused fields stay zero).
#[derive(Clone, Copy, Default)]
pub struct OpParams {
    pub count: u32,
    pub width: u32,
    pub a_offset: u32,
    pub b_offset: u32,
    pub eps: f32,
    pub pos0: u32,
    pub heads: u32,
    pub n_rot: u32,
    pub base: f32,
    pub freq_scale: f32,
    pub attn_factor: f32,
    pub neox: u32,
    pub post_scale: f32,
    pub kind: u32,
}

/// Parameters of the attention kernel (`Params` in attention.wgsl).
#[derive(Clone, Copy)]
pub struct AttentionParams {
    pub pos0: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub head_dim: u32,
    pub window: u32,
    pub scale: f32,
    pub q_dim: u32,
    pub kv_dim: u32,
}

/// Workgroups for `total` of them: (x, y) with x ≤ MAX_X.
fn grid(total: u32) -> (u32, u32) {
    if total <= MAX_X {
        (total.max(1), 1)
    } else {
        (MAX_X, total.div_ceil(MAX_X))
    }
}

/// A region of a buffer, in f32 elements from its start.
pub type At<'a> = (&'a wgpu::Buffer, u32);

/// One forward pass being recorded.
pub struct Pass<'a> {
    gpu: &'a Gpu,
    k: &'a Kernels,
    params: &'a wgpu::Buffer,
    bytes: Vec<u8>,
    encoder: wgpu::CommandEncoder,
    pass: Option<wgpu::ComputePass<'static>>,
}

impl<'a> Pass<'a> {
    /// A pass whose parameters go to `params` (a uniform buffer of `slots` × 256 bytes).
    pub fn new(gpu: &'a Gpu, k: &'a Kernels, params: &'a wgpu::Buffer) -> Pass<'a> {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        let pass = encoder.begin_compute_pass(&Default::default()).forget_lifetime();
        Pass { gpu, k, params, bytes: Vec::new(), encoder, pass: Some(pass) }
    }

    /// Slots a uniform buffer needs for `dispatches`.
    pub fn params_bytes(dispatches: usize) -> u64 {
        dispatches as u64 * SLOT
    }

    /// Store one dispatch's parameters; returns their binding.
    fn slot(&mut self, words: &[u32]) -> wgpu::BindingResource<'a> {
        let offset = self.bytes.len() as u64;
        assert!(offset + SLOT <= self.params.size(), "the parameter buffer is sized for the model's dispatches");
        assert!(words.len() * 4 <= PARAMS as usize);
        self.bytes.extend(words.iter().flat_map(|w| w.to_le_bytes()));
        self.bytes.resize((offset + SLOT) as usize, 0);
        wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: self.params, offset, size: wgpu::BufferSize::new(PARAMS) })
    }

    fn dispatch(&mut self, pipeline: &wgpu::ComputePipeline, layout: &wgpu::BindGroupLayout, resources: Vec<wgpu::BindingResource<'_>>, groups: (u32, u32, u32)) {
        let entries: Vec<_> = resources.into_iter().enumerate().map(|(i, resource)| wgpu::BindGroupEntry { binding: i as u32, resource }).collect();
        let group = self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout, entries: &entries });
        let pass = self.pass.as_mut().expect("pass is open");
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
    }

    /// y[t·y_stride + r] = W[r] · x[t] for `n` tokens (inputs `cols` apart from `x.1`), each
    /// piece of W in turn.
    pub fn matmul(&mut self, w: &GpuMatrix, x: At, y: At, y_stride: u32, n: u32) {
        for piece in &w.pieces {
            let (gx, gy) = grid(piece.rows.div_ceil(ROWS));
            let words = [piece.rows, w.cols, n, w.row_bytes, x.1, y.1 + piece.row0, y_stride, 0, gx, 0];
            let params = self.slot(&words);
            let resources = vec![params, piece.buffer.as_entire_binding(), x.0.as_entire_binding(), y.0.as_entire_binding(), piece.buffer.as_entire_binding()];
            self.dispatch(&self.k.matmul[&w.ty], &self.k.matmul_layout, resources, (gx, gy, n.div_ceil(TILE)));
        }
    }

    /// The rows listed in `ids` (per piece: `(pairs, offset)` of (row within the piece,
    /// output slot) pairs), for one token at `x`.
    pub fn gather(&mut self, w: &GpuMatrix, x: At, y: At, ids: &wgpu::Buffer, per_piece: &[(u32, u32)]) {
        for (piece, &(pairs, offset)) in w.pieces.iter().zip(per_piece) {
            if pairs == 0 {
                continue;
            }
            let (gx, gy) = grid(pairs.div_ceil(ROWS));
            let words = [pairs, w.cols, 1, w.row_bytes, x.1, y.1, 0, 1, gx, offset];
            let params = self.slot(&words);
            let resources = vec![params, piece.buffer.as_entire_binding(), x.0.as_entire_binding(), y.0.as_entire_binding(), ids.as_entire_binding()];
            self.dispatch(&self.k.matmul[&w.ty], &self.k.matmul_layout, resources, (gx, gy, 1));
        }
    }

    /// Rows of `w` decoded into `y` (rows `cols` apart): per piece, `(pairs, offset)` of
    /// (row within the piece, output row) pairs in `ids`.
    pub fn embed(&mut self, w: &GpuMatrix, y: &wgpu::Buffer, ids: &wgpu::Buffer, per_piece: &[(u32, u32)]) {
        for (piece, &(pairs, offset)) in w.pieces.iter().zip(per_piece) {
            if pairs == 0 {
                continue;
            }
            let (gx, gy) = grid(pairs);
            let words = [pairs, w.cols, 0, w.row_bytes, 0, 0, 0, 0, gx, offset];
            let params = self.slot(&words);
            let resources = vec![params, piece.buffer.as_entire_binding(), ids.as_entire_binding(), y.as_entire_binding(), ids.as_entire_binding()];
            self.dispatch(&self.k.embed[&w.ty], &self.k.matmul_layout, resources, (gx, gy, 1));
        }
    }

    /// An element-wise kernel over `a` (updated) and `b`; `items` is how many it covers
    /// (elements, pairs of dimensions for RoPE, pairs of values for StoreKv, rows for rms_norm).
    pub fn op(&mut self, op: Op, p: OpParams, a: &wgpu::Buffer, b: &wgpu::Buffer, items: u32) {
        let groups = match op {
            Op::RmsNorm => items,
            _ => items.div_ceil(WG),
        };
        let (gx, gy) = grid(groups);
        let words = [
            p.count, p.width, p.a_offset, p.b_offset, p.eps.to_bits(), p.pos0, p.heads, p.n_rot, p.base.to_bits(),
            p.freq_scale.to_bits(), p.attn_factor.to_bits(), p.neox, p.post_scale.to_bits(), p.kind, gx,
        ];
        let params = self.slot(&words);
        let resources = vec![params, a.as_entire_binding(), b.as_entire_binding()];
        self.dispatch(&self.k.ops[&op], &self.k.ops_layout, resources, (gx, gy, 1));
    }

    /// Attention for `n` tokens over one layer's cache.
    pub fn attention(&mut self, p: AttentionParams, q: &wgpu::Buffer, k: &wgpu::Buffer, v: &wgpu::Buffer, out: &wgpu::Buffer, n: u32) {
        let words = [p.pos0, p.n_head, p.n_head_kv, p.head_dim, p.window, p.scale.to_bits(), p.q_dim, p.kv_dim];
        let params = self.slot(&words);
        let resources = vec![params, q.as_entire_binding(), k.as_entire_binding(), v.as_entire_binding(), out.as_entire_binding()];
        self.dispatch(&self.k.attention, &self.k.attention_layout, resources, (p.n_head, n, 1));
    }

    /// Upload the parameters and submit everything recorded.
    pub fn submit(mut self) {
        drop(self.pass.take());
        self.gpu.queue.write_buffer(self.params, 0, &self.bytes);
        self.gpu.queue.submit([self.encoder.finish()]);
    }
}

/// A uniform buffer for `dispatches` dispatches' parameters.
pub fn params_buffer(gpu: &Gpu, dispatches: usize) -> wgpu::Buffer {
    gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("params"),
        contents: &vec![0u8; Pass::params_bytes(dispatches) as usize],
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    })
}
