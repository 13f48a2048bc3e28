//! Schemas built from the input (structure-aware: the keywords edgeslm rewrites, folds or
//! refuses, nested), with an instance, checked against an independent validator (the
//! `jsonschema` crate): no instance it finds invalid may be accepted by the grammar edgeslm
//! compiles. Refusals are fine; accepting an invalid instance is a finding.
#![no_main]
use std::sync::{Mutex, OnceLock};

use edgeslm_engine::{Constraint, Instance};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

#[path = "common.rs"]
mod common;

fn instance() -> &'static Mutex<Instance> {
    static I: OnceLock<Mutex<Instance>> = OnceLock::new();
    I.get_or_init(|| Mutex::new(Instance::new(common::load(&common::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")))))
}

/// The input, read a byte at a time (zeros once it runs out).
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map(|(b, r)| (*b, r)).unwrap_or((0, &[]));
        self.0 = rest;
        b
    }
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.byte() as usize % xs.len()].clone()
    }
    fn small(&mut self) -> u64 {
        (self.byte() % 4) as u64
    }
}

const NAMES: [&str; 3] = ["a", "b", "c"];
const TYPES: [&str; 7] = ["null", "boolean", "integer", "number", "string", "array", "object"];
const PATTERNS: [&str; 4] = ["^a", "^[a-z]+$", "b", "^.$"];

fn value(b: &mut Bytes, depth: usize) -> Value {
    match b.byte() % if depth > 2 { 6 } else { 8 } {
        0 => Value::Null,
        1 => Value::Bool(b.byte() & 1 == 1),
        2 => json!(b.byte() as i64 % 7 - 2),
        3 => json!(b.pick(&[0.5, 1.0, -1.5, 2.25])),
        4 | 5 => json!(b.pick(&["", "a", "b", "ab", "A"])),
        6 => Value::Array((0..b.small()).map(|_| value(b, depth + 1)).collect()),
        _ => Value::Object((0..b.small()).map(|_| (b.pick(&NAMES).to_string(), value(b, depth + 1))).collect()),
    }
}

fn schema(b: &mut Bytes, depth: usize) -> Value {
    if depth > 3 {
        return json!({ "type": b.pick(&TYPES) });
    }
    let sub = |b: &mut Bytes| schema(b, depth + 1);
    let s = match b.byte() % 17 {
        0 => json!({ "type": b.pick(&TYPES) }),
        1 => json!({ "enum": [value(b, 0), value(b, 0), value(b, 0)] }),
        2 => json!({ "const": value(b, 0) }),
        3 => json!({ "not": sub(b) }),
        4 => json!({ "anyOf": [sub(b), sub(b)] }),
        5 => json!({ "oneOf": [sub(b), sub(b)] }),
        6 => json!({ "allOf": [sub(b), sub(b)] }),
        7 => json!({ "if": sub(b), "then": sub(b), "else": sub(b) }),
        8 => {
            let mut props = Map::new();
            for _ in 0..b.small() {
                props.insert(b.pick(&NAMES).to_string(), sub(b));
            }
            let mut o = json!({ "type": "object", "properties": props, "required": [b.pick(&NAMES)] });
            if b.byte() & 1 == 1 {
                o["additionalProperties"] = sub(b);
            }
            o
        }
        9 => json!({ "type": "array", "items": sub(b), "minItems": b.small(), "maxItems": b.small() + 1, "uniqueItems": b.byte() & 1 == 1 }),
        10 => json!({ "contains": sub(b), "minContains": b.small(), "maxContains": b.small() + 1 }),
        11 => match b.byte() % 3 {
            0 => json!({ "propertyNames": { "pattern": b.pick(&PATTERNS) } }),
            1 => json!({ "propertyNames": { "maxLength": b.small() } }),
            _ => json!({ "propertyNames": { "enum": [b.pick(&NAMES), b.pick(&NAMES)] } }),
        },
        12 => json!({ "minimum": b.byte() as i64 % 5 - 2, "exclusiveMaximum": b.byte() as i64 % 5 }),
        13 => json!({ "multipleOf": b.pick(&[0.5, 2.0, 3.0]) }),
        14 => json!({ "type": "string", "minLength": b.small(), "maxLength": b.small() + 1, "pattern": b.pick(&PATTERNS) }),
        15 => json!({ "$ref": format!("#/$defs/d{}", b.byte() % 2) }),
        _ => json!({ "dependentRequired": { b.pick(&NAMES): [b.pick(&NAMES)] }, "patternProperties": { b.pick(&PATTERNS): sub(b) } }),
    };
    // Sometimes two together (an enum beside a `not`, a type beside a combinator).
    if b.byte() % 3 == 0 {
        let mut s = s;
        if let (Some(o), Value::Object(more)) = (s.as_object_mut(), schema(b, depth + 1)) {
            for (k, v) in more {
                o.entry(k).or_insert(v);
            }
        }
        return s;
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let mut root = schema(&mut b, 0);
    if let Some(o) = root.as_object_mut() {
        o.insert("$defs".into(), json!({ "d0": schema(&mut b, 2), "d1": schema(&mut b, 2) }));
    }
    let candidate = value(&mut b, 0);
    let Ok(validator) = jsonschema::validator_for(&root) else { return };
    let text = serde_json::to_string(&candidate).unwrap();
    let mut inst = instance().lock().unwrap();
    let Ok(checks) = inst.check_instances(&Constraint::JsonSchema(root.to_string()), &[text.clone()], None) else { return };
    if checks.accepted[0] {
        assert!(validator.is_valid(&candidate), "the grammar of {root} accepts {text}, which does not validate");
    }
});
