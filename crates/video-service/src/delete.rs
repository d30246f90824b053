//! `DELETE /videos?app_id=&video_id=`: deletes a video for good. An API
//! key that may act for `app_id` (403 otherwise), counted against its rate
//! limit. The video's `VideoJob` does the work (cancels the job, deletes
//! the objects and the playback record, wipes its state; see
//! [`crate::video_job`]'s "Deleting"); this drops the Worker's cached read
//! of the job in this location, so public reads answer 404 at once here;
//! announces `video.deleted` (`{app_id, video_id}`) to the app's hub (its
//! `/events` stream and webhook endpoints) when anything was removed, after
//! the answer and retried with one event id ([`client::announce_with_retries`]); and
//! after the answer purges the video's cache tag (its HLS files and job
//! reads) at every location (`worker_kit::purge`; without a configured
//! purge, elsewhere within the job read's short TTL, and the files' edge
//! copies within `EDGE_TTL_WITHOUT_PURGE_S`).
//!
//! A resumable upload of the video still in progress (a multipart upload
//! under its `raw/` prefix) makes the delete a 409 that says how to go on:
//! abort it through its session, or repeat with `force=true`, which aborts
//! it (so that an abandoned upload cannot hold up a privacy request for the
//! 7 days storage keeps it). The delete revokes every upload session of the
//! video (the object's ledger goes with its state), and only then aborts
//! what is open, every page of `ListMultipartUploads`: no token can start
//! another upload after that listing.

use media_core::catalogue::EventType;
use media_core::http::purge::video_tag;
use media_core::ids::{AppId, VideoId};
use media_core::keys::ObjectKey;
use media_core::wire::api::{query_id, DeleteVideoResponse};
use media_core::wire::worker_events::event_id_bytes;
use media_core::{ApiError, ErrorCode};
use worker::Request;
use worker_kit::clock::now;
use worker_kit::entry::guard;
use worker_kit::purge::host_of;
use worker_kit::query::query;
use worker_kit::reply::json;
use worker_kit::store::s3::S3Store;
use worker_kit::Handled;

use crate::client;
use crate::protocol::video_job::{DeleteReply, VideoCall, VideoOp, VIDEO_JOBS_BINDING};
use crate::VideoContext;

/// `DELETE /videos`: 200 with what was removed; a repeat answers zeros.
pub async fn delete_video(req: Request, cx: &VideoContext<'_>) -> Handled {
    let grant = guard(&req, cx, "delete-video").await?;
    let q = query(&req)?;
    let app_id = query_id(&q, "app_id", AppId::parse)?;
    let video_id = query_id(&q, "video_id", VideoId::parse)?;
    grant.check_app(&app_id)?;
    let force = q.iter().any(|(k, v)| k == "force" && v == "true");
    let store = S3Store::new(cx.presigner()?.clone());
    let prefix = ObjectKey::raw_prefix(&app_id, &video_id);
    let page = cx.settings.upload_list_page;
    let open = store.uploads_in_progress(&prefix, page).await?;
    if !open.is_empty() && !force {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "{} resumable upload(s) of this video are in progress; abort them through their upload session \
                 (DELETE {{endpoint}}/s3/multipart/{{uploadId}}?key=...) or repeat this call with force=true",
                open.len()
            ),
        )
        .into());
    }
    let call = VideoCall { app_id: app_id.clone(), video_id: video_id.clone(), base: None, op: VideoOp::Delete };
    let reply: DeleteReply = client::ask(cx.env, VIDEO_JOBS_BINDING, &call.object_name(), &call).await?;
    // Every session is revoked now: list again, so an upload started since the first listing goes too.
    let open = store.uploads_in_progress(&prefix, page).await?;
    for u in &open {
        store.abort_multipart(&u.key, &u.upload_id).await?;
    }
    if !open.is_empty() {
        tracing::info!(app_id = %app_id, video_id = %video_id, aborted = open.len(), "uploads in progress aborted to delete the video");
    }
    crate::status::forget(&app_id, &video_id).await;
    let removed = reply.deleted.job || reply.deleted.objects > 0 || reply.deleted.playback_record;
    if removed {
        // The video's object is wiped: the app's hub announces it (stream, webhooks), after the answer and
        // retried. A repeat that removed nothing does not. The id names this delete (its time): every try
        // repeats it, a later delete of a re-created video does not.
        let data = serde_json::json!({ "app_id": app_id, "video_id": video_id });
        let id = event_id_bytes(EventType::VideoDeleted, &app_id, &format!("{video_id}/{}", now().millis()));
        let announce = client::announce_with_retries(
            cx.env.clone(),
            app_id.clone(),
            EventType::VideoDeleted,
            id,
            Some(video_id.clone()),
            data,
        );
        cx.execution.wait_until(announce);
    }
    // Every location: its files and cached job reads, by the video's tag (see worker_kit::purge).
    let public_host = host_of(&cx.public_base(&req));
    cx.purge_tags(&public_host, vec![video_tag(&app_id, &video_id)]);
    json(200, &DeleteVideoResponse { app_id, video_id, deleted: reply.deleted, final_sweep_at: reply.final_sweep_at })
}
