//! edgeslm's inference engine: GGUF loading, quantized kernels, transformer forward passes,
//! tokenizers and sampling. Plain Rust with no WASI or wasmtime dependency, so the same code
//! is tested natively and runs unchanged inside the wasm32-wasip2 component.

pub mod chat;
pub mod classify;
pub mod constrain;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod gguf_write;
pub mod instance;
pub mod model;
pub mod parallel;
pub mod perplexity;
pub mod prompt_cache;
pub mod prune;
pub mod quant;
pub mod remote;
pub mod sampler;
pub mod serve;
pub mod storage;
pub mod tensor;
pub mod timing;
pub mod tokenizer;

pub use classify::{Classification, ClassifyOptions, Classifier};
pub use constrain::{Checks, Constrainer, Constraint};
pub use error::{Error, ErrorClass, ErrorCode, Result};
pub use generate::{FinishReason, GenerateOptions, Generation, OnTokens, Timings};
pub use instance::{Instance, ModelInfo};
pub use model::{Model, Session};
pub use sampler::SamplerConfig;
pub use storage::Storage;

impl Model {
    /// Load a model from a file: memory-mapped natively; in wasm its tensor data is read
    /// into memory (the header is parsed from its own buffer, then dropped).
    pub fn open(path: &str) -> Result<Model> {
        #[cfg(target_family = "wasm")]
        {
            let (gguf, storage) = Storage::read_gguf(path)?;
            Model::load_parsed(gguf, storage)
        }
        #[cfg(not(target_family = "wasm"))]
        Model::load(Storage::open(path)?)
    }

    /// Load a model from bytes already in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Model> {
        Model::load(Storage::Owned(bytes))
    }
}
