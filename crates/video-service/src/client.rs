//! Talking to the Durable Objects: a JSON command to one named object and its
//! answer, for the Worker (errors as [`Failure`]s, the objects' client
//! errors relayed as they are) and for the objects themselves (one calls
//! another). Transport only: what is said is [`crate::protocol`]'s, apart
//! from [`announce`], the one call the Worker's handlers make to announce
//! a catalogue event that no video's object makes.

use media_core::catalogue::EventType;
use media_core::ids::{AppId, VideoId};
use media_core::video::webhook::EventBody;
use media_core::ApiError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Env, Method, Request, RequestInit, Response};
use worker_kit::clock::now;
use worker_kit::config::ConfigError;
use worker_kit::reply::error_response;
use worker_kit::Failure;

/// An object's raw answer: status and JSON text.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends `cmd` to the object `name` of `binding`.
pub async fn call<C: Serialize>(env: &Env, binding: &str, name: &str, cmd: &C) -> worker::Result<Answer> {
    let mut resp = open(env, binding, name, cmd).await?;
    Ok(Answer { status: resp.status_code(), body: resp.text().await? })
}

/// Sends `cmd` and reads a 200 as `T`; relays the object's client errors
/// (404, 409) as they are; anything else is ours (500, detail reported).
pub async fn ask<C: Serialize, T: DeserializeOwned>(
    env: &Env,
    binding: &str,
    name: &str,
    cmd: &C,
) -> Result<T, Failure> {
    let answer = call(env, binding, name, cmd)
        .await
        .map_err(|e| Failure::Unavailable { detail: format!("{binding} {name}: {e}") })?;
    read(binding, answer)
}

/// An object's answer as `T` (200), or the error it stands for.
pub fn read<T: DeserializeOwned>(binding: &str, answer: Answer) -> Result<T, Failure> {
    if answer.status == 200 {
        return serde_json::from_str(&answer.body).map_err(|e| Failure::internal(format!("{binding} answer: {e}")));
    }
    match ApiError::from_json(&answer.body) {
        Some(e) if answer.status < 500 => Err(Failure::Client(e)),
        _ => Err(Failure::internal(format!("{binding} answered {}: {}", answer.status, answer.body))),
    }
}

/// An object's answer refusing a command: the error as JSON with its
/// status, which the Worker relays as it is when it is a client error
/// ([`read`]).
pub fn refusal(e: &ApiError) -> worker::Result<Response> {
    Ok(Response::ok(e.to_json())?.with_status(e.status()))
}

/// An object's answer refusing a command through our own fault (a setting
/// that cannot be used): the JSON error a Worker gives for it (500, the
/// generic message), the detail logged under `what`.
pub fn our_fault(e: ConfigError, what: &str) -> Response {
    let f: Failure = e.into();
    if let Some(detail) = f.report_detail() {
        tracing::error!(detail, "{what}");
    }
    error_response(&f.to_api_error())
}

/// Sends `cmd` and returns the object's response as it is (an event stream).
pub async fn open<C: Serialize>(env: &Env, binding: &str, name: &str, cmd: &C) -> worker::Result<worker::Response> {
    let stub = env.durable_object(binding)?.id_from_name(name)?.get_stub()?;
    let body = serde_json::to_string(cmd).map_err(|e| worker::Error::RustError(format!("command: {e}")))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    stub.fetch_with_request(Request::new_with_init("https://object.internal/", &init)?).await
}

/// Reads a command an object was sent. With serde_json on the text, not the
/// runtime's `Request::json` (JavaScript's JSON.parse): that turns integers
/// past 2^53 (a client's `Last-Event-ID`) into floats, which a `u64` refuses.
pub async fn read_command<T: DeserializeOwned>(req: &mut Request, what: &str) -> Result<T, ApiError> {
    let text =
        req.text().await.map_err(|e| ApiError::new(media_core::ErrorCode::InvalidJson, format!("{what}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| ApiError::new(media_core::ErrorCode::InvalidJson, format!("{what}: {e}")))
}

/// Announces a catalogue event that comes from the Worker rather than a
/// video's object (`image.*`, `video.deleted`) to `app`'s hub: its stream
/// and webhook endpoints. Awaited: `Ok` (the event's body) once the hub has
/// it; an `Err` means it was not announced, and the caller decides (retry,
/// or log and go on: nothing else keeps it). `data` is what receivers get.
/// `id`: the event id's bytes, the same on every try of one fact (the hub
/// takes an id once), so a retry whose first try was taken is not a second event.
pub async fn announce(
    env: &Env,
    app: &AppId,
    event_type: EventType,
    id: [u8; 16],
    video_id: Option<VideoId>,
    data: serde_json::Value,
) -> Result<EventBody, Failure> {
    use crate::protocol::app_hub::{Announcement, HubCommand, APP_EVENTS_BINDING};
    let body = EventBody::new(event_type, id, now(), data);
    let cmd = HubCommand::Announce { app_id: app.clone(), events: vec![Announcement { body: body.clone(), video_id }] };
    let _: bool = ask(env, APP_EVENTS_BINDING, app.as_str(), &cmd).await?;
    Ok(body)
}

/// [`announce`], tried again after each of `ANNOUNCE_RETRY_WAITS_MS` while
/// it fails (the same id each time); one that still fails is logged at
/// error level with `metric="event_announce_failed"`. For `wait_until`.
pub async fn announce_with_retries(
    env: Env,
    app: AppId,
    event_type: EventType,
    id: [u8; 16],
    video_id: Option<VideoId>,
    data: serde_json::Value,
) {
    use media_core::wire::worker_events::ANNOUNCE_RETRY_WAITS_MS;
    let what = event_type.as_str();
    let mut waits = ANNOUNCE_RETRY_WAITS_MS.iter();
    loop {
        let detail = match announce(&env, &app, event_type, id, video_id.clone(), data.clone()).await {
            Ok(body) => return tracing::info!(app_id = %app, event_type = what, event_id = %body.id, "event announced"),
            Err(e) => e.report_detail().unwrap_or("refused").to_owned(),
        };
        let Some(&wait) = waits.next() else {
            return tracing::error!(metric = "event_announce_failed", app_id = %app, event_type = what, detail, "event not announced");
        };
        tracing::warn!(app_id = %app, event_type = what, detail, wait_ms = wait, "announcing the event failed; trying again");
        worker::Delay::from(std::time::Duration::from_millis(wait)).await;
    }
}
