//! A user's own HTTP component on the edgeslm runtime: it decides the routes and imports
//! `edgeslm:runtime/inference`, and the runtime component is plugged into that import
//! (`wac plug`, as Spin 3's component dependencies do). This is the component that
//! `../spin.toml` names `my_app.wasm`.
//!
//!   POST /classify {"text", "labels", "instruction"?, "examples"?: [{"text", "label"}]}
//!                  → {"label", "confidence", "scores": {label: probability}}
//!   POST /generate {"prompt", "json_schema", "options"?: {"max_tokens"}}
//!                  → the JSON the schema describes
//!
//! (the request shapes of the edgeslm service's /v1/classify and /v1/generate, so
//! `examples/http-service/classify.json` and `ticket.json` work as they are). A runtime error
//! is a 422 with its code and message.
//!
//! The model is the file `EDGESLM_MODEL` names (default /model/gemma-3-270m-q4_k_m.gguf,
//! the directory the manifest mounts). A wasi:http host may make an instance per request,
//! and each instance loads the file; bake the HTTP service instead where that matters.

wit_bindgen::generate!({
    inline: "
        package example:app;
        world app {
            import edgeslm:runtime/inference@0.1.0;
            export wasi:http/incoming-handler@0.2.12;
        }
    ",
    path: "../../../../wit",
    generate_all,
});

use edgeslm::runtime::inference::Model;
use edgeslm::runtime::types::{ClassifyOptions, Constraint, Error, Example, GenerateOptions};
use serde_json::{json, Value};
use wasi::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

const DEFAULT_MODEL: &str = "/model/gemma-3-270m-q4_k_m.gguf";

struct App;

impl exports::wasi::http::incoming_handler::Guest for App {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let (status, body) = match read_json(&request) {
            Err(message) => (400, json!({ "error": message })),
            Ok(input) => match (request.method(), request.path_with_query().as_deref()) {
                (Method::Post, Some("/classify")) => answer(classify(&input)),
                (Method::Post, Some("/generate")) => answer(generate(&input)),
                _ => (404, json!({ "error": "routes: POST /classify, POST /generate" })),
            },
        };
        respond(out, status, &body);
    }
}

/// The runtime's typed error as the response: its stable code and one-line message.
fn answer(result: Result<Value, Error>) -> (u16, Value) {
    match result {
        Ok(value) => (200, value),
        Err(e) => (422, json!({ "error": code_name(&e), "message": e.message })),
    }
}

/// The WIT name of the error's code (`file-not-found`), from its Rust name.
fn code_name(e: &Error) -> String {
    let debug = format!("{:?}", e.code);
    let mut name = String::new();
    for c in debug.rsplit("::").next().unwrap_or_default().chars() {
        if c.is_ascii_uppercase() && !name.is_empty() {
            name.push('-');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

fn model() -> Result<Model, Error> {
    Model::load(&std::env::var("EDGESLM_MODEL").unwrap_or_else(|_| DEFAULT_MODEL.into()))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|l| l.as_str().map(String::from)).collect()
}

fn classify(input: &Value) -> Result<Value, Error> {
    let text = input["text"].as_str().unwrap_or_default();
    let examples = input["examples"].as_array().into_iter().flatten();
    let options = ClassifyOptions {
        instruction: input["instruction"].as_str().map(String::from),
        examples: examples.map(|e| Example { text: e["text"].as_str().unwrap_or_default().into(), label: e["label"].as_str().unwrap_or_default().into() }).collect(),
        calibrate: None,
    };
    let c = model()?.classify(text, &strings(&input["labels"]), &options)?;
    let scores: serde_json::Map<String, Value> = c.scores.iter().map(|s| (s.label.clone(), json!(s.probability))).collect();
    Ok(json!({ "label": c.label, "confidence": c.confidence, "scores": scores }))
}

fn generate(input: &Value) -> Result<Value, Error> {
    let prompt = input["prompt"].as_str().unwrap_or_default();
    let schema = Constraint::JsonSchema(input["json_schema"].to_string());
    let options = GenerateOptions {
        max_tokens: input["options"]["max_tokens"].as_u64().map(|n| n as u32),
        temperature: None,
        top_k: None,
        top_p: None,
        seed: None,
        stop: Vec::new(),
        parse_special: None,
        chat: None,
    };
    let g = model()?.generate_constrained(prompt, &schema, &options)?;
    // The runtime guarantees output that matches the schema, so it parses.
    Ok(serde_json::from_str(&g.text).unwrap_or(Value::Null))
}

/// The request body as JSON (bodies here are small: read to the end).
fn read_json(request: &IncomingRequest) -> Result<Value, String> {
    let body = request.consume().map_err(|_| "no request body")?;
    let stream = body.stream().map_err(|_| "no request body stream")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend(chunk),
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the body: {e:?}")),
        }
        if bytes.len() > 1 << 20 {
            return Err("the body is over 1 MiB".into());
        }
    }
    drop(stream);
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("the body is not JSON: {e}"))
}

fn respond(out: ResponseOutparam, status: u16, body: &Value) {
    let bytes = body.to_string().into_bytes();
    let headers = Fields::from_list(&[("content-type".into(), b"application/json".to_vec())]).unwrap();
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let out_body = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    let stream = out_body.write().unwrap();
    // blocking-write-and-flush takes at most 4096 bytes per call.
    for chunk in bytes.chunks(4096) {
        if stream.blocking_write_and_flush(chunk).is_err() {
            break;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(out_body, None);
}

export!(App);
