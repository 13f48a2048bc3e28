//! The HTTP service's request handling (component-http's `respond`, built natively): any
//! method, request target, `content-length` value and body, against a tiny random-weight
//! llama that the first request loads, as an unbaked instance does. Every answer is a status
//! the API documents with a JSON object (a streamed chat completion: its events); an error is `{"error": {"type", "message"}}` with a
//! message of one line. (The bytes on the wire — request line, headers, chunked bodies — are
//! the host's HTTP stack's, not the component's.)
#![no_main]
use std::sync::OnceLock;

use edgeslm_service::{respond, Config};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "common.rs"]
mod common;

const METHODS: [&str; 4] = ["GET", "POST", "PUT", "HEAD"];
const ROUTES: [&str; 4] = ["/v1/health", "/v1/model", "/v1/classify", "/v1/generate"];
/// The OpenAI-compatible routes, chosen by the selector's top bit.
const OPENAI_ROUTES: [&str; 4] = ["/v1/chat/completions", "/v1/models", "/v1/chat/completions", "/v1/chat/completions"];

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        let tiny = std::env::var("EDGESLM_FUZZ_TINY").unwrap_or_else(|_| {
            common::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf").to_string_lossy().into_owned()
        });
        // Small caps keep prompts and outputs short, and prove the 413 and max-tokens paths:
        // under AddressSanitizer a classify of a 400-token prompt with its calibration takes
        // seconds even on the tiny model, near the per-input time limit.
        let (max_body_bytes, max_tokens) = (256, Some(32));
        Config { max_body_bytes, max_tokens, model_path: Some(tiny), upstream: None, min_confidence: None, min_logprob: None }
    })
}

// Input: [selector][target or content-length bytes] NUL [body]. Selector bits: 0-1 the
// method, 2-3 the route, 4-5 the target's form, 6 a content-length, 7 the OpenAI routes.
fuzz_target!(|data: &[u8]| {
    let (head, body) = common::two_fields(data);
    let Some((&sel, extra)) = head.split_first() else { return };
    let method = METHODS[(sel & 3) as usize];
    let routes = if sel & 0x80 != 0 { OPENAI_ROUTES } else { ROUTES };
    let route = routes[((sel >> 2) & 3) as usize];
    let extra_text = String::from_utf8_lossy(extra);
    let target = match sel & 0x30 {
        0x10 => format!("{route}?{extra_text}"),
        0x20 => extra_text.into_owned(),
        _ => route.to_string(),
    };
    let content_length: Vec<Vec<u8>> = if sel & 0x40 != 0 { vec![extra.to_vec()] } else { vec![] };

    let (status, answer) = respond(method, &target, &content_length, body, config());
    assert!([200, 400, 404, 405, 413, 422, 503].contains(&status), "status {status}: {answer}");
    // A streamed chat completion is its list of events; anything else one object.
    assert!(answer.is_object() || (status == 200 && route == "/v1/chat/completions" && answer.is_array()), "{answer}");
    if status != 200 {
        let e = &answer["error"];
        assert!(e["type"].is_string(), "{answer}");
        let message = e["message"].as_str().unwrap_or_else(|| panic!("no message: {answer}"));
        assert!(!message.is_empty() && !message.contains('\n'), "{status}: {message:?}");
    } else if route == "/v1/generate" && sel & 0x30 != 0x20 {
        assert!(answer["text"].is_string(), "{answer}");
    }
    // The answer is what the component would write.
    let _: Value = serde_json::from_str(&answer.to_string()).unwrap();
});
