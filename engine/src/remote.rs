//! The step-wise decoding protocol (docs/wasi-nn.md): what a guest and a host that runs
//! the forward pass for it say to each other. Neither half lives here: the guest's is
//! `model::remote` (behind [`RemoteForward`], which the component implements over wasi:nn),
//! the host's is the `serve` module. Both use only this module, so neither imports the other.
//!
//! A component is single-threaded and 32-bit, so a host that can do better runs the
//! transformer itself and the guest keeps everything that makes outputs what they are:
//! tokenizer, constraint engine, sampler. One remote *sequence* per session holds the KV
//! cache; each step may roll it back, appends tokens, and returns the last position's
//! logits, for a few allowed ids only when asked (bytes instead of 1 MB per step).

use crate::error::Result;

/// wasi:nn tensor names of the protocol.
pub mod names {
    /// Input, I32 `[n]`: token ids to append (n may be 0).
    pub const TOKENS: &str = "tokens";
    /// Input, I32 `[1]`, optional: first keep only this many tokens of the sequence.
    pub const POSITION: &str = "position";
    /// Input, I32 `[m]`, optional: return logits for these ids only (m = 0: none).
    pub const ALLOWED: &str = "allowed";
    /// Input, U8 `[0]`: ask for the GGUF header instead of a step.
    pub const HEADER: &str = "header";
    /// Output, FP32 `[vocab]` or `[m]`: the last position's logits.
    pub const LOGITS: &str = "logits";
    /// Output, I64 `[1]`: the model file's size (with `header`).
    pub const FILE_SIZE: &str = "file-size";
}

/// One protocol step: roll back to `position` (when given), evaluate `tokens`, and return
/// the last position's logits (for `allowed` only, when given).
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    pub position: Option<usize>,
    pub tokens: &'a [u32],
    pub allowed: Option<&'a [u32]>,
}

/// A backend that serves sequences (the guest's view of the host).
pub trait RemoteForward: Send + Sync {
    /// For `info()`: e.g. "wasi-nn".
    fn name(&self) -> String;
    fn new_sequence(&self) -> Result<Box<dyn RemoteSequence>>;
    /// The model file's header (metadata and tensor table), where this backend holds it: a
    /// host that runs the forward pass elsewhere (a GPU) still serves it to its guests.
    fn header(&self) -> Option<&[u8]> {
        None
    }
}

/// One sequence on the remote side: its KV cache and last output.
pub trait RemoteSequence: Send {
    fn step(&mut self, step: &Step) -> Result<Vec<f32>>;
}

/// Tensor data codecs: ids as I32 and logits as FP32, little-endian, as wasi:nn lays them out.
pub mod codec {
    use crate::error::{Error, Result};

    pub fn ids_to_bytes(ids: &[u32]) -> Vec<u8> {
        ids.iter().flat_map(|&i| (i as i32).to_le_bytes()).collect()
    }

    /// I32 little-endian ids; negative ones are an error.
    pub fn ids_from_bytes(bytes: &[u8]) -> Result<Vec<u32>> {
        if bytes.len() % 4 != 0 {
            return Err(Error::InvalidOption(format!("I32 tensor data of {} bytes is not a multiple of 4", bytes.len())));
        }
        bytes
            .chunks_exact(4)
            .map(|b| {
                let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                u32::try_from(v).map_err(|_| Error::InvalidOption(format!("negative token id {v}")))
            })
            .collect()
    }

    pub fn f32s_to_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    pub fn f32s_from_bytes(bytes: &[u8]) -> Result<Vec<f32>> {
        if bytes.len() % 4 != 0 {
            return Err(Error::Io(format!("FP32 tensor data of {} bytes is not a multiple of 4", bytes.len())));
        }
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }
}
