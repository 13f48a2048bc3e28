//! Constraints as users write them: a JSON Schema, a regular expression or a Lark grammar
//! (the first byte says which), compiled over SmolLM2's vocabulary and run against a
//! candidate output (after the first NUL). Every input is a typed error or a verdict.
#![no_main]
use std::sync::{Mutex, OnceLock};

use edgeslm_engine::{Constraint, Instance};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn instance() -> &'static Mutex<Instance> {
    static I: OnceLock<Mutex<Instance>> = OnceLock::new();
    I.get_or_init(|| Mutex::new(Instance::new(common::load(&common::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")))))
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let (text, candidate) = common::two_fields(&data[1..]);
    let text = String::from_utf8_lossy(text).into_owned();
    let c = match data[0] % 3 {
        0 => Constraint::JsonSchema(text),
        1 => Constraint::Regex(text),
        _ => Constraint::Grammar(text),
    };
    let candidate = String::from_utf8_lossy(candidate).into_owned();
    let mut inst = instance().lock().unwrap();
    if let Err(e) = inst.check_instances(&c, &[candidate], None) {
        let m = e.to_string();
        assert!(!m.contains('\n'), "an error of more than one line: {m}");
    }
});
