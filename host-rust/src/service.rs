//! The HTTP service component (world `service`) in wasmtime.
//!
//! [`Server`] is `edgeslm serve`: the machinery of `wasmtime serve` (wasmtime-wasi-http on
//! hyper and tokio), one fresh instance per request, bound to 127.0.0.1 by default.
//! [`bake`] is `edgeslm bake`: it instantiates the service once, pushes a model through the
//! `bake` interface, runs the warm-up requests, and snapshots the instance with wizer, so
//! that every later instance starts with the parsed model in its memory image (mapped
//! copy-on-write by wasmtime: instantiation costs an mmap, not a 250 MB parse).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hyper::server::conn::http1;
use wasmtime::component::{Component, Instance, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::{guest_path, load_cached, ms, GUEST_MODEL_DIR};

/// The service component `cargo xtask build` writes (not baked).
pub const SERVICE_FILE: &str = "edgeslm-service.wasm";

/// Per-request store data: WASI, wasi:http and their handles.
struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: Default::default() }
    }
}

/// `deadlines`: interrupt guests that run past their store's epoch deadline (serving; the
/// bake runs to completion).
fn engine(deadlines: bool) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // A baked image's data is mapped copy-on-write into each instance (the default; said
    // here because the per-request cost depends on it).
    config.memory_init_cow(true);
    config.epoch_interruption(deadlines);
    Ok(Engine::new(&config)?)
}

/// How often the epoch advances: the granularity of request deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(50);

fn linker(engine: &Engine) -> Result<Linker<RequestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Ok(linker)
}

/// What each request's instance sees besides the request, and the server's limits.
#[derive(Clone)]
pub struct ServeOptions {
    /// Environment variables (the service's configuration: EDGESLM_UPSTREAM_URL, ...).
    pub env: Vec<(String, String)>,
    /// For a component that was not baked: the GGUF each instance loads (its directory is
    /// preopened read-only at /model and EDGESLM_MODEL points at it).
    pub model: Option<PathBuf>,
    /// Instances running at once [the number of cores]: each runs on one thread, so more
    /// only share the cores and hold more memory.
    pub max_instances: usize,
    /// Requests waiting for an instance [64]; beyond that, 503 `overloaded` at once.
    pub max_queue: usize,
    /// A request's instance is stopped after this long: 503 `timeout` [none]. Deadlines
    /// need wasmtime's epoch checks in the compiled code, which cost the model's loops
    /// ~15-20% here, so they are off unless asked for (as in `wasmtime serve`).
    pub timeout: Option<Duration>,
    /// One line per request on stderr: method, path, status, milliseconds.
    pub access_log: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            env: Vec::new(),
            model: None,
            max_instances: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_queue: 64,
            timeout: None,
            access_log: false,
        }
    }
}

pub struct Server {
    pre: ProxyPre<RequestState>,
    env: Vec<(String, String)>,
    model_dir: Option<PathBuf>,
    instances: Arc<tokio::sync::Semaphore>,
    /// Requests running or waiting.
    pending: AtomicUsize,
    max_pending: usize,
    /// The deadline in epoch ticks, when there is one.
    deadline_ticks: Option<u64>,
    access_log: bool,
    /// Compiling (or loading the cached compilation of) the component.
    pub compile_ms: f64,
}

impl Server {
    pub fn new(component: &Path, options: ServeOptions) -> Result<Server> {
        let t = Instant::now();
        if options.max_instances == 0 {
            bail!("at least one instance must be allowed to run");
        }
        let engine = engine(options.timeout.is_some())?;
        if options.timeout.is_some() {
            let ticker = engine.weak();
            std::thread::spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            });
        }
        // Mapped, not read: a baked component is hundreds of MB, and compiling it the first
        // time already needs about as much again.
        let bytes = edgeslm_engine::Storage::open(&component.to_string_lossy())
            .map_err(|e| anyhow!("cannot read {}: {e}", component.display()))?;
        let compiled = load_cached(&engine, component, bytes.whole().unwrap_or_default())?;
        drop(bytes);
        let pre = ProxyPre::new(linker(&engine)?.instantiate_pre(&compiled)?)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} is not a wasi:http/incoming-handler component", component.display()))?;
        let mut env = options.env;
        let mut model_dir = None;
        if let Some(model) = &options.model {
            let abs = model.canonicalize().with_context(|| format!("model {}", model.display()))?;
            env.push(("EDGESLM_MODEL".into(), guest_path(&abs)?));
            model_dir = abs.parent().map(Path::to_path_buf);
        }
        Ok(Server {
            pre,
            env,
            model_dir,
            instances: Arc::new(tokio::sync::Semaphore::new(options.max_instances)),
            pending: AtomicUsize::new(0),
            max_pending: options.max_instances + options.max_queue,
            deadline_ticks: options.timeout.map(|t| (t.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64),
            access_log: options.access_log,
            compile_ms: ms(t),
        })
    }

    fn store(&self) -> Result<Store<RequestState>> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stderr();
        wasi.envs(&self.env);
        if let Some(dir) = &self.model_dir {
            wasi.preopened_dir(dir, GUEST_MODEL_DIR, FsPerms::ReadOnly)
                .map_err(|e| anyhow!("cannot open directory {}: {e}", dir.display()))?;
        }
        let state = RequestState { wasi: wasi.build(), http: WasiHttpCtx::new(), table: ResourceTable::new() };
        let mut store = Store::new(self.pre.engine(), state);
        if let Some(ticks) = self.deadline_ticks {
            store.set_epoch_deadline(ticks);
        }
        Ok(store)
    }

    /// One request: wait for an instance slot (or refuse when too many wait), then run it
    /// in a fresh instance.
    pub async fn handle(self: Arc<Self>, req: hyper::Request<hyper::body::Incoming>) -> hyper::Response<HyperOutgoingBody> {
        let t = Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let response = if self.pending.fetch_add(1, Ordering::SeqCst) >= self.max_pending {
            json_error(503, "overloaded", "every instance is busy and the queue is full; retry shortly")
        } else {
            match self.clone().instance(req).await {
                Ok(r) => r,
                Err(e) => fault(&e),
            }
        };
        self.pending.fetch_sub(1, Ordering::SeqCst);
        if self.access_log {
            log(format_args!("{method} {path} {} {:.1} ms", response.status().as_u16(), ms(t)));
        }
        response
    }

    async fn instance(self: Arc<Self>, req: hyper::Request<hyper::body::Incoming>) -> Result<hyper::Response<HyperOutgoingBody>> {
        let permit = self.instances.clone().acquire_owned().await?;
        let mut store = self.store()?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = self.pre.clone();
        // The guest computes for hundreds of milliseconds without yielding. On the server's
        // own workers it would hold up every task queued behind it on that worker (a
        // connection woken there cannot be stolen by an idle one), so a busy server could not
        // even answer `overloaded`. Each instance gets its own thread, and a single-threaded
        // runtime for the guest's I/O; it may keep writing the body after the headers, and
        // holds its instance slot until it is done.
        let (done, finished) = tokio::sync::oneshot::channel::<Result<()>>();
        std::thread::Builder::new()
            .name("edgeslm-instance".into())
            .spawn(move || {
                let _permit = permit;
                let run = async move {
                    let proxy = pre.instantiate_async(&mut store).await?;
                    proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
                };
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)
                    .and_then(|rt| rt.block_on(run).map_err(anyhow::Error::from));
                let _ = done.send(result);
            })
            .context("cannot start a thread for the instance")?;
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                let e = match finished.await {
                    Ok(Ok(())) => anyhow!("the guest did not set a response"),
                    Ok(Err(e)) => e,
                    Err(_) => anyhow!("the instance's thread ended without a result"),
                };
                Err(e.context("the guest failed before responding"))
            }
        }
    }

    /// Accept connections until the process ends (HTTP/1.1, keep-alive).
    pub async fn run(self: Arc<Self>, listener: tokio::net::TcpListener) -> Result<()> {
        loop {
            let (client, _) = listener.accept().await?;
            // The headers go out when the guest sets them and the body as it writes it, from
            // its own thread: with Nagle's algorithm on, a small body written after the headers
            // waits for the client's delayed ACK (40 ms per request on Linux).
            client.set_nodelay(true)?;
            let server = self.clone();
            tokio::task::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, std::convert::Infallible>(server.handle(req).await) }
                });
                if let Err(e) = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(client), service).await {
                    if !e.is_incomplete_message() {
                        log(format_args!("edgeslm serve: connection: {e}"));
                    }
                }
            });
        }
    }
}

/// One line on stderr, written by a logging thread: a request never waits for stderr (a pipe
/// nobody reads would otherwise stall the server). Lines beyond what the thread keeps up with
/// (1024 queued) are dropped; a failing stderr loses them (`eprintln!` would panic).
fn log(line: std::fmt::Arguments) {
    use std::io::Write;
    use std::sync::mpsc::{sync_channel, SyncSender};
    static LOGGER: std::sync::OnceLock<SyncSender<String>> = std::sync::OnceLock::new();
    let sender = LOGGER.get_or_init(|| {
        let (tx, rx) = sync_channel::<String>(1024);
        std::thread::spawn(move || {
            for line in rx {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        });
        tx
    });
    let _ = sender.try_send(format!("{line}\n"));
}

/// A fault outside the guest's own answers, in the service's error shape: a request stopped
/// at its deadline is 503 `timeout`; a trap or a host error is 500 `internal`.
fn fault(e: &anyhow::Error) -> hyper::Response<HyperOutgoingBody> {
    if e.chain().any(|c| c.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt)) {
        return json_error(503, "timeout", "the request ran past the server's deadline and was stopped");
    }
    let msg = e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ");
    log(format_args!("edgeslm serve: 500: {msg}"));
    json_error(500, "internal", &msg)
}

fn json_error(status: u16, kind: &str, message: &str) -> hyper::Response<HyperOutgoingBody> {
    use http_body_util::BodyExt;
    let body = serde_json::json!({ "error": { "type": kind, "message": message } }).to_string();
    let body = http_body_util::Full::new(bytes::Bytes::from(body)).map_err(|never| match never {}).boxed_unsync();
    let mut r = hyper::Response::builder().status(status).header("content-type", "application/json");
    if status == 503 {
        r = r.header("retry-after", "1");
    }
    r.body(body).expect("a valid response")
}

/// Bind and serve on a tokio runtime; `on_ready` gets the bound address (port 0 picks one).
pub fn serve(component: &Path, addr: SocketAddr, options: ServeOptions, on_ready: impl FnOnce(SocketAddr, &Server)) -> Result<()> {
    let server = Arc::new(Server::new(component, options)?);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        on_ready(listener.local_addr()?, &server);
        server.run(listener).await
    })
}

/// A request the bake runs so its state (prompt cache, calibration prior) is in the image.
pub struct WarmRequest {
    pub path: String,
    pub body: Vec<u8>,
}

pub struct BakeReport {
    /// The guest's one-line description of the parsed model.
    pub model: String,
    pub out_bytes: u64,
    pub push_ms: f64,
    pub warm_ms: f64,
    pub total_ms: f64,
}

/// Pre-initialize the service component with `model` and write the snapshot to `out`.
pub fn bake(component: &Path, model: &Path, warm: &[WarmRequest], out: &Path, say: &dyn Fn(String)) -> Result<BakeReport> {
    let total = Instant::now();
    let wasm = std::fs::read(component).with_context(|| format!("cannot read {}", component.display()))?;
    let size = std::fs::metadata(model).with_context(|| format!("model {}", model.display()))?.len();
    let engine = engine(false)?;
    let linker = linker(&engine)?;
    let mut wasi = WasiCtxBuilder::new();
    wasi.inherit_stderr();
    let state = RequestState { wasi: wasi.build(), http: WasiHttpCtx::new(), table: ResourceTable::new() };
    let mut store = Store::new(&engine, state);
    // The snapshot reads the whole linear memory (the model and all) back out of the guest
    // as one list; the default per-call cap on guest-to-host data is 128 MiB.
    store.set_hostcall_fuel(usize::MAX);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut report = BakeReport { model: String::new(), out_bytes: 0, push_ms: 0.0, warm_ms: 0.0, total_ms: 0.0 };
    let mut wizer = wasmtime_wizer::Wizer::new();
    // Dropping the init function breaks the component (its lift still names the core
    // export); keeping it is harmless: it only checks that a model is present.
    wizer.keep_init_func(true);
    let snapshot = rt.block_on(wizer.run_component(&mut store, &wasm, async |store: &mut Store<RequestState>, c: &Component| {
        say(format!("bake: instantiating {}", component.display()));
        let instance = linker.instantiate_async(&mut *store, c).await?;
        let t = Instant::now();
        report.model = push_model(store, &instance, model, size, say).await.map_err(wasmtime::Error::from_anyhow)?;
        report.push_ms = ms(t);
        let t = Instant::now();
        for (i, w) in warm.iter().enumerate() {
            let (status, body) = call::<(String, String, Vec<u8>), ((u16, String),)>(store, &instance, "warm", ("POST".into(), w.path.clone(), w.body.clone()))
                .await
                .map_err(wasmtime::Error::from_anyhow)?
                .0;
            if status != 200 {
                return Err(wasmtime::Error::from_anyhow(anyhow!("bake: warm-up request {} ({}) answered {status}: {body}", i + 1, w.path)));
            }
            say(format!("bake: warm-up {} ({}) done", i + 1, w.path));
        }
        report.warm_ms = ms(t);
        say("bake: snapshotting the instance".into());
        Ok(instance)
    }));
    let (snapshot, _) = snapshot.map_err(|e| anyhow!("{e:?}"))?;
    std::fs::write(out, &snapshot).with_context(|| format!("cannot write {}", out.display()))?;
    report.out_bytes = snapshot.len() as u64;
    report.total_ms = ms(total);
    Ok(report)
}

/// Stream the model file into the instance through `bake.begin/push/finish`.
async fn push_model(store: &mut Store<RequestState>, instance: &Instance, model: &Path, size: u64, say: &dyn Fn(String)) -> Result<String> {
    use std::io::Read;
    let to_err = |e: String| anyhow!("bake: {e}");
    call::<(u64,), (Result<(), String>,)>(store, instance, "begin", (size,)).await?.0.map_err(to_err)?;
    let mut file = std::fs::File::open(model).with_context(|| format!("cannot open {}", model.display()))?;
    let mut piece = vec![0u8; 8 << 20];
    let mut sent = 0u64;
    let mut next_report = 0u64;
    loop {
        let n = file.read(&mut piece)?;
        if n == 0 {
            break;
        }
        call::<(&[u8],), (Result<(), String>,)>(store, instance, "push", (&piece[..n],)).await?.0.map_err(to_err)?;
        sent += n as u64;
        if sent >= next_report {
            say(format!("bake: pushed {:.0} of {:.0} MB", sent as f64 / 1e6, size as f64 / 1e6));
            next_report += 64 << 20;
        }
    }
    let summary = call::<(), (Result<String, String>,)>(store, instance, "finish", ()).await?.0.map_err(to_err)?;
    say(format!("bake: {summary}"));
    Ok(summary)
}

/// Call `edgeslm:runtime/bake@0.1.0#name`.
async fn call<P, R>(store: &mut Store<RequestState>, instance: &Instance, name: &str, params: P) -> Result<R>
where
    P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower + Send + Sync,
    R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift + Send + Sync + 'static,
{
    let iface = instance
        .get_export_index(&mut *store, None, "edgeslm:runtime/bake@0.1.0")
        .ok_or_else(|| anyhow!("the component does not export edgeslm:runtime/bake (is it the service build?)"))?;
    let func = instance
        .get_export_index(&mut *store, Some(&iface), name)
        .ok_or_else(|| anyhow!("bake.{name} is missing"))?;
    let f = instance.get_typed_func::<P, R>(&mut *store, func)?;
    Ok(f.call_async(&mut *store, params).await?)
}

/// Where `cargo xtask build` puts the service component, relative to the running executable.
pub fn service_beside_exe() -> Option<PathBuf> {
    crate::file_beside_exe(SERVICE_FILE)
}

/// Parse `PATH=FILE` warm-up arguments (`/v1/classify=seed.json`).
pub fn warm_request(arg: &str) -> Result<WarmRequest> {
    let (path, file) = arg.split_once('=').ok_or_else(|| anyhow!("--warm takes PATH=FILE, e.g. /v1/classify=request.json"))?;
    if !path.starts_with("/v1/") {
        bail!("--warm {arg}: the path must be an endpoint such as /v1/classify");
    }
    let body = std::fs::read(file).with_context(|| format!("--warm {arg}"))?;
    Ok(WarmRequest { path: path.to_string(), body })
}
