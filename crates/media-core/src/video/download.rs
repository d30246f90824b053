//! MP4 downloads (opt-in per video, `PlaybackOptions::download`): which
//! rung of the ladder the transcoder remuxes, what it reports of the file
//! it published, what `/job-status` shows of it, and the name a browser
//! saves it under.
//!
//! The file itself is `ObjectKey::Download` of the job's current output: a
//! progressive, faststart MP4 remuxed from the rung's own (clear) segments,
//! with the audio they carry, so it costs no second encode.

use serde::{Deserialize, Serialize};

use crate::ids::VideoId;
use crate::keys::ObjectKey;
use crate::video::access::rung_height;

/// The rung to remux, by index into `rungs` (rung names such as `720p`,
/// `720p-av1`): the one asked for, else the tallest rung not above it, else
/// the top rung (also when nothing was asked). Of rungs of one size, the
/// H.264 one, which every player opens. `None` only for an empty ladder.
pub fn choose_rung(rungs: &[&str], asked: Option<&str>) -> Option<usize> {
    // A rung of another codec (`720p-av1`) by its lines, after its H.264 twin.
    let key = |name: &str| match name.split_once('-') {
        Some((lines, _)) => (rung_height(lines).unwrap_or(0), false),
        None => (rung_height(name).unwrap_or(0), true),
    };
    let top = (0..rungs.len()).max_by_key(|&i| key(rungs[i]))?;
    let Some(asked) = asked.and_then(rung_height) else { return Some(top) };
    let fitting = (0..rungs.len()).filter(|&i| key(rungs[i]).0 <= asked).max_by_key(|&i| key(rungs[i]));
    Some(fitting.unwrap_or(top))
}

/// The `Content-Disposition` of a download: saved as `{video_id}.mp4`
/// (video ids are letters, digits, `-` and `_`, so nothing needs quoting).
pub fn content_disposition(video: &VideoId) -> String {
    format!("attachment; filename=\"{}\"", ObjectKey::download_file_name(video))
}

/// What the transcoder made of a job's download, in its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DownloadReport {
    /// Published at the output's `ObjectKey::Download`.
    Ready {
        /// The rung remuxed (`720p`).
        rung: String,
        /// The file's bytes.
        size: u64,
    },
    /// The ladder is published but the MP4 could not be made. `message`
    /// is for logs only: public routes say `errored` and nothing more.
    Errored { rung: Option<String>, message: String },
}

/// Where a video's download stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DownloadStatus {
    /// The job has not finished it yet.
    Preparing,
    /// `GET /download` serves it.
    Ready,
    /// It will not be made: the job failed or was canceled, or the remux failed.
    Errored,
}

/// A download's state as public routes show it (without its URL, which
/// the route's origin decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadState {
    pub status: DownloadStatus,
    /// The rung remuxed, once known.
    pub rung: Option<String>,
    /// The file's bytes, once ready.
    pub size: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LADDER: [&str; 5] = ["1080p", "720p", "480p", "360p", "240p"];

    #[test]
    fn the_rung_asked_else_the_tallest_not_above_it_else_the_top() {
        assert_eq!(choose_rung(&LADDER, None), Some(0));
        assert_eq!(choose_rung(&LADDER, Some("720p")), Some(1));
        assert_eq!(choose_rung(&LADDER, Some("240p")), Some(4));
        // Not in the ladder: the tallest below it.
        assert_eq!(choose_rung(&LADDER, Some("1440p")), Some(0));
        assert_eq!(choose_rung(&LADDER, Some("600p")), Some(2));
        assert_eq!(choose_rung(&LADDER, Some("359p")), Some(4));
        // Nothing at or below it: the top.
        assert_eq!(choose_rung(&LADDER, Some("144p")), Some(0));
        // The ladder's order does not matter.
        assert_eq!(choose_rung(&["240p", "720p", "480p"], Some("500p")), Some(2));
        assert_eq!(choose_rung(&["240p", "720p", "480p"], None), Some(1));
        assert_eq!(choose_rung(&[], Some("720p")), None);
        assert_eq!(choose_rung(&["360p"], Some("2160p")), Some(0));
    }

    /// Before, a rung of another codec had no height: an AV1-only ladder
    /// downloaded its smallest rung, and AV1 was never chosen by size.
    #[test]
    fn other_codecs_count_by_their_lines_and_h264_wins_a_tie() {
        let mixed = ["720p", "720p-av1", "480p", "480p-av1"];
        assert_eq!(choose_rung(&mixed, None), Some(0));
        assert_eq!(choose_rung(&["720p-av1", "720p", "480p-av1"], Some("600p")), Some(2));
        let av1 = ["1080p-av1", "720p-av1", "480p-av1"];
        assert_eq!(choose_rung(&av1, None), Some(0), "the top AV1 rung, not the smallest");
        assert_eq!(choose_rung(&av1, Some("720p")), Some(1));
    }

    #[test]
    fn the_file_is_saved_as_the_video_id() {
        let video = VideoId::parse("lesson-01_a").unwrap();
        assert_eq!(content_disposition(&video), "attachment; filename=\"lesson-01_a.mp4\"");
    }

    #[test]
    fn the_report_s_wire_form() {
        let ready = DownloadReport::Ready { rung: "720p".into(), size: 1234 };
        let v = serde_json::to_value(&ready).unwrap();
        assert_eq!(v, serde_json::json!({"status": "ready", "rung": "720p", "size": 1234}));
        assert_eq!(serde_json::from_value::<DownloadReport>(v).unwrap(), ready);
        let errored = DownloadReport::Errored { rung: None, message: "disk full".into() };
        let v = serde_json::to_value(&errored).unwrap();
        assert_eq!(v["status"], "errored");
        assert_eq!(serde_json::from_value::<DownloadReport>(v).unwrap(), errored);
    }
}
