//! A response as plain data: status, headers and body. The rules that choose
//! an answer (errors, object serving) build a [`Reply`], which runs and is
//! tested natively; [`Reply::into_response`] is the one place it becomes a
//! `worker::Response`. Also [`json`], the answer of every JSON route, and
//! [`error_reply`], the JSON answer of every [`Failure`].
//!
//! This module knows `failure` (a JSON body can fail to serialise, and every
//! failure has its answer here); `failure` knows nothing of replies.

use media_core::{ApiError, ErrorCode};
use serde::Serialize;
use worker::{Headers, Response, ResponseBody};

use crate::failure::{Failure, Handled};

/// An answer before it is handed to the runtime. The body is a
/// `worker::ResponseBody`: bytes (natively, and for small answers), or a
/// stream from storage in workerd, passed through without being read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Lower-case names, in the order they are sent.
    pub headers: Vec<(String, String)>,
    pub body: ResponseBody,
}

impl Reply {
    /// An answer with `status`, no headers and no body.
    pub fn empty(status: u16) -> Self {
        Reply { status, headers: Vec::new(), body: ResponseBody::Empty }
    }

    /// Replaces every value of `name` with `value`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
    }

    /// The first value of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body's bytes, when it holds bytes (not a stream); empty for no body.
    pub fn body_bytes(&self) -> Option<&[u8]> {
        match &self.body {
            ResponseBody::Empty => Some(&[]),
            ResponseBody::Body(bytes) => Some(bytes),
            ResponseBody::Stream(_) => None,
        }
    }

    /// The `worker::Response` to hand to the runtime.
    pub fn into_response(self) -> worker::Result<Response> {
        let headers = Headers::new();
        for (name, value) in &self.headers {
            headers.append(name, value)?;
        }
        Ok(Response::from_body(self.body)?.with_status(self.status).with_headers(headers))
    }
}

/// A JSON answer with `status`, never cached.
pub fn json_reply<T: Serialize>(status: u16, body: &T) -> Result<Reply, Failure> {
    let text = serde_json::to_string(body).map_err(|e| Failure::internal(format!("serializing a response: {e}")))?;
    Ok(Reply {
        status,
        headers: vec![
            ("content-type".into(), "application/json; charset=utf-8".into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body: ResponseBody::Body(text.into_bytes()),
    })
}

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: u16, body: &T) -> Handled {
    Ok(json_reply(status, body)?.into_response()?)
}

impl Failure {
    /// The JSON error answer the client gets.
    pub fn to_reply(&self) -> Reply {
        error_reply(&self.to_api_error())
    }
}

/// The JSON error answer for `e`: its status, never cached, with
/// `Retry-After` when rate limited (60 s) or unavailable (5 s).
pub fn error_reply(e: &ApiError) -> Reply {
    let mut reply = Reply {
        status: e.status(),
        headers: vec![
            ("content-type".into(), "application/json; charset=utf-8".into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body: ResponseBody::Body(e.to_json().into_bytes()),
    };
    match e.code {
        ErrorCode::RateLimited => reply.set("retry-after", "60"),
        ErrorCode::Unavailable => reply.set("retry-after", "5"),
        _ => {}
    }
    reply
}

/// The JSON error response for `e` ([`error_reply`]).
pub fn error_response(e: &ApiError) -> Response {
    let status = e.status();
    error_reply(e)
        .into_response()
        .unwrap_or_else(|_| Response::empty().expect("an empty response can always be built").with_status(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;
    use crate::store::StoreError;

    fn body_json(reply: &Reply) -> serde_json::Value {
        serde_json::from_slice(reply.body_bytes().expect("a JSON body")).expect("JSON")
    }

    #[test]
    fn our_faults_answer_a_generic_message_and_keep_the_detail_for_the_report() {
        let unavailable = Failure::from(StoreError::Transport {
            op: "HEAD",
            key: "raw/a/v/source.mp4".into(),
            detail: "connect 127.0.0.1:1 refused".into(),
        });
        let reply = unavailable.to_reply();
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("retry-after"), Some("5"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let body = body_json(&reply);
        assert_eq!(body["error"]["code"], "unavailable");
        let text = String::from_utf8_lossy(reply.body_bytes().unwrap()).into_owned();
        assert!(!text.contains("127.0.0.1") && !text.contains("raw/a") && !text.contains("storage:"), "{text}");
        assert_eq!(unavailable.report_detail(), Some("storage: HEAD raw/a/v/source.mp4: connect 127.0.0.1:1 refused"));

        let internal = Failure::from(ConfigError { name: "IV_API_KEY".into(), problem: "cannot be used".into() });
        let reply = internal.to_reply();
        assert_eq!(reply.status, 500);
        assert_eq!(reply.header("retry-after"), None);
        assert!(!String::from_utf8_lossy(reply.body_bytes().unwrap()).contains("IV_API_KEY"));
        assert_eq!(internal.report_detail(), Some("configuration: IV_API_KEY cannot be used"));
    }

    #[test]
    fn a_request_storage_could_not_be_signed_is_our_fault_not_a_retry() {
        let failure = Failure::from(StoreError::Signing {
            op: "GET",
            key: "images/a/b".into(),
            detail: "invalid header value".into(),
        });
        let reply = failure.to_reply();
        assert_eq!((reply.status, reply.header("retry-after")), (500, None));
        assert_eq!(failure.report_detail(), Some("storage: GET images/a/b: signing: invalid header value"));
    }

    #[test]
    fn client_errors_keep_their_message_and_are_not_reported() {
        let refused = Failure::from(ApiError::not_found("no such image"));
        assert_eq!(refused.report_detail(), None);
        let reply = refused.to_reply();
        assert_eq!(reply.status, 404);
        assert_eq!(body_json(&reply)["error"]["message"], "no such image");
        let limited = Failure::from(ApiError::new(ErrorCode::RateLimited, "slow down")).to_reply();
        assert_eq!((limited.status, limited.header("retry-after")), (429, Some("60")));
    }
}
