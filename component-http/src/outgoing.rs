//! The one outgoing call: the cloud route's POST to the upstream, over wasi:http.

use crate::body::{read_capped, ReadError};
use crate::config::Upstream;
use crate::wasi::http::outgoing_handler;
use crate::wasi::http::types::{Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme};

/// The largest answer accepted from the upstream.
const MAX_UPSTREAM_BODY: usize = 4 << 20;

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
