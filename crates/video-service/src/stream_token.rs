//! Stream tokens on the video service: `POST /events/token` (API key) mints
//! one for an app's backend to hand its page, and [`verify`] checks one when
//! `/events?app_id=&stream_token=` opens (`crate::events`). The token's
//! rules (claims, signature, life) are `media_core::video::stream_token`'s;
//! its key is derived from the storage secret, as upload tokens' is, with a
//! label of its own.

use media_core::ids::AppId;
use media_core::video::stream_token::{stream_token_key, StreamClaims, StreamToken, STREAM_TOKEN_PARAM};
use media_core::wire::api::{StreamTokenRequest, StreamTokenResponse};
use media_core::{ApiError, ErrorCode};
use worker::Request;
use worker_kit::body::read_body;
use worker_kit::clock::now;
use worker_kit::entry::guard;
use worker_kit::reply::json;
use worker_kit::{Failure, Handled};

use crate::VideoContext;

/// The largest request body `POST /events/token` reads.
const MAX_JSON_BODY: u64 = 4 * 1024;

/// The key stream tokens are signed with.
fn key(cx: &VideoContext<'_>) -> Result<Vec<u8>, Failure> {
    Ok(stream_token_key(&cx.presigner()?.credentials.secret_access_key))
}

/// `POST /events/token {app_id, ttl_s?}`: a token for `app_id`'s stream,
/// when it expires, and the stream's URL with it.
pub async fn mint(mut req: Request, cx: &VideoContext<'_>, base: &str) -> Handled {
    let grant = guard(&req, cx, "events-token").await?;
    let r = StreamTokenRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?)?;
    grant.check_app(&r.app_id)?;
    let claims = StreamClaims::new(r.app_id, r.ttl_s, now())?;
    let token = StreamToken::sign(&claims, &key(cx)?);
    // Ids and tokens are URL-safe as they are (letters, digits, '-', '_', '.').
    let events_url = format!("{base}/events?app_id={}&{STREAM_TOKEN_PARAM}={token}", claims.app_id);
    tracing::info!(app_id = %claims.app_id, expires_at = %claims.expires_at, "stream token minted");
    json(200, &StreamTokenResponse { token, expires_at: claims.expires_at, events_url })
}

/// Checks a stream token for a stream of `app_id`: 401 when it is not a
/// valid, unexpired stream token of this service, 403 `app_not_allowed`
/// when it reads another app.
pub fn verify(cx: &VideoContext<'_>, token: &str, app_id: &AppId) -> Result<StreamClaims, Failure> {
    let claims = StreamToken::verify(token, &key(cx)?, now())?;
    if &claims.app_id != app_id {
        return Err(ApiError::new(
            ErrorCode::AppNotAllowed,
            format!("this stream token reads app {:?}, not {:?}", claims.app_id.as_str(), app_id.as_str()),
        )
        .into());
    }
    Ok(claims)
}
