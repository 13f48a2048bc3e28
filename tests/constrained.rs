//! generate-constrained through the component: every output on both real models validates
//! against its schema (checked independently with the `jsonschema` crate); bad constraints
//! are typed errors in bounded time and leave the instance working.

use std::time::{Duration, Instant};

use edgeslm_host::{open_model, Constraint, GenerateOptions, Host};
use edgeslm_tests::*;
use serde_json::Value;

fn host() -> Host {
    let p = root().join("target/release/edgeslm-component.wasm");
    assert!(p.exists(), "{} is missing: run `cargo xtask build` first", p.display());
    Host::new(&p).unwrap()
}

fn opts(max: u32) -> GenerateOptions {
    GenerateOptions { max_tokens: Some(max), temperature: Some(0.0), ..Default::default() }
}

fn schemas() -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("tests/fixtures/schemas.json")).unwrap();
    serde_json::from_str::<Vec<Value>>(&text).unwrap()
}

/// Every output validates, and within 200 tokens every schema gets one: a model that loops
/// is steered to a completion near the end of the budget (no schema here needs more).
fn every_output_validates(model_file: &str) {
    let host = host();
    let (mut s, m, _) = open_model(&host, &model_path(model_file)).unwrap();
    let (mut valid, mut truncated, mut steered) = (0, vec![], vec![]);
    for case in schemas() {
        let name = case["name"].as_str().unwrap();
        let schema = &case["schema"];
        let validator = jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("{name}: bad test schema: {e}"));
        let c = Constraint::JsonSchema(schema.to_string());
        match s.generate_constrained(m, case["prompt"].as_str().unwrap(), &c, &opts(200)).unwrap() {
            Ok(g) => {
                let v: Value = serde_json::from_str(&g.text).unwrap_or_else(|e| panic!("{name}: {:?} is not JSON: {e}", g.text));
                let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
                assert!(errors.is_empty(), "{model_file} {name}: {} does not validate: {errors:?}", g.text);
                valid += 1;
                if g.budget_steered > 0 {
                    steered.push(format!("{name} ({} steps, {} tokens)", g.budget_steered, g.tokens.len()));
                }
            }
            // Running out of tokens is reported, never returned as partial JSON; here it is a
            // failure: every schema of this file completes in far fewer than 200 tokens.
            Err(e) if e.code() == "output-truncated" => truncated.push(name.to_string()),
            Err(e) => panic!("{model_file} {name}: {}", e.message()),
        }
    }
    eprintln!("{model_file}: {valid} outputs valid; steered by the budget: {steered:?}; truncated at 200 tokens: {truncated:?}");
    assert!(valid == 41 && truncated.is_empty(), "{model_file}: {valid} valid, truncated: {truncated:?}");
}

#[test]
fn every_output_validates_gemma3() {
    every_output_validates(GEMMA);
}

#[test]
fn every_output_validates_smollm2() {
    every_output_validates(SMOLLM2);
}

/// The seed's job: category, urgency 1..5 (node-llama-cpp ignores minimum/maximum and
/// produced 0 here), resolvedOffline; the same bytes every time.
#[test]
fn seed_ticket_json_is_valid_and_deterministic() {
    let host = host();
    let schema = std::fs::read_to_string(root().join("examples/support/ticket.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&serde_json::from_str(&schema).unwrap()).unwrap();
    for file in [GEMMA, SMOLLM2] {
        let (mut s, m, _) = open_model(&host, &model_path(file)).unwrap();
        let c = Constraint::JsonSchema(schema.clone());
        let prompt = "Support message: My card was charged twice for order 1234.\nTicket JSON:";
        let a = s.generate_constrained(m, prompt, &c, &opts(64)).unwrap().unwrap();
        let b = s.generate_constrained(m, prompt, &c, &opts(64)).unwrap().unwrap();
        assert_eq!(a.text, b.text);
        let v: Value = serde_json::from_str(&a.text).unwrap();
        assert!(validator.is_valid(&v), "{file}: {}", a.text);
        let u = v["urgency"].as_i64().unwrap();
        assert!((1..=5).contains(&u));
    }
}

#[test]
fn regex_and_grammar_constraints_hold() {
    let host = host();
    let (mut s, m, _) = open_model(&host, &model_path(SMOLLM2)).unwrap();
    let g = s.generate_constrained(m, "Call me at", &Constraint::Regex("[0-9]{3}-[0-9]{4}".into()), &opts(16)).unwrap().unwrap();
    assert!(g.text.len() == 8 && g.text.as_bytes()[3] == b'-' && g.text.chars().filter(|c| c.is_ascii_digit()).count() == 7, "{:?}", g.text);
    let grammar = "start: answer \" because \" reason\nanswer: \"yes\" | \"no\"\nreason: /[a-z ]{1,20}/\n";
    let g = s.generate_constrained(m, "Is the sky blue?", &Constraint::Grammar(grammar.into()), &opts(32)).unwrap().unwrap();
    assert!(g.text.starts_with("yes because ") || g.text.starts_with("no because "), "{:?}", g.text);
}

/// Bad constraints: each a typed error, quickly; then the same instance still answers.
#[test]
fn bad_constraints_are_typed_errors_and_the_instance_survives() {
    let host = host();
    let (mut s, m, _) = open_model(&host, &model_path(SMOLLM2)).unwrap();
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let deep_schema = "{\"type\":\"array\",\"items\":".repeat(10_000) + "{}" + &"}".repeat(10_000);
    let big_enum = serde_json::json!({ "enum": (0..100_000).collect::<Vec<_>>() }).to_string();
    let schema = |v: Value| Constraint::JsonSchema(v.to_string());
    let cases: Vec<(&str, Constraint, &[&str])> = vec![
        ("malformed JSON", Constraint::JsonSchema("{\"type\": ".into()), &["invalid-schema"]),
        ("not an object", Constraint::JsonSchema("42".into()), &["invalid-schema", "unsupported-schema"]),
        ("array of schemas", Constraint::JsonSchema(deep), &["invalid-schema", "unsupported-schema"]),
        ("$ref to nothing", schema(serde_json::json!({"$ref": "#/$defs/missing"})), &["invalid-schema", "unsupported-schema"]),
        ("near-miss keyword", schema(serde_json::json!({"type": "string", "maxLenght": 3})), &["unsupported-schema"]),
        ("unenforceable keyword", schema(serde_json::json!({"type": "array", "uniqueItems": true})), &["unsupported-schema"]),
        ("misspelled keyword", schema(serde_json::json!({"type": "object", "properties": {"a": {"type": "integer", "maximun": 3}}})), &["unsupported-schema"]),
        ("unenforceable negation", schema(serde_json::json!({"type": "string", "not": {"pattern": "a"}})), &["unsupported-schema"]),
        ("$ref cycle", schema(serde_json::json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"})), &["invalid-schema"]),
        ("unknown type", schema(serde_json::json!({"type": "nonsense"})), &["invalid-schema", "unsupported-schema"]),
        ("minimum > maximum", schema(serde_json::json!({"type": "integer", "minimum": 5, "maximum": 1})), &["constraint-unsatisfiable", "invalid-schema"]),
        ("minLength > maxLength", schema(serde_json::json!({"type": "string", "minLength": 5, "maxLength": 1})), &["constraint-unsatisfiable", "invalid-schema"]),
        ("empty enum", schema(serde_json::json!({"enum": []})), &["constraint-unsatisfiable", "invalid-schema"]),
        ("minItems > maxItems", schema(serde_json::json!({"type": "array", "minItems": 3, "maxItems": 1})), &["constraint-unsatisfiable", "invalid-schema"]),
        ("false schema", Constraint::JsonSchema("false".into()), &["constraint-unsatisfiable", "invalid-schema"]),
        ("100k-value enum", Constraint::JsonSchema(big_enum), &["invalid-schema", "unsupported-schema", "constraint-unsatisfiable"]),
        ("10,000-deep nesting", Constraint::JsonSchema(deep_schema), &["invalid-schema", "unsupported-schema"]),
        ("bad regex syntax", Constraint::Regex("([a-z".into()), &["invalid-regex"]),
        ("unbalanced regex bracket", Constraint::Regex("[0-9".into()), &["invalid-regex"]),
        ("bad repetition", Constraint::Regex("a{5,2}".into()), &["invalid-regex"]),
        ("empty grammar", Constraint::Grammar("".into()), &["invalid-grammar"]),
        ("grammar syntax error", Constraint::Grammar("start: (\"a\"".into()), &["invalid-grammar"]),
        ("undefined rule", Constraint::Grammar("start: missing_rule".into()), &["invalid-grammar"]),
        ("grammar without start", Constraint::Grammar("foo: \"a\"".into()), &["invalid-grammar"]),
    ];
    let mut seen_ok = vec![];
    for (what, c, codes) in &cases {
        let t = Instant::now();
        let r = s.generate_constrained(m, "x", c, &opts(8)).unwrap();
        let elapsed = t.elapsed();
        assert!(elapsed < Duration::from_secs(30), "{what}: took {elapsed:?}");
        match r {
            Err(e) => {
                assert!(codes.contains(&e.code()), "{what}: got {} ({})", e.code(), e.message());
                assert!(!e.message().contains('\n'), "{what}: multi-line message");
            }
            Ok(g) => seen_ok.push(format!("{what}: {:?}", g.text)),
        }
    }
    assert!(seen_ok.is_empty(), "accepted: {seen_ok:?}");
    // Catastrophic backtracking patterns are linear in llguidance's derivative-based engine.
    let g = s.generate_constrained(m, "x", &Constraint::Regex("(a*)*b".into()), &opts(24)).unwrap();
    assert!(matches!(&g, Ok(g) if g.text.ends_with('b')) || matches!(&g, Err(e) if e.code() == "output-truncated"), "{g:?}");

    // Still working.
    let ticket = std::fs::read_to_string(root().join("examples/support/ticket.schema.json")).unwrap();
    let g = s.generate_constrained(m, "Ticket JSON:", &Constraint::JsonSchema(ticket), &opts(64)).unwrap().unwrap();
    let v: Value = serde_json::from_str(&g.text).unwrap();
    assert!(v["category"].is_string());
}
