//! Reading a wasi:http body with a cap (the request's, and the upstream's answer).

use crate::wasi::io::streams::{InputStream, StreamError};

pub enum ReadError {
    TooLarge,
    Stream(String),
}

/// Read a stream to its end, failing as soon as it passes `cap` bytes.
pub fn read_capped(stream: &InputStream, cap: usize) -> Result<Vec<u8>, ReadError> {
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

