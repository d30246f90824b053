//! Cancels: the job ends, its outputs go now and again after a held lease could end.

use super::*;

#[test]
fn a_cancel_ends_a_queued_job_and_its_outputs_but_not_its_source() {
    let w = World::new();
    assert_eq!(code(w.call(VideoOp::Cancel)), ErrorCode::NotFound);
    w.notify("raw/app-a/v1/source.mp4");
    w.objects.insert("raw/app-a/v1/source.mp4", b"src".to_vec(), Some("video/mp4"));
    w.write_output("old", "seg.m4s");
    let reply: CancelReply = serde_json::from_value(w.call(VideoOp::Cancel).unwrap()).unwrap();
    assert!(reply.canceled);
    assert_eq!(reply.job.status, JobStatus::Error);
    assert_eq!(w.ended(), 1);
    assert!(w.objects.keys("hls/app-a/v1/").is_empty());
    assert_eq!(w.objects.keys("raw/app-a/v1/"), ["raw/app-a/v1/source.mp4"], "the source stays for a retry");
    assert_eq!(w.streams_closed.get(), 1, "a terminal event ends the streams");
    // Already ended: nothing more.
    let again: CancelReply = serde_json::from_value(w.call(VideoOp::Cancel).unwrap()).unwrap();
    assert!(!again.canceled);
    assert_eq!(w.ended(), 1);
}

#[test]
fn a_cancel_of_a_leased_job_sweeps_again_after_the_lease_could_end() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    let output = output_of(&w);
    w.write_output(&output, "seg1.m4s");
    w.call(VideoOp::Cancel).unwrap();
    assert_eq!(code(w.heartbeat(&lease_of(&spec), 90)), ErrorCode::LeaseLost, "the holder hears at its next heartbeat");
    w.write_output(&output, "seg2.m4s");
    assert_eq!(w.alarm.get(), Some(w.now().plus_millis(LEASE_TTL_MS + SWEEP_MARGIN_MS)));
    w.run_alarm();
    assert!(w.objects.keys("hls/app-a/v1/").is_empty());
}

#[test]
fn a_late_sweep_spares_a_job_queued_again_since() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    w.grant().unwrap();
    w.call(VideoOp::Cancel).unwrap();
    w.notify("raw/app-a/v1/source.mp4");
    w.grant().unwrap();
    let kept = w.write_output(&output_of(&w), "seg1.m4s");
    w.run_alarm();
    assert!(w.objects.contains(&kept), "the new attempt's outputs stay");
}
