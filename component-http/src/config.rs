//! The service's configuration, from the environment (`wasmtime serve --env`, Spin's
//! `environment`, `edgeslm serve --env`). Read per request, never during the bake, so a
//! baked image carries no configuration of its own.

use std::env;

/// Request bodies above this are refused with 413 [1 MiB].
const DEFAULT_MAX_BODY: usize = 1 << 20;
/// How long the cloud route may take before the local answer is used [5000 ms].
const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 5000;

pub struct Config {
    pub max_body_bytes: usize,
    /// `EDGESLM_MAX_TOKENS`: the most tokens a /v1/generate request may ask for (its
    /// `max_tokens`, default 128); unset, only the context window bounds it.
    pub max_tokens: Option<u32>,
    /// `EDGESLM_MODEL`: the GGUF an unbaked instance loads (its directory preopened).
    pub model_path: Option<String>,
    pub upstream: Option<Upstream>,
    /// Classify goes to the cloud when the local confidence is below this.
    pub min_confidence: Option<f64>,
    /// Generate goes to the cloud when the mean token log-probability is below this.
    pub min_logprob: Option<f64>,
}

/// An OpenAI-compatible chat-completions endpoint.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub https: bool,
    /// host[:port]
    pub authority: String,
    pub path: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout_ms: u64,
}

impl Config {
    /// Inside the bake: defaults, local answers only.
    pub fn for_bake() -> Config {
        Config { max_body_bytes: usize::MAX, max_tokens: None, model_path: None, upstream: None, min_confidence: None, min_logprob: None }
    }

    pub fn from_env() -> Result<Config, String> {
        let var = |name: &str| env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str| -> Result<Option<f64>, String> {
            var(name)
                .map(|v| v.trim().parse::<f64>().map_err(|_| format!("{name}={v:?} is not a number")))
                .transpose()
        };
        let max_body_bytes = match number("EDGESLM_MAX_BODY_BYTES")? {
            Some(n) if n >= 1.0 => n as usize,
            Some(n) => return Err(format!("EDGESLM_MAX_BODY_BYTES={n} must be at least 1")),
            None => DEFAULT_MAX_BODY,
        };
        let max_tokens = match number("EDGESLM_MAX_TOKENS")? {
            Some(n) if (1.0..=u32::MAX as f64).contains(&n) => Some(n as u32),
            Some(n) => return Err(format!("EDGESLM_MAX_TOKENS={n} must be at least 1")),
            None => None,
        };
        let upstream = match var("EDGESLM_UPSTREAM_URL") {
            None => None,
            Some(url) => {
                let (https, authority, path) = parse_url(&url)?;
                let timeout_ms = match number("EDGESLM_UPSTREAM_TIMEOUT_MS")? {
                    Some(n) if n >= 1.0 => n as u64,
                    Some(n) => return Err(format!("EDGESLM_UPSTREAM_TIMEOUT_MS={n} must be at least 1")),
                    None => DEFAULT_UPSTREAM_TIMEOUT_MS,
                };
                Some(Upstream {
                    https,
                    authority,
                    path,
                    model: var("EDGESLM_UPSTREAM_MODEL").unwrap_or_else(|| "default".into()),
                    api_key: var("EDGESLM_UPSTREAM_API_KEY"),
                    timeout_ms,
                })
            }
        };
        Ok(Config {
            max_body_bytes,
            max_tokens,
            model_path: var("EDGESLM_MODEL"),
            upstream,
            min_confidence: number("EDGESLM_ROUTE_MIN_CONFIDENCE")?,
            min_logprob: number("EDGESLM_ROUTE_MIN_LOGPROB")?,
        })
    }
}

/// `http[s]://host[:port][/path]`; the path defaults to /v1/chat/completions.
fn parse_url(url: &str) -> Result<(bool, String, String), String> {
    let bad = || format!("EDGESLM_UPSTREAM_URL={url:?} is not an http:// or https:// URL");
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    let path = if path.is_empty() || path == "/" { "/v1/chat/completions" } else { path };
    Ok((https, authority.to_string(), path.to_string()))
}
