//! `POST /internal/events`: catalogue events the image Worker announces
//! (`image.created`, `image.deleted`; `media_core::wire::worker_events`).
//! The image Worker has no app hub, so it calls this route through its
//! `VIDEO_SERVICE` service binding (locally, `VIDEO_SERVICE_URL`) with
//! `Authorization: Bearer <INTERNAL_EVENTS_TOKEN>`, the secret both Workers
//! hold. The event goes to its app's `AppHub` (the `/events` stream and the
//! app's webhook endpoints); 200 with the event's body once the hub has it.
//!
//! The token is checked before the method, as on the transcoder's routes:
//! a caller without it learns nothing of the route (401, 403). Unset, the
//! route admits nobody.

use media_core::http::auth::secrets_equal;
use media_core::video::webhook::EventBody;
use media_core::wire::routes::{Route, VideoRoute};
use media_core::wire::worker_events::WorkerEvent;
use media_core::{ApiError, ErrorCode};
use worker::Request;
use worker_kit::body::read_body;
use worker_kit::clock::{now, random_bytes};
use worker_kit::method::{known_method, strict_gate};
use worker_kit::reply::json;
use worker_kit::Handled;

use crate::client;
use crate::protocol::app_hub::{Announcement, HubCommand, APP_EVENTS_BINDING};
use crate::VideoContext;

/// An event's body is small: ids and a record.
const MAX_BODY: u64 = 16 * 1024;

/// Checks `Authorization: Bearer <INTERNAL_EVENTS_TOKEN>`.
fn check_token(authorization: Option<&str>, expected: Option<&str>) -> Result<(), ApiError> {
    let given = authorization.and_then(|h| h.strip_prefix("Bearer ")).filter(|t| !t.is_empty()).ok_or_else(|| {
        ApiError::new(ErrorCode::Unauthorized, "this route is for the platform's Workers: send their bearer token")
    })?;
    match expected {
        Some(token) if secrets_equal(given, token) => Ok(()),
        _ => Err(ApiError::new(ErrorCode::Forbidden, "the bearer token is not valid")),
    }
}

/// `POST /internal/events`.
pub async fn receive(mut req: Request, cx: &VideoContext<'_>, row: &'static Route<VideoRoute>) -> Handled {
    let expected = cx.settings.internal_events_token.as_deref();
    if expected.is_none() {
        tracing::warn!(
            "INTERNAL_EVENTS_TOKEN is not set: /internal/events admits nobody, image events are not announced"
        );
    }
    check_token(req.headers().get("authorization")?.as_deref(), expected)?;
    if let Some(refused) = strict_gate(known_method(&req).as_ref(), row.methods) {
        return Ok(refused);
    }
    let bytes = read_body(&mut req, MAX_BODY).await?;
    let event: WorkerEvent = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("the body is not a valid event: {e}")))?;
    if !WorkerEvent::may_come_from_a_worker(event.event_type) {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("{} is announced by the video's own object, not through this route", event.event_type.as_str()),
        )
        .into());
    }
    let id = event.id_bytes().unwrap_or_else(random_bytes::<16>);
    let body = EventBody::new(event.event_type, id, now(), event.data);
    let cmd = HubCommand::Announce {
        app_id: event.app_id.clone(),
        events: vec![Announcement { body: body.clone(), video_id: None }],
    };
    let _: bool = client::ask(cx.env, APP_EVENTS_BINDING, event.app_id.as_str(), &cmd).await?;
    tracing::info!(app_id = %event.app_id, event_type = event.event_type.as_str(), event_id = %body.id, "worker event announced");
    json(200, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_shared_token_passes() {
        assert_eq!(check_token(None, Some("t")).unwrap_err().code, ErrorCode::Unauthorized);
        assert_eq!(check_token(Some("Bearer "), Some("t")).unwrap_err().code, ErrorCode::Unauthorized);
        assert_eq!(check_token(Some("Bearer x"), Some("t")).unwrap_err().code, ErrorCode::Forbidden);
        assert_eq!(check_token(Some("Bearer t"), None).unwrap_err().code, ErrorCode::Forbidden, "unset: nobody");
        assert!(check_token(Some("Bearer t"), Some("t")).is_ok());
    }
}
