//! The HTTP service (world `service`) served by `edgeslm serve`'s machinery on 127.0.0.1:
//! baked with Gemma 3 270M, every endpoint and every error path, the hybrid cloud route
//! against a test upstream (valid answers, invalid answers, errors, a timeout), and the
//! unbaked build loading the model per instance.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use edgeslm_host::service::{self, ServeOptions, WarmRequest};
use edgeslm_tests::*;
use serde_json::{json, Value};

fn service_component() -> PathBuf {
    let p = root().join("target/release").join(service::SERVICE_FILE);
    assert!(p.exists(), "{} is missing: run `cargo xtask build` first", p.display());
    p
}

fn example(name: &str) -> Value {
    let path = root().join("examples/http-service").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The baked service, once per test run (bake: ~10 s; the compiled image is cached beside it).
fn baked() -> PathBuf {
    static BAKED: OnceLock<PathBuf> = OnceLock::new();
    BAKED
        .get_or_init(|| {
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("edgeslm-service-gemma-baked.wasm");
            let warm = vec![WarmRequest { path: "/v1/classify".into(), body: example("classify.json").to_string().into_bytes() }];
            let report = service::bake(&service_component(), &model_path(GEMMA), &warm, &out, &|m| eprintln!("{m}")).unwrap();
            assert!(report.model.contains("gemma3"), "{}", report.model);
            assert!(report.out_bytes > 253_000_000, "the image holds the model: {} bytes", report.out_bytes);
            out
        })
        .clone()
}

/// Start a server on an ephemeral port in a background thread.
fn start(component: PathBuf, options: ServeOptions) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = service::serve(&component, "127.0.0.1:0".parse().unwrap(), options, |addr, _| tx.send(addr).unwrap());
        panic!("server ended: {r:?}");
    });
    rx.recv_timeout(Duration::from_secs(300)).expect("server did not start")
}

/// The baked service with the cloud route configured against the test upstream.
fn server() -> SocketAddr {
    static SERVER: OnceLock<SocketAddr> = OnceLock::new();
    *SERVER.get_or_init(|| {
        let env = vec![
            ("EDGESLM_UPSTREAM_URL".to_string(), format!("http://{}/v1/chat/completions", upstream())),
            ("EDGESLM_UPSTREAM_MODEL".into(), "test-model".into()),
            ("EDGESLM_UPSTREAM_TIMEOUT_MS".into(), "1000".into()),
            ("EDGESLM_ROUTE_MIN_CONFIDENCE".into(), "0.6".into()),
            ("EDGESLM_ROUTE_MIN_LOGPROB".into(), "-0.3".into()),
            ("EDGESLM_MAX_BODY_BYTES".into(), "65536".into()),
        ];
        start(baked(), ServeOptions { env, ..Default::default() })
    })
}

struct Reply {
    status: u16,
    headers: String,
    body: Value,
}

/// One HTTP/1.1 exchange (`Connection: close`), optionally with a chunked body.
fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8], chunked: bool) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\n");
    if chunked {
        head.push_str("transfer-encoding: chunked\r\n\r\n");
        s.write_all(head.as_bytes()).unwrap();
        for piece in body.chunks(8192) {
            s.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).unwrap();
            s.write_all(piece).unwrap();
            s.write_all(b"\r\n").unwrap();
        }
        let _ = s.write_all(b"0\r\n\r\n");
    } else {
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        s.write_all(head.as_bytes()).unwrap();
        let _ = s.write_all(body); // the server may answer 413 and close before reading it all
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no response: {text:?}"));
    let status = headers.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = headers.to_lowercase();
    let body = if headers.contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    let body = body.as_str();
    let body = if headers.contains("content-type: text/event-stream") {
        events(body)
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: body {body:?}"))
    };
    Reply { status, headers, body }
}

/// A chunked body's data.
fn dechunk(mut body: &str) -> String {
    let mut data = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap_or_else(|| panic!("bad chunk: {body:?}"));
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return data;
        }
        data.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// Server-sent events as a list of their JSON data, checked to end with `data: [DONE]`.
fn events(body: &str) -> Value {
    let data: Vec<&str> = body.split("\n\n").filter(|e| !e.is_empty()).map(|e| e.strip_prefix("data: ").expect(e)).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{body}");
    data[..data.len() - 1].iter().map(|d| serde_json::from_str::<Value>(d).unwrap()).collect()
}

fn post(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    request(addr, "POST", path, body.to_string().as_bytes(), false)
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, b"", false)
}

fn assert_error(r: &Reply, status: u16, kind: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["type"], kind, "{}", r.body);
    assert!(!r.body["error"]["message"].as_str().unwrap().is_empty());
}

fn ticket_is_valid(v: &Value) -> bool {
    let schema: Value = serde_json::from_str(TICKET_SCHEMA).unwrap();
    jsonschema::validator_for(&schema).unwrap().is_valid(v)
}

#[test]
fn health_and_model() {
    let addr = server();
    let r = get(addr, "/v1/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({ "status": "ok", "model_loaded": true, "baked": true }));
    assert!(r.headers.contains("content-type: application/json"));
    let r = get(addr, "/v1/model");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["architecture"], "gemma3");
    assert_eq!(r.body["vocab_size"], 262144);
    assert_eq!(r.body["origin"], "baked");
    assert_eq!(r.body["backend"], "portable");
    assert_eq!(r.body["constraint_engine_ready"], true, "the bake builds the token trie");
}

#[test]
fn classify_locally_from_the_baked_prompt_state() {
    let mut req = example("classify.json");
    req["route"] = json!("local");
    let r = post(server(), "/v1/classify", &req);
    assert_eq!(r.status, 200, "{}", r.body);
    let b = &r.body;
    assert_eq!(b["route"], "local");
    assert_eq!(b["degraded"], false);
    let labels = ["incident", "billing", "inquiry"];
    assert!(labels.contains(&b["label"].as_str().unwrap()));
    let scores = b["scores"].as_array().unwrap();
    assert_eq!(scores.iter().map(|s| s["label"].as_str().unwrap()).collect::<Vec<_>>(), labels);
    let sum: f64 = scores.iter().map(|s| s["probability"].as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-6, "{sum}");
    let best = scores.iter().max_by(|a, b| a["probability"].as_f64().partial_cmp(&b["probability"].as_f64()).unwrap()).unwrap();
    assert_eq!(best["label"], b["label"]);
    assert_eq!(b["confidence"], best["probability"]);
    // The bake warmed this instruction and these examples: a fresh instance reuses the
    // prefix's KV state and the calibration prior from the image.
    let t = &b["timings"];
    assert!(t["reused_tokens"].as_u64().unwrap() > 100, "{t}");
    assert_eq!(t["calibration_ms"], 0.0, "{t}");
}

#[test]
fn generate_json_regex_and_grammar() {
    let addr = server();
    let mut req = example("ticket.json");
    req["route"] = json!("local");
    let r = post(addr, "/v1/generate", &req);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(ticket_is_valid(&r.body["value"]), "{}", r.body);
    assert_eq!(r.body["value"], serde_json::from_str::<Value>(r.body["text"].as_str().unwrap()).unwrap());
    assert_eq!(r.body["finish_reason"], "stop");
    let lp = r.body["mean_logprob"].as_f64().unwrap();
    assert!(lp <= 0.0 && lp.is_finite(), "{lp}");
    // A schema given as a string works the same.
    req["json_schema"] = json!(TICKET_SCHEMA);
    let again = post(addr, "/v1/generate", &req);
    assert_eq!(again.body["text"], r.body["text"], "temperature 0 is deterministic");

    let r = post(addr, "/v1/generate", &json!({ "prompt": "The year the first moon landing happened:", "regex": "19[0-9]{2}", "route": "local" }));
    assert_eq!(r.status, 200, "{}", r.body);
    let text = r.body["text"].as_str().unwrap();
    assert!(text.len() == 4 && text.starts_with("19") && text.chars().all(|c| c.is_ascii_digit()), "{text}");
    assert_eq!(r.body["value"], Value::Null);

    let grammar = "start: answer\nanswer: \"yes\" | \"no\"";
    let r = post(addr, "/v1/generate", &json!({ "prompt": "Is water wet? Answer:", "grammar": grammar, "route": "local" }));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(["yes", "no"].contains(&r.body["text"].as_str().unwrap()), "{}", r.body);
}

#[test]
fn every_error_is_typed() {
    let addr = server();
    let classify = example("classify.json");
    let ticket = example("ticket.json");
    let with = |base: &Value, k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let without = |base: &Value, k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };

    assert_error(&request(addr, "POST", "/v1/classify", b"{\"text\": ", false), 400, "malformed_json");
    assert_error(&request(addr, "POST", "/v1/generate", b"not json", false), 400, "malformed_json");
    assert_error(&post(addr, "/v1/classify", &without(&classify, "labels")), 400, "invalid_request");
    assert_error(&post(addr, "/v1/classify", &with(&classify, "lables", json!(["a", "b"]))), 400, "invalid_request");
    assert_error(&post(addr, "/v1/classify", &with(&classify, "text", json!(42))), 400, "invalid_request");
    assert_error(&post(addr, "/v1/classify", &with(&classify, "route", json!("moon"))), 400, "invalid_request");
    assert_error(&post(addr, "/v1/classify", &with(&classify, "labels", json!(["only"]))), 400, "invalid_labels");
    assert_error(&post(addr, "/v1/classify", &with(&classify, "labels", json!(["a", "a"]))), 400, "invalid_labels");
    let mut stray = classify.clone();
    stray["examples"][0]["label"] = json!("refund");
    assert_error(&post(addr, "/v1/classify", &stray), 400, "invalid_labels");

    assert_error(&post(addr, "/v1/generate", &without(&ticket, "prompt")), 400, "invalid_request");
    assert_error(&post(addr, "/v1/generate", &without(&ticket, "json_schema")), 400, "invalid_request");
    assert_error(&post(addr, "/v1/generate", &with(&ticket, "regex", json!("[a-z]+"))), 400, "invalid_request");
    assert_error(&post(addr, "/v1/generate", &with(&ticket, "json_schema", json!({ "type": "objekt" }))), 400, "invalid_schema");
    assert_error(&post(addr, "/v1/generate", &with(&ticket, "json_schema", json!("{not json"))), 400, "invalid_schema");
    assert_error(&post(addr, "/v1/generate", &with(&ticket, "json_schema", json!(7))), 400, "invalid_schema");
    assert_error(
        &post(addr, "/v1/generate", &with(&ticket, "json_schema", json!({ "type": "integer", "maximun": 3 }))),
        400,
        "unsupported_schema",
    );
    let regex = json!({ "prompt": "x", "regex": "(unclosed" });
    assert_error(&post(addr, "/v1/generate", &regex), 400, "invalid_regex");
    let grammar = json!({ "prompt": "x", "grammar": "start: undefined_rule" });
    assert_error(&post(addr, "/v1/generate", &grammar), 400, "invalid_grammar");
    assert_error(&post(addr, "/v1/generate", &with(&ticket, "options", json!({ "max_tokens": 3 }))), 422, "output_truncated");
    let impossible = json!({ "type": "string", "minLength": 5, "maxLength": 2 });
    assert_error(&post(addr, "/v1/generate", &with(&ticket, "json_schema", impossible)), 422, "constraint_unsatisfiable");
    assert_error(&post(addr, "/v1/generate", &with(&ticket, "options", json!({ "max_tokens": 1_000_000 }))), 400, "context_overflow");
    assert_error(&post(addr, "/v1/generate", &with(&ticket, "options", json!({ "temprature": 0.5 }))), 400, "invalid_request");

    // The body cap (65536 here): by declared length, and while streaming a chunked body.
    let big = json!({ "text": "x".repeat(70_000), "labels": ["a", "b"] }).to_string();
    assert_error(&request(addr, "POST", "/v1/classify", big.as_bytes(), false), 413, "body_too_large");
    assert_error(&request(addr, "POST", "/v1/classify", big.as_bytes(), true), 413, "body_too_large");

    let r = request(addr, "GET", "/v1/classify", b"", false);
    assert_error(&r, 405, "method_not_allowed");
    assert!(r.headers.contains("allow: post"), "{}", r.headers);
    let r = request(addr, "DELETE", "/v1/model", b"", false);
    assert_error(&r, 405, "method_not_allowed");
    assert!(r.headers.contains("allow: get"), "{}", r.headers);
    assert_error(&get(addr, "/v2/classify"), 404, "not_found");

    // The service still answers (each request is a fresh instance of the same image).
    assert_eq!(get(addr, "/v1/health").status, 200);
}

/// The test upstream: an OpenAI-compatible chat-completions endpoint whose behaviour is
/// chosen by a marker in the last message: [upstream:slow] answers after 3 s,
/// [upstream:500] fails, [upstream:invalid] answers outside the constraint,
/// [upstream:garbage] answers a body that is not JSON; otherwise a valid answer.
fn upstream() -> SocketAddr {
    static UPSTREAM: OnceLock<SocketAddr> = OnceLock::new();
    *UPSTREAM.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || answer_upstream(conn));
            }
        });
        addr
    })
}

fn answer_upstream(mut conn: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_len, length) = loop {
        let n = conn.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                .unwrap_or(0);
            break (i + 4, length);
        }
    };
    while buf.len() < head_len + length {
        let n = conn.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let req: Value = serde_json::from_slice(&buf[head_len..head_len + length]).unwrap();
    assert_eq!(req["model"], "test-model");
    assert_eq!(req["temperature"], 0);
    let last = req["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
    let format = req["response_format"]["json_schema"]["name"].as_str().unwrap_or("").to_string();
    let content = match (format.as_str(), last.contains("[upstream:invalid]")) {
        ("classification", false) => r#"{"label": "inquiry"}"#,
        ("classification", true) => r#"{"label": "refund"}"#,
        ("output", false) => r#"{"category": "inquiry", "urgency": 2, "resolvedOffline": true}"#,
        ("output", true) => r#"{"category": "inquiry", "urgency": 9, "resolvedOffline": true}"#,
        _ => "1969",
    };
    let (status, body) = if last.contains("[upstream:500]") {
        (500, json!({ "error": { "message": "overloaded" } }).to_string())
    } else if last.contains("[upstream:garbage]") {
        (200, "<html>proxy error</html>".to_string())
    } else {
        (200, json!({ "choices": [{ "index": 0, "message": { "role": "assistant", "content": content } }] }).to_string())
    };
    if last.contains("[upstream:slow]") {
        std::thread::sleep(Duration::from_secs(3));
    }
    let reply = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
    let _ = conn.write_all(reply.as_bytes());
}

fn classify_with(text: &str, route: &str) -> Value {
    let mut req = example("classify.json");
    req["text"] = json!(text);
    req["route"] = json!(route);
    let r = post(server(), "/v1/classify", &req);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[test]
fn classify_routes_to_the_cloud_below_the_threshold() {
    // The seed message: local confidence ~0.44, below the configured 0.6.
    let b = classify_with("My card was charged twice for order 1234 and I need one refund.", "auto");
    assert!(b["local"]["confidence"].as_f64().unwrap() < 0.6, "{b}");
    assert_eq!(b["route"], "cloud", "{b}");
    assert_eq!(b["label"], "inquiry", "the upstream's answer");
    assert_eq!(b["degraded"], false);
    assert!(b["route_reason"].as_str().unwrap().contains("below 0.6"), "{b}");
    assert!(b["timings"]["upstream_ms"].as_f64().unwrap() > 0.0);
    // Confident enough: stays local.
    let b = classify_with("Search results are empty even though we have thousands of records.", "auto");
    assert!(b["confidence"].as_f64().unwrap() >= 0.6, "{b}");
    assert_eq!(b["route"], "local", "{b}");
    assert!(b.get("upstream_ms").is_none() && b["timings"].get("upstream_ms").is_none(), "{b}");
    // route: local never asks.
    let b = classify_with("My card was charged twice for order 1234 and I need one refund.", "local");
    assert_eq!(b["route"], "local");
}

#[test]
fn a_failing_upstream_degrades_to_the_local_answer() {
    for (marker, reason) in [
        ("[upstream:invalid]", "not one of the labels"),
        ("[upstream:500]", "answered 500"),
        ("[upstream:garbage]", "not JSON"),
        ("[upstream:slow]", "upstream"),
    ] {
        let b = classify_with(&format!("My card was charged twice. {marker}"), "cloud");
        assert_eq!(b["route"], "local", "{marker}: {b}");
        assert_eq!(b["degraded"], true, "{marker}: {b}");
        let err = b["upstream_error"].as_str().unwrap();
        assert!(err.contains(reason), "{marker}: {err}");
        assert!(b.get("local").is_none(), "{marker}: {b}");
        assert_eq!(b["scores"], classify_with(&format!("My card was charged twice. {marker}"), "local")["scores"]);
        if marker == "[upstream:slow]" {
            // The configured 1000 ms timeout, not the upstream's 3 s.
            let waited = b["timings"]["upstream_ms"].as_f64().unwrap();
            assert!(waited < 2900.0, "waited {waited} ms");
        }
    }
}

#[test]
fn generate_routes_by_mean_logprob_and_validates_the_cloud_answer() {
    let addr = server();
    let ticket = example("ticket.json");
    let r = post(addr, "/v1/generate", &ticket);
    assert_eq!(r.status, 200, "{}", r.body);
    let b = &r.body;
    let local_lp = b["local"]["mean_logprob"].as_f64().unwrap_or(0.0);
    assert!(local_lp < -0.3, "the seed ticket's mean logprob is below the -0.3 threshold: {b}");
    assert_eq!(b["route"], "cloud", "{b}");
    // The upstream's answer, re-serialized compactly as the local path writes JSON.
    assert_eq!(b["text"], r#"{"category":"inquiry","urgency":2,"resolvedOffline":true}"#);
    assert!(ticket_is_valid(&b["value"]));
    assert!(ticket_is_valid(&b["local"]["text"].as_str().map(|t| serde_json::from_str(t).unwrap()).unwrap()));

    // An answer that breaks the schema (urgency 9) is refused: the local answer stands.
    let mut bad = ticket.clone();
    bad["prompt"] = json!(format!("{} [upstream:invalid]", ticket["prompt"].as_str().unwrap()));
    bad["route"] = json!("cloud");
    let r = post(addr, "/v1/generate", &bad);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["route"], "local");
    assert_eq!(r.body["degraded"], true);
    assert!(r.body["upstream_error"].as_str().unwrap().contains("does not match"), "{}", r.body);
    assert!(ticket_is_valid(&r.body["value"]));

    // A regex answer is checked with the same constraint.
    let r = post(addr, "/v1/generate", &json!({ "prompt": "The year of the first moon landing:", "regex": "19[0-9]{2}", "route": "cloud" }));
    assert_eq!(r.body["route"], "cloud", "{}", r.body);
    assert_eq!(r.body["text"], "1969");
    let r = post(addr, "/v1/generate", &json!({ "prompt": "A year:", "regex": "20[0-9]{2}", "route": "cloud" }));
    assert_eq!(r.body["route"], "local", "1969 does not match 20xx: {}", r.body);
    assert_eq!(r.body["degraded"], true);
}

#[test]
fn unbaked_service_loads_the_file_per_instance() {
    let addr = start(service_component(), ServeOptions { model: Some(model_path(GEMMA)), ..Default::default() });
    let r = get(addr, "/v1/health");
    assert_eq!(r.body, json!({ "status": "ok", "model_loaded": false, "baked": false }), "health does not load the model");
    let r = get(addr, "/v1/model");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["origin"], "file");
    assert_eq!(r.body["constraint_engine_ready"], false);
    assert!(r.body["load_ms"].as_f64().unwrap() > 0.0);
    let mut req = example("classify.json");
    req["route"] = json!("local");
    let r = post(addr, "/v1/classify", &req);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["timings"]["reused_tokens"], 0, "a fresh instance has no prompt state");

    // Without a model at all: a typed 503, and the service stays up.
    let addr = start(service_component(), ServeOptions::default());
    assert_error(&post(addr, "/v1/classify", &req), 503, "model_unavailable");
    assert_eq!(get(addr, "/v1/health").status, 200);

    // A configuration value that does not parse is the operator's fault: 500, saying which.
    let env = vec![("EDGESLM_ROUTE_MIN_CONFIDENCE".to_string(), "high".to_string())];
    let addr = start(service_component(), ServeOptions { env, ..Default::default() });
    let r = get(addr, "/v1/health");
    assert_error(&r, 500, "config_error");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("EDGESLM_ROUTE_MIN_CONFIDENCE"), "{}", r.body);
}

#[test]
fn only_the_service_imports_outgoing_http() {
    let host = edgeslm_host::Host::new(&service_component()).unwrap_or_else(|e| panic!("{e:#}"));
    let imports = host.imports();
    assert!(imports.iter().any(|i| i.starts_with("wasi:http/outgoing-handler@0.2")), "{imports:?}");
    assert!(!imports.iter().any(|i| i.starts_with("wasi:sockets")), "{imports:?}");
    let runtime = edgeslm_host::Host::new(&root().join("target/release/edgeslm-component.wasm")).unwrap();
    assert!(!runtime.imports().iter().any(|i| i.starts_with("wasi:http")), "{:?}", runtime.imports());
}

/// Kills the child process when the test ends, passing or not.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `wasmtime serve -Scli` (with `args`) of `component` on a free loopback port, once it
/// listens: wasmtime compiles the component first (no cache configured), so poll.
fn wasmtime_serve(wasmtime: &std::path::Path, args: &[&str], component: &std::path::Path) -> (Child, SocketAddr) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = Child(
        std::process::Command::new(wasmtime).args(["serve", "-Scli", "--addr", &addr.to_string()]).args(args).arg(component).spawn().unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while TcpStream::connect(addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "wasmtime serve did not start listening");
        std::thread::sleep(Duration::from_millis(200));
    }
    (server, addr)
}

/// The README's route: the baked component under the wasmtime CLI's own `wasmtime serve`
/// (the prebuilt 49.x CLI that scripts/fetch-wasmtime installs) answers the seed's
/// classify request, with the prompt state from the bake.
#[test]
fn wasmtime_serve_answers_the_seed_classify_request() {
    let wasmtime = root().join("tools/wasmtime/wasmtime");
    assert!(wasmtime.exists(), "{} is missing: run scripts/fetch-wasmtime", wasmtime.display());
    let (_server, addr) = wasmtime_serve(&wasmtime, &[], &baked());
    let r = post(addr, "/v1/classify", &example("classify.json"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(["incident", "billing", "inquiry"].contains(&r.body["label"].as_str().unwrap()), "{}", r.body);
    assert!(r.body["timings"]["reused_tokens"].as_u64().unwrap() > 100, "{}", r.body);
    // No upstream is configured here: the answer is local, not degraded.
    assert_eq!(r.body["route"], "local");
    let r = get(addr, "/v1/model");
    assert_eq!(r.body["origin"], "baked", "{}", r.body);
    assert_error(&post(addr, "/v1/generate", &json!({ "prompt": "x" })), 400, "invalid_request");
    // OpenAI's Python client, against the same server.
    run_openai_client(&format!("http://{addr}/v1"));
}

/// Spin's other shape (examples/http-service/compose/spin.toml): a user's own HTTP component
/// imports `edgeslm:runtime`, and the portable runtime component is plugged into it. Composed
/// here by `wac plug` (what Spin's component dependencies do at load time) and served by
/// `wasmtime serve` with the model directory mounted at /model, as the manifest mounts it.
/// Each request is a fresh instance that loads the model file.
#[test]
fn composed_app_plugged_by_wac_under_wasmtime_serve() {
    let wac = root().join("tools/wac/bin/wac");
    assert!(wac.exists(), "{} is missing: run scripts/fetch-wac", wac.display());
    let wasmtime = root().join("tools/wasmtime/wasmtime");
    assert!(wasmtime.exists(), "{} is missing: run scripts/fetch-wasmtime", wasmtime.display());
    let release = root().join("target/release");
    let composed = std::env::temp_dir().join(format!("edgeslm-composed-{}.wasm", std::process::id()));
    let out = std::process::Command::new(&wac)
        .arg("plug")
        .arg(release.join("edgeslm-compose-example.wasm"))
        .arg("--plug")
        .arg(release.join("edgeslm-component.wasm"))
        .arg("-o")
        .arg(&composed)
        .output()
        .unwrap();
    assert!(out.status.success(), "wac plug: {}", String::from_utf8_lossy(&out.stderr));

    let models = format!("{}::/model", root().join("models").display());
    let (_server, addr) = wasmtime_serve(&wasmtime, &["--dir", &models], &composed);
    std::fs::remove_file(&composed).ok();

    // The seed's classify request, as the service takes it: the double charge is billing.
    let r = post(addr, "/classify", &example("classify.json"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["label"], "billing", "{}", r.body);
    let scores = r.body["scores"].as_object().unwrap();
    let sum: f64 = scores.values().map(|p| p.as_f64().unwrap()).sum();
    assert_eq!(scores.len(), 3);
    assert!((sum - 1.0).abs() < 1e-6, "{sum}");
    assert_eq!(r.body["confidence"], r.body["scores"]["billing"]);

    // The seed's ticket, constrained by its schema inside the runtime.
    let r = post(addr, "/generate", &example("ticket.json"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(ticket_is_valid(&r.body), "{}", r.body);
    assert_eq!(r.body["category"], "billing", "{}", r.body);

    // The runtime's typed errors reach the app, which answers with their codes.
    let r = post(addr, "/classify", &json!({ "text": "x", "labels": ["only"] }));
    assert_eq!((r.status, r.body["error"].as_str()), (422, Some("invalid-labels")), "{}", r.body);
    let r = post(addr, "/generate", &json!({ "prompt": "x", "json_schema": { "type": "nope" } }));
    assert_eq!((r.status, r.body["error"].as_str()), (422, Some("invalid-schema")), "{}", r.body);
    assert_eq!(get(addr, "/nowhere").status, 404);
}

/// The server's limits: one instance, no queue, a 1.5 s deadline. A request past the
/// deadline is stopped with 503 `timeout`; a request that finds the only instance busy gets
/// 503 `overloaded` at once; both with retry-after, and the server keeps serving.
#[test]
fn deadline_and_overload_are_typed_503s() {
    let options = ServeOptions { max_instances: 1, max_queue: 0, timeout: Some(Duration::from_millis(1500)), ..Default::default() };
    let addr = start(baked(), options);
    // Hundreds of tokens at tens of tokens per second: well past 1.5 s.
    let long = json!({ "prompt": "Write a long story:", "regex": "[a-z ]{600}", "options": { "max_tokens": 700 }, "route": "local" });
    let t = std::time::Instant::now();
    let r = post(addr, "/v1/generate", &long);
    assert_error(&r, 503, "timeout");
    assert!(r.headers.contains("retry-after: 1"), "{}", r.headers);
    assert!(t.elapsed() < Duration::from_secs(10), "stopped near the deadline, not at the end: {:?}", t.elapsed());

    // Two long requests at once: whichever arrives second finds the only instance busy and
    // is refused at once; the first runs until the deadline.
    let send = move || {
        let long = long.clone();
        std::thread::spawn(move || post(addr, "/v1/generate", &long))
    };
    let (a, b) = (send(), send());
    let mut replies = [a.join().unwrap(), b.join().unwrap()];
    replies.sort_by_key(|r| r.body["error"]["type"].as_str().unwrap_or("").to_string());
    assert_error(&replies[0], 503, "overloaded");
    assert!(replies[0].headers.contains("retry-after: 1"), "{}", replies[0].headers);
    assert_error(&replies[1], 503, "timeout");
    assert_eq!(get(addr, "/v1/health").status, 200, "the slot is free again");
}

/// Every code of the engine's table through the service: the model-class codes from an
/// unbaked instance pointed at a bad file (503 `model_unavailable`, the engine's line), the
/// request and output codes from the baked one (their own type); every message one line.
#[test]
fn every_code_through_the_service() {
    use edgeslm_engine::ErrorCode;
    let one_line = |r: &Reply| {
        let m = r.body["error"]["message"].as_str().unwrap().to_string();
        assert!(!m.contains('\n'), "{m:?}");
        m
    };
    let mut seen = Vec::new();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("edgeslm-bad-models");
    let mut req = example("classify.json");
    req["route"] = json!("local");
    for (code, file, says) in bad_model_files(&dir) {
        let options = match code {
            // Nothing to preopen: the guest looks for a file the host never gave it.
            ErrorCode::FileNotFound => ServeOptions { env: vec![("EDGESLM_MODEL".into(), "/model/missing.gguf".into())], ..Default::default() },
            _ => ServeOptions { model: Some(file), ..Default::default() },
        };
        let addr = start(service_component(), options);
        let r = post(addr, "/v1/classify", &req);
        assert_error(&r, 503, "model_unavailable");
        assert!(one_line(&r).contains(says), "{code}: {}", r.body);
        seen.push(code);
    }

    let addr = server();
    let ticket = example("ticket.json");
    let with_options = |o: Value| {
        let mut b = ticket.clone();
        b["options"] = o;
        b
    };
    let mut labels = req.clone();
    labels["labels"] = json!(["only"]);
    let requests = [
        (ErrorCode::ContextOverflow, "/v1/generate", with_options(json!({ "max_tokens": 1_000_000 }))),
        (ErrorCode::InvalidOption, "/v1/generate", with_options(json!({ "temperature": -1.0 }))),
        (ErrorCode::InvalidLabels, "/v1/classify", labels),
        (ErrorCode::InvalidSchema, "/v1/generate", json!({ "prompt": "x", "json_schema": "{not json" })),
        (ErrorCode::UnsupportedSchema, "/v1/generate", json!({ "prompt": "x", "json_schema": { "type": "integer", "maximun": 3 } })),
        (ErrorCode::InvalidRegex, "/v1/generate", json!({ "prompt": "x", "regex": "(" })),
        (ErrorCode::InvalidGrammar, "/v1/generate", json!({ "prompt": "x", "grammar": "start: (" })),
        (
            ErrorCode::ConstraintUnsatisfiable,
            "/v1/generate",
            json!({ "prompt": "x", "json_schema": { "type": "string", "minLength": 5, "maxLength": 2 } }),
        ),
        (ErrorCode::OutputTruncated, "/v1/generate", with_options(json!({ "max_tokens": 3 }))),
    ];
    for (code, path, body) in requests {
        let r = post(addr, path, &body);
        let status = if code.class() == edgeslm_engine::ErrorClass::Output { 422 } else { 400 };
        assert_error(&r, status, &code.as_str().replace('-', "_"));
        one_line(&r);
        seen.push(code);
    }
    for code in ErrorCode::ALL {
        assert!(seen.contains(code), "no case for {code}");
    }
}

/// The OpenAI-compatible route as OpenAI's clients call it: a JSON-schema response format
/// gives schema-valid content, the same bytes twice; streaming gives the same text in
/// events; plain text stops at `max_tokens` or a stop string; `/v1/models` lists the model.
#[test]
fn openai_chat_completions() {
    let addr = server();
    let ticket: Value = serde_json::from_str(TICKET_SCHEMA).unwrap();
    let request = json!({
        "model": "anything",
        "messages": [
            { "role": "system", "content": "Turn the support message into a ticket." },
            { "role": "user", "content": SUPPORT_MESSAGES[0] },
        ],
        "response_format": { "type": "json_schema", "json_schema": { "name": "ticket", "schema": ticket, "strict": true } },
    });
    let r = post(addr, "/v1/chat/completions", &request);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers.contains("content-type: application/json"), "{}", r.headers);
    let b = &r.body;
    assert_eq!(b["object"], "chat.completion");
    assert_eq!(b["model"], "anything");
    assert!(b["id"].as_str().unwrap().starts_with("chatcmpl-"), "{b}");
    let choice = &b["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    let content = choice["message"]["content"].as_str().unwrap().to_string();
    assert!(ticket_is_valid(&serde_json::from_str(&content).unwrap()), "{content}");
    let usage = &b["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 10, "{usage}");
    assert!(usage["completion_tokens"].as_u64().unwrap() > 5, "{usage}");
    assert_eq!(usage["total_tokens"], usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap());
    let again = post(addr, "/v1/chat/completions", &request);
    assert_eq!(again.body["choices"][0]["message"]["content"], content.as_str(), "temperature 0: the same bytes");

    // Streamed: the role, one event per token, the finish reason, then the usage.
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({ "include_usage": true });
    let r = post(addr, "/v1/chat/completions", &streamed);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers.contains("content-type: text/event-stream"), "{}", r.headers);
    let events = r.body.as_array().unwrap();
    assert!(events.iter().all(|e| e["object"] == "chat.completion.chunk"), "{}", r.body);
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = events.iter().filter_map(|e| e["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, content);
    assert!(events.len() > 5, "one event per token: {}", r.body);
    let finish = &events[events.len() - 2]["choices"][0];
    assert_eq!(finish["finish_reason"], "stop", "{}", r.body);
    assert_eq!(events.last().unwrap()["usage"], *usage);

    // Any JSON object.
    let r = post(addr, "/v1/chat/completions", &json!({
        "messages": [{ "role": "user", "content": [{ "type": "text", "text": "Give a JSON object with a name." }] }],
        "response_format": { "type": "json_object" },
        "max_tokens": 40,
    }));
    assert_eq!(r.status, 200, "{}", r.body);
    let content = r.body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(serde_json::from_str::<Value>(content).unwrap().is_object(), "{content}");

    // Plain text: max_tokens and a stop string.
    let r = post(addr, "/v1/chat/completions", &json!({
        "messages": [{ "role": "user", "content": "Write a long story about a lighthouse." }],
        "max_tokens": 6,
    }));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["choices"][0]["finish_reason"], "length", "{}", r.body);
    assert_eq!(r.body["usage"]["completion_tokens"], 6, "{}", r.body);
    let r = post(addr, "/v1/chat/completions", &json!({
        "messages": [{ "role": "user", "content": "List three colours, one per line." }],
        "max_tokens": 60,
        "stop": ["\n"],
    }));
    assert_eq!(r.status, 200, "{}", r.body);
    let content = r.body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!content.contains('\n'), "{content:?}");
    // Streamed, the text held back for a possible stop string comes out the same.
    for stop in [json!(["\n"]), json!(["ue", "e, "]), json!(null)] {
        let body = json!({
            "messages": [{ "role": "user", "content": "List three colours, one per line." }],
            "max_tokens": 30,
            "stop": stop,
        });
        let whole = post(addr, "/v1/chat/completions", &body);
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let events = post(addr, "/v1/chat/completions", &streamed).body;
        let text: String = events.as_array().unwrap().iter().filter_map(|e| e["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, whole.body["choices"][0]["message"]["content"].as_str().unwrap(), "stop {stop}");
        let finish = events.as_array().unwrap().iter().find_map(|e| e["choices"][0]["finish_reason"].as_str()).unwrap();
        assert_eq!(finish, whole.body["choices"][0]["finish_reason"], "stop {stop}");
    }

    // Log-probabilities: one per token, their bytes making the content; the tokens the
    // schema forced (`{"category":"`...) are certain.
    for (format, max_tokens) in [(json!({ "type": "json_schema", "json_schema": { "name": "ticket", "schema": ticket } }), 64), (json!({ "type": "text" }), 12)] {
        let mut asked = request.clone();
        asked["logprobs"] = json!(true);
        asked["response_format"] = format;
        asked["max_tokens"] = json!(max_tokens);
        let r = post(addr, "/v1/chat/completions", &asked);
        assert_eq!(r.status, 200, "{}", r.body);
        let content = r.body["choices"][0]["message"]["content"].as_str().unwrap();
        let entries = r.body["choices"][0]["logprobs"]["content"].as_array().unwrap();
        assert_eq!(entries.len() as u64, r.body["usage"]["completion_tokens"].as_u64().unwrap(), "{}", r.body);
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e["bytes"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8)).collect();
        assert_eq!(String::from_utf8_lossy(&bytes), content);
        assert!(entries.iter().all(|e| e["logprob"].as_f64().unwrap() <= 0.0), "{}", r.body);
        assert!(entries.iter().any(|e| e["logprob"].as_f64().unwrap() < 0.0), "{}", r.body);
    }

    let r = get(addr, "/v1/models");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["object"], "list");
    assert_eq!(r.body["data"][0]["object"], "model");
    assert!(r.body["data"][0]["id"].as_str().is_some_and(|id| !id.is_empty()), "{}", r.body);
}

/// Errors on the OpenAI route come in OpenAI's shape (`message`, `type`, `param`, `code`),
/// and what edgeslm does not do is refused by name, not ignored.
#[test]
fn openai_errors_are_typed() {
    let addr = server();
    let user = json!([{ "role": "user", "content": "hi" }]);
    let cases = [
        (json!({ "messages": user, "response_format": { "type": "json_schema", "json_schema": { "name": "x", "schema": { "type": "nonsense" } } } }), 400, "invalid_schema"),
        (json!({ "messages": user, "response_format": { "type": "json_schema", "json_schema": { "name": "x" } } }), 400, "invalid_schema"),
        (json!({ "messages": user, "n": 2 }), 400, "unsupported_parameter"),
        (json!({ "messages": user, "logprobs": true, "stream": true }), 400, "unsupported_parameter"),
        (json!({ "messages": user, "logprobs": true, "top_logprobs": 2 }), 400, "unsupported_parameter"),
        (json!({ "messages": user, "tools": [{ "type": "function", "function": { "name": "f" } }] }), 400, "unsupported_parameter"),
        (json!({ "messages": user, "response_format": { "type": "json_object" }, "stop": ["}"] }), 400, "unsupported_parameter"),
        (json!({ "messages": [{ "role": "user", "content": [{ "type": "image_url", "image_url": { "url": "x" } }] }] }), 400, "unsupported_parameter"),
        (json!({ "messages": [] }), 400, "invalid_request"),
        (json!({ "messages": user, "max_tokens": 100000 }), 400, "context_overflow"),
        (json!({ "prompt": "hi" }), 400, "invalid_request"),
    ];
    for (body, status, kind) in cases {
        let r = post(addr, "/v1/chat/completions", &body);
        assert_error(&r, status, kind);
        assert_eq!(r.body["error"]["code"], kind, "{}", r.body);
        assert!(r.body["error"].as_object().unwrap().contains_key("param"), "{}", r.body);
    }
    let r = request(addr, "POST", "/v1/chat/completions", b"{not json", false);
    assert_error(&r, 400, "malformed_json");
    assert_error(&get(addr, "/v1/chat/completions"), 405, "method_not_allowed");
    // The instance answers as before.
    assert_eq!(post(addr, "/v1/chat/completions", &json!({ "messages": user, "max_tokens": 2 })).status, 200);
}

/// OpenAI's own Python client (`openai`, installed by .ci/run) against `url`:
/// tests/openai_client.py makes schema, streaming, error and model-list calls.
fn run_openai_client(url: &str) {
    let out = std::process::Command::new("python3")
        .arg(root().join("tests/openai_client.py"))
        .arg(url)
        .arg(TICKET_SCHEMA)
        .output()
        .expect("python3");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tests/openai_client.py failed:\n{text}");
    assert!(text.contains("openai client: ok"), "{text}");
}

#[test]
fn openai_python_client_against_edgeslm_serve() {
    run_openai_client(&format!("http://{}/v1", server()));
}
