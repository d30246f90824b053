//! What the signed-playback routes take and answer (issue 26): signing keys
//! (`/signing-keys`, API key), minted tokens (`POST /playback-tokens`) and
//! a video's access flag (`POST /videos/{app_id}/{video_id}/access`). The
//! token's rules are `crate::video::playback_token`'s.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AppId, VideoId};
use crate::time::Timestamp;
use crate::video::playback_token::Alg;
use crate::wire::api::Fields;
use crate::ApiError;

fn optional_alg(f: &Fields) -> Result<Option<Alg>, ApiError> {
    match f.optional_str("alg")? {
        None => Ok(None),
        Some(a) => Alg::parse(a)
            .map(Some)
            .ok_or_else(|| ApiError::invalid_field(format!("alg must be RS256 or ES256, not {a:?}"))),
    }
}

/// `POST /signing-keys`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq)]
pub struct SigningKeyCreateRequest {
    pub app_id: AppId,
    /// RS256 (the default: 2048-bit RSA) or ES256 (P-256).
    pub alg: Option<Alg>,
}

impl SigningKeyCreateRequest {
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let f = Fields::parse(body)?;
        f.only(&["app_id", "alg"])?;
        Ok(Self { app_id: f.required_id("app_id", AppId::parse)?, alg: optional_alg(&f)? })
    }
}

/// A new signing key, with its private half: shown this once. The service
/// keeps only the public key.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SigningKeyCreated {
    /// The key's id: the JWT header's `kid`.
    pub id: String,
    pub app_id: AppId,
    pub alg: Alg,
    pub created_at: Timestamp,
    /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), for
    /// `jsonwebtoken`, `jose`'s `importPKCS8`, OpenSSL.
    pub pem: String,
    /// The private key as a JWK (with `kid` and `alg`), for `jose`'s `importJWK`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub jwk: Value,
}

/// One key of `GET /signing-keys` (no key material).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyInfo {
    pub id: String,
    pub alg: Alg,
    pub created_at: Timestamp,
}

/// `GET /signing-keys?app_id=`: the app's keys that sign valid tokens,
/// oldest first (revoked keys are gone; the service's own minting key is not listed).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyList {
    pub keys: Vec<SigningKeyInfo>,
}

/// `DELETE /signing-keys/{id}?app_id=`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRevoked {
    pub id: String,
    /// Always true: tokens it signed are refused from now on (within the
    /// key cache's life, `SIGNING_KEY_CACHE_S`, and KV's propagation).
    pub revoked: bool,
}

/// A public key as public reads find it in KV (`signing-key/{kid}`): whose
/// it is, its algorithm and the JWK Web Crypto imports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicKeyRecord {
    pub app_id: AppId,
    pub alg: Alg,
    pub jwk: Value,
}

/// `POST /playback-tokens`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq)]
pub struct PlaybackTokenRequest {
    pub app_id: AppId,
    pub video_id: VideoId,
    /// Seconds the token lives, 1 to 86400 (default 3600).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86400, default = 3600))]
    pub ttl_s: Option<u64>,
    /// Whether it also opens the video's MP4 download (default false).
    pub downloadable: Option<bool>,
}

impl PlaybackTokenRequest {
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let f = Fields::parse(body)?;
        f.only(&["app_id", "video_id", "ttl_s", "downloadable"])?;
        Ok(Self {
            app_id: f.required_id("app_id", AppId::parse)?,
            video_id: f.required_id("video_id", VideoId::parse)?,
            ttl_s: match f.raw("ttl_s").filter(|v| !v.is_null()) {
                None => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    ApiError::invalid_field(format!("ttl_s must be a whole number of seconds, not {v}"))
                })?),
            },
            downloadable: f.optional_bool("downloadable")?,
        })
    }
}

/// The answer of `POST /playback-tokens`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaybackTokenResponse {
    /// An ES256 JWT signed with the app's service key.
    pub token: String,
    pub expires_at: Timestamp,
    /// `/hls/t/{token}/master.m3u8`: give it to the player as it is.
    pub playback_url: String,
    /// `/hls/t/{token}/poster.jpg`.
    pub poster_url: String,
    /// `/download?token=`, for a `downloadable` token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
}

/// `POST /videos/{app_id}/{video_id}/access`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRequest {
    /// True: the video's public routes answer only with a token.
    pub require_signed_urls: bool,
}

impl AccessRequest {
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let f = Fields::parse(body)?;
        f.only(&["require_signed_urls"])?;
        let flag = f.optional_bool("require_signed_urls")?.ok_or_else(|| {
            ApiError::invalid_field("require_signed_urls is required: true (tokens needed) or false (public)")
        })?;
        Ok(Self { require_signed_urls: flag })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_read() {
        let r = SigningKeyCreateRequest::from_json(br#"{"app_id":"a"}"#).unwrap();
        assert_eq!((r.app_id.as_str(), r.alg), ("a", None));
        let r = SigningKeyCreateRequest::from_json(br#"{"app_id":"a","alg":"ES256"}"#).unwrap();
        assert_eq!(r.alg, Some(Alg::Es256));
        let r = PlaybackTokenRequest::from_json(br#"{"app_id":"a","video_id":"v","ttl_s":60,"downloadable":true}"#)
            .unwrap();
        assert_eq!((r.ttl_s, r.downloadable), (Some(60), Some(true)));
        assert!(AccessRequest::from_json(br#"{"require_signed_urls":true}"#).unwrap().require_signed_urls);
        for (what, e) in [
            ("alg", SigningKeyCreateRequest::from_json(br#"{"app_id":"a","alg":"HS256"}"#).unwrap_err()),
            ("unknown", SigningKeyCreateRequest::from_json(br#"{"app_id":"a","x":1}"#).unwrap_err()),
            ("no video", PlaybackTokenRequest::from_json(br#"{"app_id":"a"}"#).unwrap_err()),
            ("ttl", PlaybackTokenRequest::from_json(br#"{"app_id":"a","video_id":"v","ttl_s":"1"}"#).unwrap_err()),
            ("flag", AccessRequest::from_json(br#"{}"#).unwrap_err()),
            ("flag type", AccessRequest::from_json(br#"{"require_signed_urls":"yes"}"#).unwrap_err()),
        ] {
            assert_eq!(e.status(), 400, "{what}: {}", e.message);
        }
    }
}
