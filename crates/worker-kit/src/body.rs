//! Reading a request body: streamed, with a cap, so that an oversized
//! upload is refused (413) as soon as it passes the cap, without being read
//! whole.

use futures_util::StreamExt;
use media_core::{ApiError, ErrorCode};
use worker::Request;

use crate::failure::Failure;

/// Reads the body, refusing more than `max` bytes with 413: by the declared
/// `Content-Length` before anything is read, and otherwise (a chunked body,
/// or one whose length is not declared) chunk by chunk as it arrives, so
/// that reading stops, and the rest of the upload is cancelled, as soon as
/// the cap is passed. A body that ends short of its declared length (the
/// client went away) is refused too, rather than taken for the whole.
pub async fn read_body(req: &mut Request, max: u64) -> Result<Vec<u8>, Failure> {
    let too_large = |what: String| {
        Failure::Client(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is {what} bytes; this route takes at most {max} bytes"),
        ))
    };
    let unreadable = |e: worker::Error| {
        Failure::Client(ApiError::new(ErrorCode::InvalidJson, format!("the request body could not be read: {e}")))
    };
    let declared = req.headers().get("content-length")?.and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(declared) = declared {
        if declared > max {
            return Err(too_large(declared.to_string()));
        }
    }
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    // `declared` is at most `max` here, so this never reserves more than the cap.
    let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let mut chunks = req.stream().map_err(unreadable)?;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if (body.len() + chunk.len()) as u64 > max {
            // Dropping the stream cancels it: nothing more is read.
            return Err(too_large(format!("more than {max}")));
        }
        body.extend_from_slice(&chunk);
    }
    if let Some(declared) = declared {
        if (body.len() as u64) < declared {
            return Err(Failure::Client(ApiError::new(
                ErrorCode::InvalidJson,
                format!("the request body ended after {} of its {declared} bytes; send it again", body.len()),
            )));
        }
    }
    Ok(body)
}
