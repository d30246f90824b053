//! The token-in-path playback routes: `GET`/`HEAD /hls/t/{token}/{rest}`,
//! where `{rest}` is what follows `hls/{app}/{video}/{output}/` in the
//! canonical key (`master.m3u8`, `{rung}/index.m3u8`, `{rung}/init.mp4`,
//! segments, `poster.jpg`, `sprite.jpg`, `thumbnails.vtt`), and
//! `/hls/t/{token}/key`, an encrypted video's AES-128 key.
//!
//! The token (`crate::playback_auth::verify`) names the video; its key
//! names the app. Files come from the video's *current* output, through
//! the public route's [`crate::hls::serve_current`]: the edge cache key is
//! the canonical object key, never the token, so every viewer shares the
//! cached segments, and a token never reaches storage or a cache key. The
//! answers are `private` (a shared cache outside ours must not keep a
//! token's answer past its expiry), for at most the token's remaining life.
//! The token stays in every relative URI of the playlists, so players need
//! no rewriting. The key answers `no-store`, `application/octet-stream`;
//! 404 for a video that is not encrypted.
//!
//! App ids may be `t`: a path whose second segment has no dot (a token has
//! two, a video id none) is app `t`'s public file, [`crate::hls::serve`].

use media_core::keys::{HlsFile, ObjectKey};
use media_core::video::access::Encryption;
use media_core::video::job::Job;
use media_core::video::playback_token::TOKEN_PATH_PREFIX;
use media_core::ApiError;
use worker::Request;
use worker_kit::clock::now;
use worker_kit::serve::{serve_object, ServeSpec};
use worker_kit::{Failure, Handled};

use crate::status::public_job;
use crate::{hls, playback_auth, VideoContext};

fn no_such_file() -> Failure {
    ApiError::not_found("no such playback file; use the playback_url your token came with").into()
}

/// The `Cache-Control` of a token's answer: `private`, for the file's
/// policy's max-age or the token's remaining life, whichever is shorter.
fn private_cache_control(file: &HlsFile, left_s: u64) -> String {
    let policy = file.cache_policy().header_value();
    let max_age: u64 = policy
        .split("max-age=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    format!("private, max-age={}", max_age.min(left_s))
}

pub async fn serve(req: Request, cx: &VideoContext<'_>) -> Handled {
    let path = req.path();
    let rest = path.strip_prefix(TOKEN_PATH_PREFIX).unwrap_or_default();
    let (token, file) = rest.split_once('/').unwrap_or((rest, ""));
    if !token.contains('.') {
        return hls::serve(req, cx).await;
    }
    let grant = playback_auth::verify(cx.env, &req, token, "hls").await?;
    let (job, source) = public_job(cx.env, &grant.app, &grant.video, Some((&req, "hls"))).await?;
    let Some(job) = job else {
        return Err(ApiError::not_found(format!(
            "this token is for video {:?}, which has no job in its key's app",
            grant.video.as_str()
        ))
        .into());
    };
    let Some(output) = job.output_id.as_ref().filter(|_| job.playable) else {
        return Err(ApiError::not_found("the video is not playable yet; poll /job-status").into());
    };
    let mut resp = if file == "key" {
        aes_key(&req, cx, &job).await?
    } else {
        let key = format!("{}{file}", ObjectKey::hls_prefix(&grant.app, &grant.video, output));
        let Some(ObjectKey::Hls { file: hls_file, .. }) = ObjectKey::parse(&key) else { return Err(no_such_file()) };
        let mut resp = hls::serve_current(&req, cx, &key, &job, &hls_file).await?;
        let left_s = grant.expires_at.secs().saturating_sub(now().secs());
        resp.headers_mut().set("cache-control", &private_cache_control(&hls_file, left_s))?;
        resp
    };
    resp.headers_mut().append("server-timing", &source.server_timing())?;
    Ok(resp)
}

/// The AES-128 key of the job's current output (16 bytes the transcoder
/// wrote to `keys/{app}/{video}/{output}/aes128.key`), never cached.
async fn aes_key(req: &Request, cx: &VideoContext<'_>, job: &Job) -> Handled {
    let Some(output) = job.output_id.clone() else { return Err(no_such_file()) };
    if job.playback.encryption != Encryption::Aes128 {
        return Err(
            ApiError::not_found(format!("video {:?} is not encrypted: it has no key", job.video_id.as_str())).into()
        );
    }
    let key = ObjectKey::HlsKey { app: job.app_id.clone(), video: job.video_id.clone(), output }.to_string();
    let spec = ServeSpec {
        key: &key,
        what: "this video's key",
        cache_control: "no-store",
        pinned_etag: None,
        known_size: None,
        edge_cache: None,
    };
    serve_object(cx.store()?, req, spec, |_| "application/octet-stream".to_owned()).await
}

#[cfg(test)]
mod tests {
    use media_core::keys::{RungFile, RungName};

    use super::*;

    #[test]
    fn a_token_answer_is_private_and_lives_no_longer_than_the_token() {
        let segment = HlsFile::Rung(RungName::parse("360p").unwrap(), RungFile::Segment(0));
        assert_eq!(private_cache_control(&segment, 600), "private, max-age=600");
        assert_eq!(private_cache_control(&segment, u64::MAX), "private, max-age=31536000");
        assert_eq!(private_cache_control(&HlsFile::Master, 600), "private, max-age=2");
        assert_eq!(private_cache_control(&HlsFile::Master, 0), "private, max-age=0");
    }
}
