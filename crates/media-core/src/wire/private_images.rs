//! What the private-image routes of the image service take and answer:
//! `POST /images/{app_id}/{image_id}/access` (an image's
//! `require_signed_urls`), and `GET`/`POST /url-signing-keys` (an app's
//! URL-signing secrets, `crate::image::url_signing`). A secret is answered
//! once, by the `POST` that made it; lists show ids and dates only.

use serde::{Deserialize, Serialize};

use crate::ids::AppId;
use crate::time::Timestamp;
use crate::video::endpoint::rotation_grace;
use crate::wire::api::Fields;
use crate::ApiError;

/// `POST /images/{app_id}/{image_id}/access`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageAccessRequest {
    /// `true`: the original and every variant answer only to a signed URL
    /// (`exp` and `sig`); `false`: to anyone, as before.
    pub require_signed_urls: bool,
}

impl ImageAccessRequest {
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let f = Fields::parse(body)?;
        f.only(&["require_signed_urls"])?;
        let require_signed_urls = f
            .optional_bool("require_signed_urls")?
            .ok_or_else(|| ApiError::invalid_field("require_signed_urls is required (true or false)"))?;
        Ok(Self { require_signed_urls })
    }
}

/// `POST /url-signing-keys`: the app's first secret, or a new one that
/// replaces the current (which keeps signing for the grace).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlSigningKeyRequest {
    pub app_id: AppId,
    /// Seconds the current secret keeps signing beside the new one, 0 to
    /// 604800 (a week); default 86400 (a day).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 604800, default = 86400))]
    pub old_secret_expires_in_s: Option<u64>,
}

impl UrlSigningKeyRequest {
    /// The request, and the grace in seconds.
    pub fn from_json(body: &[u8]) -> Result<(Self, u64), ApiError> {
        let f = Fields::parse(body)?;
        f.only(&["app_id", "old_secret_expires_in_s"])?;
        let asked = f.optional_u64("old_secret_expires_in_s")?;
        let grace = rotation_grace(asked).map_err(ApiError::invalid_field)?;
        Ok((Self { app_id: f.required_id("app_id", AppId::parse)?, old_secret_expires_in_s: asked }, grace))
    }
}

/// A secret as a list shows it: never the secret.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlSigningKeyView {
    /// `usk_…`.
    pub id: String,
    pub created_at: Timestamp,
    /// `null` for the current secret; for one rotated out, when it stops signing.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub expires_at: Option<Timestamp>,
}

/// `POST /url-signing-keys`'s `201`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlSigningKeyCreated {
    pub app_id: AppId,
    /// `usk_…`.
    pub id: String,
    /// The secret (`uss_…`), shown this once: the HMAC-SHA256 key of the
    /// app's signed image URLs (its UTF-8 bytes).
    pub secret: String,
    pub created_at: Timestamp,
    /// The secret this one replaced, while it still signs.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub previous: Option<UrlSigningKeyView>,
}

/// `GET /url-signing-keys?app_id=`: the secrets that sign now, current first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlSigningKeyList {
    pub app_id: AppId,
    pub keys: Vec<UrlSigningKeyView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_body_is_one_required_boolean() {
        assert!(ImageAccessRequest::from_json(br#"{"require_signed_urls":true}"#).unwrap().require_signed_urls);
        for (body, want) in [
            (&br#"{}"#[..], "require_signed_urls is required"),
            (br#"{"require_signed_urls":"yes"}"#, "must be true or false"),
            (br#"{"require_signed_urls":true,"x":1}"#, "unknown field \"x\""),
        ] {
            let e = ImageAccessRequest::from_json(body).unwrap_err();
            assert!(e.message.contains(want), "{}", e.message);
        }
    }

    #[test]
    fn a_key_request_names_the_app_and_an_optional_grace() {
        let (r, grace) = UrlSigningKeyRequest::from_json(br#"{"app_id":"app-a"}"#).unwrap();
        assert_eq!((r.app_id.as_str(), grace), ("app-a", 86_400));
        let (_, grace) = UrlSigningKeyRequest::from_json(br#"{"app_id":"a","old_secret_expires_in_s":0}"#).unwrap();
        assert_eq!(grace, 0);
        assert!(UrlSigningKeyRequest::from_json(br#"{"app_id":"a","old_secret_expires_in_s":604801}"#).is_err());
        assert!(UrlSigningKeyRequest::from_json(br#"{}"#).unwrap_err().message.contains("app_id is required"));
    }
}
