//! wasi:http plumbing for the incoming side: the request in (body streamed, with a cap),
//! the JSON response out. The outgoing call is `outgoing.rs`.

use crate::api;
use crate::body::{read_capped, ReadError};
use crate::config::Config;
use crate::wasi::http::types::{Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use crate::wire::{self, Request, Response};

pub fn serve(request: IncomingRequest, out: ResponseOutparam) {
    let response = match Config::from_env() {
        Err(e) => wire::error(500, "config_error", e),
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
    let path = wire::path_of(&target).to_string();
    // A declared length over the cap is refused before reading anything.
    if wire::declared_length(&request.headers().get("content-length")).is_some_and(|n| n > cap as u64) {
        return Err(wire::too_large(cap));
    }
    let body = request.consume().map_err(|_| wire::error(500, "internal", "the request body was already taken"))?;
    let bytes = {
        let stream = body.stream().map_err(|_| wire::error(500, "internal", "the request body has no stream"))?;
        read_capped(&stream, cap).map_err(|e| match e {
            ReadError::TooLarge => wire::too_large(cap),
            ReadError::Stream(m) => wire::error(400, "bad_body", format!("reading the request body: {m}")),
        })?
    };
    drop(IncomingBody::finish(body));
    Ok(Request { method, path, body: bytes })
}

fn respond(out: ResponseOutparam, response: &Response) {
    let (body, content_type) = if response.event_stream {
        (wire::event_stream(&response.body).into_bytes(), &b"text/event-stream"[..])
    } else {
        (response.body.to_string().into_bytes(), &b"application/json"[..])
    };
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        ("content-type".into(), content_type.to_vec()),
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

