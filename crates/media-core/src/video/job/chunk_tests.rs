//! The chunked run's state machine: plan, per-task leases, beats,
//! completion, failure, expiry, cancel and re-run.

use super::*;
use crate::video::access::Encryption;
use crate::video::chunks::RungReport;
use crate::video::ladder::{Rational, Rung};

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn lid(s: &str) -> LeaseId {
    LeaseId::parse(s).unwrap()
}

fn policy() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, lease_ttl_ms: 30_000, backoff_base_ms: 5_000 }
}

fn settings() -> ChunkSettings {
    ChunkSettings { from_s: 60.0, chunk_s: 30.0, first_chunk_s: 10.0 }
}

/// 100 s at 30 fps, a half-second first segment, 4-s segments: chunks of
/// 3, 8, 8 and 7 segments.
fn source(duration_s: f64) -> ChunkSource {
    ChunkSource {
        geometry: ChunkGeometry {
            frame_rate: Rational::new(30, 1),
            gop_frames: 60,
            first_segment_frames: 15,
            segment_frames: 120,
            total_frames: (duration_s * 30.0) as u64,
        },
        t0_s: 0.0,
        duration_s,
        has_audio: true,
        rungs: vec![Rung {
            name: RungName::parse("720p").unwrap(),
            width: 1280,
            height: 720,
            bitrate: 2_800_000,
            max_bitrate: 4_200_000,
            buffer_size: 5_600_000,
            codec: Default::default(),
            range: Default::default(),
        }],
    }
}

fn job() -> Job {
    Job::new(
        JobId::parse("job_1").unwrap(),
        AppId::parse("app").unwrap(),
        VideoId::parse("vid").unwrap(),
        SourceUpload {
            raw_key: "raw/app/vid/source.mp4".into(),
            content_type: "video/mp4".into(),
            size: 1000,
            etag: None,
        },
        LadderOptions::default(),
        &policy(),
        T0,
    )
}

/// A job whose whole lease L0 was planned in four tasks.
fn planned() -> Job {
    let mut j = job();
    j.lease(lid("L0"), OutputId::parse("o1").unwrap(), &policy(), T0).unwrap();
    let spec = j.plan(&lid("L0"), source(100.0), &settings(), T0.plus_secs(1)).unwrap().unwrap();
    assert_eq!((spec.index, spec.count, spec.audio, spec.first_seq), (0, 4, true, 0));
    j
}

fn tasks(j: &Job) -> &[ChunkTask] {
    &j.chunks.as_ref().unwrap().tasks
}

/// Task `k`'s report: `segments` segments of 100 kB (video) and 64 kB (audio, task 0).
fn report(j: &Job, k: usize, frames: u64) -> ChunkReport {
    let range = tasks(j)[k].range;
    let segments = j.chunks.as_ref().unwrap().geometry.segments_in(range.start_frame + frames) - range.first_seq;
    let video = RungReport {
        name: "720p".into(),
        width: 1280,
        height: 720,
        codecs: "avc1.64001f".into(),
        init_bytes: if k == 0 { 1_000 } else { 0 },
        segment_bytes: vec![100_000; segments as usize],
    };
    let audio = (k == 0).then(|| RungReport {
        name: "audio".into(),
        codecs: "mp4a.40.2".into(),
        init_bytes: 600,
        segment_bytes: vec![64_000; 26],
        ..Default::default()
    });
    ChunkReport { frames, segments, rungs: vec![video], audio, poster: k == 0, ..Default::default() }
}

fn lease_all(j: &mut Job, at: Timestamp) {
    for k in 1..tasks(j).len() as u16 {
        j.lease_task(k, lid(&format!("L{k}")), &policy(), at).unwrap();
    }
}

#[test]
fn only_long_plain_sources_are_planned_and_only_by_the_holder() {
    let p = policy();
    let out = || OutputId::parse("o1").unwrap();
    let mut j = job();
    j.lease(lid("L0"), out(), &p, T0).unwrap();
    let untouched = j.clone();
    // Too short, off, or one chunk: single-pass, nothing changes.
    assert_eq!(j.plan(&lid("L0"), source(59.0), &settings(), T0), Ok(None));
    assert_eq!(j.plan(&lid("L0"), source(100.0), &ChunkSettings { from_s: 0.0, ..settings() }, T0), Ok(None));
    let one = ChunkSettings { chunk_s: 1000.0, first_chunk_s: 1000.0, ..settings() };
    assert_eq!(j.plan(&lid("L0"), source(100.0), &one, T0), Ok(None));
    assert_eq!(j.plan(&lid("L0"), source(f64::NAN), &settings(), T0), Ok(None));
    assert_eq!(j, untouched);
    // Encryption stays single-pass.
    j.playback.encryption = Encryption::Aes128;
    assert_eq!(j.plan(&lid("L0"), source(100.0), &settings(), T0), Ok(None));
    j.playback.encryption = Encryption::None;
    // Fencing: another lease is refused, chunking or not.
    assert!(j.plan(&lid("Lx"), source(100.0), &settings(), T0).is_err());
    assert!(j.plan(&lid("Lx"), source(10.0), &settings(), T0).is_err());

    let spec = j.plan(&lid("L0"), source(100.0), &settings(), T0.plus_secs(1)).unwrap().unwrap();
    assert_eq!((spec.start_frame, spec.end_frame), (0, Some(255)));
    assert_eq!(j.lease, None, "the whole lease became task 0's");
    let t = tasks(&j);
    assert_eq!(t.len(), 4);
    assert_eq!(
        (t[0].status, t[0].attempts, t[0].lease.as_ref().unwrap()),
        (TaskStatus::Processing, 1, untouched.lease.as_ref().unwrap())
    );
    assert!(t[1..].iter().all(|t| t.status == TaskStatus::Queued && t.lease.is_none() && t.attempts == 0));
    assert_eq!(j.chunks.as_ref().unwrap().output_id, out());
    assert_eq!(j.status, JobStatus::Processing);
    // A repeat (its answer was lost) answers the same chunk and changes nothing.
    let again = j.clone();
    assert_eq!(j.plan(&lid("L0"), source(100.0), &settings(), T0.plus_secs(2)), Ok(Some(spec)));
    assert_eq!(j, again);
    // The holder of another task may not plan.
    j.lease_task(1, lid("L1"), &p, T0.plus_secs(2)).unwrap();
    assert!(j.plan(&lid("L1"), source(100.0), &settings(), T0.plus_secs(2)).is_err());
    // The job still loads as stored.
    let back: Job = serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
    assert_eq!(back, j);
}

#[test]
fn a_task_is_leased_once_on_the_run_s_output() {
    let p = policy();
    let mut j = planned();
    let spec = j.lease_task(2, lid("L2"), &p, T0.plus_secs(2)).unwrap();
    let chunk = spec.chunk.clone().unwrap();
    assert_eq!(
        (chunk.index, chunk.first_seq, chunk.start_frame, chunk.end_frame, chunk.audio),
        (2, 11, 1215, Some(2175), false)
    );
    assert_eq!((spec.lease_id.as_str(), spec.attempt, spec.output_prefix.as_str()), ("L2", 1, "hls/app/vid/o1/"));
    assert_eq!(spec.chunk_from_s, None);
    assert_eq!(spec.lease_expires_at, T0.plus_secs(12), "the first-heartbeat deadline, as a job's lease");
    assert_eq!(JobSpec::of_task(&j, 2, &p), Some(spec));
    assert!(j.lease_task(2, lid("L2b"), &p, T0.plus_secs(3)).is_err(), "already running");
    assert!(j.lease_task(0, lid("L0b"), &p, T0.plus_secs(3)).is_err(), "task 0 runs under the planner's lease");
    assert!(j.lease_task(9, lid("L9"), &p, T0.plus_secs(3)).is_err(), "no such task");
    assert!(job().lease_task(1, lid("L1"), &p, T0).is_err(), "a job not in chunks");
    assert_eq!(JobSpec::of_lease(&j, &p), None, "the whole job has no lease any more");
}

#[test]
fn beats_move_their_task_and_the_job_s_weighted_progress() {
    let p = policy();
    let mut j = planned();
    lease_all(&mut j, T0.plus_secs(2));
    // Task 1 (960 of 3000 frames) half done: 16% of the job.
    let exp = j.heartbeat(&lid("L1"), 50, Some("encoding".into()), true, &p, T0.plus_secs(5)).unwrap();
    assert_eq!(exp, T0.plus_secs(35));
    assert_eq!(tasks(&j)[1].lease.as_ref().unwrap().expires_at, T0.plus_secs(35));
    assert_eq!(tasks(&j)[2].lease.as_ref().unwrap().expires_at, T0.plus_secs(12), "only that task's lease");
    assert_eq!(j.progress, 16);
    assert!(!j.playable, "only task 0 makes the job playable");
    j.heartbeat(&lid("L1"), 30, None, false, &p, T0.plus_secs(6)).unwrap();
    assert_eq!((tasks(&j)[1].progress, j.progress), (50, 16), "never backwards");
    j.heartbeat(&lid("L0"), 100, None, true, &p, T0.plus_secs(6)).unwrap();
    assert_eq!(tasks(&j)[0].progress, 99);
    assert!(j.playable);
    assert_eq!(j.output_id.as_ref().map(OutputId::as_str), Some("o1"));
    assert!(j.heartbeat(&lid("Lx"), 1, None, false, &p, T0.plus_secs(6)).is_err());
    // Everything at 99: the job stays below 100 until it is done.
    for k in 0..4 {
        j.heartbeat(&lid(&format!("L{k}")), 99, None, false, &p, T0.plus_secs(7)).unwrap();
    }
    assert_eq!(j.progress, 99);
}

#[test]
fn published_counts_only_grow_and_stay_in_their_chunk() {
    let p = policy();
    let mut j = planned();
    lease_all(&mut j, T0.plus_secs(2));
    j.record_published(&lid("L1"), Some(5), None).unwrap();
    j.record_published(&lid("L1"), Some(3), None).unwrap();
    assert_eq!(tasks(&j)[1].published_segments, 5, "never shrinks");
    j.record_published(&lid("L1"), Some(50), Some(9)).unwrap();
    assert_eq!(
        (tasks(&j)[1].published_segments, tasks(&j)[1].published_audio_segments),
        (8, 0),
        "within the chunk; audio is task 0's"
    );
    j.record_published(&lid("L3"), Some(12), None).unwrap();
    assert_eq!(tasks(&j)[3].published_segments, 12, "the last chunk runs to the end of the file");
    j.record_published(&lid("L0"), Some(2), Some(7)).unwrap();
    j.record_published(&lid("L0"), None, Some(4)).unwrap();
    assert_eq!((tasks(&j)[0].published_segments, tasks(&j)[0].published_audio_segments), (2, 7));
    assert!(j.record_published(&lid("Lx"), Some(1), None).is_err());
    // The whole job's lease (single-pass) has nothing to record.
    let mut single = job();
    single.lease(lid("W"), OutputId::parse("o2").unwrap(), &p, T0).unwrap();
    let before = single.clone();
    single.record_published(&lid("W"), Some(3), Some(3)).unwrap();
    assert_eq!(single, before);
}

#[test]
fn the_last_task_done_makes_the_job_done_with_a_stitched_result() {
    let mut j = planned();
    lease_all(&mut j, T0.plus_secs(2));
    // A task's complete without its report is refused: it stops and is retried.
    assert!(j.finish(&lid("L1"), JobResult::default(), None, T0.plus_secs(3)).is_err());
    assert!(j.complete(&lid("L1"), JobResult::default(), T0.plus_secs(3)).is_err(), "not the whole job's lease");
    for k in [2usize, 1] {
        let r = report(&j, k, tasks(&j)[k].range.planned_frames(&j.chunks.as_ref().unwrap().geometry));
        assert_eq!(
            j.finish(&lid(&format!("L{k}")), JobResult::default(), Some(r), T0.plus_secs(10)),
            Ok(Completion::Completed)
        );
        assert_eq!(j.status, JobStatus::Processing);
    }
    assert_eq!(tasks(&j)[1].status, TaskStatus::Done);
    // A repeat changes nothing.
    let before = j.clone();
    let r1 = report(&j, 1, 960);
    assert_eq!(j.finish(&lid("L1"), JobResult::default(), Some(r1), T0.plus_secs(11)), Ok(Completion::AlreadyDone));
    assert_eq!(j, before);
    assert!(!j.playable);
    let r0 = report(&j, 0, 255);
    j.finish(&lid("L0"), JobResult::default(), Some(r0), T0.plus_secs(12)).unwrap();
    assert!(j.playable, "task 0 done: every rendition's start is up");
    assert_eq!(j.progress, 72, "(255 + 960 + 960) of 3000 frames");
    // The last chunk ends 10 frames short of the probe's guess.
    let r3 = report(&j, 3, 3000 - 2175 - 10);
    assert_eq!(r3.segments, 7);
    j.finish(&lid("L3"), JobResult::default(), Some(r3), T0.plus_secs(20)).unwrap();
    assert_eq!((j.status, j.progress, j.stage.as_deref()), (JobStatus::Done, 100, Some("done")));
    assert_eq!(j.output_id.as_ref().map(OutputId::as_str), Some("o1"));
    assert_eq!(j.completed_by, Some(lid("L3")));
    assert_eq!(j.next_lease_expiry(), None);
    let result = j.result.clone().unwrap();
    assert!((result.duration_s - 2990.0 / 30.0).abs() < 1e-9);
    assert!(result.has_audio);
    assert_eq!(result.thumbnails, None);
    let r = &result.renditions[0];
    assert_eq!((r.name.as_str(), r.codecs.as_str(), r.frame_rate), ("720p", "avc1.64001f,mp4a.40.2", 30.0));
    // Measured over the stitched 26 segments: video + audio, as the playlists' rule has it.
    let table = j.chunks.as_ref().unwrap();
    let seg = |bytes| {
        (0..26)
            .map(|s| SegmentEntry { uri: String::new(), duration_s: table.segment_duration_s(s), bytes })
            .collect::<Vec<_>>()
    };
    let (vp, va) = measured_bandwidth(1_000, &seg(100_000));
    let (ap, aa) = measured_bandwidth(600, &seg(64_000));
    assert_eq!((r.bandwidth, r.average_bandwidth), (vp + ap, va + aa));
    // Repeats after done, by any task that completed: answered as done.
    let done = j.clone();
    assert_eq!(
        j.finish(&lid("L3"), JobResult::default(), Some(report(&done, 3, 815)), T0.plus_secs(21)),
        Ok(Completion::AlreadyDone)
    );
    assert_eq!(
        j.finish(&lid("L2"), JobResult::default(), Some(report(&done, 2, 960)), T0.plus_secs(21)),
        Ok(Completion::AlreadyDone)
    );
    assert_eq!(j, done);
}

#[test]
fn a_failed_task_is_retried_alone_until_its_attempts_run_out() {
    let p = policy();
    let mut j = planned();
    lease_all(&mut j, T0.plus_secs(2));
    let out = j.fail(&lid("L2"), "storage PUT: status 503", true, &p, T0.plus_secs(3)).unwrap();
    assert_eq!(out, FailOutcome::Retrying { not_before: T0.plus_secs(8) });
    assert_eq!(
        (tasks(&j)[2].status, tasks(&j)[2].lease.as_ref(), tasks(&j)[2].not_before),
        (TaskStatus::Queued, None, T0.plus_secs(8))
    );
    assert_eq!(j.status, JobStatus::Processing);
    assert_eq!(j.failure, Some(FailureKind::Processing));
    assert!(j.heartbeat(&lid("L1"), 10, None, false, &p, T0.plus_secs(3)).is_ok(), "the others go on");
    assert!(j.heartbeat(&lid("L2"), 10, None, false, &p, T0.plus_secs(3)).is_err());
    assert!(j.lease_task(2, lid("L2b"), &p, T0.plus_secs(7)).is_err(), "its own backoff");
    let spec = j.lease_task(2, lid("L2b"), &p, T0.plus_secs(8)).unwrap();
    assert_eq!(spec.attempt, 2);
    j.fail(&lid("L2b"), "again", true, &p, T0.plus_secs(9)).unwrap();
    j.lease_task(2, lid("L2c"), &p, T0.plus_secs(30)).unwrap();
    // Out of attempts: the job fails, and every task with it.
    assert_eq!(j.fail(&lid("L2c"), "and again", true, &p, T0.plus_secs(31)), Ok(FailOutcome::Failed));
    assert_eq!(j.status, JobStatus::Error);
    assert!(j.error.as_deref().unwrap().contains("chunk 2 after 3 attempts"));
    assert_eq!((j.chunks.as_ref(), j.playable, j.output_id.as_ref()), (None, false, None));
    assert!(j.heartbeat(&lid("L1"), 10, None, false, &p, T0.plus_secs(32)).is_err(), "every holder stops");
}

#[test]
fn a_permanent_task_failure_ends_the_job() {
    let p = policy();
    let mut j = planned();
    lease_all(&mut j, T0.plus_secs(2));
    j.heartbeat(&lid("L0"), 50, None, true, &p, T0.plus_secs(3)).unwrap();
    assert_eq!(j.fail(&lid("L3"), "the upload is truncated", false, &p, T0.plus_secs(4)), Ok(FailOutcome::Failed));
    assert_eq!(
        (j.status, j.error.as_deref(), j.failure),
        (JobStatus::Error, Some("the upload is truncated"), Some(FailureKind::Upload))
    );
    assert!(!j.playable);
    assert_eq!(j.next_lease_expiry(), None);
    // A notify runs it again from scratch: a new plan on a new output.
    assert_eq!(j.renotify(job().source, &p, T0.plus_secs(5)), NotifyOutcome::Requeued);
    assert_eq!((j.status, j.chunks.as_ref()), (JobStatus::Queued, None));
    j.lease(lid("M0"), OutputId::parse("o2").unwrap(), &p, T0.plus_secs(6)).unwrap();
    j.plan(&lid("M0"), source(100.0), &settings(), T0.plus_secs(7)).unwrap().unwrap();
    assert_eq!(j.chunks.as_ref().unwrap().output_id.as_str(), "o2");
    assert_eq!(tasks(&j)[1].attempts, 0);
}

#[test]
fn expired_tasks_are_retried_and_the_alarm_follows_the_earliest_lease() {
    let p = policy();
    let mut j = planned();
    // Task 0's lease is the planner's (first-heartbeat deadline T0+10); tasks 1..3 leased at T0+2 (T0+12).
    lease_all(&mut j, T0.plus_secs(2));
    assert_eq!(j.next_lease_expiry(), Some(T0.plus_secs(10)));
    j.heartbeat(&lid("L0"), 5, None, false, &p, T0.plus_secs(9)).unwrap();
    assert_eq!(j.next_lease_expiry(), Some(T0.plus_secs(12)));
    j.heartbeat(&lid("L1"), 5, None, false, &p, T0.plus_secs(11)).unwrap();
    assert_eq!(j.expire_lease(&p, T0.plus_secs(12)), None, "not past the end yet");
    assert!(!j.lease_expired(T0.plus_secs(12)));
    // Tasks 2 and 3 went silent.
    assert!(j.lease_expired(T0.plus_secs(13)));
    assert_eq!(j.expire_lease(&p, T0.plus_secs(13)), Some(FailOutcome::Retrying { not_before: T0.plus_secs(18) }));
    let t = tasks(&j);
    assert_eq!(
        [t[0].status, t[1].status, t[2].status, t[3].status],
        [TaskStatus::Processing, TaskStatus::Processing, TaskStatus::Queued, TaskStatus::Queued]
    );
    assert_eq!(j.status, JobStatus::Processing);
    assert_eq!(j.next_lease_expiry(), Some(T0.plus_secs(39)));
    assert_eq!(j.expire_lease(&p, T0.plus_secs(14)), None);
    // A queued task waits for a lease; it is not a stale job.
    assert!(!j.lease_expired(T0.plus_secs(14)));
    assert_eq!(j.renotify(job().source, &p, T0.plus_secs(14)), NotifyOutcome::Unchanged);
}

#[test]
fn cancel_and_release_reach_every_task() {
    let p = policy();
    let mut j = planned();
    lease_all(&mut j, T0.plus_secs(2));
    // Release: that task waits again at once, the attempt not counted.
    j.release(&lid("L3"), T0.plus_secs(3)).unwrap();
    assert_eq!(
        (tasks(&j)[3].status, tasks(&j)[3].attempts, tasks(&j)[3].not_before),
        (TaskStatus::Queued, 0, T0.plus_secs(3))
    );
    assert!(j.release(&lid("L3"), T0.plus_secs(3)).is_err());
    assert!(j.cancel("canceled through the API", T0.plus_secs(4)));
    assert_eq!((j.status, j.chunks.as_ref(), j.next_lease_expiry()), (JobStatus::Error, None, None));
    for k in 0..3 {
        assert!(j.heartbeat(&lid(&format!("L{k}")), 10, None, false, &p, T0.plus_secs(5)).is_err());
        assert!(j
            .finish(&lid(&format!("L{k}")), JobResult::default(), Some(ChunkReport::default()), T0.plus_secs(5))
            .is_err());
    }
}

#[test]
fn a_report_never_lists_segments_of_the_next_chunk() {
    let mut j = planned();
    lease_all(&mut j, T0.plus_secs(2));
    // Task 1 (8 segments planned) claims 9: seq 11 is task 2's.
    let mut r = report(&j, 1, 960);
    r.segments = 9;
    r.rungs[0].segment_bytes.push(1);
    j.finish(&lid("L1"), JobResult::default(), Some(r), T0.plus_secs(3)).unwrap();
    j.finish(&lid("L0"), JobResult::default(), Some(report(&j, 0, 255)), T0.plus_secs(3)).unwrap();
    let seqs: Vec<u32> = j.chunks.as_ref().unwrap().listed_segments("720p").into_iter().map(|(s, _)| s).collect();
    assert_eq!(seqs, (0..11).collect::<Vec<_>>());
}

#[test]
fn the_audio_is_listed_as_far_as_the_video_goes() {
    let mut j = planned();
    lease_all(&mut j, T0.plus_secs(2));
    // Task 0 done with 27 audio segments: the video's end is not known yet (24 surely full).
    let mut r0 = report(&j, 0, 255);
    r0.audio.as_mut().unwrap().segment_bytes = vec![64_000; 27];
    j.finish(&lid("L0"), JobResult::default(), Some(r0), T0.plus_secs(3)).unwrap();
    assert_eq!(j.chunks.as_ref().unwrap().listed_segments("audio").len(), 24);
    for (k, frames) in [(1usize, 960), (2, 960), (3, 815)] {
        let r = report(&j, k, frames);
        j.finish(&lid(&format!("L{k}")), JobResult::default(), Some(r), T0.plus_secs(4)).unwrap();
    }
    // Done: the video ends in its 26th segment; the audio's 27th (a tail past it) is not listed.
    let table = j.chunks.as_ref().unwrap();
    assert_eq!(table.listed_segments("audio").len(), 26);
    assert!(table.listed_segments("audio").iter().all(|(seq, _)| table.segment_duration_s(*seq) > 0.0));
}

#[test]
fn a_done_job_keeps_counts_not_segment_sizes() {
    let mut j = planned();
    lease_all(&mut j, T0.plus_secs(2));
    for (k, frames) in [(0usize, 255), (1, 960), (2, 960)] {
        let r = report(&j, k, frames);
        j.finish(&lid(&format!("L{k}")), JobResult::default(), Some(r), T0.plus_secs(3)).unwrap();
    }
    let r = report(&j, 3, 815);
    j.finish(&lid("L3"), JobResult::default(), Some(r), T0.plus_secs(4)).unwrap();
    assert_eq!(j.status, JobStatus::Done);
    let table = j.chunks.as_ref().unwrap();
    let sizes = table.tasks.iter().filter_map(|t| t.report.as_ref()).flat_map(|r| r.rungs.iter().chain(&r.audio));
    assert!(sizes.clone().all(|x| x.segment_bytes.is_empty()));
    let stored = serde_json::to_string(&j).unwrap();
    assert_eq!(stored.matches("\"segment_bytes\":[]").count(), stored.matches("\"segment_bytes\"").count());
    // The playlists still list every segment, the result keeps what they measured.
    assert_eq!((table.listed_segments("720p").len(), table.listed_segments("audio").len()), (26, 26));
    assert!(j.result.as_ref().unwrap().renditions[0].bandwidth > 1_000_000);
}
