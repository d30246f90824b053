//! A trigger of a direct upload reached: storage has (or lacks) the file
//! at an upload's key, and the video's object is told ([`landed`]). The
//! browser's completion route ([`crate::upload_objects`]), a resumable
//! upload's complete call ([`crate::resumable`]) and storage's event
//! notification ([`crate::upload_queue`]) all end here; the object starts
//! the job once, whichever comes first.

use media_core::ids::{AppId, VideoId};
use media_core::keys::ObjectKey;
use media_core::video::job::SourceUpload;
use worker::Env;
use worker_kit::store::ObjectStore;
use worker_kit::Failure;

use crate::client;
use crate::protocol::video_job::{UploadReply, VideoCall, VideoOp, VIDEO_JOBS_BINDING};

/// Tells the video's object what storage has at `key` (a trigger: the
/// completion route, a resumable complete, storage's event): the first
/// report of the declared file starts the job. `upload_id: None` for the
/// video's waiting upload, whichever it is.
pub async fn landed(
    env: &Env,
    store: &impl ObjectStore,
    app: &AppId,
    video: &VideoId,
    upload_id: Option<&str>,
    key: &str,
    base: Option<&str>,
) -> Result<UploadReply, Failure> {
    let source = source_at(store, key).await?;
    let op = VideoOp::UploadLanded { upload_id: upload_id.map(str::to_owned), source };
    let call = VideoCall { app_id: app.clone(), video_id: video.clone(), base: base.map(str::to_owned), op };
    client::ask(env, VIDEO_JOBS_BINDING, &call.object_name(), &call).await
}

/// What storage has at `key`, as a job's source.
pub async fn source_at(store: &impl ObjectStore, key: &str) -> Result<Option<SourceUpload>, Failure> {
    let Some(info) = store.head(key).await? else { return Ok(None) };
    let content_type = match ObjectKey::parse(key) {
        Some(ObjectKey::RawUpload { kind, .. }) => kind.canonical_content_type().to_owned(),
        _ => return Err(Failure::internal(format!("not an upload key: {key}"))),
    };
    Ok(Some(SourceUpload { raw_key: key.to_owned(), content_type, size: info.size, etag: Some(info.etag) }))
}
