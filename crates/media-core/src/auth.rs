//! Checking credentials: the API keys of `IV_API_KEY` (comma-separated) and
//! the transcoder's bearer token. Comparisons hash both sides first and
//! compare digests in constant time, so neither the content nor the length of
//! a configured key leaks through timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ErrorCode};

/// Constant-time equality of two secrets.
pub fn secrets_equal(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// The configured keys of a comma-separated list (blank entries dropped).
pub fn parse_key_list(configured: &str) -> Vec<&str> {
    configured.split(',').map(str::trim).filter(|k| !k.is_empty()).collect()
}

/// Checks the `x-api-key` value against the configured keys: 401 when it is
/// missing or empty, 403 when it matches none. Every configured key is
/// compared, so the time taken does not say which one matched.
pub fn check_api_key(given: Option<&str>, configured: &[&str]) -> Result<(), ApiError> {
    let given = match given {
        Some(g) if !g.is_empty() => g,
        _ => return Err(ApiError::new(ErrorCode::Unauthorized, "this route needs an API key: send it in the x-api-key header")),
    };
    let matched = configured.iter().fold(false, |acc, k| acc | secrets_equal(given, k));
    if matched {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Forbidden, "the API key in x-api-key is not valid for this service"))
    }
}

/// Checks an `Authorization: Bearer <token>` header against the expected token.
pub fn check_bearer(authorization: Option<&str>, expected: &str) -> Result<(), ApiError> {
    let token = authorization
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "this route needs the transcoder token: send Authorization: Bearer <TRANSCODER_TOKEN>"))?;
    if !expected.is_empty() && secrets_equal(token, expected) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Forbidden, "the bearer token is not valid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_matrix() {
        let keys = parse_key_list(" key-one ,, key-two,");
        assert_eq!(keys, ["key-one", "key-two"]);
        let cases: &[(Option<&str>, Option<u16>)] = &[
            (Some("key-one"), None),
            (Some("key-two"), None),
            (None, Some(401)),
            (Some(""), Some(401)),
            (Some("key-thr"), Some(403)),
            (Some("key-one "), Some(403)),
            (Some("KEY-ONE"), Some(403)),
            (Some("key-one,key-two"), Some(403)),
            (Some("key"), Some(403)),
        ];
        for (given, want) in cases {
            let got = check_api_key(*given, &keys).err().map(|e| e.status());
            assert_eq!(got, *want, "{given:?}");
        }
        // No configured keys: nobody gets in.
        assert_eq!(check_api_key(Some("anything"), &[]).unwrap_err().status(), 403);
    }

    #[test]
    fn bearer_matrix() {
        let cases: &[(Option<&str>, Option<u16>)] = &[
            (Some("Bearer s3cret"), None),
            (Some("bearer s3cret"), None),
            (None, Some(401)),
            (Some("Bearer "), Some(401)),
            (Some("Basic s3cret"), Some(401)),
            (Some("s3cret"), Some(401)),
            (Some("Bearer s3cre"), Some(403)),
            (Some("Bearer s3cret2"), Some(403)),
        ];
        for (given, want) in cases {
            assert_eq!(check_bearer(*given, "s3cret").err().map(|e| e.status()), *want, "{given:?}");
        }
        assert_eq!(check_bearer(Some("Bearer x"), "").unwrap_err().status(), 403, "an unset token admits nobody");
    }
}
