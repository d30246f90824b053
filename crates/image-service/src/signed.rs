//! The signed-URL gate of the public image routes (originals and variants):
//! a request whose query has `exp`/`sig` is checked against its app's
//! URL-signing secrets ([`crate::url_keys`]; the rules are
//! `media_core::image::url_signing`) before anything else, and refused
//! (401 `invalid_token`, saying why) unless it verifies; one without them
//! is unsigned. An image whose record requires signed URLs answers unsigned
//! requests 403 `signed_url_required`. A signature refused after the
//! secrets were read counts against the client address's budget of reads
//! past the edge (`PUBLIC_RATE_LIMITER`), as an edge miss does.
//!
//! Edge-cached copies are kept apart ([`cache_key`]): answers to signed
//! requests under `{origin}/signed/...`, which only a verified request
//! looks up, answers to unsigned ones under the public key. So an unsigned
//! request never reaches a private image's copy, and signed requests of
//! every viewer share one copy (the signature is not part of the key).
//! Signed answers go to clients as `private`, cached until `exp` at most.

use media_core::ids::AppId;
use media_core::image::url_signing;
use media_core::ApiError;
use worker::{Request, Response};
use worker_kit::clock::now;
use worker_kit::ratelimit::enforce_public;
use worker_kit::Failure;

use crate::ImageContext;

/// A verified signed request: when its URL expires (unix seconds).
#[derive(Debug, Clone, Copy)]
pub struct Signed {
    pub exp: u64,
}

/// The request's signature, verified: `None` for an unsigned request.
pub async fn check(req: &Request, cx: &ImageContext<'_>, app: &AppId) -> Result<Option<Signed>, Failure> {
    let url = req.url()?;
    let Some(q) = url_signing::parse(url.path(), url.query()).map_err(ApiError::from)? else {
        return Ok(None);
    };
    let at = now();
    // Expiry first: an expired URL costs no read.
    if at.secs() >= q.exp {
        return Err(ApiError::from(url_signing::SignatureError::Expired(media_core::time::Timestamp::from_secs(
            q.exp,
        )))
        .into());
    }
    let keys = crate::url_keys::load(cx.env, app).await?;
    if let Err(refused) = q.verify(keys.secrets(at), at) {
        // A refusal took a KV read past the edge cache: counted like any such read (429 past the budget).
        enforce_public(cx.env, req, "signed-url").await?;
        return Err(ApiError::from(refused).into());
    }
    Ok(Some(Signed { exp: q.exp }))
}

/// The edge cache key of `path` (with its query, for `f=auto`) at `origin`.
pub fn cache_key(origin: &str, path: &str, signed: Option<Signed>) -> String {
    match signed {
        Some(_) => format!("{origin}/signed{path}"),
        None => format!("{origin}{path}"),
    }
}

/// Refuses an unsigned request for an image that requires signed URLs.
pub fn require(private: bool, signed: Option<Signed>) -> Result<(), Failure> {
    if private && signed.is_none() {
        return Err(url_signing::signed_url_required().into());
    }
    Ok(())
}

/// A signed answer as its client gets it: `private` (no shared cache keeps
/// it), and kept no longer than the URL's `exp`. Unsigned answers keep
/// their caching.
pub fn for_client(resp: &mut Response, signed: Option<Signed>) -> worker::Result<()> {
    if let Some(Signed { exp }) = signed {
        let left = exp.saturating_sub(now().secs());
        resp.headers_mut().set("cache-control", &format!("private, max-age={left}"))?;
    }
    Ok(())
}
