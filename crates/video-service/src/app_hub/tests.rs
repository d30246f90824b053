//! An app hub's publishing, recent jobs, forgetting and stream openings,
//! against an in-memory log and recent jobs: what `/events` clients (and
//! the workerd tests in `events.test.mjs` and `delete.test.mjs`) rely on.

use media_core::ids::VideoId;
use media_core::Timestamp;
use serde_json::{json, Value};

use super::hub::{Hub, MemoryRecentJobs, APP_EVENT_LOG_LEN, RECENT_JOBS};
use crate::protocol::app_hub::JobSummary;
use crate::sse::EventLog;

fn t0() -> Timestamp {
    Timestamp::from_secs(1_700_000_000)
}

fn hub() -> Hub<MemoryRecentJobs> {
    Hub { log: EventLog::in_memory(APP_EVENT_LOG_LEN), recent: MemoryRecentJobs::default() }
}

fn summary(video: &str, status: &str) -> JobSummary {
    JobSummary {
        video_id: VideoId::parse(video).unwrap(),
        job_id: format!("job_{video}"),
        status: status.into(),
        progress: 0,
        stage: None,
        updated_at: t0(),
    }
}

fn event(name: &str, data: Value) -> (String, Value) {
    (name.into(), data)
}

/// The events of a stream's opening text after `connected`: (id, name, data).
fn replayed(opening: &str) -> Vec<(u64, String, Value)> {
    let mut out = Vec::new();
    for block in opening.split("\n\n").filter(|b| b.contains("event: ")) {
        let field = |k: &str| block.lines().find_map(|l| l.strip_prefix(k)).map(str::to_owned);
        let id = field("id: ").and_then(|i| i.parse().ok()).unwrap_or(0);
        let data = serde_json::from_str(&field("data: ").unwrap()).unwrap();
        out.push((id, field("event: ").unwrap(), data));
    }
    out
}

#[test]
fn published_events_are_numbered_in_the_app_log_and_carry_their_video() {
    let hub = hub();
    let frames = hub
        .publish(
            &summary("v1", "queued"),
            &[event("job:created", json!({ "jobId": "job_v1" })), event("job:progress", json!({ "videoId": "other" }))],
            t0(),
        )
        .unwrap();
    assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2]);
    assert!(frames[0].1.starts_with("id: 1\nevent: job:created\n"), "{}", frames[0].1);
    let frames = hub.publish(&summary("v2", "queued"), &[event("job:created", json!({}))], t0()).unwrap();
    assert_eq!(frames[0].0, 3, "one sequence for the whole app");

    let (opening, last) = hub.opening("c_1", Some(0)).unwrap();
    assert_eq!(last, 3);
    let events = replayed(&opening);
    assert_eq!(events[0].1, "connected");
    assert_eq!(events[1], (1, "job:created".into(), json!({ "jobId": "job_v1", "videoId": "v1" })));
    assert_eq!(events[2].2, json!({ "videoId": "other" }), "a videoId already there stays");
    assert_eq!(events[3].2, json!({ "videoId": "v2" }));
}

#[test]
fn connected_lists_the_recent_jobs_newest_first_and_no_job() {
    let hub = hub();
    hub.publish(&summary("v1", "queued"), &[], t0()).unwrap();
    hub.publish(&summary("v2", "queued"), &[], t0().plus_millis(1)).unwrap();
    hub.publish(&summary("v1", "processing"), &[], t0().plus_millis(2)).unwrap();
    let (opening, last) = hub.opening("c_abc", None).unwrap();
    assert!(opening.starts_with("retry: "), "{opening}");
    let events = replayed(&opening);
    assert_eq!(events.len(), 1, "without Last-Event-ID nothing is replayed");
    let (id, name, data) = &events[0];
    assert_eq!((*id, name.as_str(), last), (0, "connected", 0));
    assert_eq!(data["clientId"], "c_abc");
    assert!(data.get("job").is_none(), "{data}");
    let recent: Vec<_> = data["recent"].as_array().unwrap().iter().map(|j| j["videoId"].as_str().unwrap()).collect();
    assert_eq!(recent, ["v1", "v2"], "one per video, the latest change first");
    assert_eq!(data["recent"][0]["status"], "processing");
    assert_eq!(data["recent"][0]["updatedAt"], json!(t0()));
}

#[test]
fn recent_jobs_are_capped_at_the_newest() {
    let hub = hub();
    for i in 0..RECENT_JOBS as u64 + 5 {
        hub.publish(&summary(&format!("v{i}"), "queued"), &[], t0().plus_millis(i)).unwrap();
    }
    let (opening, _) = hub.opening("c", None).unwrap();
    let recent = replayed(&opening)[0].2["recent"].as_array().unwrap().clone();
    assert_eq!(recent.len(), RECENT_JOBS);
    assert_eq!(recent[0]["videoId"], format!("v{}", RECENT_JOBS + 4));
    assert_eq!(recent[RECENT_JOBS - 1]["videoId"], "v5", "the five oldest went");
}

#[test]
fn the_log_keeps_the_last_events_and_ids_never_repeat() {
    let hub = hub();
    let many: Vec<_> = (0..APP_EVENT_LOG_LEN + 10).map(|i| event("job:progress", json!({ "n": i }))).collect();
    hub.publish(&summary("v1", "processing"), &many, t0()).unwrap();
    let (opening, last) = hub.opening("c", Some(10)).unwrap();
    let events = replayed(&opening);
    assert_eq!(last, APP_EVENT_LOG_LEN + 10);
    assert_eq!(events.len() as u64, APP_EVENT_LOG_LEN + 1, "connected and the kept events");
    assert_eq!(events[1].0, 11, "the oldest ten dropped");
    // A resume point before the oldest kept, or past the end (a wiped
    // hub's ids): reset with the newest id and the recent jobs, no replay.
    for (from, reason) in
        [(0, "last_event_id_too_old"), (9, "last_event_id_too_old"), (u64::MAX, "last_event_id_unknown")]
    {
        let (opening, last) = hub.opening("c", Some(from)).unwrap();
        let events = replayed(&opening);
        assert_eq!(events.len(), 2, "connected and reset: {opening}");
        let (id, name, data) = &events[1];
        assert_eq!((*id, name.as_str(), last), (APP_EVENT_LOG_LEN + 10, "reset", APP_EVENT_LOG_LEN + 10));
        assert_eq!((data["reason"].as_str(), data["oldest_kept"].as_u64()), (Some(reason), Some(11)));
        assert_eq!(data["jobs"], events[0].2["recent"], "the recent jobs, as connected lists them");
    }
    let frames = hub.publish(&summary("v1", "processing"), &[event("job:progress", json!({}))], t0()).unwrap();
    assert_eq!(frames[0].0, APP_EVENT_LOG_LEN + 11);
}

#[test]
fn a_forgotten_video_leaves_recent_and_its_events_keep_only_their_ids() {
    let hub = hub();
    hub.publish(
        &summary("vgone", "done"),
        &[event("job:created", json!({})), event("job:completed", json!({ "playbackUrl": "u" }))],
        t0(),
    )
    .unwrap();
    hub.publish(&summary("vkeep", "queued"), &[event("job:created", json!({}))], t0().plus_millis(1)).unwrap();
    hub.forget(&VideoId::parse("vgone").unwrap()).unwrap();
    let (opening, _) = hub.opening("c", Some(0)).unwrap();
    let events = replayed(&opening);
    let recent: Vec<_> = events[0].2["recent"].as_array().unwrap().iter().map(|j| j["videoId"].clone()).collect();
    assert_eq!(recent, [json!("vkeep")]);
    assert_eq!(events[1], (1, "job:created".into(), json!({ "videoId": "vgone", "deleted": true })));
    assert_eq!(events[2], (2, "job:completed".into(), json!({ "videoId": "vgone", "deleted": true })));
    assert_eq!(events[3], (3, "job:created".into(), json!({ "videoId": "vkeep" })));
    assert!(opening.contains(r#"data: {"deleted":true,"videoId":"vgone"}"#), "the stored text as before: {opening}");
}

fn announcement(
    id: &str,
    t: media_core::catalogue::EventType,
    video: Option<&str>,
) -> crate::protocol::app_hub::Announcement {
    use media_core::video::webhook::EventBody;
    crate::protocol::app_hub::Announcement {
        body: EventBody { id: id.into(), event_type: t, created_at: t0(), data: json!({ "n": id }) },
        video_id: video.map(|v| VideoId::parse(v).unwrap()),
    }
}

#[test]
fn announced_events_are_numbered_once_by_id_under_their_type() {
    use media_core::catalogue::EventType;
    let hub = hub();
    let a = announcement("evt_a", EventType::VideoReady, Some("v1"));
    let b = announcement("evt_b", EventType::ImageCreated, None);
    let batch = [a.clone(), b.clone(), a.clone()];
    let (frames, fresh) = hub.announce(&batch, t0()).unwrap();
    assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2], "a repeat within one call is skipped");
    assert_eq!(fresh.len(), 2);
    assert!(frames[0].1.starts_with("id: 1\nevent: video.ready\n"), "{}", frames[0].1);
    // A sender retrying (its answer was lost) changes nothing.
    let again = [a, b];
    let (frames, fresh) = hub.announce(&again, t0()).unwrap();
    assert!(frames.is_empty() && fresh.is_empty());
    let (opening, _) = hub.opening("c", Some(0)).unwrap();
    let events = replayed(&opening);
    assert_eq!(events[1].1, "video.ready");
    assert_eq!(
        events[1].2,
        json!({ "id": "evt_a", "type": "video.ready", "created_at": t0(), "data": { "n": "evt_a" }, "videoId": "v1" })
    );
    assert_eq!(events[2].2.get("videoId"), None, "an image's event names no video");
    // A deleted video's announced events lose their data too.
    hub.forget(&VideoId::parse("v1").unwrap()).unwrap();
    let (opening, _) = hub.opening("c", Some(0)).unwrap();
    assert_eq!(replayed(&opening)[1].2, json!({ "videoId": "v1", "deleted": true }));
}
