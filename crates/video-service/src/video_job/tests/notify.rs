//! Notifies: a new job, repeats and races, size classes, telling the shard.

use super::*;
use media_core::video::extras::{CoverOption, Extras};

#[test]
fn a_first_notify_creates_the_job_and_tells_its_shard_once() {
    let w = World::new();
    assert_eq!(w.call(VideoOp::Get).unwrap(), Value::Null, "no job before the notify");
    assert!(!w.store.has_tables().unwrap(), "a read creates no state");
    let reply = w.notify("raw/app-a/v1/source.mp4");
    assert_eq!((reply.outcome, reply.outcome.http_status()), (NotifyOutcome::Created, 202));
    assert_eq!(reply.job.status, JobStatus::Queued);
    assert_eq!(w.enqueues(), 1);
    let ShardCommand::Enqueue { shards, class, .. } = &w.told_shard.borrow()[0] else { panic!("an enqueue") };
    assert_eq!((*shards, class.as_str()), (4, "standard"));
    assert!(w.kv.borrow().contains_key("jobs/app-a/v1"), "the job marker is written with the first change");
    assert_eq!(w.store.load().unwrap().unwrap().enqueue_due, None, "the shard heard it");
    assert_eq!(w.alarm.get(), None, "nothing to wake up for");
    assert_eq!(w.hub.borrow().as_slice(), ["job:created"]);
}

#[test]
fn two_notifies_make_one_job_and_one_enqueue() {
    let w = World::new();
    let first = w.notify("raw/app-a/v1/source.mp4");
    let second = w.notify("raw/app-a/v1/source.mp4");
    assert_eq!((second.outcome, second.outcome.http_status()), (NotifyOutcome::Unchanged, 200));
    assert_eq!(first.job.job_id, second.job.job_id);
    assert_eq!(w.enqueues(), 1, "an unchanged notify tells nobody");
    // A re-upload before any transcoder took it: the same job reads the new source.
    let third = w.notify("raw/app-a/v1/other.mp4");
    assert_eq!((third.outcome, third.job.job_id), (NotifyOutcome::SourceUpdated, first.job.job_id));
    assert_eq!(w.job().source.raw_key, "raw/app-a/v1/other.mp4");
}

#[test]
fn a_large_source_waits_in_the_large_class() {
    let w = World::new();
    w.call(VideoOp::Notify {
        source: source("raw/app-a/v1/big.mp4", 5_000),
        callback_url: None,
        playback: Default::default(),
        extras: Default::default(),
    })
    .unwrap();
    let ShardCommand::Enqueue { class, .. } = &w.told_shard.borrow()[0] else { panic!("an enqueue") };
    assert_eq!(class.as_str(), "large");
}

#[test]
fn a_notify_while_leased_or_done_changes_nothing() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    let reply = w.notify("raw/app-a/v1/source.mp4");
    assert_eq!((reply.outcome, reply.job.status), (NotifyOutcome::Unchanged, JobStatus::Processing));
    assert_eq!(reply.job.lease.as_ref().map(|l| &l.id), Some(&spec.lease_id), "the lease stands");
    w.complete(&lease_of(&spec)).unwrap();
    for raw in ["raw/app-a/v1/source.mp4", "raw/app-a/v1/other.mp4"] {
        let reply = w.notify(raw);
        assert_eq!((reply.outcome, reply.job.status), (NotifyOutcome::Unchanged, JobStatus::Done), "{raw}");
    }
    assert_eq!(w.job().source.raw_key, "raw/app-a/v1/source.mp4", "a done job keeps its source");
    assert_eq!(w.enqueues(), 1);
}

#[test]
fn a_notify_after_a_failure_or_a_silent_transcoder_queues_a_retry() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    w.fail(&lease_of(&spec), false).unwrap();
    assert_eq!(w.job().status, JobStatus::Error);
    let reply = w.notify("raw/app-a/v1/fixed.mp4");
    assert_eq!((reply.outcome, reply.outcome.http_status()), (NotifyOutcome::Requeued, 202));
    assert_eq!((reply.job.status, reply.job.attempts), (JobStatus::Queued, 0));
    assert_eq!(w.enqueues(), 2);
    // Processing with a lease that ran out (the alarm not yet run): retried on request.
    let spec = w.grant().unwrap();
    w.advance(LEASE_TTL_MS + 1);
    let reply = w.notify("raw/app-a/v1/fixed.mp4");
    assert_eq!(reply.outcome, NotifyOutcome::Requeued);
    assert_eq!(code(w.heartbeat(&lease_of(&spec), 50)), ErrorCode::LeaseLost, "the silent holder is fenced");
}

#[test]
fn a_shard_that_cannot_be_told_is_told_again_by_the_alarm() {
    let w = World::new();
    w.shard_up.set(false);
    w.notify("raw/app-a/v1/source.mp4");
    let due = w.store.load().unwrap().unwrap().enqueue_due.expect("the shard still has to hear it");
    assert_eq!(due, w.now().plus_millis(machine::ENQUEUE_RETRY_MS));
    assert_eq!(w.alarm.get(), Some(due));
    w.shard_up.set(true);
    w.run_alarm();
    assert_eq!(w.enqueues(), 2);
    assert_eq!(w.store.load().unwrap().unwrap().enqueue_due, None);
    assert_eq!(w.alarm.get(), None);
}

#[test]
fn a_mark_set_again_while_the_shard_was_told_stays() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let sent_at = w.now();
    // A later change set the mark again while the first enqueue was on its way.
    w.store.set_enqueue_due(Some(sent_at.plus_millis(5))).unwrap();
    machine::shard_answered(&w.store, sent_at, true, w.now()).unwrap();
    assert_eq!(w.store.load().unwrap().unwrap().enqueue_due, Some(sent_at.plus_millis(5)));
}

#[test]
fn reads_of_an_object_without_a_job_answer_no_job_and_create_nothing() {
    let w = World::new();
    assert_eq!(w.call(VideoOp::Get).unwrap(), Value::Null);
    assert_eq!(code(w.call(VideoOp::Cancel)), ErrorCode::NotFound);
    assert_eq!(code(w.call(VideoOp::Events { last_event_id: None, address: None })), ErrorCode::NotFound);
    let job_id = JobId::from_random([3; 16]);
    let lease_id = LeaseId::from_random([3; 16]);
    let req = HeartbeatRequest {
        lease_id: lease_id.clone(),
        video: ids(),
        progress: 1,
        stage: None,
        playable: false,
        published_segments: None,
        published_audio_segments: None,
    };
    let e = w.call(VideoOp::Heartbeat { job_id: job_id.clone(), req }).unwrap_err();
    assert_eq!((e.code, e.message), (ErrorCode::NotFound, format!("no job {job_id}")));
    let grant =
        VideoOp::Grant { job_id, task: None, lease_id, output_id: OutputId::from_random([3; 10]), worker: "t".into() };
    assert_eq!(code(w.call(grant)), ErrorCode::NotFound);
    assert!(!w.store.has_tables().unwrap(), "no read left any state");
    assert!(w.told_shard.borrow().is_empty() && w.kv.borrow().is_empty());
}

#[test]
fn a_callback_url_stays_until_a_later_notify_names_another() {
    let w = World::with(with_webhooks(10_000));
    let notify = |callback: Option<&str>| {
        let op = VideoOp::Notify {
            source: source("raw/app-a/v1/source.mp4", 1_000),
            callback_url: callback.map(Into::into),
            playback: Default::default(),
            extras: Default::default(),
        };
        w.call(op).unwrap();
    };
    notify(Some("http://127.0.0.1:9/first"));
    w.call(VideoOp::Cancel).unwrap();
    notify(None);
    w.call(VideoOp::Cancel).unwrap();
    notify(Some("http://127.0.0.1:9/second"));
    w.call(VideoOp::Cancel).unwrap();
    let urls: Vec<String> = w.store.deliveries().into_iter().filter(|d| d.1 == "callback").map(|d| d.5).collect();
    assert_eq!(urls, ["http://127.0.0.1:9/first", "http://127.0.0.1:9/first", "http://127.0.0.1:9/second"]);
}

#[test]
fn the_public_origin_of_a_call_is_kept_for_later_events() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    w.complete(&lease_of(&spec)).unwrap();
    let Ok(EventsAnswer::Open { first, .. }) = machine::events(&w.store, &w.cx(), Some(0), None, None, (0, 0)) else {
        panic!("a stream")
    };
    assert!(first.contains("https://media.example/"), "the completed job's URLs use the kept origin: {first}");
}

#[test]
fn a_notify_s_playback_options_reach_the_job_and_the_transcoder_s_spec() {
    use media_core::video::access::{DownloadOption, Encryption, PlaybackOptions};
    let w = World::new();
    let options = PlaybackOptions {
        require_signed_urls: true,
        encryption: Encryption::Aes128,
        download: Some(DownloadOption { rung: Some("720p".into()) }),
    };
    let notify = |playback: PlaybackOptions| {
        w.call(VideoOp::Notify {
            source: source("raw/app-a/v1/source.mp4", 1_000),
            callback_url: None,
            playback,
            extras: Default::default(),
        })
    };
    notify(options.clone()).unwrap();
    assert_eq!(w.job().playback, options);
    assert_eq!(w.grant().unwrap().playback, options, "the lease tells the transcoder");
    // The same options again: idempotent. Leaving the signed flag out keeps it.
    notify(options.clone()).unwrap();
    notify(PlaybackOptions { require_signed_urls: false, ..options.clone() }).unwrap();
    assert!(w.job().playback.require_signed_urls);
    // Other encryption or download: 409, and the job keeps its options.
    let e = notify(PlaybackOptions { download: None, ..options.clone() }).unwrap_err();
    assert_eq!(e.status(), 409, "{e:?}");
    assert_eq!(w.job().playback, options);
}

#[test]
fn a_public_job_is_not_left_public_by_a_notify_asking_for_signed_urls() {
    use media_core::video::access::PlaybackOptions;
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let signed = PlaybackOptions { require_signed_urls: true, ..Default::default() };
    let e = w
        .call(VideoOp::Notify {
            source: source("raw/app-a/v1/source.mp4", 1_000),
            callback_url: None,
            playback: signed,
            extras: Default::default(),
        })
        .unwrap_err();
    assert_eq!(e.status(), 409, "{e:?}");
    assert!(!w.job().playback.require_signed_urls);
}

fn notify_with(w: &World, extras: Extras) -> Answer {
    w.call(VideoOp::Notify {
        source: source("raw/app-a/v1/source.mp4", 1_000),
        callback_url: None,
        playback: Default::default(),
        extras,
    })
}

fn cover_at(time_s: f64) -> Extras {
    Extras { codecs: vec![], cover: Some(CoverOption { time_s }), preview: None }
}

#[test]
fn the_same_extras_again_change_nothing_and_other_ones_rerun_a_done_job() {
    let w = World::new();
    let created: NotifyReply = serde_json::from_value(notify_with(&w, cover_at(2.0)).unwrap()).unwrap();
    assert_eq!(created.outcome, NotifyOutcome::Created);
    assert_eq!(w.job().extras, cover_at(2.0), "kept with the job");
    let spec = w.grant().unwrap();
    assert_eq!(spec.extras, cover_at(2.0), "the transcoder is told");
    w.complete(&spec.lease_id).unwrap();
    assert_eq!(w.job().status, JobStatus::Done);
    assert!(w.kv.borrow().contains_key(&playback_record_key(&app(), &video())), "a done job's record");
    let same: NotifyReply = serde_json::from_value(notify_with(&w, cover_at(2.0)).unwrap()).unwrap();
    assert_eq!((same.outcome, same.job.status), (NotifyOutcome::Unchanged, JobStatus::Done), "idempotent");
    let enqueues = w.enqueues();
    // Other extras: the done job runs again with them, and its old record leaves public reads.
    let rerun: NotifyReply = serde_json::from_value(notify_with(&w, cover_at(5.0)).unwrap()).unwrap();
    assert_eq!((rerun.outcome, rerun.outcome.http_status()), (NotifyOutcome::Requeued, 202));
    let job = w.job();
    assert_eq!(
        (job.status, job.attempts, job.playable, job.extras.clone()),
        (JobStatus::Queued, 0, false, cover_at(5.0))
    );
    assert_eq!((job.job_id, job.result.is_none()), (created.job.job_id, true), "the same job, a new run");
    assert_eq!(w.enqueues(), enqueues + 1, "its shard hears it waits again");
    assert!(!w.kv.borrow().contains_key(&playback_record_key(&app(), &video())), "the old result is not served");
    let spec = w.grant().unwrap();
    assert_eq!(spec.extras, cover_at(5.0));
    w.complete(&spec.lease_id).unwrap();
    // Leaving them out is asking for other extras too: none, and a run without them.
    let plain: NotifyReply = serde_json::from_value(notify_with(&w, Extras::default()).unwrap()).unwrap();
    assert_eq!((plain.outcome, w.job().extras.clone()), (NotifyOutcome::Requeued, Extras::default()));
}

#[test]
fn other_extras_take_a_running_job_from_its_holder() {
    let w = World::new();
    notify_with(&w, Extras::default()).unwrap();
    let old = w.grant().unwrap();
    let rerun: NotifyReply = serde_json::from_value(notify_with(&w, cover_at(1.0)).unwrap()).unwrap();
    assert_eq!(rerun.outcome, NotifyOutcome::Requeued);
    assert_eq!(w.heartbeat(&old.lease_id, 50).unwrap_err().status(), 409, "the old run's holder stops");
    let new = w.grant().unwrap();
    assert_eq!((new.attempt, new.extras.clone()), (1, cover_at(1.0)));
    assert_ne!(new.output_id, old.output_id, "a new run writes under its own output");
}
