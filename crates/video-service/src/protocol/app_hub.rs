//! The messages of `AppHub` (one app's event hub, [`crate::app_hub`]): what
//! a video's object and the Worker ask of a hub, the binding, and how a hub
//! is named: by its app's id (`app_id.as_str()`), one per app.

use media_core::ids::VideoId;
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

/// What a video's object and the Worker ask of a hub.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum HubCommand {
    /// Events of one video (name and data, in order), and its job after them.
    Publish { job: JobSummary, events: Vec<(String, Value)> },
    /// Opens the app's stream, replaying what came after `last_event_id`.
    Subscribe { last_event_id: Option<u64> },
    /// A video was deleted: its summary leaves `recent`, and its kept
    /// events keep their ids (ids never repeat) but lose their data.
    Forget { video_id: VideoId },
}
