//! The error contract of every public route: a stable machine-readable code,
//! the HTTP status it maps to, and a message that tells the caller what to
//! change. Every error body is `{"error": {"code": "...", "message": "..."}}`.

use serde::{Deserialize, Serialize};

/// A stable error code. Clients may match on these strings; add new codes
/// rather than changing the meaning of an existing one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body is not valid JSON or not the expected shape.
    InvalidJson,
    /// A field is missing or has an invalid value.
    InvalidField,
    /// A query parameter is missing or invalid.
    InvalidQuery,
    /// The `x-api-key` header (or the internal bearer token) is missing.
    Unauthorized,
    /// The key or token was given but is not valid.
    Forbidden,
    /// The API key is valid but may not act for the request's `app_id`.
    AppNotAllowed,
    /// A playback token is missing its parts, expired, altered, or signed
    /// by a key that is unknown or revoked: mint a new one.
    InvalidToken,
    /// The media requires a signed URL (a token) and the request has none.
    SignedUrlRequired,
    /// No such job, asset or route.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// The resource is not in a state that allows this (not playable yet, id taken).
    Conflict,
    /// The transcoder's lease on a job is gone; it must stop working on it.
    LeaseLost,
    /// The upload notified has not arrived in storage.
    UploadMissing,
    /// The body or declared size is over the limit.
    PayloadTooLarge,
    /// The content type is not accepted, or the bytes are not of the type claimed.
    UnsupportedMediaType,
    /// A `Range` header that cannot be satisfied.
    RangeNotSatisfiable,
    /// The image is stored but cannot be transformed: corrupt, too many
    /// pixels, or over the transformer's input limit. The original is still
    /// served as it is.
    ImageUnprocessable,
    /// Too many requests from this client; see `Retry-After`.
    RateLimited,
    /// Our fault; details go to the logs and Sentry, never to the client.
    Internal,
    /// Storage or another dependency did not answer.
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status this code is sent with.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson | ErrorCode::InvalidField | ErrorCode::InvalidQuery => 400,
            ErrorCode::Unauthorized | ErrorCode::InvalidToken => 401,
            ErrorCode::Forbidden | ErrorCode::AppNotAllowed | ErrorCode::SignedUrlRequired => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict | ErrorCode::LeaseLost | ErrorCode::UploadMissing => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::RangeNotSatisfiable => 416,
            ErrorCode::ImageUnprocessable => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::AppNotAllowed => "app_not_allowed",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::SignedUrlRequired => "signed_url_required",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::LeaseLost => "lease_lost",
            ErrorCode::UploadMissing => "upload_missing",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RangeNotSatisfiable => "range_not_satisfiable",
            ErrorCode::ImageUnprocessable => "image_unprocessable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    /// The code of a wire name, for errors relayed between services.
    pub fn parse(name: &str) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::InvalidJson,
        ErrorCode::InvalidField,
        ErrorCode::InvalidQuery,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::AppNotAllowed,
        ErrorCode::InvalidToken,
        ErrorCode::SignedUrlRequired,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::LeaseLost,
        ErrorCode::UploadMissing,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::RangeNotSatisfiable,
        ErrorCode::ImageUnprocessable,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ];
}

/// An error as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    pub fn invalid_field(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidField, message)
    }

    pub fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidQuery, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// A fault of ours: the client gets a generic message, the detail stays in logs.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "something went wrong on our side; it has been reported, please try again")
    }

    /// The JSON body: `{"error": {"code": "...", "message": "..."}}`.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: ErrorDetail { code: self.code.as_str().to_owned(), message: self.message.clone() } }
    }

    /// Reads an error body relayed from another component.
    pub fn from_json(body: &str) -> Option<ApiError> {
        let b: ErrorBody = serde_json::from_str(body).ok()?;
        Some(ApiError::new(ErrorCode::parse(&b.error.code)?, b.error.message))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.body()).expect("error bodies always serialize")
    }
}

/// The wire shape of an error.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[cfg_attr(feature = "openapi", schema(value_type = ErrorCode))]
    pub code: String,
    /// What went wrong and what to change.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_status_and_a_snake_case_name() {
        let expected = [
            (ErrorCode::InvalidJson, 400, "invalid_json"),
            (ErrorCode::InvalidField, 400, "invalid_field"),
            (ErrorCode::InvalidQuery, 400, "invalid_query"),
            (ErrorCode::Unauthorized, 401, "unauthorized"),
            (ErrorCode::Forbidden, 403, "forbidden"),
            (ErrorCode::AppNotAllowed, 403, "app_not_allowed"),
            (ErrorCode::InvalidToken, 401, "invalid_token"),
            (ErrorCode::SignedUrlRequired, 403, "signed_url_required"),
            (ErrorCode::NotFound, 404, "not_found"),
            (ErrorCode::MethodNotAllowed, 405, "method_not_allowed"),
            (ErrorCode::Conflict, 409, "conflict"),
            (ErrorCode::LeaseLost, 409, "lease_lost"),
            (ErrorCode::UploadMissing, 409, "upload_missing"),
            (ErrorCode::PayloadTooLarge, 413, "payload_too_large"),
            (ErrorCode::UnsupportedMediaType, 415, "unsupported_media_type"),
            (ErrorCode::RangeNotSatisfiable, 416, "range_not_satisfiable"),
            (ErrorCode::ImageUnprocessable, 422, "image_unprocessable"),
            (ErrorCode::RateLimited, 429, "rate_limited"),
            (ErrorCode::Internal, 500, "internal"),
            (ErrorCode::Unavailable, 503, "unavailable"),
        ];
        assert_eq!(expected.len(), ErrorCode::ALL.len());
        for (code, status, name) in expected {
            assert_eq!(code.status(), status, "{name}");
            assert_eq!(code.as_str(), name);
            // serde and as_str agree.
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(name));
            assert_eq!(ErrorCode::parse(name), Some(code));
        }
    }

    #[test]
    fn body_has_the_documented_shape() {
        let e = ApiError::invalid_field("app_id must be 1-64 characters");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "invalid_field", "message": "app_id must be 1-64 characters"}})
        );
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn internal_errors_reveal_nothing() {
        assert!(!ApiError::internal().message.contains("panic"));
        assert_eq!(ApiError::internal().status(), 500);
    }
}
