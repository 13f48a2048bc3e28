//! Limits as a feature (docs/limits.md): every documented bound, when passed, gives its
//! typed error of one line, and the same instance answers the next good request.

use edgeslm_engine::constrain::{MAX_CONSTRAINT_BYTES, MAX_SCHEMA_DEPTH};
use edgeslm_engine::{ClassifyOptions, Constraint, Error, ErrorCode, GenerateOptions, Instance, Model};
use edgeslm_service::{respond, Config};
use edgeslm_tests::{model_path, SMOLLM2, TICKET_SCHEMA};
use serde_json::json;

fn instance() -> Instance {
    Instance::new(Model::open(model_path(SMOLLM2).to_str().unwrap()).unwrap())
}

fn expect(what: &str, r: Result<impl std::fmt::Debug, Error>, code: ErrorCode, says: &str) {
    let e = r.expect_err(what);
    assert_eq!(e.code(), code, "{what}: {e}");
    let m = e.to_string();
    assert!(m.contains(says) && !m.contains('\n'), "{what}: {m:?} should say {says:?}");
}

/// A schema of `depth` nested arrays: {"type":"array","items":{...{"type":"integer"}}}.
fn nested_schema(depth: usize) -> String {
    let mut s = String::from(r#"{"type":"integer"}"#);
    for _ in 1..depth {
        s = format!(r#"{{"type":"array","maxItems":1,"items":{s}}}"#);
    }
    s
}

/// The ticket generation that must still work after each limit was hit.
fn still_answers(i: &mut Instance) {
    let o = GenerateOptions { max_tokens: 48, ..Default::default() };
    let g = i.generate_constrained("Ticket for: the site is down.\nTicket:", &Constraint::JsonSchema(TICKET_SCHEMA.into()), &o).unwrap();
    serde_json::from_str::<serde_json::Value>(&g.text).unwrap();
}

#[test]
fn prompt_length_is_the_context() {
    let mut i = instance();
    let n_ctx = i.info().context_length as usize;
    let long = "word ".repeat(n_ctx + 10);
    expect("prompt past the context", i.generate(&long, &GenerateOptions::default()), ErrorCode::ContextOverflow, "the context holds");
    let o = GenerateOptions { max_tokens: u32::MAX, ..Default::default() };
    expect("max-tokens past the context", i.generate("hi", &o), ErrorCode::ContextOverflow, "tokens needed");
    still_answers(&mut i);
}

#[test]
fn constraints_are_bounded_in_size_and_depth() {
    let mut i = instance();
    let o = GenerateOptions { max_tokens: 8, ..Default::default() };
    // Size: a schema, a regex and a grammar one byte over.
    let pad = " ".repeat(MAX_CONSTRAINT_BYTES);
    let big = [
        (Constraint::JsonSchema(format!("{{{pad}}}")), ErrorCode::UnsupportedSchema),
        (Constraint::Regex(format!("a{pad}")), ErrorCode::InvalidRegex),
        (Constraint::Grammar(format!("start: \"a\"{pad}")), ErrorCode::InvalidGrammar),
    ];
    for (c, code) in big {
        expect("oversized constraint", i.generate_constrained("x", &c, &o), code, "over the limit of 2097152");
    }
    // Depth: one level past the limit is refused, naming where; at the limit it compiles.
    let deep = Constraint::JsonSchema(nested_schema(MAX_SCHEMA_DEPTH + 1));
    expect("deep schema", i.generate_constrained("x", &deep, &o), ErrorCode::UnsupportedSchema, "nests deeper than 100 levels (at byte offset");
    // (the depth counts JSON levels: each array schema is one object level)
    let at_limit = Constraint::JsonSchema(nested_schema(MAX_SCHEMA_DEPTH));
    assert!(i.accepts(&at_limit, &format!("{}7{}", "[".repeat(MAX_SCHEMA_DEPTH - 1), "]".repeat(MAX_SCHEMA_DEPTH - 1))).unwrap());
    still_answers(&mut i);
}

#[test]
fn label_sets_are_bounded() {
    let mut i = instance();
    let o = ClassifyOptions::default();
    let many: Vec<String> = (0..65).map(|n| format!("label{n}")).collect();
    expect("65 labels", i.classify("x", &many, &o), ErrorCode::InvalidLabels, "at most 64 labels");
    let long = vec!["short".to_string(), "word ".repeat(40)];
    expect("a 40-token label", i.classify("x", &long, &o), ErrorCode::InvalidLabels, "(at most 32)");
    let fine: Vec<String> = (0..64).map(|n| format!("label{n}")).collect();
    assert!(fine.contains(&i.classify("x", &fine, &o).unwrap().label));
    still_answers(&mut i);
}

/// The HTTP service's bounds, through its handler natively (the component reads the body
/// under the same cap: tests/http_service.rs): the body size and `max_tokens`.
#[test]
fn the_service_bounds_bodies_and_output_length() {
    let config = Config {
        max_body_bytes: 4096,
        max_tokens: Some(64),
        model_path: Some(model_path(SMOLLM2).to_str().unwrap().to_string()),
        upstream: None,
        min_confidence: None,
        min_logprob: None,
    };
    let post = |path: &str, body: &[u8], length: Option<&str>| {
        let declared: Vec<Vec<u8>> = length.map(|l| l.as_bytes().to_vec()).into_iter().collect();
        respond("POST", path, &declared, body, &config)
    };
    let error = |(status, body): (u16, serde_json::Value)| {
        let m = body["error"]["message"].as_str().unwrap().to_string();
        assert!(!m.contains('\n'), "{m:?}");
        (status, body["error"]["type"].as_str().unwrap().to_string(), m)
    };
    let big = json!({ "text": "x".repeat(5000), "labels": ["a", "b"] }).to_string();
    assert_eq!(error(post("/v1/classify", big.as_bytes(), None)).1, "body_too_large");
    assert_eq!(error(post("/v1/classify", b"{}", Some("5000"))).0, 413);
    let ask = |max_tokens: u32| json!({ "prompt": "Year:", "regex": "[0-9]{4}", "options": { "max_tokens": max_tokens } }).to_string();
    let (status, kind, m) = error(post("/v1/generate", ask(65).as_bytes(), None));
    assert_eq!((status, kind.as_str()), (400, "invalid_option"), "{m}");
    assert!(m.contains("over this service's limit of 64 (EDGESLM_MAX_TOKENS)"), "{m}");
    // An unknown field whose name holds a line break: still one line (a fuzzing finding).
    let (status, kind, m) = error(post("/v1/generate", b"{\"pro\\nmpt\": 1}", None));
    assert_eq!((status, kind.as_str()), (400, "invalid_request"));
    assert!(m.contains(r"pro\nmpt"), "{m}");
    // And the instance answers.
    let (status, body) = post("/v1/generate", ask(8).as_bytes(), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"].as_str().unwrap().len(), 4, "{body}");
}
