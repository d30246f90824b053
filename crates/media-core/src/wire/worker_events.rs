//! Catalogue events one of our Workers hands to the other: the image
//! Worker has no app hub of its own, so it sends its `image.*` events to the
//! video Worker's `POST /internal/events` (through a service binding, with
//! the shared `INTERNAL_EVENTS_TOKEN`), which announces them to the app's
//! `AppHub`: its `/events` stream and webhook endpoints.
//!
//! An event may name a `dedup` key: the event's id is then derived from
//! (type, app, key), so that the same fact told twice (two first serves of
//! a presigned image both recording it) is one event, since the hub takes
//! an id once.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalogue::EventType;
use crate::ids::AppId;

/// The video Worker's route that takes them.
pub const WORKER_EVENTS_PATH: &str = "/internal/events";

/// The waits between the tries of one Worker event's announcement (three
/// tries within about 5 s, inside the caller's `wait_until` or request):
/// nothing else keeps the event, so a hub or route that refuses once
/// (a deploy, an evicted object) must not lose it. Every try carries the
/// same event id, so one the hub took whose answer was lost is not taken
/// twice.
pub const ANNOUNCE_RETRY_WAITS_MS: [u64; 2] = [1_000, 4_000];

/// An event id's 16 bytes derived from (type, app, key): the first half of
/// SHA-256 over them. The key names the fact once (an image's stored
/// version, a delete's time), so telling it again gives the same id and the
/// hub, which takes an id once, keeps one event.
pub fn event_id_bytes(event_type: EventType, app: &AppId, key: &str) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(event_type.as_str())
        .chain_update(b"\n")
        .chain_update(app.as_str())
        .chain_update(b"\n")
        .chain_update(key)
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes
}

/// The body of `POST /internal/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerEvent {
    pub app_id: AppId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// What receivers get as the body's `data`: public fields only.
    pub data: Value,
    /// Names the fact, for an id that is the same each time it is told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<String>,
}

impl WorkerEvent {
    /// The types another Worker may announce: the image Worker's. A video's
    /// events come from its own object.
    pub fn may_come_from_a_worker(event_type: EventType) -> bool {
        matches!(event_type, EventType::ImageCreated | EventType::ImageDeleted)
    }

    /// The 16 bytes the event's id is minted from when it names a `dedup`
    /// key: the first half of SHA-256 over (type, app, key).
    pub fn id_bytes(&self) -> Option<[u8; 16]> {
        Some(event_id_bytes(self.event_type, &self.app_id, self.dedup.as_deref()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t: EventType, app: &str, dedup: Option<&str>) -> WorkerEvent {
        WorkerEvent {
            app_id: AppId::parse(app).unwrap(),
            event_type: t,
            data: serde_json::json!({}),
            dedup: dedup.map(str::to_owned),
        }
    }

    #[test]
    fn the_same_fact_has_the_same_id_and_others_differ() {
        let a = event(EventType::ImageCreated, "app", Some("img/etag1"));
        assert_eq!(a.id_bytes(), event(EventType::ImageCreated, "app", Some("img/etag1")).id_bytes());
        for other in [
            event(EventType::ImageCreated, "app", Some("img/etag2")),
            event(EventType::ImageDeleted, "app", Some("img/etag1")),
            event(EventType::ImageCreated, "app2", Some("img/etag1")),
        ] {
            assert_ne!(a.id_bytes(), other.id_bytes());
        }
        assert_eq!(event(EventType::ImageDeleted, "app", None).id_bytes(), None);
    }

    #[test]
    fn only_image_events_come_from_a_worker_and_the_body_is_strict() {
        assert!(WorkerEvent::may_come_from_a_worker(EventType::ImageCreated));
        assert!(!WorkerEvent::may_come_from_a_worker(EventType::VideoReady));
        let body = r#"{"app_id":"a","type":"image.created","data":{"image_id":"i"}}"#;
        let e: WorkerEvent = serde_json::from_str(body).unwrap();
        assert_eq!((e.event_type, e.dedup), (EventType::ImageCreated, None));
        assert!(serde_json::from_str::<WorkerEvent>(r#"{"app_id":"a","type":"image.made","data":{}}"#).is_err());
        assert!(serde_json::from_str::<WorkerEvent>(r#"{"app_id":"a/b","type":"image.created","data":{}}"#).is_err());
    }
}
