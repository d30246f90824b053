//! Leases: grants, heartbeats, expiry and fencing of stale holders, complete, fail and release.

use super::*;

#[test]
fn a_grant_leases_a_queued_job_once() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    let job = w.job();
    assert_eq!((job.status, job.attempts), (JobStatus::Processing, 1));
    assert_eq!(spec.lease_expires_at, w.now().plus_millis(LEASE_TTL_MS));
    assert_eq!(w.alarm.get(), Some(spec.lease_expires_at), "the alarm watches the lease");
    assert_eq!(code(w.grant()), ErrorCode::Conflict, "a job is leased to one transcoder at a time");
    let other = VideoOp::Grant {
        job_id: JobId::from_random([9; 16]),
        task: None,
        lease_id: LeaseId::from_random([9; 16]),
        output_id: OutputId::from_random([9; 10]),
        worker: "t2".into(),
    };
    assert_eq!(code(w.call(other)), ErrorCode::NotFound, "a row left for another job");
}

#[test]
fn heartbeats_extend_the_lease_of_its_holder_only() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    w.advance(600);
    let beat = w.heartbeat(&lease_of(&spec), 40).unwrap();
    assert_eq!(beat["lease_expires_at"], serde_json::to_value(w.now().plus_millis(LEASE_TTL_MS)).unwrap());
    assert_eq!(beat["app_id"], "app-a");
    assert_eq!(w.job().progress, 40);
    let stranger = LeaseId::from_random([7; 16]);
    assert_eq!(code(w.heartbeat(&stranger, 50)), ErrorCode::LeaseLost);
    assert_eq!(code(w.complete(&stranger)), ErrorCode::LeaseLost);
    assert_eq!(code(w.fail(&stranger, true)), ErrorCode::LeaseLost);
    assert_eq!(w.job().progress, 40, "a stranger's calls change nothing");
    // 600 ms after the heartbeat the first expiry has passed; the lease stands.
    w.advance(600);
    assert_eq!(w.alarm.get(), Some(w.now().plus_millis(LEASE_TTL_MS - 600)));
    assert!(w.heartbeat(&lease_of(&spec), 60).is_ok());
}

#[test]
fn an_expired_lease_is_requeued_and_its_holder_fenced() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let stale = w.grant().unwrap();
    w.run_alarm();
    let job = w.job();
    assert_eq!((job.status, job.attempts), (JobStatus::Queued, 1));
    assert_eq!(job.not_before, w.now().plus_millis(BACKOFF_MS), "the retry waits the backoff");
    assert_eq!(w.enqueues(), 2, "the shard hears the job waits again");
    assert_eq!(code(w.heartbeat(&lease_of(&stale), 80)), ErrorCode::LeaseLost);
    assert_eq!(code(w.complete(&lease_of(&stale))), ErrorCode::LeaseLost);
    // The next holder works; the stale one stays fenced.
    w.advance(BACKOFF_MS);
    let fresh_lease = w.grant().unwrap();
    assert_eq!(w.job().attempts, 2);
    assert_eq!(code(w.heartbeat(&lease_of(&stale), 80)), ErrorCode::LeaseLost);
    w.complete(&lease_of(&fresh_lease)).unwrap();
    assert_eq!(w.job().status, JobStatus::Done);
}

#[test]
fn the_last_expired_attempt_ends_the_job_and_sweeps_late_outputs() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    for _ in 0..2 {
        w.advance(BACKOFF_MS);
        w.grant().unwrap();
        w.write_output(&output_of(&w), "seg1.m4s");
        w.run_alarm();
    }
    let job = w.job();
    assert_eq!((job.status, job.attempts), (JobStatus::Error, 2));
    assert!(job.error.as_deref().unwrap().starts_with("gave up after 2 attempts"), "{:?}", job.error);
    assert_eq!(w.ended(), 1, "the shard hears it ended");
    assert!(w.objects.keys("hls/app-a/v1/").is_empty(), "every attempt's outputs go");
    // The silent transcoder wrote once more before it noticed.
    w.write_output("late", "seg2.m4s");
    assert_eq!(w.alarm.get(), Some(w.now().plus_millis(LEASE_TTL_MS + SWEEP_MARGIN_MS)), "a late sweep");
    w.run_alarm();
    assert!(w.objects.keys("hls/app-a/v1/").is_empty(), "the late sweep removes it");
    assert_eq!(w.alarm.get(), None);
}

#[test]
fn a_complete_repeated_by_its_lease_answers_the_same_job() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    let done = w.complete(&lease_of(&spec)).unwrap();
    let hub_before = w.hub.borrow().len();
    let again = w.complete(&lease_of(&spec)).unwrap();
    assert_eq!(done, again);
    assert_eq!(w.hub.borrow().len(), hub_before, "no second event");
    assert!(w.kv.borrow().contains_key("playback/app-a/v1"), "the done job's record is published");
    assert_eq!(w.ended(), 1);
}

#[test]
fn a_retryable_failure_waits_the_backoff_and_a_release_requeues_at_once() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    let job = w.fail(&lease_of(&spec), true).unwrap();
    assert_eq!(job["status"], "queued");
    assert_eq!(w.job().not_before, w.now().plus_millis(BACKOFF_MS));
    w.advance(BACKOFF_MS);
    let spec = w.grant().unwrap();
    let req = ReleaseRequest { lease_id: lease_of(&spec), video: ids() };
    let job = w.call(VideoOp::Release { job_id: w.job_id(), req }).unwrap();
    assert_eq!(job["status"], "queued");
    assert_eq!(w.job().not_before, w.now(), "a released job is due at once");
    assert_eq!(w.enqueues(), 3);
}

#[test]
fn a_grant_waits_for_the_retry_backoff() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    w.fail(&lease_of(&spec), true).unwrap();
    w.advance(BACKOFF_MS - 1);
    assert_eq!(code(w.grant()), ErrorCode::Conflict, "not due before the backoff ends");
    w.advance(1);
    assert!(w.grant().is_ok());
}

#[test]
fn a_playable_heartbeat_is_told_once() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    for progress in [20, 30] {
        let req = HeartbeatRequest {
            lease_id: lease_of(&spec),
            video: ids(),
            progress,
            stage: None,
            playable: true,
            published_segments: None,
            published_audio_segments: None,
        };
        w.call(VideoOp::Heartbeat { job_id: w.job_id(), req }).unwrap();
    }
    assert!(w.job().playable);
    assert_eq!(w.hub.borrow().iter().filter(|e| *e == "job:playable").count(), 1);
}

#[test]
fn a_permanent_failure_ends_the_job_at_once() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    w.write_output(&output_of(&w), "seg1.m4s");
    let job = w.fail(&lease_of(&spec), false).unwrap();
    assert_eq!((job["status"].as_str(), job["error"].as_str()), (Some("error"), Some("boom")));
    assert_eq!(w.ended(), 1);
    assert!(w.objects.keys("hls/").is_empty(), "a failed job's outputs go");
    assert!(w.hub.borrow().ends_with(&["job:error".to_owned()]));
    assert_eq!(w.streams_closed.get(), 1);
}
