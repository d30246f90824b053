//! Starting and stopping a video: the presigned upload URL, the
//! upload-complete notice that queues (or re-queues) its transcoding job,
//! and cancelling it. All need an API key that may act for the request's
//! `app_id` (403 otherwise), and count against that key's rate limit.

use media_core::http::purge::video_tag;
use media_core::ids::AppId;
use media_core::keys::{check_raw_key, ObjectKey};
use media_core::media::{check_size, check_video_type};
use media_core::video::callback::check_url;
use media_core::video::job::{NotifyOutcome, SourceUpload};
use media_core::video::upload_session::{check_single_put, SessionStep, UploadToken};
use media_core::wire::api::{
    CancelRequest, CancelResponse, JobView, NotifyRequest, PresignedPut, UploadSession, VideoUploadUrlRequest,
    VideoUploadUrlResponse,
};
use media_core::{ApiError, ErrorCode};
use worker::Request;
use worker_kit::body::read_body;
use worker_kit::clock::now;
use worker_kit::entry::guard;
use worker_kit::reply::json;
use worker_kit::store::{ObjectInfo, ObjectStore};
use worker_kit::{Failure, Handled};

use crate::client;
use crate::protocol::video_job::{CancelReply, NotifyReply, VideoCall, VideoOp, VIDEO_JOBS_BINDING};
use crate::resumable::{session_claims, token_key};
use crate::settings::WebhookSettings;
use crate::VideoContext;

/// The most a JSON request body of these routes may be.
const MAX_JSON_BODY: u64 = 16 * 1024;

/// `POST /generate-upload-url`.
pub async fn generate_upload_url(mut req: Request, cx: &VideoContext<'_>) -> Handled {
    let grant = guard(&req, cx, "generate-upload-url").await?;
    let r = VideoUploadUrlRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?, cx.settings.max_video_bytes)?;
    grant.check_app(&r.app_id)?;
    let kind = check_video_type(&r.content_type)?;
    let key = ObjectKey::RawUpload { app: r.app_id.clone(), video: r.video_id.clone(), kind }.to_string();
    let lasts_s = if r.multipart { cx.settings.upload_session_ttl_s } else { u64::from(cx.common.upload_ttl_s) };
    crate::status::expect_job(cx.env, &r.app_id, &r.video_id, lasts_s).await;
    if r.multipart {
        return upload_session(&req, cx, &r, key).await;
    }
    check_single_put(r.size)?;
    let put = cx.presigner()?.presign_put(&key, &r.content_type, r.size, cx.common.upload_ttl_s, now())?;
    tracing::info!(app_id = %r.app_id, video_id = %r.video_id, content_type = %r.content_type, size = r.size, "video upload URL issued");
    json(200, &VideoUploadUrlResponse { put: PresignedPut::from_presigned(put), raw_key: key })
}

/// The answer to `POST /generate-upload-url` with `"multipart": true`: a
/// resumable upload session ([`crate::resumable`]), entered in the video's
/// ledger before its token is handed out (so a delete under way refuses it).
async fn upload_session(req: &Request, cx: &VideoContext<'_>, r: &VideoUploadUrlRequest, key: String) -> Handled {
    let claims =
        session_claims(&r.app_id, &r.video_id, &r.content_type, key.clone(), r.size, cx.settings.upload_session_ttl_s)?;
    crate::resumable::ledger(cx, &claims, SessionStep::Issue { expires_at: claims.expires_at }).await?;
    let token = UploadToken::sign(&claims, &token_key(cx)?);
    let base = cx.public_base(req);
    tracing::info!(app_id = %r.app_id, video_id = %r.video_id, size = r.size, parts = claims.plan.parts, session = %claims.id, "multipart upload session issued");
    json(
        200,
        &UploadSession {
            multipart: true,
            endpoint: format!("{}/uploads/{token}", base.trim_end_matches('/')),
            upload_token: token,
            raw_key: key,
            size: r.size,
            part_size: claims.plan.part_size,
            parts: claims.plan.parts,
            expires_at: claims.expires_at,
        },
    )
}

/// `POST /notify-upload-complete`: checks the upload is there, then queues.
/// 202 when a job was queued (new or retried), 200 when it already was
/// queued, running or done.
pub async fn notify_upload_complete(mut req: Request, cx: &VideoContext<'_>, base: &str) -> Handled {
    let grant = guard(&req, cx, "notify-upload-complete").await?;
    let r = NotifyRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?)?;
    grant.check_app(&r.app_id)?;
    let kind = check_video_type(&r.content_type)?;
    let key_kind = check_raw_key(&r.raw_key, &r.app_id, &r.video_id)?;
    if kind != key_kind {
        return Err(ApiError::invalid_field(format!(
            "content_type {:?} does not match the raw_key (a {} upload); send the content_type you uploaded with",
            r.content_type,
            key_kind.canonical_content_type()
        ))
        .into());
    }
    if let Some(url) = &r.callback_url {
        check_callback(url, &r.app_id, &cx.settings.objects.webhooks)?;
    }
    let info = uploaded(cx.store()?, &r.raw_key, cx.settings.max_video_bytes).await?;
    let source = SourceUpload {
        raw_key: r.raw_key.clone(),
        content_type: r.content_type.clone(),
        size: info.size,
        etag: Some(info.etag.clone()),
    };
    let call = VideoCall {
        app_id: r.app_id.clone(),
        video_id: r.video_id.clone(),
        base: Some(base.to_owned()),
        op: VideoOp::Notify {
            source,
            callback_url: r.callback_url.clone(),
            playback: r.playback.clone(),
            extras: r.extras.clone(),
        },
    };
    let reply: NotifyReply = client::ask(cx.env, VIDEO_JOBS_BINDING, &call.object_name(), &call).await?;
    if reply.outcome == NotifyOutcome::Requeued {
        // A done job run again for other extras (or a failed one retried):
        // no location may keep answering with the old result.
        cx.purge_tags(&worker_kit::purge::host_of(base), vec![video_tag(&r.app_id, &r.video_id)]);
    }
    if reply.outcome.queued_work() {
        // Readable here at once, before KV shows the job's marker.
        crate::status::remember_job(&reply.job).await;
        tracing::info!(app_id = %r.app_id, video_id = %r.video_id, job_id = %reply.job.job_id, created = reply.outcome == NotifyOutcome::Created, size = info.size, "transcode queued");
    }
    json(reply.outcome.http_status(), &JobView::with_delivery(&reply.job, base))
}

/// A notify's `callback_url`: a safe destination (`media_core::video::callback`),
/// for an app the operator gave a webhook secret to sign with.
pub(crate) fn check_callback(url: &str, app: &AppId, webhooks: &WebhookSettings) -> Result<(), Failure> {
    check_url(url, webhooks.allow_local_http)?;
    if webhooks.config.for_app(app).is_none() {
        return Err(ApiError::invalid_field(format!(
            "callback_url needs a webhook secret for app {app}, and none is configured; the operator adds one to IV_WEBHOOKS"
        ))
        .into());
    }
    Ok(())
}

/// The upload at `raw_key`, as storage has it: 409 `upload_missing` when
/// nothing is there yet, and held to the size limit the upload URL states.
async fn uploaded(store: &impl ObjectStore, raw_key: &str, max_video_bytes: u64) -> Result<ObjectInfo, Failure> {
    let info = store.head(raw_key).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::UploadMissing,
            format!("nothing has been uploaded to {raw_key}; PUT the file to the upload_url first, then notify"),
        )
    })?;
    check_size("the upload", info.size, max_video_bytes)?;
    Ok(info)
}

/// `POST /cancel-job`: stops a queued or running job (it ends in `error`,
/// "canceled through the API"; a notify starts it again). 200 with the job
/// either way, `canceled` saying whether anything was stopped.
pub async fn cancel_job(mut req: Request, cx: &VideoContext<'_>, base: &str) -> Handled {
    let grant = guard(&req, cx, "cancel-job").await?;
    let r = CancelRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?)?;
    grant.check_app(&r.app_id)?;
    let call = VideoCall {
        app_id: r.app_id.clone(),
        video_id: r.video_id.clone(),
        base: Some(base.to_owned()),
        op: VideoOp::Cancel,
    };
    let reply: CancelReply = client::ask(cx.env, VIDEO_JOBS_BINDING, &call.object_name(), &call).await?;
    if reply.canceled {
        crate::status::forget(&r.app_id, &r.video_id).await;
    }
    json(200, &CancelResponse { job: JobView::with_delivery(&reply.job, base), canceled: reply.canceled })
}

#[cfg(test)]
mod tests {
    use worker_kit::store::memory::{block_on, MemoryStore};

    use super::*;

    const RAW: &str = "raw/app-a/v1/source.mp4";

    fn refused(result: Result<ObjectInfo, Failure>) -> ApiError {
        match result {
            Err(Failure::Client(e)) => e,
            other => panic!("not a client error: {other:?}"),
        }
    }

    #[test]
    fn the_upload_must_be_there_and_within_the_limit() {
        let store = MemoryStore::new();
        let missing = refused(block_on(uploaded(&store, RAW, 100)));
        assert_eq!((missing.status(), missing.code), (409, ErrorCode::UploadMissing));
        assert!(missing.message.contains("PUT the file to the upload_url first"), "{}", missing.message);

        let etag = store.insert(RAW, vec![0; 100], Some("video/mp4"));
        let info = block_on(uploaded(&store, RAW, 100)).unwrap();
        assert_eq!((info.size, info.etag), (100, etag));
        assert_eq!(refused(block_on(uploaded(&store, RAW, 99))).status(), 413);
        store.insert(RAW, Vec::new(), Some("video/mp4"));
        assert_eq!(refused(block_on(uploaded(&store, RAW, 100))).status(), 400);
    }

    #[test]
    fn storage_that_fails_is_503_with_the_key_only_in_the_report() {
        let store = MemoryStore::new();
        store.insert(RAW, vec![0; 10], Some("video/mp4"));
        store.fail("HEAD", "raw/");
        let failure = block_on(uploaded(&store, RAW, 100)).unwrap_err();
        let reply = failure.to_reply();
        assert_eq!((reply.status, reply.header("retry-after")), (503, Some("5")));
        assert!(!String::from_utf8_lossy(reply.body_bytes().unwrap()).contains(RAW));
        assert_eq!(failure.report_detail(), Some(format!("storage: HEAD {RAW}: injected fault").as_str()));
    }
}
