//! The forward pass through the host's wasi:nn (docs/wasi-nn.md): the graph is the model
//! the host preloaded under the path the guest was asked to load, each engine session is
//! one execution context, and each step is one `compute` of the protocol's named tensors.

use std::sync::Arc;

use edgeslm_engine::remote::{codec, names, RemoteForward, RemoteSequence, Step};
use edgeslm_engine::{Error, Model, Result};

use crate::wasi::nn::errors::{Error as NnError, ErrorCode};
use crate::wasi::nn::graph::{self, Graph};
use crate::wasi::nn::inference::GraphExecutionContext;
use crate::wasi::nn::tensor::{Tensor, TensorType};

/// The model the host serves under `name`, or None when it serves none by that name.
pub fn load_by_name(name: &str) -> Result<Option<Model>> {
    let graph = match graph::load_by_name(name) {
        Ok(g) => g,
        Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(nn_error("load-by-name", e)),
    };
    // The tokenizer and config come from the file's header; the weights stay in the host.
    let ctx = graph.init_execution_context().map_err(|e| nn_error("init-execution-context", e))?;
    let out = ctx
        .compute(vec![(names::HEADER.to_string(), Tensor::new(&[0], TensorType::U8, &[]))])
        .map_err(|e| nn_error("compute(header)", e))?;
    let header = output(&out, names::HEADER, TensorType::U8)?;
    let size = output(&out, names::FILE_SIZE, TensorType::I64)?;
    let size = <[u8; 8]>::try_from(size.as_slice())
        .map(u64::from_le_bytes)
        .map_err(|_| Error::Io("wasi-nn: file-size is not one I64".into()))?;
    Model::remote(&header, size, Arc::new(NnGraph(graph))).map(Some)
}

fn output(out: &[(String, Tensor)], name: &str, ty: TensorType) -> Result<Vec<u8>> {
    let (_, t) = out
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| Error::Io(format!("wasi-nn: the host returned no '{name}' output")))?;
    if t.ty() != ty {
        return Err(Error::Io(format!("wasi-nn: output '{name}' is {:?}, expected {ty:?}", t.ty())));
    }
    Ok(t.data())
}

fn nn_error(what: &str, e: NnError) -> Error {
    Error::Io(format!("wasi-nn {what}: {:?}: {}", e.code(), e.data()))
}

struct NnGraph(Graph);

// SAFETY: a wasm32 component has one thread; the engine's trait bounds are for native hosts.
unsafe impl Send for NnGraph {}
unsafe impl Sync for NnGraph {}

impl RemoteForward for NnGraph {
    fn name(&self) -> String {
        "wasi-nn".into()
    }

    fn new_sequence(&self) -> Result<Box<dyn RemoteSequence>> {
        let ctx = self.0.init_execution_context().map_err(|e| nn_error("init-execution-context", e))?;
        Ok(Box::new(NnSequence(ctx)))
    }
}

struct NnSequence(GraphExecutionContext);

// SAFETY: as for NnGraph.
unsafe impl Send for NnSequence {}

fn ids(name: &str, ids: &[u32]) -> (String, Tensor) {
    (name.to_string(), Tensor::new(&[ids.len() as u32], TensorType::I32, &codec::ids_to_bytes(ids)))
}

impl RemoteSequence for NnSequence {
    fn step(&mut self, step: &Step) -> Result<Vec<f32>> {
        let mut inputs = vec![ids(names::TOKENS, step.tokens)];
        if let Some(p) = step.position {
            inputs.push(ids(names::POSITION, &[p as u32]));
        }
        if let Some(a) = step.allowed {
            inputs.push(ids(names::ALLOWED, a));
        }
        let out = self.0.compute(inputs).map_err(|e| nn_error("compute", e))?;
        codec::f32s_from_bytes(&output(&out, names::LOGITS, TensorType::Fp32)?)
    }
}
