//! An app hub's publishing, recent jobs, forgetting and stream openings,
//! against an in-memory log and recent jobs: what `/events` clients (and
//! the workerd tests in `events.test.mjs` and `delete.test.mjs`) rely on.

use media_core::ids::VideoId;
use media_core::Timestamp;
use serde_json::{json, Value};

use super::hub::{AnnouncedEvents, Hub, MemoryRecentJobs, APP_EVENT_LOG_LEN, RECENT_JOBS};
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
    // A deleted video's announced events lose their data too, and are no longer kept to deliver.
    hub.forget(&VideoId::parse("v1").unwrap()).unwrap();
    assert_eq!(hub.recent.announced("evt_a").unwrap(), None);
    assert!(hub.recent.announced("evt_b").unwrap().is_some(), "not about the video");
    let (opening, _) = hub.opening("c", Some(0)).unwrap();
    assert_eq!(replayed(&opening)[1].2, json!({ "videoId": "v1", "deleted": true }));
}

mod endpoints {
    use media_core::catalogue::EventType;
    use media_core::video::delivery::RetrySchedule;
    use media_core::video::endpoint::{Endpoint, DELIVERY_LOG_LEN, MAX_ENDPOINTS};
    use media_core::video::webhook::AppWebhook;
    use media_core::wire::endpoints::EndpointUpdateRequest;
    use media_core::ErrorCode;
    use serde_json::Value;

    use super::{announcement, t0};
    use crate::app_hub::webhooks::{Due, EndpointTables, MemoryEndpoints, Sent, State, Webhooks};
    use crate::protocol::app_hub::EndpointOp;

    thread_local!(static NEXT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });

    fn hooks() -> Webhooks<MemoryEndpoints> {
        Webhooks { tables: MemoryEndpoints::default() }
    }

    fn default() -> Endpoint {
        let hook = AppWebhook { url: Some("https://ops.example/hook".into()), secret: "legacy-secret-0123".into() };
        Endpoint::operator_default(&hook).unwrap()
    }

    /// Runs `op`; its status and body, or the refusal's status and code.
    fn run(w: &Webhooks<MemoryEndpoints>, op: EndpointOp, kept: &[&str]) -> (u16, Value) {
        let kept: Vec<String> = kept.iter().map(|s| s.to_string()).collect();
        let is_kept = |id: &str| Ok(kept.contains(&id.to_owned()).then_some(EventType::VideoReady));
        // Fresh bytes per call: ids and secrets differ.
        let random = || {
            let n = NEXT.with(|c| c.replace(c.get() + 1));
            let mut bytes = [7u8; 32];
            bytes[..8].copy_from_slice(&n.to_be_bytes());
            bytes
        };
        match w.run(op, Some(&default()), t0(), &random, &is_kept).unwrap().0 {
            Ok(answer) => answer,
            Err(e) => (e.status(), Value::String(format!("{:?}", e.code))),
        }
    }

    fn create(w: &Webhooks<MemoryEndpoints>, events: Option<&[EventType]>) -> String {
        let op = EndpointOp::Create {
            url: "https://a.example/hook".into(),
            description: None,
            events: events.map(|e| e.iter().copied().collect()),
        };
        let (status, body) = run(w, op, &[]);
        assert_eq!(status, 201, "{body}");
        assert!(body["secret"].as_str().unwrap().starts_with("whsec_"));
        body["id"].as_str().unwrap().to_owned()
    }

    #[test]
    fn each_endpoint_that_wants_a_type_gets_each_event_once() {
        let w = hooks();
        let all = create(&w, None);
        let ready_only = create(&w, Some(&[EventType::VideoReady]));
        let ready = announcement("evt_r", EventType::VideoReady, Some("v1"));
        let image = announcement("evt_i", EventType::ImageCreated, None);
        assert!(w.plan(&[&ready, &image], Some(&default()), t0()).unwrap());
        assert!(w.plan(&[&ready], Some(&default()), t0()).unwrap(), "a repeat queues nothing new");
        let mut rows: Vec<(String, String)> =
            w.tables.deliveries.borrow().iter().map(|d| (d.0.clone(), d.1.clone())).collect();
        rows.sort();
        let mut want = vec![
            ("default".to_owned(), "evt_i".to_owned()),
            ("default".into(), "evt_r".into()),
            (all.clone(), "evt_i".into()),
            (all, "evt_r".into()),
            (ready_only, "evt_r".into()),
        ];
        want.sort();
        assert_eq!(rows, want);
    }

    #[test]
    fn failures_retry_on_the_schedule_then_fail_and_a_410_disables() {
        let w = hooks();
        let id = create(&w, None);
        let endpoint = w.tables.endpoint(&id).unwrap().unwrap();
        let schedule = RetrySchedule::parse("100,200").unwrap();
        let d = |attempts| Due { endpoint_id: id.clone(), event_id: "evt_1".into(), attempts };
        w.tables.queue(&id, "evt_1", t0()).unwrap();
        let down = Sent { status: None, latency_ms: 5, outcome: Err("could not connect".into()) };
        let report = w.record(&endpoint, &d(0), EventType::VideoReady, &down, &schedule, t0()).unwrap();
        assert_eq!((report.state, report.attempts, report.destination.as_str()), ("pending", 1, id.as_str()));
        let next = w.tables.next_due().unwrap().unwrap().millis_since(t0());
        assert!((80..120).contains(&next), "{next}");
        w.record(&endpoint, &d(1), EventType::VideoReady, &down, &schedule, t0()).unwrap();
        let last = w.record(&endpoint, &d(2), EventType::VideoReady, &down, &schedule, t0()).unwrap();
        assert_eq!((last.state, last.attempts), ("failed", 3), "three attempts with two waits");
        assert_eq!(w.tables.next_due().unwrap(), None);
        let log = w.tables.logged(&id).unwrap();
        assert_eq!(log.iter().map(|a| a.attempt).collect::<Vec<_>>(), [3, 2, 1], "newest first");
        assert_eq!(
            (log[0].status_code, log[0].latency_ms, log[0].error.as_deref()),
            (None, 5, Some("could not connect"))
        );

        let gone = Sent { status: Some(410), latency_ms: 3, outcome: Err("HTTP 410".into()) };
        w.tables.queue(&id, "evt_2", t0()).unwrap();
        let d2 = Due { endpoint_id: id.clone(), event_id: "evt_2".into(), attempts: 0 };
        assert_eq!(w.record(&endpoint, &d2, EventType::VideoReady, &gone, &schedule, t0()).unwrap().state, "failed");
        let disabled = w.tables.endpoint(&id).unwrap().unwrap();
        assert!(!disabled.enabled && disabled.disabled_reason.is_some(), "410 disables it");
        // The operator's default is never disabled by a 410 (only that delivery ends).
        let d3 = Due { endpoint_id: "default".into(), event_id: "evt_2".into(), attempts: 0 };
        let report = w.record(&default(), &d3, EventType::VideoReady, &gone, &schedule, t0()).unwrap();
        assert_eq!((report.state, report.destination.as_str()), ("failed", "app"));
    }

    #[test]
    fn the_delivery_log_keeps_the_newest_attempts() {
        let w = hooks();
        let id = create(&w, None);
        let endpoint = w.tables.endpoint(&id).unwrap().unwrap();
        let ok = Sent { status: Some(204), latency_ms: 1, outcome: Ok(()) };
        for n in 0..DELIVERY_LOG_LEN + 7 {
            let event = format!("evt_{n}");
            w.tables.queue(&id, &event, t0()).unwrap();
            let d = Due { endpoint_id: id.clone(), event_id: event, attempts: 0 };
            let schedule = RetrySchedule::default();
            assert_eq!(
                w.record(&endpoint, &d, EventType::VideoReady, &ok, &schedule, t0()).unwrap().state,
                "delivered"
            );
        }
        let log = w.tables.logged(&id).unwrap();
        assert_eq!(log.len(), DELIVERY_LOG_LEN);
        assert_eq!(log[0].event_id, format!("evt_{}", DELIVERY_LOG_LEN + 6));
        assert_eq!(log.last().unwrap().event_id, "evt_7", "the oldest seven went");
        assert!(log.iter().all(|a| a.delivered && a.status_code == Some(204)));
    }

    #[test]
    fn the_api_manages_endpoints_and_leaves_the_default_to_the_operator() {
        let w = hooks();
        let id = create(&w, Some(&[EventType::VideoReady]));
        let (status, list) = run(&w, EndpointOp::List, &[]);
        assert_eq!(status, 200);
        let ids: Vec<&str> = list["endpoints"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["default", id.as_str()]);
        assert!(!list.to_string().contains("whsec_") && !list.to_string().contains("legacy-secret"), "no secrets");
        let changes = EndpointUpdateRequest { enabled: Some(false), ..Default::default() };
        let (status, updated) = run(&w, EndpointOp::Update { id: id.clone(), changes }, &[]);
        assert_eq!((status, &updated["enabled"]), (200, &Value::Bool(false)));
        let (status, rotated) = run(&w, EndpointOp::Rotate { id: id.clone(), grace_s: 60 }, &[]);
        assert_eq!(status, 200);
        assert!(rotated["secret"].as_str().unwrap().starts_with("whsec_"));
        assert_eq!(rotated["old_secret_expires_at"], serde_json::to_value(t0().plus_millis(60_000)).unwrap());
        let e = w.tables.endpoint(&id).unwrap().unwrap();
        assert_eq!(e.signing_secrets(t0()).len(), 2, "both sign during the grace");
        for op in [
            EndpointOp::Update { id: "default".into(), changes: EndpointUpdateRequest::default() },
            EndpointOp::Delete { id: "default".into() },
            EndpointOp::Rotate { id: "default".into(), grace_s: 0 },
        ] {
            assert_eq!(run(&w, op, &[]).0, 409, "the operator's");
        }
        assert_eq!(run(&w, EndpointOp::Get { id: "default".into() }, &[]).0, 200);
        assert_eq!(run(&w, EndpointOp::Get { id: "ep_nope".into() }, &[]).0, 404);
        // Redelivery: a kept event, to an enabled endpoint, from its first attempt.
        let redeliver = |id: &str, event: &str| EndpointOp::Redeliver { id: id.into(), event_id: event.into() };
        assert_eq!(run(&w, redeliver(&id, "evt_k"), &["evt_k"]).0, 409, "disabled");
        let changes = EndpointUpdateRequest { enabled: Some(true), ..Default::default() };
        run(&w, EndpointOp::Update { id: id.clone(), changes }, &[]);
        assert_eq!(run(&w, redeliver(&id, "evt_gone"), &["evt_k"]).0, 404, "not kept");
        let (status, queued) = run(&w, redeliver(&id, "evt_k"), &["evt_k"]);
        assert_eq!((status, queued["status"].as_str()), (202, Some("queued")));
        assert_eq!(w.tables.deliveries.borrow()[0], (id.clone(), "evt_k".into(), State::Pending, 0, t0()));
        assert_eq!(run(&w, redeliver("default", "evt_k"), &["evt_k"]).0, 202, "the default too");
        // Delete takes its deliveries and log with it.
        assert_eq!(run(&w, EndpointOp::Delete { id: id.clone() }, &[]).0, 200);
        assert_eq!(run(&w, EndpointOp::Get { id: id.clone() }, &[]).0, 404);
        assert!(w.tables.deliveries.borrow().iter().all(|d| d.0 != id));
    }

    #[test]
    fn an_app_has_at_most_its_endpoints() {
        let w = hooks();
        for _ in 0..MAX_ENDPOINTS {
            create(&w, None);
        }
        let op = EndpointOp::Create { url: "https://a.example/".into(), description: None, events: None };
        assert_eq!(run(&w, op, &[]), (409, Value::String(format!("{:?}", ErrorCode::Conflict))));
    }
}
