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
    respond(out, response);
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

fn respond(out: ResponseOutparam, response: Response) {
    let body = match response.events {
        Some(_) => Vec::new(),
        None => response.body.to_string().into_bytes(),
    };
    let mut headers: Vec<(String, Vec<u8>)> = match response.events {
        // Events are written as they are made: no length is known.
        Some(_) => vec![("content-type".into(), b"text/event-stream".to_vec()), ("cache-control".into(), b"no-cache".to_vec())],
        None => vec![
            ("content-type".into(), b"application/json".to_vec()),
            ("content-length".into(), body.len().to_string().into_bytes()),
        ],
    };
    if let Some(allow) = response.allow {
        headers.push(("allow".into(), allow.as_bytes().to_vec()));
    }
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let resp = OutgoingResponse::new(fields);
    let _ = resp.set_status_code(response.status);
    let Ok(out_body) = resp.body() else { return };
    ResponseOutparam::set(out, Ok(resp));
    let Ok(stream) = out_body.write() else { return };
    // blocking-write-and-flush takes at most 4096 bytes per call.
    let write = |bytes: &[u8]| bytes.chunks(4096).all(|chunk| stream.blocking_write_and_flush(chunk).is_ok());
    match response.events {
        Some(source) => {
            // A client that went away stops the writing, not the answer (the instance ends with it).
            let mut open = true;
            source(&mut |e| open = open && write(wire::event(&e).as_bytes()));
            if open {
                write(wire::EVENTS_DONE.as_bytes());
            }
        }
        None => {
            write(&body);
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(out_body, None);
}
