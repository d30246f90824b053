//! The messages of `DispatchShard` (the queue shards, [`crate::dispatch`]):
//! what the Worker and the video objects ask of a shard, its replies, the
//! binding and how a shard is named.

use std::collections::BTreeMap;

use media_core::ids::{AppId, JobId, VideoId};
use media_core::video::dispatch::SizeClass;
use media_core::wire::api::JobSpec;
use media_core::Timestamp;
use serde::{Deserialize, Serialize};

/// The Durable Object binding of the shards.
pub const DISPATCH_BINDING: &str = "DISPATCH";

/// The name of queue shard `n` (of `QUEUE_SHARDS`).
pub fn shard_name(n: u32) -> String {
    format!("shard-{n}")
}

/// What the Worker and the video objects ask of a shard.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ShardCommand {
    /// The job waits from `queued_at`, not before `not_before` (upsert).
    /// `shard` is this shard's number and `shards` how many there are, to
    /// ring the others when nobody waits here. `tasks`: chunk tasks of
    /// the job (a row each, all due at `not_before`), offered only to
    /// transcoders that run chunks; empty, the whole job's row.
    Enqueue {
        job_id: JobId,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tasks: Vec<u16>,
        app_id: AppId,
        video_id: VideoId,
        class: SizeClass,
        queued_at: Timestamp,
        not_before: Timestamp,
        shard: u32,
        shards: u32,
    },
    /// A due job of one of `classes`, waiting up to `wait_ms` for one. With
    /// `standard_first`, a large job only when it starves: the Worker's
    /// first sweep, so standard jobs go first across every shard.
    Lease {
        worker: String,
        wait_ms: u64,
        classes: Vec<SizeClass>,
        #[serde(default)]
        standard_first: bool,
        /// The transcoder runs chunk tasks (`LeaseRequest::chunks`): only
        /// then are task rows offered to it.
        #[serde(default)]
        chunks: bool,
    },
    /// The video of a job (for the internal API's calls by job id).
    Locate { job_id: JobId },
    /// The job left the queue (done, failed, canceled): every row of it
    /// ends; with `task`, only that task's row (the task is done).
    Ended {
        job_id: JobId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<u16>,
    },
    /// Another shard got work with nobody waiting there.
    Ring { from: u32 },
    /// `worker` is stopping: its waiting lease requests answer nothing at
    /// once, instead of taking a job for a transcoder that has gone.
    Withdraw { worker: String },
    /// Requests served, by kind.
    Stats,
}

/// A shard's answer to `Stats`: the requests of each kind it got, and how
/// many lease requests it holds waiting right now.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ShardStats {
    pub requests: BTreeMap<String, u64>,
    pub waiters: u64,
}

/// A shard's answer to a lease: a job, or (none within the wait) maybe the
/// shard that rang meanwhile.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ShardLeaseReply {
    pub job: Option<JobSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<u32>,
    /// The request was withdrawn (`ShardCommand::Withdraw`): the sweep ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withdrawn: bool,
}

/// The answer to `Locate`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Located {
    pub app_id: AppId,
    pub video_id: VideoId,
}
