//! What the targets share: where the models are, and loading one.
#![allow(dead_code)] // each target uses part of it

use edgeslm_engine::{Model, Storage};

/// The directory of the real models (scripts/fetch-models) and llama.cpp's vocabulary
/// files (scripts/fetch-vocab): `EDGESLM_MODELS`, else the checkout's `models/`.
pub fn models_dir() -> std::path::PathBuf {
    match std::env::var_os("EDGESLM_MODELS") {
        Some(d) => d.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"),
    }
}

pub fn load(path: &std::path::Path) -> Model {
    let p = path.to_str().expect("a UTF-8 path");
    let storage = Storage::open(p).unwrap_or_else(|e| panic!("{p}: {e} (scripts/fetch-models, scripts/fetch-vocab)"));
    Model::load(storage).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Split the input at its first NUL: two independent fields.
pub fn two_fields(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
