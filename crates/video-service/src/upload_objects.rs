//! Direct uploads as objects (Mux's direct uploads; `media_core::video::upload`
//! has the rules, `video_job::sessions` the state):
//!
//! | route | who | does |
//! |---|---|---|
//! | `POST /uploads` | API key | a waiting upload of one video, with the browser's credentials |
//! | `GET /uploads/{id}` | API key | its state: `waiting`, `asset_created` (its job), `errored`, `cancelled`, `timed_out` |
//! | `DELETE /uploads/{id}` | API key | cancels a waiting upload: its token is revoked, its leftovers removed |
//! | `POST /uploads/{id}/complete` | the upload's token (`Authorization: Bearer`) | a single `PUT` finished: checks storage, starts the job |
//!
//! The job starts without the backend, on whichever trigger comes first
//! (this completion route, a resumable upload's complete call
//! ([`crate::resumable`]), storage's event notification through the queue
//! ([`crate::upload_queue`]), or a legacy `/notify-upload-complete`); the
//! video's object starts it once ([`crate::upload_landing`]).
//!
//! The id names the video (`upl_{16 hex}.{app}.{video}`), so a read reaches
//! the video's object at once, with no index to look up (and none that
//! could lag behind the create): the key's tenancy is checked on the app
//! the id names (403), and an id the object does not know is 404.

use media_core::ids::{AppId, VideoId};
use media_core::keys::ObjectKey;
use media_core::media::check_video_type;
use media_core::video::upload::{check_timeout, UploadId, UploadRecord, UploadSpec};
use media_core::video::upload_session::{check_single_put, PartPlan, UploadClaims, UploadToken};
use media_core::wire::api::{CreateUploadRequest, PresignedPut, UploadView};
use media_core::{ApiError, ErrorCode};
use worker::{Env, Method, Request};
use worker_kit::body::read_body;
use worker_kit::clock::{now, random_bytes};
use worker_kit::entry::guard;
use worker_kit::failure::no_route;
use worker_kit::method::known_method;
use worker_kit::reply::json;
use worker_kit::{Failure, Handled};

use crate::client;
use crate::protocol::video_job::{UploadReply, VideoCall, VideoOp, VIDEO_JOBS_BINDING};
use crate::resumable::token_key;
use crate::upload_landing::landed;
use crate::VideoContext;

const MAX_JSON_BODY: u64 = 16 * 1024;

async fn ask(env: &Env, app: &AppId, video: &VideoId, base: Option<&str>, op: VideoOp) -> Result<UploadReply, Failure> {
    let call = VideoCall { app_id: app.clone(), video_id: video.clone(), base: base.map(str::to_owned), op };
    client::ask(env, VIDEO_JOBS_BINDING, &call.object_name(), &call).await
}

/// The upload the reply names, as the API shows it.
fn view(reply: UploadReply, id: &UploadId, base: &str) -> Result<UploadView, Failure> {
    let record = reply.upload.ok_or_else(|| Failure::internal("the video's object answered no upload"))?;
    Ok(UploadView::of(&record, &id.app_id, &id.video_id, base))
}

/// `POST /uploads`: 201 with the upload and the browser's credentials.
pub async fn create(mut req: Request, cx: &VideoContext<'_>, base: &str) -> Handled {
    let grant = guard(&req, cx, "uploads").await?;
    let r = CreateUploadRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?, cx.settings.max_video_bytes)?;
    grant.check_app(&r.app_id)?;
    let kind = check_video_type(&r.content_type)?;
    let timeout_s = check_timeout(r.timeout_s, cx.settings.upload_min_timeout_s)?;
    if let Some(url) = &r.callback_url {
        crate::uploads::check_callback(url, &r.app_id, &cx.settings.objects.webhooks)?;
    }
    let plan = PartPlan::for_size(r.size)?;
    if !r.multipart {
        check_single_put(r.size)?;
    }
    let key = ObjectKey::RawUpload { app: r.app_id.clone(), video: r.video_id.clone(), kind }.to_string();
    let id = UploadId::new(r.app_id.clone(), r.video_id.clone(), random_bytes::<8>());
    let spec = UploadSpec {
        key: key.clone(),
        content_type: r.content_type.clone(),
        size: r.size,
        multipart: r.multipart,
        callback_url: r.callback_url.clone(),
        playback: r.playback.clone(),
        extras: r.extras.clone(),
    };
    let record = UploadRecord::new(&id, spec, timeout_s, now());
    // The browser's credentials before the upload exists: a failure here
    // (storage's settings) answers 500 and leaves no upload waiting that
    // would block the video until its timeout.
    let claims = UploadClaims {
        id: record.id.clone(),
        app_id: r.app_id.clone(),
        video_id: r.video_id.clone(),
        content_type: r.content_type.clone(),
        key: key.clone(),
        plan,
        expires_at: record.expires_at,
    };
    let token = UploadToken::sign(&claims, &token_key(cx)?);
    let put = if r.multipart {
        None
    } else {
        // Valid as long as the upload waits (at most 7 days, SigV4's longest).
        let ttl = u32::try_from(timeout_s).unwrap_or(u32::MAX);
        Some(PresignedPut::from_presigned(cx.presigner()?.presign_put(&key, &r.content_type, r.size, ttl, now())?))
    };
    // Before the object: `/job-events` finds the video from the moment the upload exists.
    crate::status::expect_job(cx.env, &r.app_id, &r.video_id, timeout_s).await;
    let reply = ask(cx.env, &r.app_id, &r.video_id, Some(base), VideoOp::UploadCreate { record }).await?;
    let mut out = view(reply, &id, base)?;
    let base = base.trim_end_matches('/');
    match put {
        None => {
            out.endpoint = Some(format!("{base}/uploads/{token}"));
            out.part_size = Some(plan.part_size);
            out.parts = Some(plan.parts);
        }
        Some(put) => {
            out.url = Some(put.upload_url);
            out.headers = Some(put.headers);
            out.complete_url = Some(format!("{base}/uploads/{id}/complete"));
        }
    }
    out.token = Some(token);
    tracing::info!(app_id = %r.app_id, video_id = %r.video_id, upload_id = %id, multipart = r.multipart, size = r.size, timeout_s, "upload created");
    json(201, &out)
}

/// The `{id}` of `/uploads/{id}[/complete]`.
fn path_id(req: &Request) -> Result<UploadId, Failure> {
    let path = req.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["uploads", id] | ["uploads", id, "complete"] => Ok(UploadId::parse(id)?),
        _ => Err(no_route(&path)),
    }
}

/// `GET` and `DELETE /uploads/{id}`.
pub async fn upload(req: Request, cx: &VideoContext<'_>, base: &str) -> Handled {
    let grant = guard(&req, cx, "uploads").await?;
    let id = path_id(&req)?;
    grant.check_app(&id.app_id)?;
    let upload_id = id.to_string();
    if known_method(&req) == Some(Method::Delete) {
        let reply = ask(cx.env, &id.app_id, &id.video_id, Some(base), VideoOp::UploadCancel { upload_id }).await?;
        tracing::info!(app_id = %id.app_id, video_id = %id.video_id, upload_id = %id, "upload cancelled");
        return json(200, &view(reply, &id, base)?);
    }
    let reply = ask(cx.env, &id.app_id, &id.video_id, None, VideoOp::UploadGet { upload_id }).await?;
    json(200, &view(reply, &id, base)?)
}

/// `POST /uploads/{id}/complete` with the upload's token: the file must be
/// in storage with the declared size; the first call starts the job, the
/// others answer the same upload.
pub async fn complete(req: Request, cx: &VideoContext<'_>, base: &str) -> Handled {
    let id = path_id(&req)?;
    let header = req.headers().get("authorization")?.unwrap_or_default();
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "send the upload's token (POST /uploads answered it) as Authorization: Bearer <token>",
            )
        })?;
    let claims = UploadToken::verify(token, &token_key(cx)?, now())?;
    if claims.id != id.to_string() {
        return Err(ApiError::new(ErrorCode::Forbidden, "this upload token is for another upload").into());
    }
    let reply =
        landed(cx.env, cx.store()?, &claims.app_id, &claims.video_id, Some(&claims.id), &claims.key, Some(base))
            .await?;
    json(200, &view(reply, &id, base)?)
}
