//! The edgeslm HTTP service (world `service`): `wasi:http/incoming-handler` in front of the
//! engine, for `wasmtime serve`, Spin and other wasi:http hosts.
//!
//! Edge hosts create an instance per request, so the model must already be in the
//! instance's memory: `edgeslm bake` pushes it through the `bake` interface and snapshots
//! the instance (wizer). An instance that was not baked loads the file named by
//! `EDGESLM_MODEL` on its first request instead (slow; kept for development and to measure
//! what baking saves).

wit_bindgen::generate!({
    path: "../wit",
    world: "service",
    generate_all,
});

mod api;
mod body;
mod cloud;
mod config;
mod http;
mod openai;
mod outgoing;
mod state;
mod wire;

use edgeslm_engine as engine;
use engine::timing::Stopwatch;
use state::{Origin, Service, PENDING, SERVICE};

pub use config::{Config, Upstream};

/// The service without wasi:http, as `incoming-handler` answers once the request is read:
/// its method, target (path and query), `content-length` values and body, against `config`.
/// For the fuzz target (tests/fuzz) and native callers; the component itself goes through
/// `http.rs`, which streams the body under the same cap. A streamed chat completion's body is
/// its list of events (the component writes each as a `data:` line).
pub fn respond(method: &str, target: &str, content_length: &[Vec<u8>], body: &[u8], config: &Config) -> (u16, serde_json::Value) {
    let cap = config.max_body_bytes;
    let over = wire::declared_length(content_length).is_some_and(|n| n > cap as u64) || body.len() > cap;
    let response = if over {
        wire::too_large(cap)
    } else {
        let request = wire::Request { method: method.to_string(), path: wire::path_of(target).to_string(), body: body.to_vec() };
        api::handle(&request, config)
    };
    match response.events {
        Some(source) => {
            let mut events = Vec::new();
            source(&mut |e| events.push(e));
            (response.status, serde_json::Value::Array(events))
        }
        None => (response.status, response.body),
    }
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Component;

impl Guest for Component {
    /// The bake's last step. The model was pushed before; nothing is left to do here, but
    /// wizer needs a named init function, and a bake without a model is refused.
    fn wizer_initialize() {
        SERVICE.with_borrow(|s| {
            if s.is_none() {
                // A trap fails the bake with this message in the host's error.
                panic!("edgeslm bake: wizer-initialize ran before a model was pushed");
            }
        })
    }
}

impl exports::edgeslm::runtime::bake::Guest for Component {
    fn begin(size: u64) -> Result<(), String> {
        let mut bytes = Vec::new();
        let n = usize::try_from(size).map_err(|_| format!("{size} bytes do not fit a 32-bit memory"))?;
        bytes.try_reserve_exact(n).map_err(|_| format!("cannot reserve {size} bytes for the model"))?;
        PENDING.set(Some((size, bytes)));
        Ok(())
    }

    fn push(piece: Vec<u8>) -> Result<(), String> {
        PENDING.with_borrow_mut(|p| {
            let (size, bytes) = p.as_mut().ok_or("bake: push before begin")?;
            if bytes.len() as u64 + piece.len() as u64 > *size {
                return Err(format!("bake: more than the announced {size} bytes were pushed"));
            }
            bytes.extend_from_slice(&piece);
            Ok(())
        })
    }

    fn finish() -> Result<String, String> {
        let (size, bytes) = PENDING.take().ok_or("bake: finish before begin")?;
        if bytes.len() as u64 != size {
            return Err(format!("bake: {} of the announced {size} bytes were pushed", bytes.len()));
        }
        let clock = Stopwatch::start();
        let model = engine::Model::from_bytes(bytes).map_err(|e| e.to_string())?;
        let instance = engine::Instance::with_constrainer(model).map_err(|e| e.to_string())?;
        let load_ms = clock.ms();
        let i = instance.info();
        let summary = format!(
            "{} ({}, {} layers, vocabulary {}), parsed and constraint engine built in {:.0} ms",
            i.name.as_deref().unwrap_or("unnamed"),
            i.architecture,
            i.layers,
            i.vocab_size,
            load_ms
        );
        SERVICE.set(Some(Service { instance, origin: Origin::Baked { load_ms } }));
        Ok(summary)
    }

    fn warm(method: String, path: String, body: Vec<u8>) -> (u16, String) {
        // Local only, and no configuration read: the environment would be cached into the
        // image, and no network handle survives the snapshot.
        let response = api::handle(&wire::Request { method, path, body }, &config::Config::for_bake());
        (response.status, response.body.to_string())
    }
}

impl exports::wasi::http::incoming_handler::Guest for Component {
    fn handle(request: wasi::http::types::IncomingRequest, out: wasi::http::types::ResponseOutparam) {
        http::serve(request, out)
    }
}

// The exports exist only in the component (their names are not native symbol names); the
// native build is the rlib the fuzz target calls `respond` in.
#[cfg(target_arch = "wasm32")]
export!(Component);
