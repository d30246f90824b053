//! Deletes: tombstones, what is refused while one stands, late and final sweeps, upload sessions.

use super::*;

#[test]
fn deleting_a_running_job_leaves_a_tombstone_until_its_lease_could_end() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    w.objects.insert("raw/app-a/v1/source.mp4", b"src".to_vec(), Some("video/mp4"));
    let spec = w.grant().unwrap();
    let output = output_of(&w);
    w.write_output(&output, "seg1.m4s");
    let deleted = w.call(VideoOp::Delete).unwrap();
    let sweep_at = w.now().plus_millis(LEASE_TTL_MS + SWEEP_MARGIN_MS);
    assert_eq!(deleted["objects"], 2);
    assert_eq!(deleted["job"], true);
    assert_eq!(deleted["final_sweep_at"], sweep_at.millis());
    assert_eq!(w.ended(), 1, "the shard hears the job ended");
    assert_eq!((w.streams_closed.get(), w.hub_forgot.get()), (1, 1));
    assert!(!w.kv.borrow().contains_key("jobs/app-a/v1"), "the marker goes");
    assert_eq!(w.store.load().unwrap().map(|s| s.job.job_id), None, "the job's state goes at once");
    // While the tombstone stands.
    assert_eq!(code(w.heartbeat(&lease_of(&spec), 50)), ErrorCode::LeaseLost);
    assert_eq!(code(w.complete(&lease_of(&spec))), ErrorCode::LeaseLost);
    assert_eq!(code(w.grant()), ErrorCode::Conflict);
    let notify = w.call(VideoOp::Notify {
        source: source("raw/app-a/v1/source.mp4", 10),
        callback_url: None,
        playback: Default::default(),
        extras: Default::default(),
    });
    let refused = notify.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Conflict);
    assert!(refused.message.contains("notify after that"), "{}", refused.message);
    assert_eq!(w.call(VideoOp::Get).unwrap(), Value::Null);
    assert_eq!(code(w.call(VideoOp::Cancel)), ErrorCode::NotFound);
    assert_eq!(code(w.call(VideoOp::Events { last_event_id: None, address: None })), ErrorCode::NotFound);
    // A repeated delete deletes again and keeps the sweep's time.
    w.write_output(&output, "seg2.m4s");
    let again = w.call(VideoOp::Delete).unwrap();
    assert_eq!((again["objects"].clone(), again["job"].clone()), (Value::from(1), Value::from(false)));
    assert_eq!(again["final_sweep_at"], sweep_at.millis());
    // The transcoder wrote once more before its heartbeat was refused: the sweep takes it.
    w.write_output(&output, "seg3.m4s");
    assert_eq!(w.alarm.get(), Some(sweep_at));
    w.run_alarm();
    assert!(w.objects.keys("").is_empty(), "nothing of the video is left");
    assert!(!w.store.has_tables().unwrap(), "nor any state of the object");
    // After the sweep, a notify starts a new job.
    let reply = w.notify("raw/app-a/v1/source.mp4");
    assert_eq!(reply.outcome, NotifyOutcome::Created);
}

#[test]
fn deleting_a_done_job_leaves_nothing_once_answered() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    w.write_output(&output_of(&w), "master.m3u8");
    w.complete(&lease_of(&spec)).unwrap();
    assert!(w.kv.borrow().contains_key("playback/app-a/v1"));
    let deleted = w.call(VideoOp::Delete).unwrap();
    assert_eq!(deleted["playback_record"], true);
    assert_eq!(deleted["objects"], 1);
    assert_eq!(deleted["final_sweep_at"], Value::Null);
    assert_eq!(w.ended(), 1, "a done job had left its shard already");
    assert!(w.kv.borrow().is_empty());
    assert!(!w.store.has_tables().unwrap(), "no tombstone: nothing can write any more");
    assert_eq!(w.alarm.get(), None);
    let none = w.call(VideoOp::Delete).unwrap();
    assert_eq!((none["objects"].clone(), none["job"].clone()), (Value::from(0), Value::from(false)));
}

#[test]
fn a_delete_that_failed_half_way_is_finished_by_the_alarm() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    w.complete(&lease_of(&spec)).unwrap();
    w.objects.insert("raw/app-a/v1/source.mp4", b"src".to_vec(), Some("video/mp4"));
    w.objects.fail("DELETE", "raw/");
    assert!(w.call(VideoOp::Delete).is_err(), "storage failed");
    let sweep_at = w.now().plus_millis(SWEEP_RETRY_MS);
    assert_eq!(w.alarm.get(), Some(sweep_at), "the guard's alarm");
    assert_eq!(
        code(w.call(VideoOp::Notify {
            source: source("raw/app-a/v1/x.mp4", 1),
            callback_url: None,
            playback: Default::default(),
            extras: Default::default(),
        })),
        ErrorCode::Conflict
    );
    // The sweep fails too while storage does, and is tried again.
    w.run_alarm();
    assert_eq!(w.alarm.get(), Some(w.now().plus_millis(SWEEP_RETRY_MS)));
    assert!(w.store.tombstone().unwrap().is_some());
}

#[test]
fn upload_sessions_follow_their_ledger_and_are_revoked_by_a_delete() {
    let w = World::new();
    let expires_at = w.now().plus_millis(3_600_000);
    let step = |step: SessionStep| w.call(VideoOp::UploadSession { session: "s1".into(), step });
    assert_eq!(code(step(SessionStep::Start)), ErrorCode::Forbidden, "never issued: revoked");
    assert!(!w.store.has_tables().unwrap(), "a refused step creates nothing");
    let issued: SessionRecord = serde_json::from_value(step(SessionStep::Issue { expires_at }).unwrap()).unwrap();
    assert_eq!(issued, SessionRecord::Issued { expires_at });
    assert_eq!(code(step(SessionStep::Issue { expires_at })), ErrorCode::Conflict, "issued once");
    let starting: SessionRecord = serde_json::from_value(step(SessionStep::Start).unwrap()).unwrap();
    assert!(matches!(starting, SessionRecord::Starting { since, .. } if since == w.now()));
    assert_eq!(code(step(SessionStep::Start)), ErrorCode::Conflict, "one start at a time");
    w.notify("raw/app-a/v1/source.mp4");
    w.grant().unwrap();
    w.call(VideoOp::Delete).unwrap();
    assert_eq!(code(step(SessionStep::Use { upload_id: "u1".into() })), ErrorCode::Forbidden, "revoked");
    let e = step(SessionStep::Issue { expires_at }).unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);
    assert!(e.message.contains("ask for an upload after that"), "{}", e.message);
}

#[test]
fn issuing_a_session_drops_the_expired_ones() {
    let w = World::new();
    let step = |id: &str, step: SessionStep| w.call(VideoOp::UploadSession { session: id.into(), step });
    step("old", SessionStep::Issue { expires_at: w.now().plus_millis(1_000) }).unwrap();
    step("live", SessionStep::Issue { expires_at: w.now().plus_millis(60_000) }).unwrap();
    w.advance(1_000);
    step("new", SessionStep::Issue { expires_at: w.now().plus_millis(60_000) }).unwrap();
    let kept: Vec<String> = w.store.meta_prefixed("upload_session:").unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(kept, ["upload_session:live", "upload_session:new"]);
}

#[test]
fn a_write_after_the_wipe_fails_as_sqlite_does_until_the_tables_come_back() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let spec = w.grant().unwrap();
    w.complete(&lease_of(&spec)).unwrap();
    w.call(VideoOp::Delete).unwrap();
    assert!(!w.store.has_tables().unwrap(), "a done job's delete leaves no tombstone");
    // What the shell writes after a concurrent delete ("no such table").
    assert!(w.store.set_meta(machine::MARKER_META_KEY, "1").is_err());
    assert!(machine::shard_answered(&w.store, w.now(), true, w.now()).is_err());
    assert!(!w.store.has_tables().unwrap(), "a failed write creates nothing");
    w.store.ensure_tables().unwrap();
    w.store.set_meta(machine::MARKER_META_KEY, "1").unwrap();
}

#[test]
fn the_final_sweep_removes_a_marker_written_after_the_delete() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    w.grant().unwrap();
    w.call(VideoOp::Delete).unwrap();
    // A KV write of the marker that landed after the delete removed it.
    w.kv.borrow_mut().insert(job_marker_key(&app(), &video()), "1".into());
    w.run_alarm();
    assert!(w.kv.borrow().is_empty(), "the sweep removes the marker and the record: {:?}", w.kv.borrow());
    assert_eq!(w.alarm.get(), None, "and leaves no alarm");
    assert!(!w.store.has_tables().unwrap());
}

/// An encrypted attempt's AES key (`keys/{app}/{video}/{output}/aes128.key`,
/// outside `hls/`) follows its attempt as the HLS files do: an earlier
/// attempt's goes when the job is done, and a deleted video loses the rest.
#[test]
fn a_deleted_video_loses_its_encryption_keys() {
    let key_of = |output: &str| {
        let key = format!("keys/app-a/v1/{output}/aes128.key");
        assert!(matches!(media_core::keys::ObjectKey::parse(&key), Some(media_core::keys::ObjectKey::HlsKey { .. })));
        key
    };
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let first = w.grant().unwrap();
    let old = key_of(&output_of(&w));
    w.objects.insert(&old, vec![1; 16], Some("application/octet-stream"));
    w.fail(&lease_of(&first), true).unwrap();
    w.advance(BACKOFF_MS);
    let second = w.grant().unwrap();
    let kept = key_of(&output_of(&w));
    w.objects.insert(&kept, vec![2; 16], Some("application/octet-stream"));
    w.write_output(&output_of(&w), "master.m3u8");
    w.objects.insert("keys/app-a/v10/x/aes128.key", vec![3; 16], Some("application/octet-stream"));
    w.complete(&lease_of(&second)).unwrap();
    assert!(!w.objects.contains(&old), "the earlier attempt's key goes");
    assert!(w.objects.contains(&kept), "the played attempt's key stays");
    let deleted = w.call(VideoOp::Delete).unwrap();
    assert_eq!(deleted["objects"], 2, "its master playlist and its key");
    assert!(w.objects.keys("keys/app-a/v1/").is_empty(), "a deleted video keeps no key");
    assert!(w.objects.contains("keys/app-a/v10/x/aes128.key"), "another video's key is never touched");
}
