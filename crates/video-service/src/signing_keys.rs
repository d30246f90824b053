//! The signed-playback API-key routes (the key's own apps only: another
//! app's is 403): `POST /signing-keys` makes a key pair with Web Crypto
//! and answers its private half once (PEM and JWK), `GET /signing-keys`
//! lists the app's keys, `DELETE /signing-keys/{key_id}` revokes one, and
//! `POST /playback-tokens` mints a token with the app's service key (made
//! on its first mint). The app's `AppHub` keeps the list
//! ([`crate::app_hub::signing_keys`]); KV `signing-key/{kid}` mirrors each
//! public key for [`crate::playback_auth::verify`]. A key is in KV before
//! its creation is answered, and out of KV before its revocation is.

use std::cell::RefCell;
use std::collections::HashSet;

use media_core::ids::AppId;
use media_core::video::playback_token::{assemble, is_kid, kid_from_random, signing_input, Alg, PlaybackClaims};
use media_core::wire::api::query_id;
use media_core::wire::playback::{
    PlaybackTokenRequest, PlaybackTokenResponse, PublicKeyRecord, SigningKeyCreateRequest, SigningKeyCreated,
    SigningKeyInfo, SigningKeyRevoked,
};
use media_core::wire::routes::{Route, VideoRoute};
use media_core::ApiError;
use serde::de::DeserializeOwned;
use serde_json::Value;
use worker::{Env, Method, Request};
use worker_kit::body::read_body;
use worker_kit::clock::{now, random_bytes};
use worker_kit::entry::guard;
use worker_kit::query::query;
use worker_kit::reply::json;
use worker_kit::{Failure, Handled};

use crate::client;
use crate::playback_auth::{self, key_record_key};
use crate::protocol::app_hub::{HubCommand, KeyOp, ServiceKey, APP_EVENTS_BINDING};
use crate::status::public_job;
use crate::video_job::KV_BINDING;
use crate::VideoContext;

/// The most a JSON request body of these routes may be.
const MAX_JSON_BODY: u64 = 4 * 1024;

/// Sends a key command to `app`'s hub: its answer's status and body, or
/// its refusal relayed.
async fn hub<T: DeserializeOwned>(env: &Env, app: &AppId, key: KeyOp) -> Result<(u16, T), Failure> {
    let cmd = HubCommand::SigningKeys { app_id: app.clone(), key };
    let answer = client::call(env, APP_EVENTS_BINDING, app.as_str(), &cmd)
        .await
        .map_err(|e| Failure::Unavailable { detail: format!("app hub {app}: {e}") })?;
    let status = answer.status;
    if !(200..300).contains(&status) {
        return Err(client::read::<Value>(APP_EVENTS_BINDING, answer).unwrap_err());
    }
    Ok((status, client::read(APP_EVENTS_BINDING, client::Answer { status: 200, body: answer.body })?))
}

async fn put_public_key(env: &Env, kid: &str, record: &PublicKeyRecord) -> Result<(), Failure> {
    let unavailable =
        |e: worker::kv::KvError| Failure::Unavailable { detail: format!("writing signing key {kid}: {e}") };
    // As JSON text: the KV binding's own serialising turns a JSON object
    // (the JWK) into a JavaScript Map, which JSON.stringify writes as {}.
    let text = serde_json::to_string(record).map_err(|e| Failure::internal(format!("signing key {kid}: {e}")))?;
    env.kv(KV_BINDING)?.put(&key_record_key(kid), text).map_err(unavailable)?.execute().await.map_err(unavailable)
}

/// `/signing-keys` and `/signing-keys/{key_id}`.
pub async fn route(mut req: Request, cx: &VideoContext<'_>, row: &'static Route<VideoRoute>) -> Handled {
    let grant = guard(&req, cx, "signing-keys").await?;
    match (row.id, req.method()) {
        (VideoRoute::SigningKeys, Method::Post) => {
            let r = SigningKeyCreateRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?)?;
            grant.check_app(&r.app_id)?;
            create(cx.env, r.app_id, r.alg.unwrap_or_default()).await
        }
        (VideoRoute::SigningKeys, _) => {
            let app = query_id(&query(&req)?, "app_id", AppId::parse)?;
            grant.check_app(&app)?;
            let (_, list): (_, Value) = hub(cx.env, &app, KeyOp::List).await?;
            json(200, &list)
        }
        (VideoRoute::SigningKey, _) => {
            let app = query_id(&query(&req)?, "app_id", AppId::parse)?;
            grant.check_app(&app)?;
            let path = req.path();
            let kid = row.pattern.params(&path).and_then(|p| p.first().map(|k| (*k).to_owned())).unwrap_or_default();
            revoke(cx.env, &app, &kid).await
        }
        (other, _) => Err(Failure::internal(format!("{other:?} is not a signing key route"))),
    }
}

/// Makes a key pair, keeps its public half (hub, then KV) and answers the
/// private half, once.
async fn create(env: &Env, app: AppId, alg: Alg) -> Handled {
    let kid = kid_from_random(random_bytes::<16>());
    let made = playback_auth::generate(alg, &kid).await?;
    let add = KeyOp::Add { kid: kid.clone(), alg, public_jwk: made.public_jwk.clone() };
    let (_, kept): (_, SigningKeyInfo) = hub(env, &app, add).await?;
    let record = PublicKeyRecord { app_id: app.clone(), alg, jwk: made.public_jwk };
    if let Err(e) = put_public_key(env, &kid, &record).await {
        // Not usable without its KV copy: the hub forgets it too.
        let _ = hub::<Value>(env, &app, KeyOp::Revoke { kid: kid.clone() }).await;
        return Err(e);
    }
    tracing::info!(app_id = %app, kid, alg = alg.as_str(), "signing key created");
    let created = SigningKeyCreated {
        id: kid,
        app_id: app,
        alg,
        created_at: kept.created_at,
        pem: made.pem,
        jwk: made.private_jwk,
    };
    json(201, &created)
}

/// Revokes `kid` of `app`: out of the hub's list first (which refuses the
/// service key), then out of KV, so verification stops finding it. A
/// revoke cut off between the two is finished by the next one: the hub
/// then answers 404, and a KV record of this app's is still removed.
/// Another app's key is a 404, as a missing one.
async fn revoke(env: &Env, app: &AppId, kid: &str) -> Handled {
    if !is_kid(kid) {
        return Err(ApiError::not_found(format!("no signing key {kid:?}: key ids are 32 hex digits")).into());
    }
    let kv = env.kv(KV_BINDING)?;
    let unavailable = |e: worker::kv::KvError| Failure::Unavailable { detail: format!("signing key {kid}: {e}") };
    let record: Option<PublicKeyRecord> = kv.get(&key_record_key(kid)).json().await.map_err(unavailable)?;
    if record.as_ref().is_some_and(|r| &r.app_id != app) {
        return Err(ApiError::not_found(format!("no signing key {kid:?} in this app")).into());
    }
    let answer: Result<(u16, Value), Failure> = hub(env, app, KeyOp::Revoke { kid: kid.to_owned() }).await;
    let (status, body) = match answer {
        Ok(revoked) => revoked,
        Err(e) if record.is_some() && e.to_api_error().status() == 404 => {
            let done = SigningKeyRevoked { id: kid.to_owned(), revoked: true };
            (200, serde_json::to_value(done).map_err(|e| Failure::internal(e.to_string()))?)
        }
        Err(e) => return Err(e),
    };
    if record.is_some() {
        kv.delete(&key_record_key(kid)).await.map_err(unavailable)?;
    }
    playback_auth::forget_key(kid);
    tracing::info!(app_id = %app, kid, "signing key revoked");
    json(status, &body)
}

thread_local! {
    /// Service keys this isolate has seen in KV (written once per isolate).
    static PUBLISHED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// The app's service key: the hub's, or a new one (ES256) on the first
/// mint; its public half is (re)written to KV once per isolate, so a
/// failed write on the first mint heals on the next.
async fn service_key(env: &Env, app: &AppId) -> Result<ServiceKey, Failure> {
    let (_, kept): (_, Option<ServiceKey>) = hub(env, app, KeyOp::ServiceKey).await?;
    let key = match kept {
        Some(k) => k,
        None => {
            let kid = kid_from_random(random_bytes::<16>());
            let made = playback_auth::generate(Alg::Es256, &kid).await?;
            let key = ServiceKey { kid, alg: Alg::Es256, public_jwk: made.public_jwk, private_jwk: made.private_jwk };
            hub(env, app, KeyOp::PutServiceKey { key }).await?.1
        }
    };
    if !PUBLISHED.with(|p| p.borrow().contains(&key.kid)) {
        let record = PublicKeyRecord { app_id: app.clone(), alg: key.alg, jwk: key.public_jwk.clone() };
        put_public_key(env, &key.kid, &record).await?;
        PUBLISHED.with(|p| p.borrow_mut().insert(key.kid.clone()));
    }
    Ok(key)
}

/// `POST /playback-tokens {app_id, video_id, ttl_s?, downloadable?}`: a
/// token for one video of the app (404 for a video without a job), its
/// expiry and the URLs that carry it.
pub async fn mint(mut req: Request, cx: &VideoContext<'_>, base: &str) -> Handled {
    let grant = guard(&req, cx, "playback-tokens").await?;
    let r = PlaybackTokenRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?)?;
    grant.check_app(&r.app_id)?;
    let (job, _) = public_job(cx.env, &r.app_id, &r.video_id, None).await?;
    if job.is_none() {
        return Err(ApiError::not_found(format!(
            "no job for app_id {:?} and video_id {:?}; call /notify-upload-complete after uploading",
            r.app_id.as_str(),
            r.video_id.as_str()
        ))
        .into());
    }
    let downloadable = r.downloadable.unwrap_or(false);
    let key = service_key(cx.env, &r.app_id).await?;
    let claims = PlaybackClaims::mint(r.video_id, &key.kid, r.ttl_s, downloadable, now())?;
    let input = signing_input(key.alg, &key.kid, &claims);
    let token = assemble(&input, &playback_auth::sign(key.alg, &key.private_jwk, &input).await?);
    tracing::info!(app_id = %r.app_id, video_id = %claims.sub, expires_at = %claims.expires_at(), "playback token minted");
    json(
        200,
        &PlaybackTokenResponse {
            playback_url: format!("{base}/hls/t/{token}/master.m3u8"),
            poster_url: format!("{base}/hls/t/{token}/poster.jpg"),
            download_url: downloadable.then(|| format!("{base}/download?token={token}")),
            expires_at: claims.expires_at(),
            token,
        },
    )
}
