//! The one error type handlers return ([`Failure`]) and the error the
//! client sees of it ([`Failure::to_api_error`]), in one place; the reply
//! module turns that into the JSON answer (its `error_reply`).
//!
//! Client errors carry the message of the rule that refused them. Our own
//! faults are logged and sent to Sentry with their detail, while the client
//! gets a generic message: internals never leak.

use media_core::http::sigv4::SigningError;
use media_core::{ApiError, ErrorCode};
use worker::Response;

use crate::config::ConfigError;
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

/// 404 for a path no route serves.
pub fn no_route(path: &str) -> Failure {
    Failure::Client(ApiError::not_found(format!(
        "no route for {path}; see /openapi.json for the routes of this service"
    )))
}
