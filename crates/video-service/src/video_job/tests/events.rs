//! Event streams: replay after an id, the end of an ended job's stream, the caps.

use super::*;

#[test]
fn an_event_stream_replays_after_its_id_and_ends_for_an_ended_job() {
    let w = World::new();
    let events = |last: Option<u64>| w.call(VideoOp::Events { last_event_id: last, address: Some("1.2.3.4".into()) });
    assert_eq!(code(events(None)), ErrorCode::NotFound, "no job");
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    w.heartbeat(&lease_of(&spec), 30).unwrap();
    let first = events(None).unwrap();
    let text = first.as_str().unwrap();
    assert!(text.starts_with("retry: 3000"), "{text}");
    assert!(
        text.contains("event: connected") && text.contains("event: job:created") && text.contains("event: job:started")
    );
    let from_two = events(Some(2)).unwrap();
    assert!(!from_two.as_str().unwrap().contains("event: job:created"), "only what came after id 2");
    w.complete(&lease_of(&spec)).unwrap();
    let last = w.store.last_event_id().unwrap();
    assert_eq!(events(Some(last)).unwrap(), Value::from(204), "an ended job the client has all of");
    assert!(events(Some(last - 1)).is_ok());
    assert_eq!(*w.frames.borrow(), (1..=last).collect::<Vec<_>>(), "every event was broadcast with its id");
}

#[test]
fn event_streams_are_capped_per_video_and_per_address() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let open = |counts| machine::events(&w.store, &w.cx(), None, Some("1.2.3.4"), None, counts);
    assert!(matches!(open((2, 1)), Ok(EventsAnswer::Open { live: true, heartbeat_ms: 400, .. })));
    assert!(matches!(open((3, 0)), Err(Refusal::Answer(e)) if e.code == ErrorCode::RateLimited));
    assert!(matches!(open((1, 2)), Err(Refusal::Answer(e)) if e.code == ErrorCode::RateLimited));
}

#[test]
fn the_event_log_keeps_its_newest_events_with_ids_that_never_repeat() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    let beats = VIDEO_EVENT_LOG_LEN + 5;
    for n in 0..beats {
        // A new stage each time: a progress event each (progress never goes back).
        let stage = Some(format!("stage {n}"));
        let req = HeartbeatRequest {
            lease_id: lease_of(&spec),
            video: ids(),
            progress: 50,
            stage,
            playable: false,
            published_segments: None,
            published_audio_segments: None,
        };
        w.call(VideoOp::Heartbeat { job_id: w.job_id(), req }).unwrap();
    }
    let last = w.store.last_event_id().unwrap();
    assert_eq!(*w.frames.borrow(), (1..=last).collect::<Vec<_>>(), "ids rise by one");
    // A new stream replays what is kept; a resume from before it, `reset`.
    let reset = w.call(VideoOp::Events { last_event_id: Some(0), address: None }).unwrap();
    let reset = reset.as_str().unwrap();
    assert!(reset.ends_with("}\n\n") && reset.contains(&format!("id: {last}\nevent: reset\n")), "{reset}");
    assert!(!reset.contains("event: job:progress"), "no replay with a hole in it");
    let replay = w.call(VideoOp::Events { last_event_id: None, address: None }).unwrap();
    let ids: Vec<u64> = replay
        .as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .filter(|id| *id > 0)
        .collect();
    assert_eq!(ids.len() as u64, VIDEO_EVENT_LOG_LEN, "the oldest beyond the bound are dropped");
    assert_eq!(ids.last(), Some(&last));
}
