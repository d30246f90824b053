//! The messages of `AppHub` (one app's event hub, [`crate::app_hub`]): what
//! a video's object and the Worker ask of a hub, the binding, and how a hub
//! is named: by its app's id (`app_id.as_str()`), one per app.

use std::collections::BTreeSet;

use media_core::catalogue::EventType;
use media_core::ids::{AppId, VideoId};
use media_core::video::playback_token::Alg;
use media_core::video::webhook::EventBody;
use media_core::wire::endpoints::EndpointUpdateRequest;
use media_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The Durable Object binding of the app hubs.
pub const APP_EVENTS_BINDING: &str = "APP_EVENTS";

/// Where one video's job stands, for `recent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    pub video_id: VideoId,
    pub job_id: String,
    pub status: String,
    pub progress: u8,
    pub stage: Option<String>,
    pub updated_at: Timestamp,
}

/// One announced catalogue event: its body (the same in webhooks, the
/// app's stream and `/job-events`) and the video it is about, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    #[serde(flatten)]
    pub body: EventBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_id: Option<VideoId>,
}

/// What a video's object and the Worker ask of a hub.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum HubCommand {
    /// Events of one video (name and data, in order), and its job after them.
    Publish { job: JobSummary, events: Vec<(String, Value)> },
    /// Catalogue events, in order: each is numbered into the app's log
    /// (`event:` its type) and delivered to the app's webhook endpoints.
    /// Idempotent by event id: an id the hub already has is skipped, so
    /// senders retry until they get a 200.
    /// `app_id`: the hub's own (its name), which it keeps to find the
    /// app's `IV_WEBHOOKS` entry from its alarm.
    Announce { app_id: AppId, events: Vec<Announcement> },
    /// An endpoint command of the webhook API (`crate::endpoints`), for the
    /// hub of `app_id`.
    Endpoints { app_id: AppId, endpoint: EndpointOp },
    /// A playback signing key command (`crate::signing_keys`), for the hub
    /// of `app_id` ([`crate::app_hub::signing_keys`]).
    SigningKeys { app_id: AppId, key: KeyOp },
    /// Opens the app's stream, replaying what came after `last_event_id`.
    Subscribe { last_event_id: Option<u64> },
    /// A video was deleted: its summary leaves `recent`, and its kept
    /// events keep their ids (ids never repeat) but lose their data.
    Forget { video_id: VideoId },
}

/// The webhook endpoint commands (`app_hub::webhooks`), their input checked
/// by the Worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "endpoint_op", rename_all = "snake_case")]
pub enum EndpointOp {
    Create {
        url: String,
        description: Option<String>,
        events: Option<BTreeSet<EventType>>,
    },
    List,
    Get {
        id: String,
    },
    Update {
        id: String,
        changes: EndpointUpdateRequest,
    },
    Delete {
        id: String,
    },
    /// A new secret; the old one signs `grace_s` seconds more.
    Rotate {
        id: String,
        grace_s: u64,
    },
    Deliveries {
        id: String,
    },
    Redeliver {
        id: String,
        event_id: String,
    },
}

/// The playback signing key commands. The Worker makes the keys (Web
/// Crypto) and mirrors the public halves to KV; the hub keeps the list.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "key_op", rename_all = "snake_case")]
pub enum KeyOp {
    /// Keeps a new key of the app (its public JWK only). 201 `SigningKeyInfo`.
    Add { kid: String, alg: Alg, public_jwk: Value },
    /// `SigningKeyList`.
    List,
    /// `SigningKeyRevoked`, or 404.
    Revoke { kid: String },
    /// The app's service key, if it has one (`Option<ServiceKey>`).
    ServiceKey,
    /// Keeps `key` as the app's service key unless it has one; answers the one kept.
    PutServiceKey { key: ServiceKey },
}

/// The key `POST /playback-tokens` signs with: made on the app's first
/// mint, kept whole by its hub, its public half in KV like any other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceKey {
    pub kid: String,
    pub alg: Alg,
    pub public_jwk: Value,
    pub private_jwk: Value,
}
