//! Chunked jobs in the object and its shard: the plan, task rows offered
//! only to transcoders that run chunks, a grant per task, the alarm at the
//! earliest lease end across tasks, an expired task queued again alone,
//! and cancel ending every task row.

use media_core::video::chunks::{ChunkGeometry, ChunkSource, ChunkSpec};
use media_core::video::job::TaskStatus;
use media_core::video::ladder::Rational;
use media_core::wire::api::{PlanRequest, PlanResponse};

use super::*;

/// 30 s at 30 fps, a 0.5 s first segment then 4 s ones: with the test
/// settings (6 s chunks, a 2 s first one) five chunks, the first of one
/// segment, the others of two.
fn source_of(duration_s: f64) -> ChunkSource {
    let geometry = ChunkGeometry {
        frame_rate: Rational::new(30, 1),
        gop_frames: 60,
        first_segment_frames: 15,
        segment_frames: 120,
        total_frames: (duration_s * 30.0) as u64,
    };
    ChunkSource { geometry, t0_s: 0.0, duration_s, has_audio: true, rungs: Vec::new() }
}

impl World {
    fn plan(&self, spec: &JobSpec, duration_s: f64) -> Result<Option<ChunkSpec>, ApiError> {
        let req = PlanRequest { lease_id: spec.lease_id.clone(), video: ids(), source: source_of(duration_s) };
        let v = self.call(VideoOp::Plan { job_id: self.job_id(), req })?;
        Ok(serde_json::from_value::<PlanResponse>(v).unwrap().chunk)
    }

    /// The shard's rows: (task, state).
    fn task_rows(&self) -> Vec<(Option<u16>, ShardRowState)> {
        self.shard.store.rows().into_iter().map(|r| (r.task, r.state)).collect()
    }
}

/// A whole-job lease through the shard, planned into five tasks; task 0's spec.
fn planned(w: &World) -> (JobSpec, ChunkSpec) {
    w.notify("raw/app-a/v1/source.mp4");
    let whole = w.lease_via_shard_as(true).expect("the whole job");
    assert_eq!(whole.chunk_from_s, Some(20.0), "a whole-job spec says from when to plan");
    let chunk = w.plan(&whole, 30.0).unwrap().expect("planned");
    (whole, chunk)
}

#[test]
fn a_plan_makes_the_lease_task_zero_and_queues_the_other_tasks_in_one_message() {
    let w = World::new();
    let (whole, c0) = planned(&w);
    assert_eq!((c0.index, c0.count, c0.first_seq, c0.audio), (0, 5, 0, true));
    let job = w.job();
    assert_eq!(job.status, JobStatus::Processing);
    let table = job.chunks.as_ref().expect("a chunk table");
    assert_eq!(table.output_id, whole.output_id, "every task writes under the whole lease's output");
    let enqueues: Vec<Vec<u16>> = w
        .told_shard
        .borrow()
        .iter()
        .filter_map(|c| match c {
            ShardCommand::Enqueue { tasks, .. } => Some(tasks.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(enqueues, [vec![], vec![1, 2, 3, 4]], "the job, then its tasks at once");
    // The same plan again (its answer was lost): the same chunk, nothing queued twice.
    assert_eq!(w.plan(&whole, 30.0).unwrap(), Some(c0));
    assert_eq!(w.enqueues(), 2);
    // Only the holder plans.
    let stranger = JobSpec { lease_id: LeaseId::from_random([0xee; 16]), ..whole };
    assert_eq!(code(w.plan(&stranger, 30.0)), ErrorCode::LeaseLost);
}

#[test]
fn tasks_go_only_to_transcoders_that_run_chunks_each_with_its_own_lease() {
    let w = World::new();
    let (whole, _) = planned(&w);
    assert!(w.lease_via_shard_as(false).is_none(), "an older transcoder never gets a task");
    let tasks: Vec<JobSpec> = (0..4).map(|_| w.lease_via_shard_as(true).expect("a task")).collect();
    let indices: Vec<u16> = tasks.iter().map(|t| t.chunk.as_ref().unwrap().index).collect();
    assert_eq!(indices, [1, 2, 3, 4]);
    for t in &tasks {
        assert_eq!(t.output_id, whole.output_id);
        assert_eq!(t.chunk_from_s, None);
        assert_ne!(t.lease_id, whole.lease_id);
    }
    assert!(w.lease_via_shard_as(true).is_none(), "each task once");
    let rows = w.task_rows();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|(_, s)| *s == ShardRowState::Leased), "{rows:?}");
    // Every holder's beat extends its own lease only.
    w.advance(500);
    w.heartbeat(&tasks[0].lease_id, 30).unwrap();
    let table = w.job().chunks.unwrap();
    let task1 = table.tasks.iter().find(|t| t.range.index == 1).unwrap();
    assert_eq!(task1.lease.as_ref().unwrap().expires_at, w.now().plus_millis(LEASE_TTL_MS));
    assert!(w.alarm.get().unwrap() < w.now().plus_millis(LEASE_TTL_MS), "the alarm is at the earliest lease end");
}

#[test]
fn an_expired_task_is_queued_again_alone_and_its_holder_fenced() {
    let w = World::new();
    let (whole, _) = planned(&w);
    let tasks: Vec<JobSpec> = (0..4).map(|_| w.lease_via_shard_as(true).unwrap()).collect();
    // Everyone but task 2's holder beats; its lease runs out.
    w.advance(LEASE_TTL_MS / 2);
    w.heartbeat(&whole.lease_id, 10).unwrap();
    for t in tasks.iter().filter(|t| t.chunk.as_ref().unwrap().index != 2) {
        w.heartbeat(&t.lease_id, 10).unwrap();
    }
    assert_eq!(w.alarm.get(), Some(w.now().plus_millis(LEASE_TTL_MS / 2)), "the alarm is at task 2's lease end");
    w.run_alarm();
    let job = w.job();
    assert_eq!(job.status, JobStatus::Processing);
    let statuses: Vec<TaskStatus> = job.chunks.as_ref().unwrap().tasks.iter().map(|t| t.status).collect();
    assert_eq!(statuses[2], TaskStatus::Queued);
    assert!(statuses.iter().enumerate().all(|(i, s)| i == 2 || *s == TaskStatus::Processing), "{statuses:?}");
    assert_eq!(code(w.heartbeat(&tasks[1].lease_id, 50)), ErrorCode::LeaseLost);
    w.advance(BACKOFF_MS);
    let again = w.lease_via_shard_as(true).expect("task 2 again");
    assert_eq!((again.chunk.as_ref().unwrap().index, again.attempt), (2, 2));
    assert!(w.lease_via_shard_as(true).is_none(), "only that task");
}

#[test]
fn cancel_ends_every_task_row_and_every_holder_loses_its_lease() {
    let w = World::new();
    let (whole, _) = planned(&w);
    let t1 = w.lease_via_shard_as(true).unwrap();
    let cancel = w.call(VideoOp::Cancel).unwrap();
    assert_eq!(cancel["canceled"], true);
    for lease in [&whole.lease_id, &t1.lease_id] {
        assert_eq!(code(w.heartbeat(lease, 50)), ErrorCode::LeaseLost);
    }
    assert!(w.task_rows().iter().all(|(_, s)| *s == ShardRowState::Ended), "{:?}", w.task_rows());
    assert!(w.lease_via_shard_as(true).is_none());
}

#[test]
fn a_task_failing_for_good_sweeps_the_outputs_again_after_the_other_holders_leases() {
    let w = World::new();
    let (whole, _) = planned(&w);
    let t1 = w.lease_via_shard_as(true).unwrap();
    let output = whole.output_id.as_str().to_owned();
    w.write_output(&output, "360p/00000.m4s");
    w.fail(&t1.lease_id, false).unwrap();
    assert_eq!(w.job().status, JobStatus::Error);
    assert!(w.objects.keys("hls/app-a/v1/").is_empty(), "the outputs go at once");
    // Task 0's holder uploads once more before its next beat is refused.
    w.write_output(&output, "360p/00001.m4s");
    assert_eq!(code(w.heartbeat(&whole.lease_id, 50)), ErrorCode::LeaseLost);
    assert_eq!(w.alarm.get(), Some(w.now().plus_millis(LEASE_TTL_MS + SWEEP_MARGIN_MS)));
    w.run_alarm();
    assert!(w.objects.keys("hls/app-a/v1/").is_empty(), "the late upload is swept too");
}

#[test]
fn a_source_shorter_than_chunk_from_s_stays_single_pass() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let whole = w.lease_via_shard_as(true).unwrap();
    assert_eq!(w.plan(&whole, 19.0).unwrap(), None, "shorter than CHUNK_FROM_S");
    assert!(w.job().chunks.is_none());
    assert_eq!(w.enqueues(), 1);
}

#[test]
fn tasks_the_shard_could_not_be_told_of_are_told_again_by_the_alarm() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let whole = w.lease_via_shard_as(true).unwrap();
    w.shard_up.set(false);
    w.plan(&whole, 30.0).unwrap().expect("planned");
    w.shard_up.set(true);
    assert!(w.lease_via_shard_as(true).is_none(), "the shard has no task rows yet");
    // The job is processing, not queued: its tasks are what the retry tells.
    w.heartbeat(&whole.lease_id, 5).unwrap();
    w.run_alarm();
    let last = w.told_shard.borrow().last().map(|c| serde_json::to_value(c).unwrap());
    assert_eq!(last.as_ref().map(|c| c["tasks"].clone()), Some(serde_json::json!([1, 2, 3, 4])));
    let task = w.lease_via_shard_as(true).expect("a task, once the shard was told");
    assert_eq!(task.chunk.unwrap().index, 1);
    assert_eq!(w.store.load().unwrap().unwrap().enqueue_due, None, "told: the mark is cleared");
}
