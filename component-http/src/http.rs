//! wasi:http plumbing: the incoming request in (body streamed, with a cap), the JSON response
//! out, and the one outgoing call the cloud route makes.

use crate::api::{self, Request, Response};
use crate::config::{Config, Upstream};
use crate::wasi::http::outgoing_handler;
use crate::wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, RequestOptions,
    ResponseOutparam, Scheme,
};
use crate::wasi::io::streams::{InputStream, StreamError};

/// The largest answer accepted from the upstream.
const MAX_UPSTREAM_BODY: usize = 4 << 20;

pub fn serve(request: IncomingRequest, out: ResponseOutparam) {
    let response = match Config::from_env() {
        Err(e) => api::error(500, "config_error", e),
        Ok(config) => match read_request(&request, config.max_body_bytes) {
            Ok(req) => api::handle(&req, &config),
            Err(response) => response,
        },
    };
    respond(out, &response);
}

fn read_request(request: &IncomingRequest, cap: usize) -> Result<Request, Response> {
    let method = match request.method() {
        Method::Get => "GET".to_string(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(m) => m,
    };
    let target = request.path_with_query().unwrap_or_else(|| "/".into());
    let path = target.split('?').next().unwrap_or("/").to_string();
    let too_large = || api::error(413, "body_too_large", format!("the request body is larger than {cap} bytes"));
    // A declared length over the cap is refused before reading anything.
    let declared = request.headers().get("content-length");
    if let Some(n) = declared.first().and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok()) {
        if n > cap as u64 {
            return Err(too_large());
        }
    }
    let body = request.consume().map_err(|_| api::error(500, "internal", "the request body was already taken"))?;
    let bytes = {
        let stream = body.stream().map_err(|_| api::error(500, "internal", "the request body has no stream"))?;
        read_capped(&stream, cap).map_err(|e| match e {
            ReadError::TooLarge => too_large(),
            ReadError::Stream(m) => api::error(400, "bad_body", format!("reading the request body: {m}")),
        })?
    };
    drop(IncomingBody::finish(body));
    Ok(Request { method, path, body: bytes })
}

enum ReadError {
    TooLarge,
    Stream(String),
}

/// Read a stream to its end, failing as soon as it passes `cap` bytes.
fn read_capped(stream: &InputStream, cap: usize) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > cap {
                    return Err(ReadError::TooLarge);
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => return Err(ReadError::Stream(e.to_debug_string())),
        }
    }
}

fn respond(out: ResponseOutparam, response: &Response) {
    let body = response.body.to_string().into_bytes();
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        ("content-type".into(), b"application/json".to_vec()),
        ("content-length".into(), body.len().to_string().into_bytes()),
    ];
    if let Some(allow) = response.allow {
        headers.push(("allow".into(), allow.as_bytes().to_vec()));
    }
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let resp = OutgoingResponse::new(fields);
    let _ = resp.set_status_code(response.status);
    let Ok(out_body) = resp.body() else { return };
    ResponseOutparam::set(out, Ok(resp));
    if let Ok(stream) = out_body.write() {
        // blocking-write-and-flush takes at most 4096 bytes per call.
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return; // the client went away; nothing left to tell it
            }
        }
    }
    let _ = OutgoingBody::finish(out_body, None);
}

/// POST a JSON body to the upstream; its status and body, or why there is none.
pub fn post_json(upstream: &Upstream, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        ("content-type".into(), b"application/json".to_vec()),
        ("content-length".into(), body.len().to_string().into_bytes()),
    ];
    if let Some(key) = &upstream.api_key {
        headers.push(("authorization".into(), format!("Bearer {key}").into_bytes()));
    }
    let fields = Fields::from_list(&headers).map_err(|e| format!("request headers: {e:?}"))?;
    let req = OutgoingRequest::new(fields);
    let ok = req.set_method(&Method::Post).is_ok()
        && req.set_scheme(Some(if upstream.https { &Scheme::Https } else { &Scheme::Http })).is_ok()
        && req.set_authority(Some(&upstream.authority)).is_ok()
        && req.set_path_with_query(Some(&upstream.path)).is_ok();
    if !ok {
        return Err(format!("the upstream {}{} is not a valid request target", upstream.authority, upstream.path));
    }
    let out_body = req.body().map_err(|_| "the request body was already taken".to_string())?;
    let options = RequestOptions::new();
    let ns = upstream.timeout_ms.saturating_mul(1_000_000);
    // Hosts that do not support a timeout refuse it; the others still apply.
    let _ = options.set_connect_timeout(Some(ns));
    let _ = options.set_first_byte_timeout(Some(ns));
    let _ = options.set_between_bytes_timeout(Some(ns));
    let future = outgoing_handler::handle(req, Some(options)).map_err(|e| format!("upstream: {e:?}"))?;
    {
        let stream = out_body.write().map_err(|_| "the request body has no stream".to_string())?;
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| format!("sending to the upstream: {e:?}"))?;
        }
    }
    OutgoingBody::finish(out_body, None).map_err(|e| format!("sending to the upstream: {e:?}"))?;
    let response = loop {
        match future.get() {
            Some(Ok(Ok(r))) => break r,
            Some(Ok(Err(e))) => return Err(format!("upstream: {e:?}")),
            Some(Err(())) => return Err("upstream: the response was already taken".into()),
            None => future.subscribe().block(),
        }
    };
    let status = response.status();
    let body = response.consume().map_err(|_| "upstream: no response body".to_string())?;
    let bytes = {
        let stream = body.stream().map_err(|_| "upstream: no response body stream".to_string())?;
        read_capped(&stream, MAX_UPSTREAM_BODY).map_err(|e| match e {
            ReadError::TooLarge => format!("upstream: the answer is larger than {MAX_UPSTREAM_BODY} bytes"),
            ReadError::Stream(m) => format!("upstream: {m}"),
        })?
    };
    drop(IncomingBody::finish(body));
    Ok((status, bytes))
}
