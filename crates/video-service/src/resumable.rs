//! Resumable (multipart) video uploads, in the shape Uppy's `@uppy/aws-s3`
//! expects from a Companion-compatible backend, under the session's own
//! endpoint `/uploads/{upload_token}/s3/multipart...`:
//!
//! | route | does |
//! |---|---|
//! | `POST .../s3/multipart` | starts the multipart upload of the session's key: `{key, uploadId}` |
//! | `GET .../s3/multipart/{uploadId}/{partNumber}?key=` | a presigned `UploadPart` URL bound to that part's exact size: `{url, expires}` |
//! | `GET .../s3/multipart/{uploadId}/batch?key=&partNumbers=1,2` | several at once: `{presignedUrls: {"1": url}}` |
//! | `GET .../s3/multipart/{uploadId}?key=` | the parts stored so far (to resume): `[{PartNumber, Size, ETag}]` |
//! | `POST .../s3/multipart/{uploadId}/complete?key=` | `{parts: [{PartNumber, ETag}]}`, checked, then joined: `{key, location}` |
//! | `DELETE .../s3/multipart/{uploadId}?key=` | aborts the upload and drops its parts |
//!
//! The token (`media_core::video::upload_session::UploadToken`, minted by
//! `POST /generate-upload-url` with `"multipart": true` and the API key)
//! names the app, video, key, content type, size and part plan; it is the
//! only credential, and it allows nothing else. The parts go straight from
//! the browser to storage through the presigned URLs; these routes only
//! sign and check. They are public (browsers call them; CORS).
//!
//! A token is one upload, and is revoked when it ends: the video's
//! `VideoJob` keeps a ledger entry per session (`media_core::video::upload_session::
//! session_step`). The first create records its `uploadId`; a second create
//! is 409; only that upload can be listed, signed, completed or aborted
//! (403 for any other); completing or aborting it ends the session, and
//! `DELETE /videos` wipes every entry, so a replayed token is 403 after
//! either. Storage is asked only after the ledger agreed, and the ledger
//! hears back after storage answered: a create that lands after its video
//! was deleted is aborted at once, a completion that lands after it is
//! deleted at once.
//!
//! A session of an upload object (`POST /uploads`, its id `upl_...`,
//! [`crate::upload_landing`]) starts the video's job with its complete
//! call; a session from `/generate-upload-url` leaves that to the notify.
//!
//! Storage is reached through its S3 API whichever backend serves reads
//! (R2's binding cannot list a multipart upload's parts).

use std::collections::BTreeMap;

use media_core::http::s3_xml::CompletedPart;
use media_core::ids::{AppId, VideoId};
use media_core::video::upload::UploadId;
use media_core::video::upload_session::{PartPlan, SessionEnd, SessionRecord, SessionStep, UploadClaims, UploadToken};
use media_core::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use worker::{Method, Request};
use worker_kit::body::read_body;
use worker_kit::clock::{now, random_bytes};
use worker_kit::failure::no_route;
use worker_kit::method::known_method;
use worker_kit::query::query;
use worker_kit::reply::json;
use worker_kit::store::s3::S3Store;
use worker_kit::store::ObjectStore;
use worker_kit::{Failure, Handled};

use crate::client;
use crate::protocol::video_job::{VideoCall, VideoOp, VIDEO_JOBS_BINDING};
use crate::upload_landing::landed;
use crate::VideoContext;

/// How long a part's presigned URL stays valid.
const PART_URL_TTL_S: u32 = 900;
/// The most part URLs one batch request signs.
const MAX_BATCH: usize = 100;
/// Completion bodies name up to 10,000 parts.
const MAX_COMPLETE_BODY: u64 = 1024 * 1024;

/// The key upload tokens are signed with (derived from the storage secret).
pub fn token_key(cx: &VideoContext<'_>) -> Result<Vec<u8>, Failure> {
    Ok(media_core::video::upload_session::token_key(&cx.presigner()?.credentials.secret_access_key))
}

/// The claims a session's token carries, for `POST /generate-upload-url`:
/// a new session (random id) of `ttl_s` (`UPLOAD_SESSION_TTL_S`).
pub fn session_claims(
    app_id: &AppId,
    video_id: &VideoId,
    content_type: &str,
    key: String,
    size: u64,
    ttl_s: u64,
) -> Result<UploadClaims, ApiError> {
    Ok(UploadClaims {
        id: hex::encode(random_bytes::<16>()),
        app_id: app_id.clone(),
        video_id: video_id.clone(),
        content_type: content_type.to_owned(),
        key,
        plan: PartPlan::for_size(size)?,
        expires_at: now().plus_secs(ttl_s),
    })
}

/// Moves the session's entry in its video's ledger on by `step`; the
/// refusal (403, 409) as the object gives it.
pub async fn ledger(cx: &VideoContext<'_>, claims: &UploadClaims, step: SessionStep) -> Result<(), Failure> {
    let call = VideoCall {
        app_id: claims.app_id.clone(),
        video_id: claims.video_id.clone(),
        base: None,
        op: VideoOp::UploadSession { session: claims.id.clone(), step },
    };
    let _: SessionRecord = client::ask(cx.env, VIDEO_JOBS_BINDING, &call.object_name(), &call).await?;
    Ok(())
}

#[derive(Deserialize)]
struct CompleteBody {
    parts: Vec<CompletedPart>,
}

#[derive(Deserialize, Default)]
struct CreateBody {
    #[serde(default, rename = "type")]
    content_type: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListedPart {
    part_number: u64,
    size: u64,
    #[serde(rename = "ETag")]
    etag: String,
}

/// `POST .../s3/multipart`: the upload started.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    key: String,
    upload_id: String,
}

/// `DELETE .../s3/multipart/{uploadId}`: aborted (`{}`).
#[derive(Serialize)]
struct Aborted {}

/// `POST .../complete`: the parts joined into the session's key.
#[derive(Serialize)]
struct Completed {
    key: String,
    location: String,
}

/// `GET .../batch`: each part number asked for, and its URL.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PresignedUrls {
    presigned_urls: BTreeMap<String, String>,
}

/// `GET .../{partNumber}`: one part's URL, valid for `expires` seconds.
#[derive(Serialize)]
struct PresignedPart {
    expires: u32,
    url: String,
}

/// `/uploads/{token}/s3/multipart...` (the `Multipart*` rows of the route
/// table, which gated the method).
pub async fn route(mut req: Request, cx: &VideoContext<'_>) -> Handled {
    let path = req.path();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["uploads", token, "s3", "multipart", rest @ ..] = parts.as_slice() else {
        return Err(no_route(&path));
    };
    // The route table took only the methods each shape allows.
    let method = known_method(&req);
    let claims = UploadToken::verify(token, &token_key(cx)?, now())?;
    let base = cx.public_base(&req);
    let store = S3Store::new(cx.presigner()?.clone());
    let q = query(&req)?;
    let param = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    // Every call after the first names the key: it must be the session's.
    let check_key = || -> Result<(), Failure> {
        match param("key") {
            Some(k) if k == claims.key => Ok(()),
            Some(_) => Err(ApiError::new(ErrorCode::Forbidden, "this upload token is for another key").into()),
            None => Err(ApiError::invalid_query("the query parameter key is required").into()),
        }
    };
    let storage = |e: worker_kit::store::StoreError| Failure::from(e);
    match rest {
        [] => {
            let body = read_body(&mut req, 16 * 1024).await?;
            let create: CreateBody = if body.is_empty() { CreateBody::default() } else { parse(&body)? };
            if let Some(t) = create.content_type.as_deref().filter(|t| !t.is_empty()) {
                if !t.eq_ignore_ascii_case(&claims.content_type) {
                    return Err(ApiError::invalid_field(format!(
                        "this upload session is for {} files, not {t}",
                        claims.content_type
                    ))
                    .into());
                }
            }
            ledger(cx, &claims, SessionStep::Start).await?;
            let upload_id = match store.create_multipart(&claims.key, &claims.content_type).await {
                Ok(id) => id,
                Err(e) => {
                    // The token may try again; if the ledger cannot hear it, it frees itself in a minute.
                    if let Err(f) = ledger(cx, &claims, SessionStep::StartFailed).await {
                        tracing::warn!(session = %claims.id, error = ?f, "freeing an upload session after a failed create failed");
                    }
                    return Err(storage(e));
                }
            };
            if let Err(refused) = ledger(cx, &claims, SessionStep::Started { upload_id: upload_id.clone() }).await {
                // Revoked meanwhile (the video was deleted): the upload must not outlive it.
                if let Err(e) = store.abort_multipart(&claims.key, &upload_id).await {
                    tracing::error!(app_id = %claims.app_id, video_id = %claims.video_id, error = %e, "aborting an upload its revoked session started failed");
                }
                return Err(refused);
            }
            tracing::info!(app_id = %claims.app_id, video_id = %claims.video_id, parts = claims.plan.parts, session = %claims.id, "multipart upload started");
            json(200, &Created { key: claims.key, upload_id })
        }
        [upload_id] if method == Some(Method::Get) => {
            check_key()?;
            ledger(cx, &claims, SessionStep::Use { upload_id: (*upload_id).to_owned() }).await?;
            let stored =
                store.list_parts(&claims.key, upload_id).await.map_err(storage)?.ok_or_else(|| no_upload(upload_id))?;
            let listed: Vec<ListedPart> = stored
                .into_iter()
                .map(|p| ListedPart { part_number: p.part_number, size: p.size, etag: p.etag })
                .collect();
            json(200, &listed)
        }
        [upload_id] => {
            check_key()?;
            let upload_id = (*upload_id).to_owned();
            ledger(cx, &claims, SessionStep::Use { upload_id: upload_id.clone() }).await?;
            store.abort_multipart(&claims.key, &upload_id).await.map_err(storage)?;
            ledger(cx, &claims, SessionStep::End { upload_id, how: SessionEnd::Aborted }).await?;
            tracing::info!(app_id = %claims.app_id, video_id = %claims.video_id, session = %claims.id, "multipart upload aborted; its session ended");
            json(200, &Aborted {})
        }
        [upload_id, "complete"] => {
            check_key()?;
            let upload_id = (*upload_id).to_owned();
            ledger(cx, &claims, SessionStep::Use { upload_id: upload_id.clone() }).await?;
            let body: CompleteBody = parse(&read_body(&mut req, MAX_COMPLETE_BODY).await?)?;
            let stored = store
                .list_parts(&claims.key, &upload_id)
                .await
                .map_err(storage)?
                .ok_or_else(|| no_upload(&upload_id))?;
            claims.plan.check_complete(&stored, &body.parts)?;
            if !store.complete_multipart(&claims.key, &upload_id, &body.parts).await.map_err(storage)? {
                return Err(no_upload(&upload_id).into());
            }
            if let Err(f) = ledger(cx, &claims, SessionStep::End { upload_id, how: SessionEnd::Completed }).await {
                if matches!(f, Failure::Client(_)) {
                    // Revoked while storage joined the parts (the video was deleted): the
                    // source must not come back after its delete.
                    if let Err(e) = store.delete(&claims.key).await {
                        tracing::error!(app_id = %claims.app_id, video_id = %claims.video_id, error = %e, "deleting an upload its revoked session completed failed");
                    }
                }
                return Err(f);
            }
            tracing::info!(app_id = %claims.app_id, video_id = %claims.video_id, size = claims.plan.size, session = %claims.id, "multipart upload complete; its session ended");
            if UploadId::parse(&claims.id).is_ok() {
                // An upload object's session: the complete starts the job. The
                // parts are joined already, so a failure here is logged, not
                // answered (the token is spent): storage's event notification,
                // or a notify, starts it.
                let store = cx.store()?;
                let started =
                    landed(cx.env, store, &claims.app_id, &claims.video_id, Some(&claims.id), &claims.key, Some(&base))
                        .await;
                if let Err(e) = started {
                    tracing::error!(app_id = %claims.app_id, video_id = %claims.video_id, upload_id = %claims.id, error = ?e, "starting the job of a completed upload failed");
                }
            }
            json(200, &Completed { location: claims.key.clone(), key: claims.key })
        }
        [upload_id, "batch"] => {
            check_key()?;
            ledger(cx, &claims, SessionStep::Use { upload_id: (*upload_id).to_owned() }).await?;
            let numbers = param("partNumbers")
                .ok_or_else(|| ApiError::invalid_query("the query parameter partNumbers is required (e.g. 1,2,3)"))?;
            let mut urls = BTreeMap::new();
            for n in numbers.split(',').filter(|s| !s.is_empty()).take(MAX_BATCH + 1) {
                if urls.len() == MAX_BATCH {
                    return Err(ApiError::invalid_query(format!("sign at most {MAX_BATCH} parts at once")).into());
                }
                let (url, _) = sign_part(cx, &claims, upload_id, n)?;
                urls.insert(n.to_owned(), url);
            }
            json(200, &PresignedUrls { presigned_urls: urls })
        }
        [upload_id, part] => {
            check_key()?;
            ledger(cx, &claims, SessionStep::Use { upload_id: (*upload_id).to_owned() }).await?;
            let (url, expires) = sign_part(cx, &claims, upload_id, part)?;
            json(200, &PresignedPart { url, expires })
        }
        _ => Err(no_route(&path)),
    }
}

/// A presigned `UploadPart` URL for part `n`, bound to its exact size.
fn sign_part(cx: &VideoContext<'_>, claims: &UploadClaims, upload_id: &str, n: &str) -> Result<(String, u32), Failure> {
    let number: u64 = n.parse().map_err(|_| {
        ApiError::invalid_field(format!("part number {n:?} is not a whole number from 1 to {}", claims.plan.parts))
    })?;
    let bytes = claims.plan.part_bytes(number)?;
    let query = [("partNumber".to_owned(), number.to_string()), ("uploadId".to_owned(), upload_id.to_owned())];
    let headers = [("Content-Length".to_owned(), bytes.to_string())];
    let signed = cx.presigner()?.presign_with_query("PUT", &claims.key, &query, &headers, PART_URL_TTL_S, now())?;
    Ok((signed.url, PART_URL_TTL_S))
}

fn no_upload(upload_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no multipart upload {upload_id:?} in progress for this session (completed, aborted or cleaned up); start one with POST .../s3/multipart"
    ))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("the request body is not valid: {e}")).into())
}
