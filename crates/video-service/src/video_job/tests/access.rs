//! The access route's command (`SetAccess`): the signed-URL flag changes on
//! the job, and a done job's KV playback record follows at once.

use media_core::video::access::{Encryption, PlaybackOptions};

use super::*;

fn record(w: &World) -> Job {
    serde_json::from_str(w.kv.borrow().get(&playback_record_key(&app(), &video())).expect("a record")).unwrap()
}

fn set(w: &World, flag: bool) -> Answer {
    w.call(VideoOp::SetAccess { require_signed_urls: flag })
}

#[test]
fn a_done_video_turns_private_and_public_in_its_record() {
    let w = World::new();
    assert_eq!(code(set(&w, true)), ErrorCode::NotFound, "no job");
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    w.complete(&lease_of(&spec)).unwrap();
    assert!(!record(&w).playback.require_signed_urls);

    let job: Job = serde_json::from_value(set(&w, true).unwrap()).unwrap();
    assert!(job.playback.require_signed_urls);
    assert!(record(&w).playback.require_signed_urls, "the record public reads find says so at once");
    assert_eq!(job.status, JobStatus::Done);
    // The same flag again: nothing changes, nothing is written.
    w.kv.borrow_mut().clear();
    set(&w, true).unwrap();
    assert!(w.kv.borrow().is_empty());

    let job: Job = serde_json::from_value(set(&w, false).unwrap()).unwrap();
    assert!(!job.playback.require_signed_urls);
    assert!(!record(&w).playback.require_signed_urls);
}

#[test]
fn a_running_job_keeps_the_flag_for_its_record() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    set(&w, true).unwrap();
    assert!(w.kv.borrow().get(&playback_record_key(&app(), &video())).is_none(), "no record before done");
    w.complete(&lease_of(&spec)).unwrap();
    assert!(record(&w).playback.require_signed_urls);
}

#[test]
fn an_encrypted_video_stays_private() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let playback = PlaybackOptions { require_signed_urls: true, encryption: Encryption::Aes128, download: None };
    // As if notified with encryption (the notify's own rules are tested in notify.rs).
    let mut stored = w.store.load().unwrap().unwrap();
    stored.job.playback = playback;
    w.store.save(&stored).unwrap();
    assert_eq!(code(set(&w, false)), ErrorCode::Conflict);
    assert!(set(&w, true).is_ok());
}
