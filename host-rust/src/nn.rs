//! The host's wasi:nn: the native engine serves the step-wise decoding protocol
//! (docs/wasi-nn.md, `edgeslm_engine::remote`) to the `runtime-nn` build of the component.
//!
//! Models are registered once per [`crate::Host`] — memory-mapped, parsed once — and shared
//! by every instance and every execution context; a context holds one sequence's KV cache.
//! Graph encoding `ggml`, `load-by-name` only: weights never pass through guest memory.
//! Malformed tensors get a wasi:nn `invalid-argument` error with a message; nothing the
//! guest sends can crash the host.
//!
//! (wasmtime-wasi-nn 48 can host plug-in backends too, but reports every backend failure
//! to the guest as "Failed while accessing backend"; implementing the four small wasi:nn
//! interfaces here keeps the error codes and messages the protocol promises.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{anyhow, Result};
use edgeslm_engine::remote::{codec, names, Step};
use edgeslm_engine::serve::ServedSequence;
use edgeslm_engine::Model as NativeModel;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/deps/wasi-nn",
        world: "wasi:nn/ml",
        imports: { default: trappable },
        with: {
            "wasi:nn/graph.graph": super::Graph,
            "wasi:nn/tensor.tensor": super::Tensor,
            "wasi:nn/inference.graph-execution-context": super::ExecutionContext,
            "wasi:nn/errors.error": super::NnError,
        },
    });
}

use bindings::wasi::nn::errors::ErrorCode;
use bindings::wasi::nn::graph::{ExecutionTarget, GraphEncoding};
use bindings::wasi::nn::tensor::TensorType;

/// Where the host runs the forward pass of the models it serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// The native engine, multi-threaded.
    #[default]
    Cpu,
    /// The GPU, through wgpu (`edgeslm-gpu`); the CPU, with a message, where none is found.
    Gpu,
}

impl std::str::FromStr for Device {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu),
            _ => Err(anyhow!("unknown device '{s}' (cpu or gpu)")),
        }
    }
}

/// Models served by name, shared by every instance of a host.
#[derive(Clone, Default)]
pub struct Registry {
    models: Arc<RwLock<HashMap<String, (PathBuf, Arc<NativeModel>)>>>,
    device: Arc<RwLock<Device>>,
}

impl Registry {
    /// Run the models registered from now on on `device`.
    pub fn set_device(&self, device: Device) {
        *self.device.write().unwrap() = device;
    }

    /// Serve the model file at `path` under `name`: loaded once, then reused by every
    /// instance that asks for `name` (unless `name` is later given another file).
    pub fn register(&self, name: &str, path: &Path) -> Result<Arc<NativeModel>> {
        if let Some((p, m)) = self.models.read().unwrap().get(name) {
            if p == path {
                return Ok(m.clone());
            }
        }
        let path_str = path.to_str().ok_or_else(|| anyhow!("model path is not UTF-8"))?;
        let device = *self.device.read().unwrap();
        let model = match device {
            Device::Cpu => NativeModel::open(path_str),
            Device::Gpu => open_on_gpu(path_str)?,
        };
        let model = Arc::new(model.map_err(|e| anyhow!("{e}"))?);
        self.models.write().unwrap().insert(name.to_string(), (path.to_path_buf(), model.clone()));
        Ok(model)
    }

    fn get(&self, name: &str) -> Option<Arc<NativeModel>> {
        self.models.read().unwrap().get(name).map(|(_, m)| m.clone())
    }

    /// What runs the forward pass of the model served under `name`: "portable" (the
    /// native engine) or "gpu: ADAPTER".
    pub fn backend_of(&self, name: &str) -> Option<String> {
        self.get(name).map(|m| m.backend_name())
    }
}

/// The model on the GPU, or on the CPU with a message where no adapter can be opened.
#[cfg(feature = "gpu")]
fn open_on_gpu(path: &str) -> Result<edgeslm_engine::Result<NativeModel>> {
    match edgeslm_gpu::Gpu::open() {
        Ok(gpu) => match edgeslm_gpu::open_model(gpu, path) {
            // A shape the GPU kernels do not take (heads over 256 dimensions, say) still runs.
            Err(e @ edgeslm_engine::Error::UnsupportedArchitecture(_)) => {
                eprintln!("edgeslm: the GPU kernels cannot run this model ({e}); the forward pass runs on the CPU");
                Ok(NativeModel::open(path))
            }
            other => Ok(other),
        },
        Err(e) => {
            eprintln!("edgeslm: {e}; the forward pass runs on the CPU");
            Ok(NativeModel::open(path))
        }
    }
}

#[cfg(not(feature = "gpu"))]
fn open_on_gpu(_: &str) -> Result<edgeslm_engine::Result<NativeModel>> {
    Err(anyhow!("this build of edgeslm has no GPU support (built without the `gpu` feature)"))
}

pub struct Tensor {
    dimensions: Vec<u32>,
    ty: TensorType,
    data: Vec<u8>,
}

pub struct Graph(Arc<NativeModel>);

pub struct ExecutionContext {
    model: Arc<NativeModel>,
    seq: ServedSequence,
}

pub struct NnError {
    code: ErrorCode,
    message: String,
}

/// How many execution contexts one instance may hold open at once. Each holds a KV cache
/// of up to the model's context length; an engine instance opens one per prompt-cache slot
/// (4), so 32 leave room for several models. A guest past it gets `too-large` until it drops one.
pub const MAX_CONTEXTS: usize = 32;

/// What a store holds for wasi:nn.
pub struct NnState {
    pub registry: Registry,
    /// Execution contexts open now (at most [`MAX_CONTEXTS`]).
    contexts: usize,
}

impl NnState {
    pub fn new(registry: Registry) -> Self {
        NnState { registry, contexts: 0 }
    }
}

/// The view the generated bindings work on.
pub struct NnView<'a> {
    state: &'a mut NnState,
    table: &'a mut ResourceTable,
}

impl<'a> NnView<'a> {
    pub fn new(state: &'a mut NnState, table: &'a mut ResourceTable) -> Self {
        NnView { state, table }
    }

    fn fail<T>(&mut self, code: ErrorCode, message: impl Into<String>) -> wasmtime::Result<Result<T, Resource<NnError>>> {
        Ok(Err(self.table.push(NnError { code, message: message.into() })?))
    }
}

struct HasNnView;
impl HasData for HasNnView {
    type Data<'a> = NnView<'a>;
}

pub fn add_to_linker<T: 'static>(linker: &mut Linker<T>, f: fn(&mut T) -> NnView<'_>) -> Result<()> {
    bindings::wasi::nn::graph::add_to_linker::<_, HasNnView>(linker, f)?;
    bindings::wasi::nn::tensor::add_to_linker::<_, HasNnView>(linker, f)?;
    bindings::wasi::nn::inference::add_to_linker::<_, HasNnView>(linker, f)?;
    bindings::wasi::nn::errors::add_to_linker::<_, HasNnView>(linker, f)?;
    Ok(())
}

type NnResult<T> = wasmtime::Result<Result<T, Resource<NnError>>>;

impl bindings::wasi::nn::graph::Host for NnView<'_> {
    fn load(&mut self, _builder: Vec<Vec<u8>>, encoding: GraphEncoding, _target: ExecutionTarget) -> NnResult<Resource<Graph>> {
        if encoding != GraphEncoding::Ggml {
            return self.fail(ErrorCode::InvalidEncoding, format!("this host serves only the ggml encoding, not {encoding:?}"));
        }
        self.fail(
            ErrorCode::UnsupportedOperation,
            "load the model with load-by-name: this host preloads GGUF files and never copies weights from the guest",
        )
    }

    fn load_by_name(&mut self, name: String) -> NnResult<Resource<Graph>> {
        match self.state.registry.get(&name) {
            Some(m) => Ok(Ok(self.table.push(Graph(m))?)),
            None => self.fail(ErrorCode::NotFound, format!("no model is served under the name {name:?}")),
        }
    }
}

impl bindings::wasi::nn::graph::HostGraph for NnView<'_> {
    fn init_execution_context(&mut self, graph: Resource<Graph>) -> NnResult<Resource<ExecutionContext>> {
        if self.state.contexts >= MAX_CONTEXTS {
            let m = format!("{MAX_CONTEXTS} execution contexts are open in this instance, the most it may hold; drop one first");
            return self.fail(ErrorCode::TooLarge, m);
        }
        let model = self.table.get(&graph)?.0.clone();
        let seq = ServedSequence::new(&model);
        let ctx = self.table.push(ExecutionContext { model, seq })?;
        self.state.contexts += 1;
        Ok(Ok(ctx))
    }

    fn drop(&mut self, graph: Resource<Graph>) -> wasmtime::Result<()> {
        self.table.delete(graph)?;
        Ok(())
    }
}

/// One I32 vector input, checked against its declared shape.
fn ids_input(name: &str, t: &Tensor) -> Result<Vec<u32>, String> {
    if t.ty != TensorType::I32 {
        return Err(format!("input '{name}' must be I32, not {:?}", t.ty));
    }
    let [n] = t.dimensions[..] else {
        return Err(format!("input '{name}' must have one dimension, not {:?}", t.dimensions));
    };
    if t.data.len() as u64 != n as u64 * 4 {
        return Err(format!("input '{name}': {} bytes of data for {n} I32 elements", t.data.len()));
    }
    codec::ids_from_bytes(&t.data).map_err(|e| format!("input '{name}': {e}"))
}

fn tensor(dimensions: Vec<u32>, ty: TensorType, data: Vec<u8>) -> Tensor {
    Tensor { dimensions, ty, data }
}

impl bindings::wasi::nn::inference::HostGraphExecutionContext for NnView<'_> {
    fn compute(
        &mut self,
        ctx: Resource<ExecutionContext>,
        inputs: Vec<(String, Resource<Tensor>)>,
    ) -> NnResult<Vec<(String, Resource<Tensor>)>> {
        let mut named = Vec::with_capacity(inputs.len());
        for (name, t) in inputs {
            named.push((name, self.table.delete(t)?));
        }
        let outputs = match self.compute_step(&ctx, &named)? {
            Ok(o) => o,
            Err((code, message)) => return self.fail(code, message),
        };
        let mut out = Vec::with_capacity(outputs.len());
        for (name, t) in outputs {
            out.push((name, self.table.push(t)?));
        }
        Ok(Ok(out))
    }

    fn drop(&mut self, ctx: Resource<ExecutionContext>) -> wasmtime::Result<()> {
        self.table.delete(ctx)?;
        self.state.contexts -= 1;
        Ok(())
    }
}

type StepOutcome = Result<Vec<(String, Tensor)>, (ErrorCode, String)>;

impl NnView<'_> {
    fn compute_step(&mut self, ctx: &Resource<ExecutionContext>, inputs: &[(String, Tensor)]) -> wasmtime::Result<StepOutcome> {
        let ctx = self.table.get_mut(ctx)?;
        let bad = |m: String| Ok(Err((ErrorCode::InvalidArgument, m)));
        let (mut tokens, mut position, mut allowed) = (Vec::new(), None, None);
        for (name, t) in inputs {
            match name.as_str() {
                names::HEADER => {
                    let header = ctx.model.header().unwrap_or_default().to_vec();
                    let size = ctx.model.file_size as u64;
                    return Ok(Ok(vec![
                        (names::HEADER.into(), tensor(vec![header.len() as u32], TensorType::U8, header)),
                        (names::FILE_SIZE.into(), tensor(vec![1], TensorType::I64, size.to_le_bytes().to_vec())),
                    ]));
                }
                names::TOKENS => match ids_input(name, t) {
                    Ok(v) => tokens = v,
                    Err(m) => return bad(m),
                },
                names::POSITION => match ids_input(name, t) {
                    Ok(v) if v.len() == 1 => position = Some(v[0] as usize),
                    Ok(v) => return bad(format!("input 'position' must hold one value, not {}", v.len())),
                    Err(m) => return bad(m),
                },
                names::ALLOWED => match ids_input(name, t) {
                    Ok(v) => allowed = Some(v),
                    Err(m) => return bad(m),
                },
                other => {
                    return bad(format!(
                        "unknown input {other:?} (the protocol's inputs: tokens, position, allowed, header)"
                    ))
                }
            }
        }
        let step = Step { position, tokens: &tokens, allowed: allowed.as_deref() };
        match ctx.seq.step(&ctx.model, &step) {
            Ok(logits) => {
                let n = logits.len() as u32;
                Ok(Ok(vec![(names::LOGITS.into(), tensor(vec![n], TensorType::Fp32, codec::f32s_to_bytes(&logits)))]))
            }
            Err(e @ (edgeslm_engine::Error::InvalidOption(_) | edgeslm_engine::Error::ContextOverflow { .. })) => {
                bad(e.to_string())
            }
            Err(e) => Ok(Err((ErrorCode::RuntimeError, e.to_string()))),
        }
    }
}

impl bindings::wasi::nn::inference::Host for NnView<'_> {}

impl bindings::wasi::nn::tensor::HostTensor for NnView<'_> {
    fn new(&mut self, dimensions: Vec<u32>, ty: TensorType, data: Vec<u8>) -> wasmtime::Result<Resource<Tensor>> {
        Ok(self.table.push(tensor(dimensions, ty, data))?)
    }

    fn dimensions(&mut self, t: Resource<Tensor>) -> wasmtime::Result<Vec<u32>> {
        Ok(self.table.get(&t)?.dimensions.clone())
    }

    fn ty(&mut self, t: Resource<Tensor>) -> wasmtime::Result<TensorType> {
        Ok(self.table.get(&t)?.ty)
    }

    fn data(&mut self, t: Resource<Tensor>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&t)?.data.clone())
    }

    fn drop(&mut self, t: Resource<Tensor>) -> wasmtime::Result<()> {
        self.table.delete(t)?;
        Ok(())
    }
}

impl bindings::wasi::nn::tensor::Host for NnView<'_> {}

impl bindings::wasi::nn::errors::HostError for NnView<'_> {
    fn code(&mut self, e: Resource<NnError>) -> wasmtime::Result<ErrorCode> {
        Ok(self.table.get(&e)?.code)
    }

    fn data(&mut self, e: Resource<NnError>) -> wasmtime::Result<String> {
        Ok(self.table.get(&e)?.message.clone())
    }

    fn drop(&mut self, e: Resource<NnError>) -> wasmtime::Result<()> {
        self.table.delete(e)?;
        Ok(())
    }
}

impl bindings::wasi::nn::errors::Host for NnView<'_> {}

#[cfg(test)]
mod tests {
    //! What a guest could send, malformed: every case is a wasi:nn error with a code and a
    //! message, and the context still answers a good step afterwards.
    use super::bindings::wasi::nn::errors::HostError;
    use super::bindings::wasi::nn::graph::{Host as _, HostGraph};
    use super::bindings::wasi::nn::inference::HostGraphExecutionContext;
    use super::bindings::wasi::nn::tensor::HostTensor;
    use super::*;

    fn model() -> PathBuf {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(p.exists(), "{} is missing: run scripts/fetch-models first", p.display());
        p
    }

    fn i32s(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn malformed_tensors_are_wasi_nn_errors() {
        let registry = Registry::default();
        let native = registry.register("/model/smol.gguf", &model()).unwrap();
        let (mut state, mut table) = (NnState::new(registry), ResourceTable::new());
        let mut v = NnView::new(&mut state, &mut table);

        let e = v.load_by_name("/model/other.gguf".into()).unwrap().unwrap_err();
        assert_eq!(v.code(e).unwrap(), ErrorCode::NotFound);
        let e = v.load(vec![vec![0; 16]], GraphEncoding::Onnx, ExecutionTarget::Cpu).unwrap().unwrap_err();
        assert_eq!(v.code(e).unwrap(), ErrorCode::InvalidEncoding);
        let e = v.load(vec![vec![0; 16]], GraphEncoding::Ggml, ExecutionTarget::Cpu).unwrap().unwrap_err();
        assert_eq!(v.code(e).unwrap(), ErrorCode::UnsupportedOperation);

        let g = v.load_by_name("/model/smol.gguf".into()).unwrap().unwrap();
        let ctx = v.init_execution_context(g).unwrap().unwrap();
        let vocab = native.vocab_size() as i32;
        let n_ctx = native.config.n_ctx_train;
        let cases: Vec<(Vec<(&str, Vec<u32>, TensorType, Vec<u8>)>, &str)> = vec![
            (vec![("tokens", vec![2], TensorType::Fp32, vec![0; 8])], "must be I32"),
            (vec![("tokens", vec![1, 2], TensorType::I32, i32s(&[1, 2]))], "one dimension"),
            (vec![("tokens", vec![3], TensorType::I32, i32s(&[1, 2]))], "8 bytes of data for 3"),
            (vec![("tokens", vec![1], TensorType::I32, i32s(&[-4]))], "negative token id"),
            (vec![("tokens", vec![1], TensorType::I32, i32s(&[vocab]))], "outside the vocabulary"),
            (vec![("tokens", vec![1], TensorType::I32, i32s(&[1])), ("position", vec![1], TensorType::I32, i32s(&[9]))], "cannot roll back"),
            (vec![("tokens", vec![1], TensorType::I32, i32s(&[1])), ("position", vec![2], TensorType::I32, i32s(&[0, 0]))], "one value"),
            (vec![("tokens", vec![n_ctx as u32 + 1], TensorType::I32, i32s(&vec![1; n_ctx + 1]))], "context overflow"),
            (vec![("tokens", vec![0], TensorType::I32, vec![])], "no evaluated position"),
            (vec![("tokens", vec![1], TensorType::I32, i32s(&[1])), ("allowed", vec![1], TensorType::I32, i32s(&[vocab + 7]))], "outside the vocabulary"),
            (vec![("weights", vec![1], TensorType::U8, vec![0])], "unknown input"),
        ];
        for (inputs, expect) in cases {
            let mut named = vec![];
            for (name, dims, ty, data) in inputs {
                named.push((name.to_string(), v.new(dims, ty, data).unwrap()));
            }
            let ctx_again = Resource::new_borrow(ctx.rep());
            let e = v.compute(ctx_again, named).unwrap().expect_err(expect);
            let (code, msg) = (v.code(Resource::new_borrow(e.rep())).unwrap(), HostError::data(&mut v, Resource::new_borrow(e.rep())).unwrap());
            assert_eq!(code, ErrorCode::InvalidArgument, "{msg}");
            assert!(msg.contains(expect), "{msg:?} should say {expect:?}");
        }

        // The same context still works: evaluate two tokens, then read three logits.
        let t = v.new(vec![2], TensorType::I32, i32s(&[1, 2])).unwrap();
        let a = v.new(vec![3], TensorType::I32, i32s(&[0, 5, 9])).unwrap();
        let out = v.compute(Resource::new_borrow(ctx.rep()), vec![("tokens".into(), t), ("allowed".into(), a)]).unwrap().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "logits");
        let data = HostTensor::data(&mut v, Resource::new_borrow(out[0].1.rep())).unwrap();
        let logits = codec::f32s_from_bytes(&data).unwrap();
        assert_eq!(logits.len(), 3);
        assert!(logits.iter().all(|l| l.is_finite()));
    }

    #[test]
    fn open_contexts_are_bounded() {
        let registry = Registry::default();
        registry.register("/model/smol.gguf", &model()).unwrap();
        let (mut state, mut table) = (NnState::new(registry), ResourceTable::new());
        let mut v = NnView::new(&mut state, &mut table);
        let g = v.load_by_name("/model/smol.gguf".into()).unwrap().unwrap();
        let graph = || Resource::<Graph>::new_borrow(g.rep());
        let mut open: Vec<_> = (0..MAX_CONTEXTS).map(|_| v.init_execution_context(graph()).unwrap().unwrap()).collect();
        let e = v.init_execution_context(graph()).unwrap().unwrap_err();
        let (code, msg) = (v.code(Resource::new_borrow(e.rep())).unwrap(), HostError::data(&mut v, Resource::new_borrow(e.rep())).unwrap());
        assert_eq!(code, ErrorCode::TooLarge, "{msg}");
        assert!(msg.contains("32 execution contexts"), "{msg}");
        // Dropping one makes room for one; a context still computes.
        HostGraphExecutionContext::drop(&mut v, open.pop().unwrap()).unwrap();
        let ctx = v.init_execution_context(graph()).unwrap().unwrap();
        let t = v.new(vec![2], TensorType::I32, i32s(&[1, 2])).unwrap();
        let out = v.compute(ctx, vec![("tokens".into(), t)]).unwrap().unwrap();
        assert_eq!(out[0].0, "logits");
    }
}
