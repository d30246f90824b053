//! A response as plain data: status, headers and body. The rules that choose
//! an answer (errors, object serving) build a [`Reply`], which runs and is
//! tested natively; [`Reply::into_response`] is the one place it becomes a
//! `worker::Response`. Also [`json`], the answer of every JSON route.

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
