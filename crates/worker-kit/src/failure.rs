//! The one error type handlers return ([`Failure`]) and its conversion to
//! the JSON error the client sees ([`Failure::to_reply`]), in one place.
//!
//! Client errors carry the message of the rule that refused them. Our own
//! faults are logged and sent to Sentry with their detail, while the client
//! gets a generic message: internals never leak.

use media_core::http::sigv4::SigningError;
use media_core::{ApiError, ErrorCode};
use worker::{Response, ResponseBody};

use crate::config::ConfigError;
use crate::reply::Reply;
use crate::store::StoreError;

/// Why a handler did not produce its normal answer.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The client must change something; the message says what.
    Client(ApiError),
    /// Our fault. `detail` goes to logs and Sentry only.
    Internal { detail: String },
    /// A dependency (storage, KV, the job queue) failed. `detail` goes to logs and Sentry only.
    Unavailable { detail: String },
}

/// What every handler returns.
pub type Handled = Result<Response, Failure>;

impl Failure {
    pub fn internal(detail: impl Into<String>) -> Self {
        Failure::Internal { detail: detail.into() }
    }

    /// The error as the client sees it.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Failure::Client(e) => e.clone(),
            Failure::Internal { .. } => ApiError::internal(),
            Failure::Unavailable { .. } => ApiError::new(
                ErrorCode::Unavailable,
                "a storage or queue service did not answer; please retry in a few seconds",
            ),
        }
    }

    /// The detail to report, for our own faults.
    pub fn report_detail(&self) -> Option<&str> {
        match self {
            Failure::Client(_) => None,
            Failure::Internal { detail } | Failure::Unavailable { detail } => Some(detail),
        }
    }

    /// The JSON error answer the client gets.
    pub fn to_reply(&self) -> Reply {
        error_reply(&self.to_api_error())
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Client(e)
    }
}

impl From<worker::Error> for Failure {
    fn from(e: worker::Error) -> Self {
        Failure::Internal { detail: format!("runtime error: {e}") }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Internal { detail: format!("configuration: {e}") }
    }
}

impl From<SigningError> for Failure {
    fn from(e: SigningError) -> Self {
        Failure::Internal { detail: e.to_string() }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            // Retrying cannot sign a request that could not be signed: a 500, not a 503.
            StoreError::Signing { .. } => Failure::Internal { detail: format!("storage: {e}") },
            _ => Failure::Unavailable { detail: format!("storage: {e}") },
        }
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

/// 404 for a path no route serves.
pub fn no_route(path: &str) -> Failure {
    Failure::Client(ApiError::not_found(format!(
        "no route for {path}; see /openapi.json for the routes of this service"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

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
