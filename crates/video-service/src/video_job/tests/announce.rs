//! Announced catalogue events (`announce::announce`): the job's transitions
//! announce `video.*` into the video's log and the outbox, the outbox
//! reaches the hub once it answers (the alarm retries), and a delete hands
//! the outbox over before it wipes.

use media_core::catalogue::EventType;
use serde_json::json;

use super::*;

fn types(w: &World) -> Vec<String> {
    w.announced.borrow().iter().map(|(_, t)| t.clone()).collect()
}

/// The names of the events a replay of the whole log shows.
fn logged(w: &World) -> Vec<String> {
    let replay = w.call(VideoOp::Events { last_event_id: Some(0), address: None }).unwrap();
    replay.as_str().unwrap().lines().filter_map(|l| l.strip_prefix("event: ")).map(str::to_owned).collect()
}

#[test]
fn transitions_announce_their_catalogue_events_into_the_log_and_to_the_hub() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    assert_eq!(types(&w), ["video.created"], "the first notify");
    let spec = w.grant().unwrap();
    let lease = lease_of(&spec);
    let req = HeartbeatRequest {
        lease_id: lease.clone(),
        video: ids(),
        progress: 40,
        stage: None,
        playable: true,
        published_segments: None,
        published_audio_segments: None,
    };
    w.call(VideoOp::Heartbeat { job_id: w.job_id(), req }).unwrap();
    w.complete(&lease).unwrap();
    assert_eq!(types(&w), ["video.created", "video.playable", "video.ready"]);
    let names = logged(&w);
    for t in ["video.created", "video.playable", "video.ready"] {
        assert!(names.contains(&t.to_owned()), "{t} in /job-events: {names:?}");
    }
    let completed = names.iter().position(|n| n == "job:completed").unwrap();
    assert_eq!(names[completed + 1], "video.ready", "after the job event it stands for: {names:?}");
    // A renotify of a done job changes nothing; a canceled one announces video.canceled, once.
    w.notify("raw/app-a/v1/source.mp4");
    assert_eq!(types(&w).len(), 3);
    assert!(w.announced.borrow().iter().all(|(id, _)| id.starts_with("evt_") && id.len() == 30));
    assert_eq!(w.store.pending_announcements().unwrap(), [], "the outbox is empty once the hub took them");
}

#[test]
fn a_final_failure_and_a_cancel_announce_errored_and_canceled() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    w.fail(&lease_of(&spec), false).unwrap();
    assert_eq!(types(&w), ["video.created", "video.errored"]);
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    w.call(VideoOp::Cancel).unwrap();
    assert_eq!(types(&w), ["video.created", "video.canceled"]);
}

#[test]
fn an_unreachable_hub_gets_the_outbox_from_the_alarm_and_nothing_twice() {
    let w = World::new();
    w.hub_up.set(false);
    w.notify("raw/app-a/v1/source.mp4");
    assert_eq!(types(&w), Vec::<String>::new());
    assert_eq!(w.store.pending_announcements().unwrap().len(), 1, "kept in the outbox");
    let due = w.alarm.get().expect("the alarm comes back for it");
    assert!(due <= w.now().plus_millis(super::super::announce::ANNOUNCE_RETRY_MS), "within the retry delay");
    w.run_alarm();
    assert!(w.store.pending_announcements().unwrap().len() == 1 && types(&w).is_empty(), "still down");
    w.hub_up.set(true);
    while w.store.pending_announcements().unwrap().len() == 1 {
        w.run_alarm();
    }
    assert_eq!(types(&w), ["video.created"]);
    let spec = w.grant().unwrap();
    w.complete(&lease_of(&spec)).unwrap();
    assert_eq!(types(&w), ["video.created", "video.playable", "video.ready"], "one each");
}

#[test]
fn the_worker_announces_through_the_object_and_a_delete_flushes_before_it_wipes() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let body =
        w.call(VideoOp::Announce { event_type: EventType::UploadCreated, data: json!({ "id": "up_1" }) }).unwrap();
    assert_eq!((body["type"].as_str(), &body["data"]), (Some("upload.created"), &json!({ "id": "up_1" })));
    assert!(logged(&w).contains(&"upload.created".to_owned()));
    assert_eq!(w.announced.borrow().last().unwrap().0, body["id"].as_str().unwrap());

    // A queued video: its delete leaves a tombstone while a transcoder may still write.
    let w = World::new();
    w.hub_up.set(false);
    w.notify("raw/app-a/v1/source.mp4");
    assert_eq!(w.store.pending_announcements().unwrap().len(), 1);
    w.hub_up.set(true);
    w.delete().unwrap();
    assert_eq!(types(&w), ["video.created"], "handed over before the wipe");
    // During the tombstone, announcing is refused and creates nothing.
    let refused = w.call(VideoOp::Announce { event_type: EventType::UploadCreated, data: json!({}) });
    assert_eq!(refused.unwrap_err().code, ErrorCode::NotFound);
}

#[test]
fn a_delete_of_a_video_with_only_an_upload_flushes_its_events_first() {
    // An upload's events, no job: the hub was down when they were announced.
    let w = World::new();
    w.hub_up.set(false);
    w.call(VideoOp::Announce { event_type: EventType::UploadCreated, data: json!({ "id": "up_1" }) }).unwrap();
    assert_eq!(w.store.pending_announcements().unwrap().len(), 1);
    w.hub_up.set(true);
    w.delete().unwrap();
    assert_eq!(types(&w), ["upload.created"], "handed over before the wipe");
}
