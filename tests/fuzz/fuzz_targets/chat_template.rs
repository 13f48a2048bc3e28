//! Chat templates from GGUF metadata (`tokenizer.chat_template`, Jinja): an arbitrary
//! template rendered with an arbitrary prompt (after the first NUL) is text or a typed error,
//! in bounded time and memory.
#![no_main]
use std::sync::{Mutex, OnceLock};

use edgeslm_engine::gguf::Value;
use edgeslm_engine::{chat, Model};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn model() -> &'static Mutex<Model> {
    static M: OnceLock<Mutex<Model>> = OnceLock::new();
    M.get_or_init(|| Mutex::new(common::load(&common::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf"))))
}

fuzz_target!(|data: &[u8]| {
    let (template, prompt) = common::two_fields(data);
    let mut m = model().lock().unwrap();
    m.gguf.metadata.insert("tokenizer.chat_template".into(), Value::String(String::from_utf8_lossy(template).into_owned()));
    if let Err(e) = chat::render_user_turn(&m, &String::from_utf8_lossy(prompt)) {
        let text = e.to_string();
        assert!(!text.contains('\n'), "an error of more than one line: {text}");
    }
});
