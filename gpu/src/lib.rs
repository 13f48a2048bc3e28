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
mod weights;

use std::sync::Arc;

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
