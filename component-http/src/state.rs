//! What an instance keeps between requests (and, baked, what every instance starts with).

use std::cell::RefCell;

use edgeslm_engine as engine;

/// The model and the state kept between calls in one instance: the engine's `Instance`
/// (prompt cache, priors, constraint engine) and where the model came from.
pub struct Service {
    pub instance: engine::Instance,
    pub origin: Origin,
}

#[derive(Clone, Debug)]
pub enum Origin {
    /// Parsed during `edgeslm bake`; part of the memory image.
    Baked { load_ms: f64 },
    /// Loaded from `EDGESLM_MODEL` by this instance.
    File { path: String, load_ms: f64 },
}

thread_local! {
    /// The component is single-threaded; thread-locals are plain statics in its memory,
    /// which is what the snapshot keeps.
    pub static SERVICE: RefCell<Option<Service>> = const { RefCell::new(None) };
    /// The model file while `bake` receives it.
    pub static PENDING: RefCell<Option<(u64, Vec<u8>)>> = const { RefCell::new(None) };
}
