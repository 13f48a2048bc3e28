//! The OpenAI-compatible routes, in the format llama.cpp's server, Ollama and vLLM expose, so
//! that OpenAI's own clients work unchanged: `POST /v1/chat/completions` and `GET /v1/models`.
//!
//! The messages are rendered with the model's chat template; `response_format`
//! (`json_schema`, `json_object`) is enforced by the constraint engine, inside the sampling
//! loop like `/v1/generate`; `stream: true` sends server-sent events as the tokens are made.
//! Where edgeslm differs from OpenAI, docs/openai-api.md says so (`temperature` defaults to 0:
//! the same bytes every time).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Config;
use crate::state::{Service, SERVICE};
use crate::wire::{engine_error, error, ok, Response};
use edgeslm_engine as engine;

#[derive(Deserialize)]
pub struct ChatRequest {
    /// Accepted and echoed; the service runs the one model it was baked or started with.
    pub model: Option<String>,
    pub messages: Vec<Message>,
    pub response_format: Option<ResponseFormat>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub stop: Option<Stop>,
    pub seed: Option<u64>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub n: Option<u32>,
    pub tools: Option<Vec<Value>>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub logit_bias: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Option<Content>,
}

/// A message's content: text, or a list of parts of which edgeslm reads the text ones.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Deserialize)]
pub struct JsonSchemaFormat {
    pub schema: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`, the type
/// being edgeslm's own (the same as the other routes give) and the code the same.
pub fn openai_error(mut response: Response) -> Response {
    if let Some(e) = response.body.get_mut("error").and_then(Value::as_object_mut) {
        let code = e.get("type").cloned().unwrap_or(Value::Null);
        e.insert("param".into(), Value::Null);
        e.insert("code".into(), code);
    }
    response
}

/// The model's name as the `model` field gives it: the GGUF's `general.name`, else its
/// architecture.
fn model_id(s: &Service) -> String {
    let info = s.instance.info();
    info.name.unwrap_or(info.architecture)
}

pub fn models(s: &Service) -> Response {
    ok(json!({
        "object": "list",
        "data": [{ "id": model_id(s), "object": "model", "created": 0, "owned_by": "edgeslm" }],
    }))
}

fn unsupported(what: &str) -> Response {
    error(400, "unsupported_parameter", format!("{what} is not supported by edgeslm"))
}

impl ChatRequest {
    /// The conversation as `(role, content)` pairs.
    fn conversation(&self) -> Result<Vec<(String, String)>, Response> {
        if self.messages.is_empty() {
            return Err(error(400, "invalid_request", "messages must hold at least one message"));
        }
        self.messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let text = match &m.content {
                    None => String::new(),
                    Some(Content::Text(t)) => t.clone(),
                    Some(Content::Parts(parts)) => {
                        let mut text = String::new();
                        for p in parts {
                            match (p.kind.as_str(), &p.text) {
                                ("text", Some(t)) => text.push_str(t),
                                (kind, _) => return Err(unsupported(&format!("messages[{i}].content part of type {kind:?}"))),
                            }
                        }
                        text
                    }
                };
                Ok((m.role.clone(), text))
            })
            .collect()
    }

    /// The constraint `response_format` asks for, if any.
    fn constraint(&self) -> Result<Option<engine::Constraint>, Response> {
        Ok(match &self.response_format {
            None | Some(ResponseFormat::Text) => None,
            Some(ResponseFormat::JsonObject) => Some(engine::Constraint::JsonSchema(r#"{"type":"object"}"#.into())),
            Some(ResponseFormat::JsonSchema { json_schema }) => match &json_schema.schema {
                Some(schema @ Value::Object(_)) => Some(engine::Constraint::JsonSchema(schema.to_string())),
                Some(_) => return Err(error(400, "invalid_schema", "response_format.json_schema.schema must be a JSON object")),
                None => return Err(error(400, "invalid_schema", "response_format.json_schema has no schema")),
            },
        })
    }

    /// Refuses what edgeslm does not do rather than answering as if it had.
    fn check_supported(&self) -> Result<(), Response> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(unsupported("n other than 1"));
        }
        if self.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(unsupported("tools"));
        }
        if self.top_logprobs.is_some_and(|n| n > 0) {
            return Err(unsupported("top_logprobs"));
        }
        if self.logprobs == Some(true) && self.stream == Some(true) {
            return Err(unsupported("logprobs with stream"));
        }
        if self.frequency_penalty.is_some_and(|p| p != 0.0) || self.presence_penalty.is_some_and(|p| p != 0.0) {
            return Err(unsupported("a frequency or presence penalty"));
        }
        if self.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
            return Err(unsupported("logit_bias"));
        }
        Ok(())
    }
}

/// Longest answer when the request names none: the rest of the context, at most this.
const DEFAULT_MAX_TOKENS: u32 = 1024;

/// One chat completion, ready to run: the rendered conversation's parts and the options.
struct Completion {
    prompt: String,
    opts: engine::GenerateOptions,
    constraint: Option<engine::Constraint>,
    prompt_tokens: usize,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

pub fn chat_completions(s: &mut Service, req: ChatRequest, config: &Config) -> Result<Response, Response> {
    let call = Completion::prepare(s, &req, config)?;
    if req.stream != Some(true) {
        let g = s.instance.generate_streaming(&call.prompt, call.constraint.as_ref(), &call.opts, &mut |_, _| {});
        let g = g.map_err(engine_error)?;
        let logprobs = call.opts.logprobs.then(|| token_logprobs(&s.instance, &g));
        return Ok(ok(call.answer(&g, logprobs)));
    }
    // What a stream could only report after its 200 is checked first: the schema compiles.
    if let Some(c) = &call.constraint {
        s.instance.accepts(c, "").map_err(engine_error)?;
    }
    let events = move |emit: &mut dyn FnMut(Value)| {
        SERVICE.with_borrow_mut(|slot| match slot.as_mut() {
            Some(s) => call.stream(s, emit),
            None => emit(openai_error(error(503, "model_unavailable", "the model is gone")).body),
        })
    };
    Ok(Response { events: Some(Box::new(events)), ..ok(Value::Null) })
}

impl Completion {
    fn prepare(s: &Service, req: &ChatRequest, config: &Config) -> Result<Completion, Response> {
        req.check_supported()?;
        let mut history = req.conversation()?;
        let constraint = req.constraint()?;
        // The prompt is the last message when a user wrote it; any other conversation is
        // rendered as it stands.
        let prompt = match history.last() {
            Some((role, _)) if role == "user" => history.pop().map(|(_, text)| text).unwrap_or_default(),
            _ => String::new(),
        };
        let stop = match &req.stop {
            None => vec![],
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if constraint.is_some() && !stop.is_empty() {
            return Err(unsupported("stop together with response_format (the schema decides where the answer ends)"));
        }
        if stop.iter().any(String::is_empty) {
            return Err(error(400, "invalid_option", "stop strings must not be empty"));
        }
        let mut opts = engine::GenerateOptions {
            max_tokens: 0,
            sampler: engine::SamplerConfig::with(req.temperature, None, req.top_p, req.seed),
            stop,
            parse_special: true,
            chat: true,
            history,
            logprobs: req.logprobs == Some(true),
        };
        let prompt_tokens = s.instance.model().prompt_tokens(&prompt, &opts).map_err(engine_error)?.len();
        let limit = s.instance.info().context_length;
        opts.max_tokens = match req.max_completion_tokens.or(req.max_tokens) {
            Some(n) => n,
            None => DEFAULT_MAX_TOKENS.min(limit.saturating_sub(prompt_tokens) as u32),
        };
        if let Some(cap) = config.max_tokens.filter(|&l| opts.max_tokens > l) {
            let m = format!("max_tokens {} is over this service's limit of {cap} (EDGESLM_MAX_TOKENS)", opts.max_tokens);
            return Err(engine_error(engine::Error::InvalidOption(m)));
        }
        let needed = prompt_tokens + opts.max_tokens as usize;
        if needed > limit {
            return Err(engine_error(engine::Error::ContextOverflow { needed, limit }));
        }
        let created = unix_seconds();
        Ok(Completion {
            prompt,
            opts,
            constraint,
            prompt_tokens,
            id: format!("chatcmpl-{created:x}{:x}", next_serial()),
            created,
            model: req.model.clone().unwrap_or_else(|| model_id(s)),
            include_usage: req.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true),
        })
    }

    fn usage(&self, completion_tokens: usize) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        })
    }

    fn answer(&self, g: &engine::Generation, logprobs: Option<Value>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": g.text },
                "logprobs": logprobs,
                "finish_reason": finish_reason(g),
            }],
            "usage": self.usage(g.tokens.len()),
        })
    }

    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        })
    }

    /// The events of a streamed completion, each given to `emit` as it is made: the role,
    /// the text as the tokens come (whole characters; what could start a stop string held
    /// back), the finish reason, the usage if asked. An error after the start is an event
    /// in OpenAI's error shape.
    fn stream(&self, s: &mut Service, emit: &mut dyn FnMut(Value)) {
        emit(self.chunk(json!({ "role": "assistant", "content": "" }), Value::Null));
        let mut text = TextStream::new(&self.opts.stop);
        let result = s.instance.generate_streaming(&self.prompt, self.constraint.as_ref(), &self.opts, &mut |_, bytes| {
            if let Some(piece) = text.push(bytes) {
                emit(self.chunk(json!({ "content": piece }), Value::Null));
            }
        });
        match result {
            Ok(g) => {
                if let Some(rest) = text.finish(&g.text) {
                    emit(self.chunk(json!({ "content": rest }), Value::Null));
                }
                emit(self.chunk(json!({}), json!(finish_reason(&g))));
                if self.include_usage {
                    let usage = self.usage(g.tokens.len());
                    emit(json!({ "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model, "choices": [], "usage": usage }));
                }
            }
            Err(e) => emit(openai_error(engine_error(e)).body),
        }
    }
}

/// OpenAI's `logprobs.content`: each token of the answer (not those past a stop string's
/// cut) with its text, bytes and log-probability (0 for tokens a schema forced).
fn token_logprobs(instance: &engine::Instance, g: &engine::Generation) -> Value {
    let tokenizer = &instance.model().tokenizer;
    let mut at = 0;
    let mut content = Vec::new();
    for (&id, &logprob) in g.tokens.iter().zip(&g.token_logprobs) {
        if at >= g.text.len() && !g.text.is_empty() {
            break;
        }
        let bytes = tokenizer.piece(id);
        at += bytes.len();
        content.push(json!({
            "token": String::from_utf8_lossy(&bytes),
            "logprob": logprob,
            "bytes": bytes,
            "top_logprobs": [],
        }));
    }
    json!({ "content": content })
}

fn finish_reason(g: &engine::Generation) -> &'static str {
    match g.finish_reason {
        engine::FinishReason::MaxTokens => "length",
        engine::FinishReason::EndOfGeneration | engine::FinishReason::StopString => "stop",
    }
}

/// The answer's text as its bytes come: whole characters out, holding back the bytes that
/// could still turn out to begin a stop string.
struct TextStream {
    bytes: Vec<u8>,
    sent: usize,
    hold: usize,
}

impl TextStream {
    fn new(stop: &[String]) -> TextStream {
        TextStream { bytes: Vec::new(), sent: 0, hold: stop.iter().map(|s| s.len().saturating_sub(1)).max().unwrap_or(0) }
    }

    fn push(&mut self, piece: &[u8]) -> Option<String> {
        self.bytes.extend_from_slice(piece);
        let end = self.bytes.len().saturating_sub(self.hold).max(self.sent);
        let whole = match std::str::from_utf8(&self.bytes[self.sent..end]) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&self.bytes[self.sent..self.sent + e.valid_up_to()]).unwrap_or_default(),
        };
        if whole.is_empty() {
            return None;
        }
        let piece = whole.to_string();
        self.sent += piece.len();
        Some(piece)
    }

    /// What is left of the final `text` (cut at a stop string, invalid bytes replaced).
    fn finish(&self, text: &str) -> Option<String> {
        text.get(self.sent.min(text.len())..).filter(|rest| !rest.is_empty()).map(str::to_string)
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A number per completion within this instance, for the completion's id.
fn next_serial() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    SERIAL.fetch_add(1, Ordering::Relaxed)
}
