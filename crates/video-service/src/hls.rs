//! The HLS playback route: `GET`/`HEAD /hls/{app}/{video}/{output}/...`
//! streams the transcoder's outputs from storage. The path must be exactly
//! the canonical key of an HLS output file (see `media_core::keys`), which is
//! what keeps requests inside a video's own prefix, and `{output}` must be
//! the video's current output (the attempt that became playable, from the
//! job read model of [`crate::status`]): the outputs of failed or canceled
//! attempts are 404. Files are kept at the edge (segments for a year,
//! playlists for 2 s), so a repeated segment costs no storage operation.
//! A request whose job read reaches the video's object counts against the
//! client's `PUBLIC_RATE_LIMITER` budget.

use media_core::keys::ObjectKey;
use media_core::ApiError;
use worker::Request;
use worker_kit::serve::{edge_hit, serve_object, ServeSpec};
use worker_kit::{Failure, Handled};

use crate::status::public_job;
use crate::VideoContext;

fn no_such_file() -> Failure {
    ApiError::not_found("no such playback file; use the URLs /playback-url and /job-status return").into()
}

pub async fn serve(req: Request, cx: &VideoContext<'_>) -> Handled {
    let path = req.path();
    let key = path.strip_prefix('/').unwrap_or(&path);
    let Some(ObjectKey::Hls { app, video, output, file }) = ObjectKey::parse(key) else {
        return Err(no_such_file());
    };
    // Segments and done videos come from the edge or KV; what asks the
    // video's object (a running job's playlists, unknown ids) is counted.
    let (job, source) = public_job(cx.env, &app, &video, Some((&req, "hls"))).await?;
    let current = job.as_ref().filter(|j| j.playable).and_then(|j| j.output_id.as_ref());
    if current != Some(&output) {
        return Err(no_such_file());
    }
    let origin = req.url()?.origin().ascii_serialization();
    let cache_key = format!("{origin}/{key}");
    // After the job check: a file of a replaced output is never served.
    let mut resp = match edge_hit(&cache_key, &req).await? {
        Some(hit) => hit,
        None => {
            let spec = ServeSpec {
                key,
                what: "this playback file",
                cache_control: file.cache_policy().header_value(),
                pinned_etag: None,
                known_size: None,
                edge_cache: Some((cache_key, cx.execution)),
            };
            serve_object(cx.store()?, &req, spec, |_| file.content_type().to_owned()).await?
        }
    };
    resp.headers_mut().append("server-timing", &source.server_timing())?;
    Ok(resp)
}
