//! edgeslm's forward pass on a GPU, through wgpu (Vulkan, Metal, DX12; Mesa's lavapipe where
//! there is no GPU). The WGSL kernels in `shaders/` are written once: this crate runs them
//! natively, and the browser package runs the same files on WebGPU.
//!
//! The GPU serves the step protocol the wasi:nn host already speaks (docs/wasi-nn.md): the
//! component keeps the tokenizer, the constraint engine, the sampler and classify's scoring,
//! so the schema guarantee and the determinism stay inside the sandbox, and the GPU only
//! turns token ids into logits.

mod device;
mod forward;
pub mod kernels;
pub mod weights;

use std::sync::Arc;

use edgeslm_engine::remote::codec;
use edgeslm_engine::{Error, Model, Result};

pub use device::{Gpu, NoGpu};
pub use forward::{GpuForward, GpuModel};

/// A model whose forward pass runs on `gpu`: the file is loaded (mapped) as the portable
/// model, its weights are uploaded, and the returned model's backend is the GPU (its
/// tokenizer and config are the file's, as with any remote backend).
pub fn open_model(gpu: Gpu, path: &str) -> Result<Model> {
    let cpu = Arc::new(Model::open(path)?);
    let header = cpu.header().ok_or_else(|| Error::Io(format!("{path}: the header is not in memory")))?.to_vec();
    let file_size = cpu.file_size as u64;
    let gpu = GpuModel::new(gpu, cpu)?;
    Model::remote(&header, file_size, Arc::new(GpuForward(Arc::new(gpu))))
}

/// y = W x on `gpu` for `n` tokens (`x`: n rows of `cols`), W a `rows` × `cols` matrix of
/// type `ty` in its GGUF encoding: the kernel the forward pass uses, on its own (tests
/// compare it with the engine's scalar decoder).
pub fn matmul(gpu: &Gpu, ty: edgeslm_engine::quant::GgmlType, rows: usize, cols: usize, w: &[u8], x: &[f32], n: usize) -> Result<Vec<f32>> {
    let m = weights::GpuMatrix::from_bytes(gpu, "w", ty, rows, cols, w)?;
    let kernels = kernels::Kernels::new(gpu, [ty], []);
    let xb = gpu.upload("x", &codec::f32s_to_bytes(&x[..n * cols]));
    let y = gpu.buffer("y", 4 * (n * rows) as u64, wgpu::BufferUsages::empty());
    let params = kernels::params_buffer(gpu, m.pieces.len());
    let mut pass = kernels::Pass::new(gpu, &kernels, &params);
    pass.matmul(&m, (&xb, 0), (&y, 0), rows as u32, n as u32);
    pass.submit();
    gpu.read_f32s(&y, n * rows)
}

/// Rows `ids` of W (as [`matmul`]'s W) decoded on `gpu`, one after another: the embedding
/// lookup the forward pass uses, on its own.
pub fn rows(gpu: &Gpu, ty: edgeslm_engine::quant::GgmlType, rows: usize, cols: usize, w: &[u8], ids: &[u32]) -> Result<Vec<f32>> {
    let m = weights::GpuMatrix::from_bytes(gpu, "w", ty, rows, cols, w)?;
    let kernels = kernels::Kernels::new(gpu, [], [ty]);
    let (pairs, per_piece) = m.pairs(ids);
    let idb = gpu.upload("ids", &pairs);
    let y = gpu.buffer("y", 4 * (ids.len() * cols) as u64, wgpu::BufferUsages::empty());
    let params = kernels::params_buffer(gpu, m.pieces.len());
    let mut pass = kernels::Pass::new(gpu, &kernels, &params);
    pass.embed(&m, &y, &idb, &per_piece);
    pass.submit();
    gpu.read_f32s(&y, ids.len() * cols)
}
