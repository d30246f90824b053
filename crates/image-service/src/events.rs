//! The image Worker's catalogue events: `image.created` when an image's
//! record is written (the server upload, or the check of a presigned
//! upload: [`crate::records`]) and `image.deleted` when a delete removed
//! anything ([`crate::delete`]). The app hubs live in the video Worker, so
//! each event goes to its `POST /internal/events`
//! (`media_core::wire::worker_events`) with the `INTERNAL_EVENTS_TOKEN`
//! both Workers hold:
//!
//! - in production, through the `VIDEO_SERVICE` service binding
//!   (`wrangler-image.toml`: a Worker cannot reach another Worker of the
//!   same zone by its public URL);
//! - where there is no binding (`wrangler dev`, two processes:
//!   `devkit/platform.mjs`), over HTTP to `VIDEO_SERVICE_URL`;
//! - with neither, or no token, events are not announced (logged once per
//!   event at warn level).
//!
//! Announcing never fails the request that caused it. One the video Worker
//! does not take (no answer, 429, 5xx) is tried again, three tries within
//! about 5 s (`ANNOUNCE_RETRY_WAITS_MS`), each with the same event id; a
//! refusal or a last failure is logged at error level with
//! `metric="event_announce_failed"`.

use media_core::catalogue::EventType;
use media_core::ids::{AppId, ImageId};
use media_core::wire::api::ImageRecord;
use media_core::wire::worker_events::{WorkerEvent, ANNOUNCE_RETRY_WAITS_MS, WORKER_EVENTS_PATH};
use serde_json::json;
use std::time::Duration;

use worker::{Delay, Env, Fetch, Headers, Method, Request, RequestInit};
use worker_kit::clock::now;
use worker_kit::config::Vars;

/// The service binding to the video Worker.
pub const VIDEO_SERVICE_BINDING: &str = "VIDEO_SERVICE";

/// Where the image Worker's events go.
#[derive(Clone, Default)]
pub struct EventSettings {
    /// `INTERNAL_EVENTS_TOKEN` (secret; the video Worker's too).
    token: Option<String>,
    /// `VIDEO_SERVICE_URL`: the video Worker's origin, used only where the
    /// `VIDEO_SERVICE` binding is absent.
    pub video_service_url: Option<String>,
}

impl EventSettings {
    pub fn load(vars: &Vars<'_>) -> Self {
        EventSettings {
            token: vars.get("INTERNAL_EVENTS_TOKEN"),
            video_service_url: vars.get("VIDEO_SERVICE_URL").map(|u| u.trim_end_matches('/').to_owned()),
        }
    }
}

/// The `data` of `image.created`: the image's record as `GET /images`
/// shows it, with its ids.
fn created_data(app: &AppId, image: &ImageId, rec: &ImageRecord) -> serde_json::Value {
    json!({ "app_id": app, "image_id": image, "meta": rec.meta })
}

/// Announces `image.created` for the record just written. Told twice (two
/// first serves checking the same upload), it is one event: its id comes
/// from the version checked, its entity tag and `version` (which upload of
/// the key it is: the stored object's version, or the upload's time), so
/// the same bytes deleted and uploaded again under the id are a new event.
pub async fn image_created(
    env: &Env,
    settings: &EventSettings,
    app: &AppId,
    image: &ImageId,
    rec: &ImageRecord,
    version: &str,
) {
    let event = WorkerEvent {
        app_id: app.clone(),
        event_type: EventType::ImageCreated,
        data: created_data(app, image, rec),
        dedup: Some(format!("{image}/{}/{version}", rec.etag.as_deref().unwrap_or(""))),
    };
    announce(env, settings, &event).await;
}

/// Announces `image.deleted`: one event for this delete, however many tries.
pub async fn image_deleted(env: &Env, settings: &EventSettings, app: &AppId, image: &ImageId) {
    let event = WorkerEvent {
        app_id: app.clone(),
        event_type: EventType::ImageDeleted,
        data: json!({ "app_id": app, "image_id": image }),
        // This delete, by its time: every try repeats it, a later delete does not.
        dedup: Some(format!("{image}/{}", now().millis())),
    };
    announce(env, settings, &event).await;
}

/// Sends `event`, tried again after each of `ANNOUNCE_RETRY_WAITS_MS` while
/// the video Worker does not answer or answers 429 or 5xx (every try the
/// same event id: its `dedup` key); a refusal (401, 403, 400) is not retried.
async fn announce(env: &Env, settings: &EventSettings, event: &WorkerEvent) {
    let what = event.event_type.as_str();
    let mut waits = ANNOUNCE_RETRY_WAITS_MS.iter();
    loop {
        let (detail, retry) = match send(env, settings, event).await {
            Ok(true) => return tracing::info!(app_id = %event.app_id, event_type = what, "event announced"),
            Ok(false) => {
                return tracing::warn!(app_id = %event.app_id, event_type = what, "event not announced: no INTERNAL_EVENTS_TOKEN, or neither the VIDEO_SERVICE binding nor VIDEO_SERVICE_URL")
            }
            Err(failed) => failed,
        };
        match waits.next() {
            Some(&wait) if retry => {
                tracing::warn!(app_id = %event.app_id, event_type = what, detail, wait_ms = wait, "announcing the event failed; trying again");
                Delay::from(Duration::from_millis(wait)).await;
            }
            _ => {
                return tracing::error!(metric = "event_announce_failed", app_id = %event.app_id, event_type = what, detail, "event not announced")
            }
        }
    }
}

/// Sends one event; `Ok(false)` when nothing is configured to send it. A
/// failure says whether it is worth another try.
async fn send(env: &Env, settings: &EventSettings, event: &WorkerEvent) -> Result<bool, (String, bool)> {
    let Some(token) = settings.token.as_deref() else { return Ok(false) };
    let body = serde_json::to_string(event).map_err(|e| (e.to_string(), false))?;
    let request = |origin: &str| -> worker::Result<Request> {
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        headers.set("authorization", &format!("Bearer {token}"))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers).with_body(Some(body.clone().into()));
        Request::new_with_init(&format!("{origin}{WORKER_EVENTS_PATH}"), &init)
    };
    let answer = if let Ok(video) = env.service(VIDEO_SERVICE_BINDING) {
        // The host is not looked at: the binding names the Worker.
        let req = request("https://video-service.internal").map_err(|e| (e.to_string(), false))?;
        video.fetch_request(req).await
    } else if let Some(url) = settings.video_service_url.as_deref() {
        Fetch::Request(request(url).map_err(|e| (e.to_string(), false))?).send().await
    } else {
        return Ok(false);
    };
    let mut resp = answer.map_err(|e| (format!("the video service did not answer: {e}"), true))?;
    match resp.status_code() {
        200 => Ok(true),
        status => Err((
            format!("the video service answered {status}: {}", resp.text().await.unwrap_or_default()),
            status == 429 || status >= 500,
        )),
    }
}
