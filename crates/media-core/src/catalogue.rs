//! The event catalogue: every event type the platform announces, by its
//! dotted name. One list for the three places an event goes: webhooks
//! (the body's `type`, an endpoint's filter), the app's SSE stream
//! (`/events`) and, for a video's own events, its `/job-events`.
//!
//! Names follow Standard Webhooks' `group.event` form. Uploads say
//! `cancelled` and videos `canceled`, as Mux does.

use serde::{Deserialize, Serialize};

/// One type of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "upload.created")]
    UploadCreated,
    #[serde(rename = "upload.asset_created")]
    UploadAssetCreated,
    #[serde(rename = "upload.errored")]
    UploadErrored,
    #[serde(rename = "upload.cancelled")]
    UploadCancelled,
    #[serde(rename = "upload.timed_out")]
    UploadTimedOut,
    #[serde(rename = "video.created")]
    VideoCreated,
    #[serde(rename = "video.playable")]
    VideoPlayable,
    #[serde(rename = "video.ready")]
    VideoReady,
    #[serde(rename = "video.errored")]
    VideoErrored,
    #[serde(rename = "video.canceled")]
    VideoCanceled,
    #[serde(rename = "video.deleted")]
    VideoDeleted,
    #[serde(rename = "image.created")]
    ImageCreated,
    #[serde(rename = "image.deleted")]
    ImageDeleted,
}

/// What an event is about: a video's own events also reach its
/// `/job-events`; an image's only the app's stream and webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Upload,
    Video,
    Image,
}

impl EventType {
    /// Every type, in catalogue order.
    pub const ALL: [EventType; 13] = [
        EventType::UploadCreated,
        EventType::UploadAssetCreated,
        EventType::UploadErrored,
        EventType::UploadCancelled,
        EventType::UploadTimedOut,
        EventType::VideoCreated,
        EventType::VideoPlayable,
        EventType::VideoReady,
        EventType::VideoErrored,
        EventType::VideoCanceled,
        EventType::VideoDeleted,
        EventType::ImageCreated,
        EventType::ImageDeleted,
    ];

    /// The dotted name (`video.ready`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UploadCreated => "upload.created",
            EventType::UploadAssetCreated => "upload.asset_created",
            EventType::UploadErrored => "upload.errored",
            EventType::UploadCancelled => "upload.cancelled",
            EventType::UploadTimedOut => "upload.timed_out",
            EventType::VideoCreated => "video.created",
            EventType::VideoPlayable => "video.playable",
            EventType::VideoReady => "video.ready",
            EventType::VideoErrored => "video.errored",
            EventType::VideoCanceled => "video.canceled",
            EventType::VideoDeleted => "video.deleted",
            EventType::ImageCreated => "image.created",
            EventType::ImageDeleted => "image.deleted",
        }
    }

    /// The type named `name`, if it is one.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// What the event is about.
    pub fn subject(self) -> Subject {
        match self {
            EventType::UploadCreated
            | EventType::UploadAssetCreated
            | EventType::UploadErrored
            | EventType::UploadCancelled
            | EventType::UploadTimedOut => Subject::Upload,
            EventType::VideoCreated
            | EventType::VideoPlayable
            | EventType::VideoReady
            | EventType::VideoErrored
            | EventType::VideoCanceled
            | EventType::VideoDeleted => Subject::Video,
            EventType::ImageCreated | EventType::ImageDeleted => Subject::Image,
        }
    }

    /// Whether the event also goes to its video's `/job-events` (uploads
    /// are of one video too: a page can follow its upload there).
    pub fn reaches_job_events(self) -> bool {
        self.subject() != Subject::Image
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), serde_json::Value::from(t.as_str()));
            let (group, event) = t.as_str().split_once('.').unwrap();
            assert!(!group.is_empty() && !event.is_empty() && !event.contains('.'));
        }
        assert_eq!(EventType::parse("video.cancelled"), None);
        assert_eq!(EventType::parse("upload.canceled"), None);
    }

    #[test]
    fn image_events_stay_off_job_events() {
        assert!(!EventType::ImageCreated.reaches_job_events());
        assert!(EventType::UploadTimedOut.reaches_job_events());
        assert!(EventType::VideoDeleted.reaches_job_events());
    }
}
