//! The HLS playback route: `GET`/`HEAD /hls/{app}/{video}/{output}/...`
//! streams the transcoder's outputs from storage. The path must be exactly
//! the canonical key of an HLS output file (see `media_core::keys`), which is
//! what keeps requests inside a video's own prefix, and `{output}` must be
//! the video's current output (the attempt that became playable, from the
//! job read model of [`crate::status`]): the outputs of failed or canceled
//! attempts are 404, except their rung playlists, which answer an ended,
//! empty playlist (`media_core::video::playlist::ended_playlist`, no storage
//! read) so that players of a retried or canceled attempt's EVENT playlist
//! stop cleanly. Ids without a job answer 404 from KV, reaching no object.
//! A video that requires signed URLs (`job.playback.require_signed_urls`)
//! answers 403 `signed_url_required` here: its files are served by
//! [`crate::signed_hls`] (`/hls/t/{token}/...`), through [`serve_current`]
//! as these are.
//! Files are kept at the edge (segments for a year, or
//! `EDGE_TTL_WITHOUT_PURGE_S` where no purge is configured; playlists for
//! 2 s), tagged with the video's cache tag for the delete's purge, so a
//! repeated segment costs no storage operation.
//! A chunked job's playlists (master and every rendition's, the `audio`
//! group's too) are not in storage: its chunks finish out of order on
//! several transcoders, so the job's object is their one writer and this
//! route renders them from the job it read
//! (`media_core::video::playlist::chunked_master_playlist` and
//! `chunked_media_playlist`: the contiguous prefix of published segments,
//! EVENT until done, then VOD). Its segments and inits come from storage.
//! A video with caption tracks has its master rendered per request (the
//! stored or rendered master with its subtitle group), and each track's
//! subtitle playlist and segmented WebVTT are rendered from the track in
//! storage (`media_core::video::captions`).
//! A request whose job read the edge cache does not answer (KV, maybe the
//! video's object) counts against the client's `PUBLIC_RATE_LIMITER` budget.

use media_core::http::purge::video_tag;
use media_core::keys::{HlsFile, ObjectKey, RungFile, SubtitleFile};
use media_core::video::captions;
use media_core::video::job::Job;
use media_core::video::playback_token::signed_url_required;
use media_core::video::playlist::{chunked_master_playlist, chunked_media_playlist, ended_playlist};
use media_core::ApiError;
use worker::{Headers, Method, Request, Response};
use worker_kit::serve::{edge_hit, serve_object, EdgeCache, ServeSpec};
use worker_kit::{Failure, Handled};

use crate::status::{public_job, ReadSource};
use crate::VideoContext;

/// A text answer for `file`, kept as briefly as a playlist (`CachePolicy::Short`).
fn text_answer(req: &Request, file: &HlsFile, body: String) -> Handled {
    let headers = Headers::new();
    headers.set("content-type", file.content_type())?;
    headers.set("cache-control", file.cache_policy().header_value())?;
    let body = if req.method() == Method::Head { String::new() } else { body };
    Ok(Response::ok(body)?.with_headers(headers))
}

/// The master of a video with caption tracks: the stored (or, for a
/// chunked job, rendered) master with the subtitle group added
/// (`media_core::video::captions::with_subtitles`). Rendered per request,
/// since a track may be added or deleted at any time.
async fn master_with_captions(req: &Request, cx: &VideoContext<'_>, key: &str, job: &Job) -> Handled {
    let master = match job.chunks.is_some() {
        true => chunked_master_playlist(job).ok_or_else(no_such_file)?,
        false => String::from_utf8(stored_bytes(cx, key).await?.ok_or_else(no_such_file)?).map_err(|_| {
            tracing::error!(key, "the stored master playlist is not UTF-8");
            ApiError::internal()
        })?,
    };
    text_answer(req, &HlsFile::Master, captions::with_subtitles(&master, &job.captions))
}

/// A subtitle rendition's playlist (segments of the ladder's length over
/// the video's duration) or one of its segments (the cues it overlaps, cut
/// from the track in storage).
async fn subtitles(req: &Request, cx: &VideoContext<'_>, job: &Job, language: &str, file: &SubtitleFile) -> Handled {
    if !job.captions.iter().any(|t| t.language == language) {
        return Err(no_such_file());
    }
    let segment_s = f64::from(job.ladder.segment_s.max(1));
    let duration_s = job.result.as_ref().map(|r| r.duration_s).filter(|d| *d > 0.0);
    let hls = HlsFile::Subtitles(language.to_owned(), file.clone());
    match file {
        SubtitleFile::Playlist => {
            let duration_s = duration_s
                .or(job.chunks.as_ref().map(|c| c.geometry.total_frames as f64 * c.geometry.frame_s()))
                .ok_or_else(|| {
                    ApiError::conflict("the video's duration is known once it is done; its captions play from then")
                })?;
            text_answer(req, &hls, captions::subtitle_playlist(duration_s, segment_s))
        }
        SubtitleFile::Segment(seq) => {
            let key = ObjectKey::Caption {
                app: job.app_id.clone(),
                video: job.video_id.clone(),
                language: language.to_owned(),
            };
            let bytes = stored_bytes(cx, &key.to_string()).await?.ok_or_else(no_such_file)?;
            let (_, cues) = captions::parse_caption(&bytes).map_err(|e| {
                tracing::error!(language, error = %e, "a stored caption track does not read back");
                ApiError::internal()
            })?;
            let (from, to) = captions::subtitle_segment_window(*seq, segment_s);
            text_answer(req, &hls, captions::webvtt_segment(&cues, from, to))
        }
    }
}

/// All of an object's bytes, or `None` when there is no such object.
pub async fn stored_bytes(cx: &VideoContext<'_>, key: &str) -> Result<Option<Vec<u8>>, Failure> {
    use worker_kit::store::{collect_body, ObjectStore, ReadOutcome, ReadRequest};
    match cx.store()?.read(key, &ReadRequest::default()).await.map_err(Failure::from)? {
        Some(ReadOutcome::Body { body, .. }) => Ok(Some(collect_body(body).await?)),
        _ => Ok(None),
    }
}

fn no_such_file() -> Failure {
    ApiError::not_found("no such playback file; use the URLs /playback-url and /job-status return").into()
}

/// A chunked job's master or rendition playlist, rendered from `job`
/// (`None`: another file, read from storage). Kept as briefly as a
/// playlist in storage would be (`CachePolicy::Short`), and not put in the
/// edge cache: the job read it comes from already is, for as long.
fn rendered_playlist(req: &Request, job: &Job, file: &HlsFile) -> Result<Option<Response>, Failure> {
    let body = match file {
        HlsFile::Master => chunked_master_playlist(job),
        HlsFile::Rung(rung, RungFile::Playlist) => chunked_media_playlist(job, rung.as_str()),
        _ => return Ok(None),
    };
    let Some(body) = body else { return Err(no_such_file()) };
    text_answer(req, file, body).map(Some)
}

/// The ended playlist of a replaced attempt, kept at the edge no longer
/// than a live playlist.
fn ended(req: &Request, source: ReadSource) -> Handled {
    let headers = Headers::new();
    headers.set("content-type", HlsFile::Master.content_type())?;
    headers.set("cache-control", "public, max-age=2")?;
    headers.set("server-timing", &source.server_timing())?;
    let body = if req.method() == Method::Head { String::new() } else { ended_playlist() };
    Ok(Response::ok(body)?.with_headers(headers))
}

pub async fn serve(req: Request, cx: &VideoContext<'_>) -> Handled {
    let path = req.path();
    let key = path.strip_prefix('/').unwrap_or(&path);
    let Some(ObjectKey::Hls { app, video, output, file }) = ObjectKey::parse(key) else {
        return Err(no_such_file());
    };
    // Segments come with the job read from the edge cache; what misses it
    // (KV, a running job's object, unknown ids) is counted.
    let (job, source) = public_job(cx.env, &app, &video, Some((&req, "hls"))).await?;
    let Some(job) = job else { return Err(no_such_file()) };
    if job.playback.require_signed_urls {
        return Err(signed_url_required(&app, &video).into());
    }
    let current = Some(&job).filter(|j| j.playable).and_then(|j| j.output_id.as_ref());
    if current != Some(&output) {
        // A replaced attempt: neither the job's output nor the running attempt's (not playable yet).
        let running = job.lease.as_ref().map(|l| &l.output_id).or(job.chunks.as_ref().map(|c| &c.output_id));
        let replaced = job.output_id.as_ref() != Some(&output) && running != Some(&output);
        if replaced && matches!(file, HlsFile::Rung(_, RungFile::Playlist)) {
            return ended(&req, source);
        }
        return Err(no_such_file());
    }
    // After the job check: a file of a replaced output is never served.
    let mut resp = serve_current(&req, cx, key, &job, &file).await?;
    resp.headers_mut().append("server-timing", &source.server_timing())?;
    Ok(resp)
}

/// Serves `key`, the file `file` of `job`'s current output, from the
/// edge cache (whose key is the canonical object key: every route to the
/// file shares one copy) or storage, kept at the edge as its policy says;
/// a chunked job's playlists rendered from `job` ([`rendered_playlist`]).
pub async fn serve_current(req: &Request, cx: &VideoContext<'_>, key: &str, job: &Job, file: &HlsFile) -> Handled {
    match file {
        HlsFile::Subtitles(language, sub) => return subtitles(req, cx, job, language, sub).await,
        HlsFile::Master if !job.captions.is_empty() => return master_with_captions(req, cx, key, job).await,
        _ => {}
    }
    if job.chunks.is_some() {
        if let Some(resp) = rendered_playlist(req, job, file)? {
            return Ok(resp);
        }
    }
    let (app, video) = (&job.app_id, &job.video_id);
    let origin = req.url()?.origin().ascii_serialization();
    let cache_key = format!("{origin}/{key}");
    let resp = match edge_hit(&cache_key, req).await? {
        Some(hit) => hit,
        None => {
            let host = req.url()?.host_str().unwrap_or_default().to_owned();
            let cache_control = cx.common.purge.edge_cache_control(file.cache_policy().header_value(), &host);
            let spec = ServeSpec {
                key,
                what: "this playback file",
                cache_control: &cache_control,
                pinned_etag: None,
                known_size: None,
                edge_cache: Some(EdgeCache { key: cache_key, ctx: cx.execution, tags: vec![video_tag(app, video)] }),
            };
            serve_object(cx.store()?, req, spec, |_| file.content_type().to_owned()).await?
        }
    };
    Ok(resp)
}
