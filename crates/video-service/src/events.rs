//! The event stream routes: `GET /job-events?app_id=&video_id=` (public,
//! like `/job-status`), one video's job events from its `VideoJob` object
//! (ids without a job answer 404 from KV, reaching no object; the object
//! caps its open streams per video and per client address, 429 past them,
//! `SSE_MAX_PER_VIDEO` and `SSE_MAX_PER_ADDRESS`),
//! and `GET /events?app_id=` (API key, that app only; or, for a browser's
//! `EventSource`, `&stream_token=` from `POST /events/token`,
//! [`crate::stream_token`]), every job event and webhook outcome of the app
//! from its `AppHub` object. The object holds the stream ([`crate::sse`]);
//! this Worker passes it on untouched, with the stream headers (and CORS on
//! the public one, and on `/events` opened with a stream token).
//!
//! A reconnecting client sends `Last-Event-ID` (an `EventSource` does so by
//! itself); `?last_event_id=` does the same for clients that cannot set
//! headers. One whose id the object no longer keeps gets `reset` with the
//! present state instead of a replay with a hole ([`crate::sse::EventLog::since`]).
//! A stream token is checked when the stream opens: an `EventSource` that
//! reconnects after it expired gets 401, which closes it for good, so the
//! page mints a new token on `error` and opens the stream again with
//! `&last_event_id=`.

use media_core::ids::{AppId, VideoId};
use media_core::video::events::{address_bucket, parse_last_event_id};
use media_core::wire::api::query_id;
use media_core::ApiError;
use worker::{Request, Response};
use worker_kit::entry::{guard_key_or_stream_token, Admitted};
use worker_kit::query::query;
use worker_kit::ratelimit::{client_ip, enforce_public};
use worker_kit::{Failure, Handled};

use crate::client;
use crate::protocol::app_hub::{HubCommand, APP_EVENTS_BINDING};
use crate::protocol::video_job::{VideoCall, VideoOp, VIDEO_JOBS_BINDING};
use crate::sse::stream_headers;
use crate::status::may_have_job;
use crate::VideoContext;

/// The resume point a client asks for: the header, else the query parameter.
fn last_event_id(req: &Request, q: &[(String, String)]) -> Result<Option<u64>, Failure> {
    let header = req.headers().get("last-event-id")?;
    let param = q.iter().find(|(k, _)| k == "last_event_id").map(|(_, v)| v.as_str());
    Ok(parse_last_event_id(header.as_deref().or(param)))
}

/// `GET /job-events?app_id=&video_id=`.
pub async fn job_events(req: Request, cx: &VideoContext<'_>, base: &str) -> Handled {
    enforce_public(cx.env, &req, "job-events").await?;
    let q = query(&req)?;
    let app_id = query_id(&q, "app_id", AppId::parse)?;
    let video_id = query_id(&q, "video_id", VideoId::parse)?;
    let last_event_id = last_event_id(&req, &q)?;
    // Ids without a job answer 404 from the cache or KV, reaching no object.
    if !may_have_job(cx.env, &app_id, &video_id).await {
        return Err(ApiError::not_found(format!(
            "no job for app_id {app_id:?} and video_id {video_id:?}; call /notify-upload-complete after uploading"
        ))
        .into());
    }
    // Its streams count against the caps per video and per address.
    let address = Some(address_bucket(&client_ip(&req)));
    let call =
        VideoCall { app_id, video_id, base: Some(base.to_owned()), op: VideoOp::Events { last_event_id, address } };
    let resp = client::open(cx.env, VIDEO_JOBS_BINDING, &call.object_name(), &call)
        .await
        .map_err(|e| Failure::Unavailable { detail: format!("video job events: {e}") })?;
    pass_stream(resp).await
}

/// `GET /events?app_id=`: the app's stream, for its backends (the key) and
/// dashboards (the key, or a stream token in the page).
pub async fn app_events(req: Request, cx: &VideoContext<'_>) -> Handled {
    let q = query(&req)?;
    let app = query_id(&q, "app_id", AppId::parse);
    let admitted =
        guard_key_or_stream_token(&req, cx, "events", |token| crate::stream_token::verify(cx, token, &app.clone()?))
            .await?;
    let app_id = app?;
    if let Admitted::Key(grant) = admitted {
        grant.check_app(&app_id)?;
    }
    let last_event_id = last_event_id(&req, &q)?;
    let resp = client::open(cx.env, APP_EVENTS_BINDING, app_id.as_str(), &HubCommand::Subscribe { last_event_id })
        .await
        .map_err(|e| Failure::Unavailable { detail: format!("app events: {e}") })?;
    pass_stream(resp).await
}

/// An object's stream answer as this Worker's: 200 streams on with our
/// headers, 204 (nothing more, stop reconnecting) as is, errors relayed.
async fn pass_stream(mut resp: Response) -> Handled {
    match resp.status_code() {
        200 => Ok(resp.with_headers(stream_headers()?)),
        204 => Ok(Response::empty()?.with_status(204)),
        status => {
            let body = resp.text().await?;
            match ApiError::from_json(&body) {
                Some(e) if status < 500 => Err(Failure::Client(e)),
                _ => Err(Failure::internal(format!("event stream answered {status}: {body}"))),
            }
        }
    }
}
