//! Notify races: a command's effects held back (the shell awaiting the
//! shard or KV, when the object takes other calls) while another command
//! runs, then carried out. Asserted: what the shard and KV end with.

use super::*;

const RAW: &str = "raw/app-a/v1/source.mp4";

/// The job failed for good: its shard row ended.
fn failed_job(w: &World) {
    w.notify(RAW);
    let spec = w.lease_via_shard().expect("the shard hands the job out");
    w.fail(&lease_of(&spec), false).unwrap();
    assert_eq!(w.job().status, JobStatus::Error);
    assert_eq!(w.shard_rows(), vec![ShardRowState::Ended]);
}

#[test]
fn two_notifies_whose_shard_messages_cross_leave_the_job_waiting_once() {
    let w = World::new();
    failed_job(&w);
    // The first notify queues the job again; its enqueue is slow.
    w.hold_next();
    w.notify(RAW);
    w.advance(50);
    // The second finds it queued: nothing to tell the shard.
    let second = w.notify(RAW);
    assert_eq!(second.outcome, NotifyOutcome::Unchanged);
    w.release().unwrap();
    assert_eq!(w.shard_rows(), vec![ShardRowState::Waiting], "waiting once, not ended");
    let spec = w.lease_via_shard().expect("the job is handed out");
    assert_eq!(spec.job_id, w.job_id());
    assert!(w.lease_via_shard().is_none(), "and only once");
}

#[test]
fn a_notify_requeue_whose_enqueue_overtakes_the_failures_ended_leaves_the_job_waiting() {
    let w = World::new();
    w.notify(RAW);
    let spec = w.lease_via_shard().expect("the shard hands the job out");
    // The failure's "ended" to the shard is slow; a notify queues the job
    // again meanwhile and its enqueue arrives first.
    w.hold_next();
    w.fail(&lease_of(&spec), false).unwrap();
    assert_eq!(w.notify(RAW).outcome, NotifyOutcome::Requeued);
    w.release().unwrap();
    assert_eq!(w.job().status, JobStatus::Queued);
    // The late "ended" did end the row; the object tells the shard again at its next alarm, at once.
    w.run_alarm();
    assert_eq!(w.shard_rows(), vec![ShardRowState::Waiting], "the queued job waits in its shard, not ended");
    assert!(w.lease_via_shard().is_some(), "and is handed out");
}

#[test]
fn a_cancel_between_a_notifys_save_and_its_enqueue_hands_nothing_out() {
    let w = World::new();
    w.hold_next();
    w.notify(RAW);
    let canceled: CancelReply = serde_json::from_value(w.call(VideoOp::Cancel).unwrap()).unwrap();
    assert!(canceled.canceled);
    // The notify's enqueue lands after the cancel's "ended".
    w.release().unwrap();
    assert!(w.lease_via_shard().is_none(), "the object refuses the row left behind");
    assert_eq!(w.shard_rows(), vec![ShardRowState::Ended], "which the shard then ends");
    assert_eq!(w.job().status, JobStatus::Error, "the job stays canceled");
}

#[test]
fn a_delete_between_a_notifys_save_and_its_effects_resurrects_nothing() {
    let w = World::new();
    w.hold_next();
    w.notify(RAW);
    w.call(VideoOp::Delete).unwrap();
    assert!(w.kv.borrow().is_empty());
    // The notify's marker write, enqueue and alarm, after the tombstone.
    let late = w.release();
    assert!(
        !w.kv.borrow().contains_key(&job_marker_key(&app(), &video())),
        "the marker stays gone (late effects answered {late:?})"
    );
    assert!(w.lease_via_shard().is_none(), "the deleted job is not handed out");
    assert!(w.shard_rows().iter().all(|s| *s == ShardRowState::Ended));
    w.run_alarm();
    assert!(w.kv.borrow().is_empty(), "nothing is left after the final sweep");
    assert!(!w.store.has_tables().unwrap());
}
