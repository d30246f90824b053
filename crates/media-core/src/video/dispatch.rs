//! The rules of dispatch: which queue shard a job waits in, which size
//! class its measured source puts it in, and which class a shard serves
//! next. The Durable Objects that hold the queue (`video-service`'s
//! `dispatch` module) only apply these.
//!
//! - A job's shard is a hash of its id, fixed when the job is created, so
//!   the shard of a live job never moves when `QUEUE_SHARDS` changes.
//! - Sources of at least `LARGE_SOURCE_BYTES` (measured at notify, never the
//!   caller's hint) wait in the `large` class. A transcoder may take only
//!   some classes (`JOB_CLASSES`), so a long upload never holds up short
//!   ones as long as one transcoder takes `standard` only.
//! - A shard serving both classes takes `standard` first, unless the oldest
//!   waiting `large` job has waited [`CLASS_STARVATION_MS`] longer than the
//!   oldest `standard` one: busy days delay long sources, never forever.

use serde::{Deserialize, Serialize};

use crate::ids::JobId;
use crate::time::Timestamp;
use crate::video::job::{ChunkTask, Job, JobStatus, TaskStatus};

/// The most queue shards a deployment may have: a lease request sweeps
/// them all, one subrequest each.
pub const MAX_QUEUE_SHARDS: u32 = 32;

/// Sources this size or larger wait in the `large` class by default (1 GiB).
pub const DEFAULT_LARGE_SOURCE_BYTES: u64 = 1 << 30;

/// How much longer than the oldest `standard` job the oldest `large` one
/// may wait before a shard serving both takes it first.
pub const CLASS_STARVATION_MS: u64 = 60_000;

/// The shard `job_id` waits in, of `shards` (FNV-1a of the id).
pub fn shard_of(job_id: &JobId, shards: u32) -> u32 {
    let hash = job_id.as_str().bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash % shards.max(1)
}

/// A job's size class, from its measured source size.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeClass {
    Standard,
    Large,
}

impl SizeClass {
    pub const ALL: [SizeClass; 2] = [SizeClass::Standard, SizeClass::Large];

    pub fn as_str(self) -> &'static str {
        match self {
            SizeClass::Standard => "standard",
            SizeClass::Large => "large",
        }
    }

    pub fn parse(s: &str) -> Option<SizeClass> {
        SizeClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The class of a source of `size` bytes.
    pub fn of_size(size: u64, large_from: u64) -> SizeClass {
        if size >= large_from {
            SizeClass::Large
        } else {
            SizeClass::Standard
        }
    }
}

/// Reads a comma-separated list of classes (`JOB_CLASSES`, e.g.
/// `standard` or `standard,large`); empty means every class.
pub fn parse_classes(list: &str) -> Result<Vec<SizeClass>, String> {
    let mut classes = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let class = SizeClass::parse(name)
            .ok_or_else(|| format!("unknown job class {name:?}; the classes are \"standard\" and \"large\""))?;
        if !classes.contains(&class) {
            classes.push(class);
        }
    }
    if classes.is_empty() {
        classes.extend(SizeClass::ALL);
    }
    Ok(classes)
}

/// Which class a shard serves next, given when the oldest due job of each
/// class allowed to the caller was queued (`None`: none waiting).
pub fn next_class(oldest_standard: Option<Timestamp>, oldest_large: Option<Timestamp>) -> Option<SizeClass> {
    match (oldest_standard, oldest_large) {
        (None, None) => None,
        (Some(_), None) => Some(SizeClass::Standard),
        (None, Some(_)) => Some(SizeClass::Large),
        (Some(s), Some(l)) if s.millis_since(l) > CLASS_STARVATION_MS => Some(SizeClass::Large),
        (Some(_), Some(_)) => Some(SizeClass::Standard),
    }
}

/// What a job's queue shard must be told after a change of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardChange {
    /// Nothing: the shard's row is still right (e.g. a lease was granted
    /// through it, or only progress moved).
    None,
    /// The job waits (again) from `queued_at`, not before `not_before`, in
    /// the class of its source: upsert its row.
    Enqueue,
    /// The job left the queue for good (done, failed, canceled): the row
    /// only answers late lookups until it is pruned.
    Ended,
}

/// The shard message `before` → `after` calls for (`before` is `None` for a new job).
pub fn shard_change(before: Option<&Job>, after: &Job) -> ShardChange {
    let waiting = |j: &Job| (j.status, j.queued_at, j.not_before, j.source.size);
    match after.status {
        JobStatus::Queued if before.map(waiting) != Some(waiting(after)) => ShardChange::Enqueue,
        JobStatus::Done | JobStatus::Error
            if before.is_some_and(|b| matches!(b.status, JobStatus::Queued | JobStatus::Processing)) =>
        {
            ShardChange::Ended
        }
        _ => ShardChange::None,
    }
}

/// Every shard message `before` → `after` calls for, by row: `None` is the
/// job's own row ([`shard_change`]; its `Ended` also ends every task row),
/// `Some(k)` chunk task `k`'s row. A task waits (again) when it is queued
/// with a new `not_before` (planned, retried, released); it leaves the queue
/// when done. The tasks of a run that was dropped (a stale job queued again)
/// all end.
pub fn shard_changes(before: Option<&Job>, after: &Job) -> Vec<(Option<u16>, ShardChange)> {
    let job = shard_change(before, after);
    let mut changes = Vec::new();
    if job != ShardChange::None {
        changes.push((None, job));
    }
    if job == ShardChange::Ended {
        return changes;
    }
    let old = before.and_then(|b| b.chunks.as_ref());
    let new = after.chunks.as_ref();
    let same_run = matches!((old, new), (Some(o), Some(n)) if o.output_id == n.output_id);
    let index = |k: usize| u16::try_from(k).ok();
    if let Some(o) = old.filter(|_| !same_run) {
        let live = |t: &ChunkTask| matches!(t.status, TaskStatus::Queued | TaskStatus::Processing);
        changes
            .extend(o.tasks.iter().enumerate().filter(|(_, t)| live(t)).map(|(k, _)| (index(k), ShardChange::Ended)));
    }
    let waiting = |t: &ChunkTask| (t.status, t.not_before);
    for (k, task) in new.iter().flat_map(|n| n.tasks.iter().enumerate()) {
        let prev = old.filter(|_| same_run).and_then(|o| o.tasks.get(k));
        let change = match task.status {
            TaskStatus::Queued if prev.map(waiting) != Some(waiting(task)) => ShardChange::Enqueue,
            TaskStatus::Done if prev.is_some_and(|p| p.status != TaskStatus::Done) => ShardChange::Ended,
            _ => continue,
        };
        changes.push((index(k), change));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AppId, LeaseId, VideoId};
    use crate::keys::OutputId;
    use crate::video::job::{JobResult, RetryPolicy, SourceUpload};
    use crate::video::ladder::LadderOptions;

    fn new_job(t: Timestamp) -> Job {
        let source = SourceUpload {
            raw_key: "raw/a/v/source.mp4".into(),
            content_type: "video/mp4".into(),
            size: 10,
            etag: None,
        };
        let (app, video) = (AppId::parse("a").unwrap(), VideoId::parse("v").unwrap());
        Job::new(job("job_x"), app, video, source, LadderOptions::default(), &policy(), t)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 2, lease_ttl_ms: 30_000, backoff_base_ms: 5_000 }
    }

    #[test]
    fn the_shard_hears_of_queueing_and_of_the_end_only() {
        let t = Timestamp::from_secs(1_700_000_000);
        let lid = LeaseId::parse("lease_1").unwrap();
        let mut job = new_job(t);
        assert_eq!(shard_change(None, &job), ShardChange::Enqueue);
        assert_eq!(shard_change(Some(&job.clone()), &job), ShardChange::None);

        let before = job.clone();
        job.lease(lid.clone(), OutputId::from_random([1; 10]), &policy(), t).unwrap();
        assert_eq!(shard_change(Some(&before), &job), ShardChange::None, "a grant went through the shard");
        let before = job.clone();
        job.heartbeat(&lid, 40, Some("encoding".into()), false, &policy(), t.plus_millis(1)).unwrap();
        assert_eq!(shard_change(Some(&before), &job), ShardChange::None);

        // A retryable failure waits again, with its backoff.
        let before = job.clone();
        job.fail(&lid, "boom", true, &policy(), t.plus_millis(2)).unwrap();
        assert_eq!(shard_change(Some(&before), &job), ShardChange::Enqueue);

        // A release queues it at once, the same way.
        let lid2 = LeaseId::parse("lease_2").unwrap();
        job.lease(lid2.clone(), OutputId::from_random([2; 10]), &policy(), t.plus_millis(10_000)).unwrap();
        let before = job.clone();
        job.release(&lid2, t.plus_millis(10_001)).unwrap();
        assert_eq!(shard_change(Some(&before), &job), ShardChange::Enqueue);

        let lid3 = LeaseId::parse("lease_3").unwrap();
        job.lease(lid3.clone(), OutputId::from_random([3; 10]), &policy(), t.plus_millis(10_002)).unwrap();
        let before = job.clone();
        let result: JobResult = serde_json::from_value(serde_json::json!({
            "duration_s": 1.0, "has_audio": false, "renditions": []
        }))
        .unwrap();
        job.complete(&lid3, result, t.plus_millis(10_003)).unwrap();
        assert_eq!(shard_change(Some(&before), &job), ShardChange::Ended);
        assert_eq!(shard_change(Some(&job.clone()), &job), ShardChange::None, "done stays done");

        // Canceled while queued.
        let mut queued = new_job(t);
        let before = queued.clone();
        assert!(queued.cancel("canceled through the API", t));
        assert_eq!(shard_change(Some(&before), &queued), ShardChange::Ended);
        // And queued again by a notify.
        let before = queued.clone();
        queued.renotify(before.source.clone(), &policy(), t.plus_millis(1));
        assert_eq!(shard_change(Some(&before), &queued), ShardChange::Enqueue);
    }

    fn job(s: &str) -> JobId {
        JobId::parse(s).unwrap()
    }

    #[test]
    fn a_single_pass_job_has_its_row_only() {
        let t = Timestamp::from_secs(1_700_000_000);
        let lid = LeaseId::parse("lease_1").unwrap();
        let mut job = new_job(t);
        assert_eq!(shard_changes(None, &job), [(None, ShardChange::Enqueue)]);
        let before = job.clone();
        job.lease(lid.clone(), OutputId::from_random([1; 10]), &policy(), t).unwrap();
        assert_eq!(shard_changes(Some(&before), &job), []);
        let before = job.clone();
        job.fail(&lid, "boom", false, &policy(), t).unwrap();
        assert_eq!(shard_changes(Some(&before), &job), [(None, ShardChange::Ended)]);
    }

    #[test]
    fn chunk_tasks_have_rows_of_their_own() {
        use crate::video::chunks::{ChunkGeometry, ChunkReport, ChunkSettings, ChunkSource};
        use crate::video::ladder::Rational;
        let t = Timestamp::from_secs(1_700_000_000);
        let p = RetryPolicy { max_attempts: 3, ..policy() };
        let lid = |s: &str| LeaseId::parse(s).unwrap();
        let geometry = ChunkGeometry {
            frame_rate: Rational::new(30, 1),
            gop_frames: 60,
            first_segment_frames: 15,
            segment_frames: 120,
            total_frames: 3000,
        };
        let source = ChunkSource { geometry, t0_s: 0.0, duration_s: 100.0, has_audio: false, rungs: vec![] };
        let settings = ChunkSettings { from_s: 60.0, chunk_s: 30.0, first_chunk_s: 10.0 };
        let mut job = new_job(t);
        job.lease(lid("L0"), OutputId::from_random([1; 10]), &p, t).unwrap();
        let before = job.clone();
        job.plan(&lid("L0"), source.clone(), &settings, t).unwrap().unwrap();
        // Tasks 1..3 wait at once; task 0 runs under the lease granted through the job's row.
        let enqueue = |k: u16| (Some(k), ShardChange::Enqueue);
        assert_eq!(shard_changes(Some(&before), &job), [enqueue(1), enqueue(2), enqueue(3)]);
        let step = |job: &mut Job, f: &dyn Fn(&mut Job)| {
            let before = job.clone();
            f(job);
            shard_changes(Some(&before), job)
        };
        for k in 1..4 {
            assert_eq!(step(&mut job, &|j| drop(j.lease_task(k, lid(&format!("L{k}")), &p, t).unwrap())), []);
        }
        assert_eq!(
            step(&mut job, &|j| {
                j.heartbeat(&lid("L2"), 5, None, false, &p, t).unwrap();
            }),
            []
        );
        // A retry waits again in that task's row; a release too.
        assert_eq!(
            step(&mut job, &|j| {
                j.fail(&lid("L2"), "x", true, &p, t).unwrap();
            }),
            [enqueue(2)]
        );
        assert_eq!(step(&mut job, &|j| j.release(&lid("L3"), t.plus_millis(1)).unwrap()), [enqueue(3)]);
        // A task done leaves the queue; the job goes on.
        let report = || Some(ChunkReport { frames: 960, segments: 8, ..Default::default() });
        let done = step(&mut job, &|j| {
            j.finish(&lid("L1"), JobResult::default(), report(), t).unwrap();
        });
        assert_eq!(done, [(Some(1), ShardChange::Ended)]);
        // A stale run queued again by a notify: the job's row waits again, every live task row ends.
        let stale = t.plus_millis(60_000);
        let again = step(&mut job, &|j| {
            j.renotify(j.source.clone(), &p, stale);
        });
        assert_eq!(
            again,
            [
                (None, ShardChange::Enqueue),
                (Some(0), ShardChange::Ended),
                (Some(2), ShardChange::Ended),
                (Some(3), ShardChange::Ended)
            ]
        );
        // Canceled while in chunks: the job's row ends, and with it every task's.
        job.lease(lid("M0"), OutputId::from_random([2; 10]), &p, stale).unwrap();
        job.plan(&lid("M0"), source, &settings, stale).unwrap().unwrap();
        assert_eq!(
            step(&mut job, &|j| {
                j.cancel("canceled through the API", stale);
            }),
            [(None, ShardChange::Ended)]
        );
    }

    #[test]
    fn a_job_keeps_its_shard_and_jobs_spread_over_shards() {
        let id = job("job_0123456789abcdefghjkmnpqrs");
        assert_eq!(shard_of(&id, 1), 0);
        assert_eq!(shard_of(&id, 4), shard_of(&id, 4));
        // Zero shards is treated as one, never a division by zero.
        assert_eq!(shard_of(&id, 0), 0);
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            counts[shard_of(&job(&format!("job_{i:026}")), 4) as usize] += 1;
        }
        assert!(counts.iter().all(|&n| (800..1200).contains(&n)), "{counts:?}");
        // A known value, so a change of hash (which would orphan live jobs) is seen.
        assert_eq!(
            shard_of(&job("job_a"), 32),
            0x0ab2_1b88 % 32,
            "FNV-1a of job_a (python3: fold h=(h^b)*0x01000193 from 0x811c9dc5)"
        );
    }

    #[test]
    fn classes_come_from_the_measured_size() {
        assert_eq!(SizeClass::of_size(0, 100), SizeClass::Standard);
        assert_eq!(SizeClass::of_size(99, 100), SizeClass::Standard);
        assert_eq!(SizeClass::of_size(100, 100), SizeClass::Large);
        assert_eq!(serde_json::to_string(&SizeClass::Large).unwrap(), "\"large\"");
    }

    #[test]
    fn job_classes_lists() {
        assert_eq!(parse_classes("").unwrap(), SizeClass::ALL.to_vec());
        assert_eq!(parse_classes(" standard ").unwrap(), vec![SizeClass::Standard]);
        assert_eq!(parse_classes("large,standard,large").unwrap(), vec![SizeClass::Large, SizeClass::Standard]);
        let e = parse_classes("standard,huge").unwrap_err();
        assert!(e.contains("\"huge\""), "{e}");
    }

    #[test]
    fn standard_first_unless_large_starves() {
        let t = Timestamp::from_secs(1_700_000_000);
        assert_eq!(next_class(None, None), None);
        assert_eq!(next_class(Some(t), None), Some(SizeClass::Standard));
        assert_eq!(next_class(None, Some(t)), Some(SizeClass::Large));
        // A large job queued earlier still waits behind standard ones...
        assert_eq!(next_class(Some(t.plus_millis(CLASS_STARVATION_MS)), Some(t)), Some(SizeClass::Standard));
        // ...until it has waited a minute longer than the oldest of them.
        assert_eq!(next_class(Some(t.plus_millis(CLASS_STARVATION_MS + 1)), Some(t)), Some(SizeClass::Large));
        assert_eq!(next_class(Some(t), Some(t.plus_millis(5))), Some(SizeClass::Standard));
    }
}
