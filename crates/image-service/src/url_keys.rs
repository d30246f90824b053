//! An app's URL-signing secrets (private images, `media_core::image::url_signing`):
//! `POST /url-signing-keys` `{app_id, old_secret_expires_in_s?}` makes the
//! app's first secret, or a new one that replaces the current (which keeps
//! signing for the grace, a day by default, as webhook secrets do), and
//! answers it once; `GET /url-signing-keys?app_id=` lists ids and dates,
//! never secrets. API key, only for an app the key may act for.
//!
//! Kept in KV (`MEDIA_KV`, `url-signing-keys/{app_id}`), beside the image
//! records that public reads already look up: a signed request costs one KV
//! read, served from the location's KV cache, and no Durable Object hop. KV
//! is eventually consistent: a new or rotated secret reaches every location
//! within KV's propagation (up to 60 s), which the grace covers for the
//! rotated-out one; two rotations of one app at the same moment keep only
//! the last write (rotations are rare operator actions; each answer says
//! what it stored, and `GET` shows what is kept).

use media_core::ids::AppId;
use media_core::image::url_signing::{key_id, secret, UrlSigningKey, UrlSigningKeys};
use media_core::wire::api::query_id;
use media_core::wire::private_images::{
    UrlSigningKeyCreated, UrlSigningKeyList, UrlSigningKeyRequest, UrlSigningKeyView,
};
use worker::{Env, Method, Request};
use worker_kit::body::read_body;
use worker_kit::clock::{now, random_bytes};
use worker_kit::entry::guard;
use worker_kit::query::query;
use worker_kit::reply::json;
use worker_kit::{Failure, Handled};

use crate::records::KV_BINDING;
use crate::ImageContext;

const MAX_JSON_BODY: u64 = 4 * 1024;

fn kv_key(app: &AppId) -> String {
    format!("url-signing-keys/{app}")
}

fn unavailable(e: impl std::fmt::Display) -> Failure {
    Failure::Unavailable { detail: format!("{KV_BINDING} url-signing-keys: {e}") }
}

/// The app's secrets (none yet: an empty set). A failed read is 503: a
/// signed request is never judged on secrets that could not be read.
pub async fn load(env: &Env, app: &AppId) -> Result<UrlSigningKeys, Failure> {
    let kv = env.kv(KV_BINDING).map_err(unavailable)?;
    Ok(kv.get(&kv_key(app)).json::<UrlSigningKeys>().await.map_err(unavailable)?.unwrap_or_default())
}

async fn save(env: &Env, app: &AppId, keys: &UrlSigningKeys) -> Result<(), Failure> {
    let text = serde_json::to_string(keys).map_err(|e| Failure::internal(e.to_string()))?;
    let kv = env.kv(KV_BINDING).map_err(unavailable)?;
    kv.put(&kv_key(app), text).map_err(unavailable)?.execute().await.map_err(unavailable)
}

fn view(k: &UrlSigningKey) -> UrlSigningKeyView {
    UrlSigningKeyView { id: k.id.clone(), created_at: k.created_at, expires_at: k.expires_at }
}

/// `GET`/`POST /url-signing-keys`.
pub async fn url_signing_keys(mut req: Request, cx: &ImageContext<'_>) -> Handled {
    let grant = guard(&req, cx, "url-signing-keys").await?;
    if req.method() == Method::Get {
        let app = query_id(&query(&req)?, "app_id", AppId::parse)?;
        grant.check_app(&app)?;
        let keys = load(cx.env, &app).await?;
        let keys = keys.live(now()).map(view).collect();
        return json(200, &UrlSigningKeyList { app_id: app, keys });
    }
    let (r, grace_s) = UrlSigningKeyRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?)?;
    grant.check_app(&r.app_id)?;
    let at = now();
    let mut keys = load(cx.env, &r.app_id).await?;
    let new =
        UrlSigningKey { id: key_id(random_bytes()), secret: secret(random_bytes()), created_at: at, expires_at: None };
    let answer = UrlSigningKeyCreated {
        app_id: r.app_id.clone(),
        id: new.id.clone(),
        secret: new.secret.clone(),
        created_at: at,
        previous: None,
    };
    keys.rotate(new, grace_s, at);
    save(cx.env, &r.app_id, &keys).await?;
    let previous = keys.keys.iter().find(|k| k.expires_at.is_some()).map(view);
    tracing::info!(app_id = %r.app_id, key_id = %answer.id, rotated = previous.is_some(), grace_s, "URL-signing secret created");
    json(201, &UrlSigningKeyCreated { previous, ..answer })
}
