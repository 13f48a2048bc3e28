//! The service's wire types: request and response bodies, and how an error becomes a status
//! and a typed JSON body (`{"error": {"type", "message"}}`). Engine errors take their type
//! and status from the engine's one table (`engine::ErrorCode`, `ErrorClass`).

use serde::Deserialize;
use serde_json::{json, Value};

use edgeslm_engine as engine;

pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

pub struct Response {
    pub status: u16,
    pub body: Value,
    /// The `allow` header of a 405.
    pub allow: Option<&'static str>,
    /// Server-sent events instead of `body` (`text/event-stream`, ended by `data: [DONE]`):
    /// run once the headers are sent, it gives each event to its argument as it is made.
    pub events: Option<EventSource>,
}

pub type EventSource = Box<dyn FnOnce(&mut dyn FnMut(Value))>;

/// The `data:` line of one server-sent event, and the stream's last.
pub fn event(data: &Value) -> String {
    format!("data: {data}\n\n")
}
pub const EVENTS_DONE: &str = "data: [DONE]\n\n";

/// An error answer. Its message is one line, though it may quote the request (serde's
/// "unknown field" names the field as sent).
pub fn error(status: u16, kind: &str, message: impl Into<String>) -> Response {
    let message = engine::error::one_line(&message.into()).into_owned();
    Response { status, body: json!({ "error": { "type": kind, "message": message } }), allow: None, events: None }
}

/// The path of a request target (`/v1/generate?x=1` → `/v1/generate`).
pub fn path_of(target: &str) -> &str {
    target.split('?').next().unwrap_or("/")
}

/// A `content-length` header's value, when it is one decimal number (anything else is left
/// to the body's reading, which the cap bounds anyway).
pub fn declared_length(values: &[Vec<u8>]) -> Option<u64> {
    values.first().and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok())
}

/// 413: the body passed the configured cap.
pub fn too_large(cap: usize) -> Response {
    error(413, "body_too_large", format!("the request body is larger than {cap} bytes"))
}

pub fn ok(body: Value) -> Response {
    Response { status: 200, body, allow: None, events: None }
}

/// An engine error as a status and a type: the code from the engine's table in snake case;
/// the caller's mistakes are 400, no valid output 422, a model that cannot be used 503.
pub fn engine_error(e: engine::Error) -> Response {
    match e.class() {
        engine::ErrorClass::Request => error(400, &e.code().as_str().replace('-', "_"), e.to_string()),
        engine::ErrorClass::Output => error(422, &e.code().as_str().replace('-', "_"), e.to_string()),
        engine::ErrorClass::Model => error(503, "model_unavailable", e.to_string()),
    }
}

/// Where an answer may come from.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default, Debug)]
#[serde(rename_all = "lowercase")]
pub enum RouteMode {
    /// Local, or the cloud when the local answer is below the configured threshold.
    #[default]
    Auto,
    Local,
    /// The cloud (the local answer is the fallback).
    Cloud,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub text: String,
    pub label: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    pub text: String,
    pub labels: Vec<String>,
    pub instruction: Option<String>,
    #[serde(default)]
    pub examples: Vec<Example>,
    pub calibrate: Option<bool>,
    #[serde(default)]
    pub route: RouteMode,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GenerateOptions {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_k: Option<u32>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
    pub chat: Option<bool>,
    pub parse_special: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    pub prompt: String,
    /// A schema object (or a string holding one).
    pub json_schema: Option<Value>,
    pub regex: Option<String>,
    pub grammar: Option<String>,
    #[serde(default)]
    pub options: GenerateOptions,
    #[serde(default)]
    pub route: RouteMode,
}

impl GenerateRequest {
    pub fn constraint(&self) -> Result<engine::Constraint, Response> {
        match (&self.json_schema, &self.regex, &self.grammar) {
            (Some(Value::String(s)), None, None) => Ok(engine::Constraint::JsonSchema(s.clone())),
            (Some(v @ Value::Object(_)), None, None) => Ok(engine::Constraint::JsonSchema(v.to_string())),
            (Some(_), None, None) => Err(error(400, "invalid_schema", "json_schema must be a JSON object (or a string holding one)")),
            (None, Some(r), None) => Ok(engine::Constraint::Regex(r.clone())),
            (None, None, Some(g)) => Ok(engine::Constraint::Grammar(g.clone())),
            _ => Err(error(400, "invalid_request", "give exactly one of json_schema, regex, grammar")),
        }
    }
}

