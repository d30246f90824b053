//! What a video's objects keep in storage once its job ends, and the
//! deleting of a video's objects:
//! - **done**: the outputs of its other attempts go (`hls/{app}/{video}/{output_id}/`
//!   other than the completed one, and the same under every other root of
//!   `media_core::keys::ATTEMPT_ROOTS`: downloads, keys) and, with
//!   `KEEP_SOURCE=false`, the raw source;
//! - **failed for good or canceled**: every attempt's outputs go (the source
//!   stays, for a retry), only while the job still stands failed;
//! - **deleted**: both prefixes of the video ([`remove_video`]).
//!
//! Retention is best effort and logged, after the change is committed; the
//! delete reports how many objects went, or why not.

use media_core::ids::{AppId, VideoId};
use media_core::keys::ObjectKey;
use media_core::video::job::Job;
use worker_kit::store::{delete_prefix, delete_prefix_except, delete_prefix_while, ObjectStore, StoreError};

/// After a job completed: deletes the outputs of its other attempts and,
/// unless `keep_source`, its source.
pub async fn after_done(store: &impl ObjectStore, job: &Job, keep_source: bool) {
    let Some(current) = &job.output_id else { return };
    for outputs in ObjectKey::attempt_roots(&job.app_id, &job.video_id) {
        let keep = ObjectKey::attempt_prefix(&outputs, current);
        // Every page: the kept attempt's thousands of keys never hide the rest.
        match delete_prefix_except(store, &outputs, &keep).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(job_id = %job.job_id, objects = n, prefix = %outputs, "retention: earlier attempts' outputs deleted")
            }
            Err(e) => {
                tracing::warn!(job_id = %job.job_id, error = %e, prefix = %outputs, "retention: deleting earlier attempts' outputs failed")
            }
        }
    }
    if !keep_source {
        match delete_prefix(store, &ObjectKey::raw_prefix(&job.app_id, &job.video_id)).await {
            Ok(n) => tracing::info!(job_id = %job.job_id, objects = n, "retention: source deleted (KEEP_SOURCE=false)"),
            Err(e) => tracing::warn!(job_id = %job.job_id, error = %e, "retention: deleting the source failed"),
        }
    }
}

/// After a job failed for good or was canceled: deletes every attempt's
/// outputs, which nothing serves any more (only a done job's output is
/// played, and a done job is never queued again). The source stays.
///
/// Other calls run while this one waits on storage: a notify may queue
/// the job again and a transcoder start a new attempt under the same
/// prefix. So each listed batch is deleted only while `still_failed()`
/// (asked with no wait between it and the batch's listing). A transcoder
/// that lost its lease may still write until its next heartbeat is
/// refused: the alarm sweeps once more when that lease could no longer be
/// used (the late sweep of [`super::machine`]).
pub async fn after_end(store: &impl ObjectStore, job: &Job, still_failed: impl Fn() -> bool) {
    for prefix in ObjectKey::attempt_roots(&job.app_id, &job.video_id) {
        match delete_prefix_while(store, &prefix, &still_failed).await {
            Ok(keys) if keys.is_empty() => {}
            Ok(keys) => {
                tracing::info!(job_id = %job.job_id, objects = keys.len(), prefix = %prefix, "retention: the ended job's outputs deleted")
            }
            Err(e) => {
                tracing::warn!(job_id = %job.job_id, error = %e, prefix = %prefix, "retention: deleting the ended job's outputs failed")
            }
        }
    }
}

/// Deletes every object of a video (its source and every attempt's
/// outputs under every root: HLS, downloads, keys); how many.
pub async fn remove_video(store: &impl ObjectStore, app: &AppId, video: &VideoId) -> Result<u64, StoreError> {
    let mut objects = 0;
    for prefix in ObjectKey::video_prefixes(app, video) {
        objects += delete_prefix(store, &prefix).await?;
    }
    Ok(objects)
}
