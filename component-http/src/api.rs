//! The HTTP API's handlers: routes, the instance's model, the hybrid route. The bodies are
//! in `wire.rs`; no wasi:http here (`http.rs` moves the bytes, `cloud.rs` asks the upstream).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::cloud;
use crate::openai;
use crate::config::Config;
use edgeslm_engine::{self as engine, timing::Stopwatch};
use crate::state::{Origin, Service, SERVICE};
use crate::wire::{engine_error, error, ok, ClassifyRequest, GenerateRequest, Request, Response, RouteMode};

pub fn handle(req: &Request, config: &Config) -> Response {
    let allowed = match req.path.as_str() {
        "/v1/health" | "/v1/model" | "/v1/models" => "GET",
        "/v1/classify" | "/v1/generate" | "/v1/chat/completions" => "POST",
        _ => {
            let routes = "/v1/health, /v1/model, /v1/classify, /v1/generate, /v1/chat/completions, /v1/models";
            return error(404, "not_found", format!("no route {}; see {routes}", req.path));
        }
    };
    if req.method != allowed {
        return Response { allow: Some(allowed), ..error(405, "method_not_allowed", format!("{} takes {allowed}, not {}", req.path, req.method)) };
    }
    match req.path.as_str() {
        "/v1/health" => health(),
        "/v1/model" => with_service(config, |s| Ok(ok(model_info(s)))),
        "/v1/models" => openai::openai_error(with_service(config, |s| Ok(openai::models(s)))),
        "/v1/classify" => match parse::<ClassifyRequest>(&req.body) {
            Ok(body) => with_service(config, |s| classify(s, body, config)),
            Err(e) => e,
        },
        "/v1/chat/completions" => openai::openai_error(match parse::<openai::ChatRequest>(&req.body) {
            Ok(body) => with_service(config, |s| openai::chat_completions(s, body, config)),
            Err(e) => e,
        }),
        _ => match parse::<GenerateRequest>(&req.body) {
            Ok(body) => with_service(config, |s| generate(s, body, config)),
            Err(e) => e,
        },
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => error(400, "invalid_request", e.to_string()),
            _ => error(400, "malformed_json", e.to_string()),
        }
    })
}

/// Run `f` on the instance's model: the baked one, or the file `EDGESLM_MODEL` names.
fn with_service(config: &Config, f: impl FnOnce(&mut Service) -> Result<Response, Response>) -> Response {
    let loaded = SERVICE.with_borrow_mut(|slot| -> Result<(), Response> {
        if slot.is_some() {
            return Ok(());
        }
        let path = config.model_path.as_deref().ok_or_else(|| {
            error(503, "model_unavailable", "no model: this component was not baked (edgeslm bake) and EDGESLM_MODEL is not set")
        })?;
        let clock = Stopwatch::start();
        let model = engine::Model::open(path).map_err(|e| error(503, "model_unavailable", format!("{path}: {e}")))?;
        *slot = Some(Service {
            instance: engine::Instance::new(model),
            origin: Origin::File { path: path.to_string(), load_ms: clock.ms() },
        });
        Ok(())
    });
    if let Err(e) = loaded {
        return e;
    }
    SERVICE.with_borrow_mut(|slot| match f(slot.as_mut().unwrap()) {
        Ok(r) | Err(r) => r,
    })
}

fn health() -> Response {
    let origin = SERVICE.with_borrow(|s| s.as_ref().map(|s| s.origin.clone()));
    ok(json!({
        "status": "ok",
        "model_loaded": origin.is_some(),
        "baked": matches!(origin, Some(Origin::Baked { .. })),
    }))
}

fn model_info(s: &Service) -> Value {
    let i = s.instance.info();
    let (origin, load_ms, path) = match &s.origin {
        Origin::Baked { load_ms } => ("baked", *load_ms, None),
        Origin::File { path, load_ms } => ("file", *load_ms, Some(path.clone())),
    };
    json!({
        "architecture": i.architecture,
        "name": i.name,
        "parameter_count": i.parameter_count,
        "layers": i.layers,
        "context_length": i.context_length,
        "embedding_length": i.embedding_length,
        "vocab_size": i.vocab_size,
        "tokenizer": i.tokenizer,
        "file_size": i.file_size,
        "backend": i.backend,
        "origin": origin,
        "path": path,
        "load_ms": load_ms,
        "constraint_engine_ready": s.instance.constrainer_ready(),
    })
}

fn classify(s: &mut Service, req: ClassifyRequest, config: &Config) -> Result<Response, Response> {
    let total = Stopwatch::start();
    let opts = engine::ClassifyOptions {
        instruction: req.instruction.clone(),
        examples: req.examples.iter().map(|e| (e.text.clone(), e.label.clone())).collect(),
        calibrate: req.calibrate.unwrap_or(true),
    };
    let c = s.instance.classify(&req.text, &req.labels, &opts).map_err(engine_error)?;
    let t = &c.timings;
    let scores: Vec<Value> = req
        .labels
        .iter()
        .zip(c.scores.iter().zip(&c.uncalibrated))
        .map(|(l, (p, u))| json!({ "label": l, "probability": p, "uncalibrated": u }))
        .collect();
    let mut body = json!({
        "label": c.label,
        "confidence": c.confidence,
        "scores": scores,
        "route": "local",
        "degraded": false,
        "timings": {
            "prompt_tokens": t.prompt_tokens,
            "reused_tokens": t.reused_tokens,
            "prompt_ms": t.prompt_ms,
            "scoring_ms": t.scoring_ms,
            "calibration_ms": t.calibration_ms,
            "local_ms": t.total_ms,
        },
    });
    let reason = route_reason(req.route, "confidence", c.confidence, config.min_confidence);
    let local = json!({ "label": c.label, "confidence": c.confidence });
    ask_cloud(&mut body, reason, local, || cloud::classify(config, &req), |body, label| body["label"] = json!(label));
    body["timings"]["total_ms"] = json!(total.ms());
    Ok(ok(body))
}

/// Why this request goes to the cloud, or `None` when it stays local.
fn route_reason(mode: RouteMode, measure: &str, value: f64, threshold: Option<f64>) -> Option<String> {
    match mode {
        RouteMode::Local => None,
        RouteMode::Cloud => Some("requested".into()),
        RouteMode::Auto => threshold.filter(|&min| value < min).map(|min| format!("{measure} {value:.3} below {min}")),
    }
}

/// Ask the upstream when there is a `reason`, and record the outcome: an accepted answer is
/// written by `apply` (the local one kept under `local`); any failure leaves the local
/// answer, marked degraded, with the upstream's error.
fn ask_cloud<T>(
    body: &mut Value,
    reason: Option<String>,
    local: Value,
    ask: impl FnOnce() -> Result<T, String>,
    apply: impl FnOnce(&mut Value, T),
) {
    let Some(reason) = reason else { return };
    let clock = Stopwatch::start();
    let answer = ask();
    body["timings"]["upstream_ms"] = json!(clock.ms());
    body["route_reason"] = json!(reason);
    match answer {
        Ok(a) => {
            body["local"] = local;
            apply(body, a);
            body["route"] = json!("cloud");
        }
        Err(e) => {
            body["degraded"] = json!(true);
            body["upstream_error"] = json!(e);
        }
    }
}

fn generate(s: &mut Service, req: GenerateRequest, config: &Config) -> Result<Response, Response> {
    let total = Stopwatch::start();
    let constraint = req.constraint()?;
    let d = engine::GenerateOptions::default();
    let o = &req.options;
    let max_tokens = o.max_tokens.unwrap_or(d.max_tokens);
    if let Some(limit) = config.max_tokens.filter(|&l| max_tokens > l) {
        let m = format!("max_tokens {max_tokens} is over this service's limit of {limit} (EDGESLM_MAX_TOKENS)");
        return Err(engine_error(engine::Error::InvalidOption(m)));
    }
    let opts = engine::GenerateOptions {
        max_tokens,
        sampler: engine::SamplerConfig::with(o.temperature, o.top_k, o.top_p, o.seed),
        stop: vec![],
        parse_special: o.parse_special.unwrap_or(d.parse_special),
        chat: o.chat.unwrap_or(d.chat),
        history: Vec::new(),
        logprobs: false,
    };
    let setup = Stopwatch::start();
    s.instance.constrainer().map_err(engine_error)?;
    let setup_ms = setup.ms();
    let g = s.instance.generate_constrained(&req.prompt, &constraint, &opts).map_err(engine_error)?;
    let mean_logprob = g.mean_logprob();
    let value = |text: &str| match constraint {
        engine::Constraint::JsonSchema(_) => serde_json::from_str::<Value>(text).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let t = &g.timings;
    let mut body = json!({
        "text": g.text,
        "value": value(&g.text),
        "finish_reason": "stop",
        "tokens": g.tokens.len(),
        "mean_logprob": mean_logprob,
        "route": "local",
        "degraded": false,
        "timings": {
            "prompt_tokens": g.prompt_tokens,
            "prefill_tokens": t.prefill_tokens,
            "prefill_ms": t.prefill_ms,
            "decode_tokens": t.decode_tokens,
            "decode_ms": t.decode_ms,
            "constraint_setup_ms": setup_ms,
        },
    });
    let reason = route_reason(req.route, "mean logprob", mean_logprob, config.min_logprob);
    let local = json!({ "text": g.text, "mean_logprob": mean_logprob });
    let instance = &mut s.instance;
    let accepts = |text: &str| instance.accepts(&constraint, text).unwrap_or(false);
    ask_cloud(&mut body, reason, local, || cloud::generate(config, &req, accepts), |body, text| {
        body["value"] = value(&text);
        body["text"] = json!(text);
    });
    body["timings"]["total_ms"] = json!(total.ms());
    Ok(ok(body))
}
