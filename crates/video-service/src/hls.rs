//! The HLS playback route: `GET`/`HEAD /hls/{app}/{video}/{output}/...`
//! streams the transcoder's outputs from storage. The path must be exactly
//! the canonical key of an HLS output file (see `media_core::keys`), which is
//! what keeps requests inside a video's own prefix.

use media_core::keys::ObjectKey;
use media_core::ApiError;
use worker::{Env, Request};
use worker_kit::serve::{serve_object, Presentation};
use worker_kit::store::AnyStore;
use worker_kit::Handled;

pub async fn serve(req: Request, env: &Env) -> Handled {
    let path = req.path();
    let key = path.strip_prefix('/').unwrap_or(&path);
    let Some(ObjectKey::Hls { file, .. }) = ObjectKey::parse(key) else {
        return Err(ApiError::not_found("no such playback file; use the URLs /playback-url and /job-status return").into());
    };
    let store = AnyStore::from_env(env)?;
    let how = Presentation { content_type: file.content_type(), cache_control: file.cache_policy().header_value() };
    serve_object(&store, key, &req, how, "this playback file").await
}
