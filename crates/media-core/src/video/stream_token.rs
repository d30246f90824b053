//! Stream tokens: what lets a browser's `EventSource` open its app's
//! `/events` stream, which needs the API key otherwise (an `EventSource`
//! cannot send headers, and the key must never reach a browser or a URL).
//!
//! - The app's backend mints one with its API key (`POST /events/token`):
//!   the claims (the app, the expiry) signed with HMAC-SHA256, as
//!   `st1.{hex(JSON claims)}.{hex(mac)}`, the form of
//!   [`crate::video::upload_session::UploadToken`], with its own prefix and
//!   its own key ([`stream_token_key`], derived with another label), so an
//!   upload token never passes as a stream token, nor the reverse.
//! - It reads one app's stream and does nothing else; it lives
//!   [`DEFAULT_STREAM_TOKEN_TTL_S`] unless asked otherwise (at most
//!   [`MAX_STREAM_TOKEN_TTL_S`]), and is checked when a stream opens: an open
//!   stream is not cut at the expiry, a reconnection after it is refused (401).
//! - Nothing is stored for it, so it cannot be revoked before it expires:
//!   hence the short life.
//! - URLs reach logs: `super::redact::url_for_logs` hides the token in them.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{ApiError, ErrorCode};
use crate::ids::AppId;
use crate::time::Timestamp;

/// How long a stream token lives unless the backend asks otherwise.
pub const DEFAULT_STREAM_TOKEN_TTL_S: u64 = 600;
/// The longest a stream token may live.
pub const MAX_STREAM_TOKEN_TTL_S: u64 = 3600;
/// The query parameter that carries a stream token.
pub const STREAM_TOKEN_PARAM: &str = "stream_token";

const TOKEN_PREFIX: &str = "st1";

/// What a stream token allows: reading `app_id`'s stream until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamClaims {
    pub app_id: AppId,
    #[serde(with = "crate::time::epoch_millis")]
    pub expires_at: Timestamp,
}

impl StreamClaims {
    /// The claims of a token minted at `now` for `ttl_s` seconds (absent:
    /// the default); 400 for a life of 0 or past the maximum.
    pub fn new(app_id: AppId, ttl_s: Option<u64>, now: Timestamp) -> Result<Self, ApiError> {
        let ttl_s = ttl_s.unwrap_or(DEFAULT_STREAM_TOKEN_TTL_S);
        if !(1..=MAX_STREAM_TOKEN_TTL_S).contains(&ttl_s) {
            return Err(ApiError::invalid_field(format!(
                "ttl_s is {ttl_s}; a stream token lives from 1 to {MAX_STREAM_TOKEN_TTL_S} seconds (default {DEFAULT_STREAM_TOKEN_TTL_S})"
            )));
        }
        Ok(StreamClaims { app_id, expires_at: now.plus_secs(ttl_s) })
    }
}

/// A signed stream token: `st1.{hex(JSON claims)}.{hex(HMAC-SHA256)}`.
pub struct StreamToken;

impl StreamToken {
    /// The token for `claims`, signed with `key` ([`stream_token_key`]).
    pub fn sign(claims: &StreamClaims, key: &[u8]) -> String {
        let body = hex::encode(serde_json::to_vec(claims).expect("claims serialise"));
        let signed = format!("{TOKEN_PREFIX}.{body}");
        format!("{signed}.{}", hex::encode(mac(key, signed.as_bytes())))
    }

    /// The claims of a token signed with `key` that has not expired by
    /// `now`; 401 for anything else (malformed, another kind of token,
    /// altered, expired), which tells the page to ask its backend for a new one.
    pub fn verify(token: &str, key: &[u8], now: Timestamp) -> Result<StreamClaims, ApiError> {
        let refuse = |why: &str| {
            ApiError::new(
                ErrorCode::Unauthorized,
                format!("this stream token {why}; ask your backend for a new one (POST /events/token)"),
            )
        };
        let (signed, signature) = token.rsplit_once('.').ok_or_else(|| refuse("is malformed"))?;
        let (prefix, body) = signed.split_once('.').ok_or_else(|| refuse("is malformed"))?;
        if prefix != TOKEN_PREFIX {
            return Err(refuse("is not a stream token"));
        }
        let given = hex::decode(signature).map_err(|_| refuse("is malformed"))?;
        let mut check = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        check.update(signed.as_bytes());
        check.verify_slice(&given).map_err(|_| refuse("was not issued here (or was altered)"))?;
        let bytes = hex::decode(body).map_err(|_| refuse("is malformed"))?;
        let claims: StreamClaims = serde_json::from_slice(&bytes).map_err(|_| refuse("is malformed"))?;
        if now >= claims.expires_at {
            return Err(refuse(&format!("expired at {}", claims.expires_at)));
        }
        Ok(claims)
    }
}

/// The key stream tokens are signed with, derived from a secret the service
/// already has (the storage secret), with a label of its own: upload tokens
/// are signed with another key derived from the same secret.
pub fn stream_token_key(storage_secret: &str) -> Vec<u8> {
    mac(storage_secret.as_bytes(), b"media-platform stream tokens v1")
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::VideoId;
    use crate::video::upload_session::{token_key, PartPlan, UploadClaims, UploadToken};

    const T0: Timestamp = Timestamp::from_secs(1_700_000_000);
    const SECRET: &str = "storage-secret";

    fn app(s: &str) -> AppId {
        AppId::parse(s).unwrap()
    }

    #[test]
    fn a_token_carries_its_app_until_it_expires() {
        let key = stream_token_key(SECRET);
        let claims = StreamClaims::new(app("app1"), None, T0).unwrap();
        assert_eq!(claims.expires_at, T0.plus_secs(600));
        let token = StreamToken::sign(&claims, &key);
        assert!(token.starts_with("st1."), "{token}");
        assert_eq!(StreamToken::verify(&token, &key, T0.plus_secs(599)), Ok(claims));
        let e = StreamToken::verify(&token, &key, T0.plus_secs(600)).unwrap_err();
        assert_eq!((e.status(), e.code), (401, ErrorCode::Unauthorized));
        assert!(e.message.contains("expired at") && e.message.contains("POST /events/token"), "{}", e.message);
    }

    #[test]
    fn lives_are_bounded() {
        let c = StreamClaims::new(app("a"), Some(3600), T0).unwrap();
        assert_eq!(c.expires_at, T0.plus_secs(3600));
        for bad in [0, 3601, u64::MAX] {
            let e = StreamClaims::new(app("a"), Some(bad), T0).unwrap_err();
            assert_eq!(e.status(), 400, "{bad}");
        }
    }

    #[test]
    fn altered_foreign_and_upload_tokens_are_refused() {
        let key = stream_token_key(SECRET);
        let token = StreamToken::sign(&StreamClaims::new(app("app1"), None, T0).unwrap(), &key);
        let (signed, mac) = token.rsplit_once('.').unwrap();
        // Another app's claims under the first token's signature.
        let other = StreamClaims::new(app("app2"), None, T0).unwrap();
        let forged = format!("st1.{}.{mac}", hex::encode(serde_json::to_vec(&other).unwrap()));
        let mut flipped = mac.to_owned().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let cases = [
            ("forged claims", forged),
            ("altered signature", format!("{signed}.{}", String::from_utf8(flipped).unwrap())),
            ("another service's key", StreamToken::sign(&StreamClaims::new(app("app1"), None, T0).unwrap(), b"other")),
            ("no signature", signed.to_owned()),
            ("empty", String::new()),
            ("not hex", "st1.zz.zz".to_owned()),
        ];
        for (what, t) in cases {
            let e = StreamToken::verify(&t, &key, T0).unwrap_err();
            assert_eq!(e.status(), 401, "{what}");
        }
        // The same secret's upload key, and an upload token, never pass.
        assert_ne!(key, token_key(SECRET));
        let upload = UploadClaims {
            id: "s1".into(),
            app_id: app("app1"),
            video_id: VideoId::parse("v1").unwrap(),
            content_type: "video/mp4".into(),
            key: "raw/app1/v1/source.mp4".into(),
            plan: PartPlan::for_size(10 * 1024 * 1024).unwrap(),
            expires_at: T0.plus_secs(600),
        };
        let upload_token = UploadToken::sign(&upload, &token_key(SECRET));
        assert_eq!(StreamToken::verify(&upload_token, &key, T0).unwrap_err().status(), 401);
        // Even signed with the stream key and given the stream prefix.
        let relabeled = UploadToken::sign(&upload, &key).replacen("up1.", "st1.", 1);
        assert_eq!(StreamToken::verify(&relabeled, &key, T0).unwrap_err().status(), 401);
        // And a stream token is no upload token.
        assert!(UploadToken::verify(&token, &token_key(SECRET), T0).is_err());
        assert!(UploadToken::verify(&token.replacen("st1.", "up1.", 1), &token_key(SECRET), T0).is_err());
    }
}
