//! The hybrid route: ask an OpenAI-compatible `/v1/chat/completions` endpoint for the answer
//! the local model was unsure of, with the same label set or schema as a `response_format`,
//! and accept its answer only if it passes the same check the local path enforces. Every
//! failure is an `Err` with the reason; the caller then keeps the local answer.

use serde_json::{json, Value};

use crate::config::{Config, Upstream};
use crate::outgoing::post_json;
use crate::wire::{ClassifyRequest, GenerateRequest};

fn upstream(config: &Config) -> Result<&Upstream, String> {
    config.upstream.as_ref().ok_or_else(|| "no upstream is configured (EDGESLM_UPSTREAM_URL)".to_string())
}

/// The label the upstream chose; it must be one of `req.labels`.
pub fn classify(config: &Config, req: &ClassifyRequest) -> Result<String, String> {
    let up = upstream(config)?;
    let instruction = req.instruction.as_deref().unwrap_or("Classify the text.");
    let mut messages = vec![json!({
        "role": "system",
        "content": format!("{instruction} Answer with JSON {{\"label\": L}} where L is one of: {}.", req.labels.join(", ")),
    })];
    for e in &req.examples {
        messages.push(json!({ "role": "user", "content": e.text }));
        messages.push(json!({ "role": "assistant", "content": json!({ "label": e.label }).to_string() }));
    }
    messages.push(json!({ "role": "user", "content": req.text }));
    let schema = json!({
        "type": "object",
        "properties": { "label": { "type": "string", "enum": req.labels } },
        "required": ["label"],
        "additionalProperties": false,
    });
    let content = ask(up, messages, Some(("classification", schema)))?;
    let answer: Value = serde_json::from_str(&content).map_err(|_| format!("the upstream answer is not JSON: {}", clip(&content)))?;
    let label = answer.get("label").and_then(Value::as_str).ok_or_else(|| format!("the upstream answer has no label: {}", clip(&content)))?;
    if !req.labels.iter().any(|l| l == label) {
        return Err(format!("the upstream label {label:?} is not one of the labels"));
    }
    Ok(label.to_string())
}

/// The upstream's output, if `accepts` (the local constraint) takes it. JSON answers are
/// re-serialized compactly first, as the local path writes them.
pub fn generate(config: &Config, req: &GenerateRequest, mut accepts: impl FnMut(&str) -> bool) -> Result<String, String> {
    let up = upstream(config)?;
    let mut messages = Vec::new();
    let format = match (&req.json_schema, &req.regex, &req.grammar) {
        (Some(schema), _, _) => {
            let schema = match schema {
                Value::String(s) => serde_json::from_str(s).map_err(|e| format!("schema: {e}"))?,
                v => v.clone(),
            };
            Some(("output", schema))
        }
        (_, Some(regex), _) => {
            messages.push(json!({ "role": "system", "content": format!("Answer with the output only. It must match this regular expression in full: {regex}") }));
            None
        }
        (_, _, Some(grammar)) => {
            messages.push(json!({ "role": "system", "content": format!("Answer with the output only. It must be a sentence of this Lark grammar:\n{grammar}") }));
            None
        }
        _ => return Err("no constraint".into()),
    };
    messages.push(json!({ "role": "user", "content": req.prompt }));
    let json_output = format.is_some();
    let content = ask(up, messages, format)?;
    let text = if json_output {
        let v: Value = serde_json::from_str(&content).map_err(|_| format!("the upstream answer is not JSON: {}", clip(&content)))?;
        v.to_string()
    } else {
        content
    };
    if !accepts(&text) {
        return Err(format!("the upstream answer does not match the constraint: {}", clip(&text)));
    }
    Ok(text)
}

/// One chat completion at temperature 0; the first choice's message content.
fn ask(up: &Upstream, messages: Vec<Value>, schema: Option<(&str, Value)>) -> Result<String, String> {
    let mut body = json!({ "model": up.model, "messages": messages, "temperature": 0 });
    if let Some((name, schema)) = schema {
        body["response_format"] = json!({ "type": "json_schema", "json_schema": { "name": name, "strict": true, "schema": schema } });
    }
    let (status, bytes) = post_json(up, body.to_string().as_bytes())?;
    let text = String::from_utf8_lossy(&bytes);
    if status != 200 {
        return Err(format!("the upstream answered {status}: {}", clip(&text)));
    }
    let v: Value = serde_json::from_str(&text).map_err(|_| format!("the upstream response is not JSON: {}", clip(&text)))?;
    v.pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("the upstream response has no choices[0].message.content: {}", clip(&text)))
}

/// At most 200 characters of an upstream answer for an error message.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}
