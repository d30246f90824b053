//! Upload objects in a video's object (`super::super::sessions`): the
//! triggers start one job however many arrive, a legacy notify moves a
//! waiting upload on, the alarm times an upload out (its session revoked,
//! its `raw/` leftovers deleted), a cancel revokes, and `/job-events`
//! opens before the job.

use media_core::video::upload::{UploadId, UploadRecord, UploadSpec, UploadStatus};
use worker_kit::store::ObjectStore;

use super::*;
use crate::protocol::video_job::UploadReply;

const RAW: &str = "raw/app-a/v1/source.mp4";

fn record(w: &World, multipart: bool, timeout_s: u64) -> UploadRecord {
    let id = UploadId::new(app(), video(), [9; 8]);
    let spec = UploadSpec {
        key: RAW.into(),
        content_type: "video/mp4".into(),
        size: 1_000,
        multipart,
        callback_url: None,
        playback: Default::default(),
        extras: Default::default(),
    };
    UploadRecord::new(&id, spec, timeout_s, w.now())
}

fn create(w: &World, multipart: bool, timeout_s: u64) -> UploadRecord {
    let reply: UploadReply =
        serde_json::from_value(w.call(VideoOp::UploadCreate { record: record(w, multipart, timeout_s) }).unwrap())
            .unwrap();
    reply.upload.expect("the upload")
}

fn landed(w: &World, id: Option<&str>, size: Option<u64>) -> Result<UploadReply, ApiError> {
    let op = VideoOp::UploadLanded { upload_id: id.map(str::to_owned), source: size.map(|s| source(RAW, s)) };
    w.call(op).map(|v| serde_json::from_value(v).unwrap())
}

fn get(w: &World, id: &str) -> UploadRecord {
    let v = w.call(VideoOp::UploadGet { upload_id: id.to_owned() }).unwrap();
    serde_json::from_value::<UploadReply>(v).unwrap().upload.unwrap()
}

fn types(w: &World) -> Vec<String> {
    w.announced.borrow().iter().map(|(_, t)| t.clone()).collect()
}

#[test]
fn every_trigger_after_the_first_changes_nothing_one_job() {
    let w = World::new();
    let u = create(&w, false, 3600);
    assert_eq!(u.status, UploadStatus::Waiting);
    assert_eq!(code(landed(&w, Some(&u.id), None)), ErrorCode::UploadMissing);
    let first = landed(&w, Some(&u.id), Some(1_000)).unwrap();
    let job = first.job.expect("the job started").job_id;
    assert_eq!(first.upload.as_ref().unwrap().status, UploadStatus::AssetCreated);
    // The completion again, storage's event, a legacy notify: the same job.
    assert_eq!(landed(&w, Some(&u.id), Some(1_000)).unwrap().job.unwrap().job_id, job);
    assert_eq!(landed(&w, None, Some(1_000)).unwrap().job.unwrap().job_id, job);
    assert_eq!(w.notify(RAW).job.job_id, job);
    assert_eq!(w.enqueues(), 1);
    assert_eq!(get(&w, &u.id).job_id, Some(job));
    let t = types(&w);
    assert_eq!(t.iter().filter(|t| *t == "upload.asset_created").count(), 1, "{t:?}");
    assert_eq!(t.iter().filter(|t| *t == "video.created").count(), 1, "{t:?}");
    assert_eq!(t[0], "upload.created");
    // No second upload once the video has a job.
    let again = w.call(VideoOp::UploadCreate { record: record(&w, false, 3600) });
    assert_eq!(code(again), ErrorCode::Conflict);
}

#[test]
fn a_legacy_notify_moves_the_waiting_upload_on_and_storage_events_without_an_upload_start_nothing() {
    let w = World::new();
    // A storage event for a video with no upload: nothing is created.
    assert_eq!(code(landed(&w, None, Some(1_000))), ErrorCode::NotFound);
    assert!(!w.store.has_tables().unwrap(), "a refused event stores nothing");
    let u = create(&w, false, 3600);
    let n = w.notify(RAW);
    assert_eq!(n.outcome, NotifyOutcome::Created);
    let after = get(&w, &u.id);
    assert_eq!((after.status, after.job_id), (UploadStatus::AssetCreated, Some(n.job.job_id)));
}

#[test]
fn a_file_of_another_size_errors_the_upload_and_starts_nothing() {
    let w = World::new();
    let u = create(&w, false, 3600);
    let r = landed(&w, Some(&u.id), Some(999)).unwrap();
    assert_eq!(r.upload.unwrap().status, UploadStatus::Errored);
    assert!(r.job.is_none());
    assert_eq!(w.enqueues(), 0);
    assert_eq!(code(landed(&w, Some(&u.id), Some(1_000))), ErrorCode::Conflict);
    assert!(types(&w).contains(&"upload.errored".to_owned()));
}

#[test]
fn the_alarm_times_an_upload_out_revokes_its_session_and_deletes_its_leftovers() {
    let w = World::new();
    let u = create(&w, true, 60);
    let session = SessionStep::Start;
    w.call(VideoOp::UploadSession { session: u.id.clone(), step: session }).unwrap();
    w.objects.insert("raw/app-a/v1/source.mp4.part", b"partial".to_vec(), None);
    assert_eq!(w.alarm.get(), Some(u.expires_at), "the alarm is set at the timeout");
    w.advance(59_000);
    assert_eq!(get(&w, &u.id).status, UploadStatus::Waiting);
    w.run_alarm();
    let after = get(&w, &u.id);
    assert_eq!(after.status, UploadStatus::TimedOut);
    assert!(block_on(w.objects.list("raw/app-a/v1/")).unwrap().keys.is_empty(), "no raw objects left");
    let refused = w.call(VideoOp::UploadSession { session: u.id.clone(), step: SessionStep::Start });
    let e = refused.unwrap_err();
    assert_eq!(e.status(), 403);
    assert!(e.message.contains("its upload was timed out"), "{}", e.message);
    assert_eq!(code(landed(&w, Some(&u.id), Some(1_000))), ErrorCode::Forbidden);
    assert!(types(&w).contains(&"upload.timed_out".to_owned()));
    // A new upload may wait now.
    assert_eq!(create(&w, false, 3600).status, UploadStatus::Waiting);
}

#[test]
fn a_cancel_revokes_and_cleans_once_and_only_while_waiting() {
    let w = World::new();
    let u = create(&w, false, 3600);
    // One waits at a time.
    assert_eq!(code(w.call(VideoOp::UploadCreate { record: record(&w, false, 3600) })), ErrorCode::Conflict);
    w.objects.insert(RAW, b"file".to_vec(), None);
    let v = w.call(VideoOp::UploadCancel { upload_id: u.id.clone() }).unwrap();
    assert_eq!(serde_json::from_value::<UploadReply>(v).unwrap().upload.unwrap().status, UploadStatus::Cancelled);
    assert!(block_on(w.objects.list("raw/app-a/v1/")).unwrap().keys.is_empty());
    assert_eq!(code(landed(&w, Some(&u.id), Some(1_000))), ErrorCode::Forbidden);
    assert_eq!(code(w.call(VideoOp::UploadCancel { upload_id: u.id.clone() })), ErrorCode::Conflict);
    assert_eq!(
        code(w.call(VideoOp::UploadGet { upload_id: "upl_0000000000000000.app-a.v1".into() })),
        ErrorCode::NotFound
    );
    assert!(types(&w).contains(&"upload.cancelled".to_owned()));
    // Nothing more comes for a video whose upload ended without a job: its streams end, and a
    // client that has every event is told so (204), as for an ended job.
    assert_eq!(w.streams_closed.get(), 1);
    let last = w.store.last_event_id().unwrap();
    let again = w.call(VideoOp::Events { last_event_id: Some(last), address: None }).unwrap();
    assert_eq!(again, Value::from(204));
}

#[test]
fn job_events_open_from_the_upload_before_any_job() {
    let w = World::new();
    assert_eq!(code(w.call(VideoOp::Events { last_event_id: None, address: None })), ErrorCode::NotFound);
    create(&w, false, 3600);
    let opened = w.call(VideoOp::Events { last_event_id: None, address: None }).unwrap();
    let text = opened.as_str().unwrap();
    assert!(text.contains("event: connected") && text.contains("event: upload.created"), "{text}");
}

/// Another upload of the same video (a fresh id).
fn create_another(w: &World, seed: u8) -> UploadRecord {
    let id = UploadId::new(app(), video(), [seed; 8]);
    let spec = UploadSpec {
        key: RAW.into(),
        content_type: "video/mp4".into(),
        size: 1_000,
        multipart: false,
        callback_url: None,
        playback: Default::default(),
        extras: Default::default(),
    };
    let record = UploadRecord::new(&id, spec, 3600, w.now());
    let v = w.call(VideoOp::UploadCreate { record }).unwrap();
    serde_json::from_value::<UploadReply>(v).unwrap().upload.expect("the upload")
}

fn raw_keys(w: &World) -> Vec<String> {
    block_on(w.objects.list("raw/app-a/v1/")).unwrap().keys
}

#[test]
fn an_errored_upload_leaves_no_file_and_the_next_upload_of_the_video_waits() {
    let w = World::new();
    let u = create(&w, false, 3600);
    w.objects.insert(RAW, vec![7; 999], None);
    assert_eq!(landed(&w, Some(&u.id), Some(999)).unwrap().upload.unwrap().status, UploadStatus::Errored);
    assert!(raw_keys(&w).is_empty(), "the wrong file is removed: {:?}", raw_keys(&w));
    let next = create_another(&w, 1);
    assert_eq!(next.status, UploadStatus::Waiting);
    // Its own file then starts the job, not the old one.
    w.objects.insert(RAW, vec![7; 1_000], None);
    assert!(landed(&w, Some(&next.id), Some(1_000)).unwrap().job.is_some());
}

#[test]
fn a_file_landing_after_its_upload_was_cancelled_is_removed_by_its_storage_event() {
    let w = World::new();
    let u = create(&w, false, 3600);
    w.call(VideoOp::UploadCancel { upload_id: u.id.clone() }).unwrap();
    // The presigned URL is still valid: the browser's PUT lands after the cleanup.
    w.objects.insert(RAW, vec![7; 1_000], None);
    let r = landed(&w, None, Some(1_000)).unwrap();
    assert!(r.upload.is_none() && r.job.is_none(), "it starts nothing");
    assert!(raw_keys(&w).is_empty(), "the late file is removed: {:?}", raw_keys(&w));
    assert_eq!(w.enqueues(), 0);
}

#[test]
fn a_storage_event_never_removes_the_file_of_a_waiting_upload_or_a_job() {
    let w = World::new();
    let u = create(&w, false, 3600);
    w.call(VideoOp::UploadCancel { upload_id: u.id.clone() }).unwrap();
    let next = create_another(&w, 1);
    w.objects.insert(RAW, vec![7; 1_000], None);
    // An event of the cancelled upload's key is the waiting upload's file now: it starts the job.
    let r = landed(&w, None, Some(1_000)).unwrap();
    assert_eq!(r.upload.unwrap().id, next.id);
    assert!(r.job.is_some());
    assert_eq!(raw_keys(&w), vec![RAW.to_owned()]);
    // A repeated event once the job exists removes nothing either.
    landed(&w, None, Some(1_000)).unwrap();
    assert_eq!(raw_keys(&w), vec![RAW.to_owned()]);
}

#[test]
fn a_new_upload_finds_an_ended_uploads_late_file_removed_first() {
    let w = World::new();
    let u = create(&w, false, 3600);
    w.call(VideoOp::UploadCancel { upload_id: u.id.clone() }).unwrap();
    // A late PUT, and no storage event (no notification set up, or it was lost).
    w.objects.insert(RAW, vec![7; 1_000], None);
    let next = create_another(&w, 1);
    assert_eq!(next.status, UploadStatus::Waiting);
    assert!(raw_keys(&w).is_empty(), "cleaned before the new upload waits: {:?}", raw_keys(&w));
}

#[test]
fn an_upload_s_cover_and_preview_go_to_the_job_it_starts() {
    use media_core::video::extras::{CoverOption, Extras, PreviewOption};
    let w = World::new();
    let extras = Extras {
        codecs: vec![media_core::video::ladder::VideoCodec::H264, media_core::video::ladder::VideoCodec::Av1],
        cover: Some(CoverOption { time_s: 1.5 }),
        preview: Some(serde_json::from_value::<PreviewOption>(serde_json::json!({"format": "gif"})).unwrap()),
    };
    let mut record = record(&w, false, 3600);
    record.extras = extras.clone();
    let id = record.id.clone();
    w.call(VideoOp::UploadCreate { record }).unwrap();
    let started = landed(&w, Some(&id), Some(1_000)).unwrap();
    assert_eq!(started.upload.map(|u| u.status), Some(UploadStatus::AssetCreated));
    assert_eq!(w.job().extras, extras, "kept with the job");
    assert_eq!(w.grant().unwrap().extras, extras, "and told to its transcoder");
}
