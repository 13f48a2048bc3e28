//! A wasmtime embedding of the edgeslm component.
//!
//! [`Host`] compiles the component once (caching the machine code next to it);
//! [`Session`] is one instance with the model's directory preopened read-only, and wraps
//! the WIT `model` resource in plain Rust calls. With [`Backend::WasiNn`] the host also
//! serves the model's forward pass through wasi:nn ([`nn`]) to the component's
//! `runtime-nn` build.

pub mod nn;
#[cfg(feature = "service")]
pub mod service;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use wasmtime::component::{Component, Linker, ResourceAny, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "runtime",
});

pub use exports::edgeslm::runtime::types::{
    Classification, ClassifyOptions, Constraint, Error as WitError, Example, FinishReason, GenerateOptions, Generation,
    ModelInfo, Timings,
};

/// Where the model's directory appears inside the guest.
pub(crate) const GUEST_MODEL_DIR: &str = "/model";

struct State {
    wasi: WasiCtx,
    nn: nn::NnState,
    table: ResourceTable,
}

/// Where the forward pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Inside the component (SIMD128, one thread): works in any host.
    Portable,
    /// In this host, natively and multi-threaded, behind wasi:nn (the `runtime-nn` build).
    WasiNn,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable",
            Backend::WasiNn => "wasi-nn",
        }
    }

    /// The component file `cargo xtask build` writes for this backend.
    pub fn component_file(self) -> &'static str {
        match self {
            Backend::Portable => "edgeslm-component.wasm",
            Backend::WasiNn => "edgeslm-component-nn.wasm",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Backend> {
        match s {
            "portable" => Ok(Backend::Portable),
            "wasi-nn" => Ok(Backend::WasiNn),
            _ => bail!("unknown backend {s:?} (portable or wasi-nn)"),
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The compiled component and a linker that provides WASI and (used only by the
/// `runtime-nn` build) wasi:nn.
pub struct Host {
    engine: Engine,
    component: Component,
    linker: Linker<State>,
    pub component_path: PathBuf,
    pub compile_ms: f64,
    pub backend: Backend,
    /// Models served through wasi:nn, shared by every instance.
    pub registry: nn::Registry,
}

impl Host {
    /// Load the portable component at `path`, compiling it or reusing a cached compilation.
    pub fn new(path: &Path) -> Result<Host> {
        Host::with_backend(path, Backend::Portable)
    }

    /// Load the component at `path` (the build that matches `backend`).
    pub fn with_backend(path: &Path, backend: Backend) -> Result<Host> {
        let t = Instant::now();
        let mut config = Config::new();
        config.wasm_component_model(true);
        #[cfg(feature = "profiling")]
        match std::env::var("EDGESLM_PROFILE").as_deref() {
            // `perf report` by function name.
            Ok("perfmap") => {
                config.profiler(wasmtime::ProfilingStrategy::PerfMap);
            }
            // `perf record -k mono`, then `perf inject --jit`: `perf annotate` shows the
            // machine code Cranelift emitted for each wasm function.
            Ok("jitdump") => {
                config.profiler(wasmtime::ProfilingStrategy::JitDump);
            }
            _ => {}
        }
        let engine = Engine::new(&config)?;
        let bytes = std::fs::read(path).with_context(|| format!("cannot read component {}", path.display()))?;
        let component = load_cached(&engine, path, &bytes)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        nn::add_to_linker(&mut linker, |s: &mut State| nn::NnView::new(&mut s.nn, &mut s.table))?;
        Ok(Host {
            engine,
            component,
            linker,
            component_path: path.to_path_buf(),
            compile_ms: ms(t),
            backend,
            registry: nn::Registry::default(),
        })
    }

    /// The default build for `backend` beside the executable: for the portable backend the
    /// relaxed-simd build, or the SIMD128 one where that is missing or does not compile (a
    /// CPU or engine without relaxed-simd: said once on stderr).
    pub fn open_default(backend: Backend) -> Result<Host> {
        if backend == Backend::Portable {
            if let Some(relaxed) = file_beside_exe(RELAXED_COMPONENT_FILE) {
                match Host::with_backend(&relaxed, backend) {
                    Ok(host) => return Ok(host),
                    Err(e) => eprintln!("edgeslm: the relaxed-simd component does not compile here ({e:#}); using the SIMD128 build"),
                }
            }
        }
        let path = file_beside_exe(backend.component_file()).ok_or_else(|| {
            anyhow!(
                "the edgeslm component ({}) was not found; build it with `cargo xtask build` or pass --component",
                backend.component_file()
            )
        })?;
        Host::with_backend(&path, backend).with_context(|| format!("loading component {}", path.display()))
    }

    /// Whether this is the relaxed-simd build of the portable component (by its file name).
    pub fn is_relaxed_simd(&self) -> bool {
        self.component_path.file_name().is_some_and(|n| n == RELAXED_COMPONENT_FILE)
    }

    /// The component's imports, by name: what a guest could reach.
    pub fn imports(&self) -> Vec<String> {
        self.component.component_type().imports(&self.engine).map(|(name, _)| name.to_string()).collect()
    }

    /// A fresh instance; `model_dir` (if any) is preopened read-only at `/model`.
    pub fn instantiate(&self, model_dir: Option<&Path>) -> Result<Session> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stderr();
        if let Some(dir) = model_dir {
            wasi.preopened_dir(dir, GUEST_MODEL_DIR, FsPerms::ReadOnly)
                .map_err(|e| anyhow!("cannot open directory {}: {e}", dir.display()))?;
        }
        let nn = nn::NnState::new(self.registry.clone());
        let mut store = Store::new(&self.engine, State { wasi: wasi.build(), nn, table: ResourceTable::new() });
        let bindings = Runtime::instantiate(&mut store, &self.component, &self.linker)?;
        Ok(Session { store, bindings })
    }
}

/// Compiling the component takes seconds; its machine code is cached beside it as
/// `NAME.<settings>.<bytes>.cwasm`, keyed by the engine's settings and the component's bytes.
pub(crate) fn load_cached(engine: &Engine, path: &Path, bytes: &[u8]) -> Result<Component> {
    let settings = hash_of(&engine.precompile_compatibility_hash());
    let cache = path.with_extension(format!("{:08x}.{:016x}.cwasm", settings as u32, hash_of(bytes)));
    if cache.exists() {
        // SAFETY: the file was written by `precompile_component` of an engine with the same
        // compatibility hash, in a directory we own; a stale or broken one fails to load and
        // we fall back to compiling.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &cache) } {
            return Ok(c);
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    // Written aside and renamed into place, so a process that has the file mapped, or another
    // one compiling the same component, never sees it half-written; then loaded back from the
    // file, so its data (a baked model's memory image) is mapped, file-backed and shared,
    // instead of a private copy on the heap. A read-only location just means no cache.
    let tmp = cache.with_extension(format!("cwasm.{}.tmp", std::process::id()));
    if std::fs::write(&tmp, &compiled).is_ok() && std::fs::rename(&tmp, &cache).is_ok() {
        remove_stale_caches(path, &cache);
        drop(compiled); // a baked image is hundreds of MB: not held twice while mapping the file
        // SAFETY: as above; the file was just written from this engine's compilation.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &cache) } {
            return Ok(c);
        }
        // Only a process compiling another version of this file with the same settings
        // removes it meanwhile: then compile again, uncached.
        return Ok(Component::new(engine, bytes)?);
    }
    let _ = std::fs::remove_file(&tmp);
    // SAFETY: these bytes come from `precompile_component` of this very engine.
    Ok(unsafe { Component::deserialize(engine, &compiled)? })
}

fn hash_of<T: std::hash::Hash + ?Sized>(value: &T) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Compilations of earlier versions of the same file with the same engine settings: a
/// re-baked service would otherwise leave one image-sized file per bake. Caches made with
/// other settings (the CLI's engine, `serve --timeout`'s) are another engine's, still in use.
fn remove_stale_caches(path: &Path, keep: &Path) {
    let (Some(dir), Some(keep_name)) = (path.parent(), keep.file_name().and_then(|s| s.to_str())) else { return };
    // keep_name is `NAME.<settings>.<bytes>.cwasm`: siblings share everything up to `<bytes>`.
    let Some(prefix) = keep_name.strip_suffix(".cwasm").and_then(|r| r.rsplit_once('.')).map(|(p, _)| p) else { return };
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let hash = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')).and_then(|r| r.strip_suffix(".cwasm"));
        if hash.is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit())) && name != keep_name {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// One component instance.
pub struct Session {
    store: Store<State>,
    bindings: Runtime,
}

/// A model loaded inside a [`Session`].
#[derive(Clone, Copy)]
pub struct Model(ResourceAny);

impl Session {
    /// Load a model file from the preopened directory (pass the host path of a file inside it).
    pub fn load(&mut self, file: &Path) -> Result<std::result::Result<Model, WitError>> {
        let guest = guest_path(file)?;
        let api = self.bindings.edgeslm_runtime_inference().model();
        Ok(api.call_load(&mut self.store, &guest)?.map(Model))
    }

    pub fn load_bytes(&mut self, bytes: &[u8]) -> Result<std::result::Result<Model, WitError>> {
        let api = self.bindings.edgeslm_runtime_inference().model();
        Ok(api.call_from_bytes(&mut self.store, bytes)?.map(Model))
    }

    pub fn info(&mut self, m: Model) -> Result<ModelInfo> {
        let api = self.bindings.edgeslm_runtime_inference().model();
        Ok(api.call_info(&mut self.store, m.0)?)
    }

    pub fn tokenize(&mut self, m: Model, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let api = self.bindings.edgeslm_runtime_inference().model();
        Ok(api.call_tokenize(&mut self.store, m.0, text, add_special, parse_special)?)
    }

    pub fn detokenize(&mut self, m: Model, tokens: &[u32]) -> Result<std::result::Result<String, WitError>> {
        let api = self.bindings.edgeslm_runtime_inference().model();
        Ok(api.call_detokenize(&mut self.store, m.0, tokens)?)
    }

    pub fn generate(
        &mut self,
        m: Model,
        prompt: &str,
        opts: &GenerateOptions,
    ) -> Result<std::result::Result<Generation, WitError>> {
        let api = self.bindings.edgeslm_runtime_inference().model();
        Ok(api.call_generate(&mut self.store, m.0, prompt, opts)?)
    }

    pub fn generate_constrained(
        &mut self,
        m: Model,
        prompt: &str,
        constraint: &Constraint,
        opts: &GenerateOptions,
    ) -> Result<std::result::Result<Generation, WitError>> {
        let api = self.bindings.edgeslm_runtime_inference().model();
        Ok(api.call_generate_constrained(&mut self.store, m.0, prompt, constraint, opts)?)
    }

    pub fn classify(
        &mut self,
        m: Model,
        text: &str,
        labels: &[String],
        opts: &ClassifyOptions,
    ) -> Result<std::result::Result<Classification, WitError>> {
        let api = self.bindings.edgeslm_runtime_inference().model();
        Ok(api.call_classify(&mut self.store, m.0, text, labels, opts)?)
    }

    pub fn drop_model(&mut self, m: Model) -> Result<()> {
        Ok(m.0.resource_drop(&mut self.store)?)
    }
}

impl WitError {
    /// The error as one line: the engine's own message, passed through whole.
    pub fn message(&self) -> String {
        self.message.clone()
    }

    /// The stable code (`corrupt-file`), for JSON output and tests: the engine's table.
    pub fn code(&self) -> &'static str {
        self.error_code().as_str()
    }

    /// The engine's code for this error (the WIT enum lists the same codes in the same order).
    pub fn error_code(&self) -> edgeslm_engine::ErrorCode {
        edgeslm_engine::ErrorCode::ALL[self.code as usize]
    }
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: None,
            temperature: None,
            top_k: None,
            top_p: None,
            seed: None,
            stop: vec![],
            parse_special: None,
            chat: None,
        }
    }
}

impl Default for ClassifyOptions {
    fn default() -> Self {
        ClassifyOptions { instruction: None, examples: vec![], calibrate: None }
    }
}

/// Where the guest sees a model file: its name in the preopened directory (also the name
/// a wasi-nn host serves it under).
pub fn guest_path(file: &Path) -> Result<String> {
    let name = file.file_name().and_then(|n| n.to_str()).ok_or_else(|| anyhow!("bad model path"))?;
    Ok(format!("{GUEST_MODEL_DIR}/{name}"))
}

/// Open `model` (a host path) in a new instance: preopen its directory and load it (with
/// [`Backend::WasiNn`], the host first loads it natively, once, and serves it by name).
/// Returns the session, the model handle and the load time in milliseconds.
pub fn open_model(host: &Host, model: &Path) -> Result<(Session, Model, f64)> {
    check_model_file(model)?;
    let abs = model.canonicalize().with_context(|| format!("cannot resolve {}", model.display()))?;
    let dir = abs.parent().ok_or_else(|| anyhow!("model path has no directory"))?;
    let t = Instant::now();
    if host.backend == Backend::WasiNn {
        host.registry.register(&guest_path(&abs)?, &abs)?;
    }
    let mut session = host.instantiate(Some(dir))?;
    let m = session.load(&abs)?.map_err(|e| anyhow!(e.message()))?;
    Ok((session, m, ms(t)))
}

/// A model path that is not a file, as the engine's own error (and line): checked before the
/// path is resolved for the guest.
pub fn check_model_file(model: &Path) -> Result<()> {
    if !model.exists() {
        bail!("{}", edgeslm_engine::Error::FileNotFound(model.display().to_string()));
    }
    if model.is_dir() {
        bail!("{}", edgeslm_engine::Error::Io(format!("{} is a directory", model.display())));
    }
    Ok(())
}

pub(crate) fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// The portable component built by `cargo xtask build`, found relative to the running
/// executable (or through `EDGESLM_COMPONENT`).
pub fn default_component_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("EDGESLM_COMPONENT") {
        return Some(PathBuf::from(p));
    }
    component_beside_exe(Backend::Portable)
}

/// The portable component built with the engine's relaxed-simd kernels (`cargo xtask build`
/// writes it beside the SIMD128 build): bit for bit the same results, its 8-bit products
/// faster (one `pmaddubsw` per 16 products on x86). It validates only where the engine has
/// relaxed-simd (wasmtime has; some browsers have not), so it is a second file, preferred by
/// default ([`Host::open_default`]).
pub const RELAXED_COMPONENT_FILE: &str = "edgeslm-component-relaxed.wasm";

/// The component build for `backend` beside the running executable (`cargo xtask build`
/// puts them in target/release): for the portable backend, the relaxed-simd build when it
/// is there.
pub fn component_beside_exe(backend: Backend) -> Option<PathBuf> {
    let relaxed = (backend == Backend::Portable).then(|| file_beside_exe(RELAXED_COMPONENT_FILE)).flatten();
    relaxed.or_else(|| file_beside_exe(backend.component_file()))
}

/// `file` in the running executable's directory or its parent (`cargo xtask build` puts the
/// components in target/release, beside the CLI; tests run from target/release/deps).
pub fn file_beside_exe(file: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join(file), dir.join("..").join(file)].into_iter().find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::remove_stale_caches;

    #[test]
    fn stale_caches_of_the_same_settings_go_and_other_settings_stay() {
        let dir = std::env::temp_dir().join(format!("edgeslm-cache-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let names = [
            "svc.0000aaaa.1111111111111111.cwasm", // kept: the one just written
            "svc.0000aaaa.2222222222222222.cwasm", // same settings, older bytes: stale
            "svc.0000bbbb.3333333333333333.cwasm", // another engine's settings: in use
            "svc2.0000aaaa.4444444444444444.cwasm", // another file
            "svc.wasm",
        ];
        for n in names {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        remove_stale_caches(&dir.join("svc.wasm"), &dir.join(names[0]));
        let left: Vec<bool> = names.iter().map(|n| dir.join(n).exists()).collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(left, [true, false, true, true, true]);
    }
}
