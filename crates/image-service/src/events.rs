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
//! Announcing never fails the request that caused it: a refused or failed
//! announcement is logged at error level with `metric="event_announce_failed"`.

use media_core::catalogue::EventType;
use media_core::ids::{AppId, ImageId};
use media_core::wire::api::ImageRecord;
use media_core::wire::worker_events::{WorkerEvent, WORKER_EVENTS_PATH};
use serde_json::json;
use worker::{Env, Fetch, Headers, Method, Request, RequestInit};
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
/// from the version checked.
pub async fn image_created(env: &Env, settings: &EventSettings, app: &AppId, image: &ImageId, rec: &ImageRecord) {
    let event = WorkerEvent {
        app_id: app.clone(),
        event_type: EventType::ImageCreated,
        data: created_data(app, image, rec),
        dedup: Some(format!("{image}/{}", rec.etag.as_deref().unwrap_or(""))),
    };
    announce(env, settings, &event).await;
}

/// Announces `image.deleted`.
pub async fn image_deleted(env: &Env, settings: &EventSettings, app: &AppId, image: &ImageId) {
    let event = WorkerEvent {
        app_id: app.clone(),
        event_type: EventType::ImageDeleted,
        data: json!({ "app_id": app, "image_id": image }),
        dedup: None,
    };
    announce(env, settings, &event).await;
}

async fn announce(env: &Env, settings: &EventSettings, event: &WorkerEvent) {
    let what = event.event_type.as_str();
    match send(env, settings, event).await {
        Ok(true) => tracing::info!(app_id = %event.app_id, event_type = what, "event announced"),
        Ok(false) => {
            tracing::warn!(app_id = %event.app_id, event_type = what, "event not announced: no INTERNAL_EVENTS_TOKEN, or neither the VIDEO_SERVICE binding nor VIDEO_SERVICE_URL")
        }
        Err(detail) => {
            tracing::error!(metric = "event_announce_failed", app_id = %event.app_id, event_type = what, detail, "event not announced")
        }
    }
}

/// Sends one event; `Ok(false)` when nothing is configured to send it.
async fn send(env: &Env, settings: &EventSettings, event: &WorkerEvent) -> Result<bool, String> {
    let Some(token) = settings.token.as_deref() else { return Ok(false) };
    let body = serde_json::to_string(event).map_err(|e| e.to_string())?;
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
        let req = request("https://video-service.internal").map_err(|e| e.to_string())?;
        video.fetch_request(req).await
    } else if let Some(url) = settings.video_service_url.as_deref() {
        Fetch::Request(request(url).map_err(|e| e.to_string())?).send().await
    } else {
        return Ok(false);
    };
    let mut resp = answer.map_err(|e| format!("the video service did not answer: {e}"))?;
    match resp.status_code() {
        200 => Ok(true),
        status => Err(format!("the video service answered {status}: {}", resp.text().await.unwrap_or_default())),
    }
}
