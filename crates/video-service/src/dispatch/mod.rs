//! A queue shard: one of `QUEUE_SHARDS` SQLite-backed Durable Objects
//! (`DispatchShard`, named `shard-{n}`) holding which jobs wait, in which
//! size class, and which were handed out. It holds no job state: each job's
//! own object ([`crate::video_job`]) is the truth and the fence, and tells
//! its shard when the job waits again or ends (`media_core::video::dispatch`).
//!
//! A lease takes the oldest due row of the class `media_core::video::dispatch::
//! next_class` picks, marks it offered before any await (so no other request
//! here offers it too), and asks the job's object to grant the lease. The
//! object may refuse (the job was canceled or moved on meanwhile): the row
//! ends and the next is tried. Long-polling lease requests wait on an
//! in-memory list woken by new work here, or by a ring from another shard
//! that got work with nobody waiting on it.
//!
//! The logic is [`shard`]'s, a function of the stored rows ([`store`]) and
//! the time, tested natively; this object is its shell: it reads the
//! command, runs it against its SQLite rows, asks the job's object for the
//! grant, sleeps, and rings the other shards.
//!
//! Rows that ended are kept an hour so a late heartbeat's lookup still finds
//! its job (and gets 409, not 404), then pruned. `Stats` counts the requests
//! of each kind, so tests and operators can see what reaches the shards,
//! and the lease requests waiting (one that timed out leaves the list at
//! once, so it holds only live ones).

use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use media_core::ids::LeaseId;
use media_core::keys::OutputId;
use media_core::Timestamp;
use worker::{durable_object, Delay, DurableObject, Env, Request, Response, State};
use worker_kit::clock::{now, random_bytes};

use crate::client::{call, read_command, refusal, Answer};
use crate::protocol::dispatch::{shard_name, ShardCommand, DISPATCH_BINDING};
use crate::protocol::video_job::{VideoCall, VideoOp, VIDEO_JOBS_BINDING};

pub mod shard;
pub mod store;
#[cfg(test)]
pub(crate) mod tests;

use shard::{Effect, Reply, Row, Shard, ShardIo, Wake};
use store::{SqlShardStore, SCHEMA};

#[durable_object]
pub struct DispatchShard {
    state: State,
    env: Env,
    shard: Shard<SqlShardStore>,
}

/// A lease's calls out of the shard: the grant to the job's object, the
/// runtime's timer and clock.
struct Live<'a>(&'a Env);

impl ShardIo for Live<'_> {
    fn now(&self) -> Timestamp {
        now()
    }

    async fn grant(&self, row: &Row, worker: &str) -> worker::Result<Answer> {
        let grant = VideoCall {
            app_id: row.app_id.clone(),
            video_id: row.video_id.clone(),
            base: None,
            op: VideoOp::Grant {
                job_id: row.job_id.clone(),
                task: row.task,
                lease_id: LeaseId::from_random(random_bytes()),
                output_id: OutputId::from_random(random_bytes()),
                worker: worker.to_owned(),
            },
        };
        call(self.0, VIDEO_JOBS_BINDING, &grant.object_name(), &grant).await
    }

    async fn sleep(&self, woken: oneshot::Receiver<Wake>, ms: u64) -> Option<Wake> {
        match select(woken, Delay::from(Duration::from_millis(ms))).await {
            Either::Left((Ok(why), _)) => Some(why),
            _ => None,
        }
    }
}

impl DurableObject for DispatchShard {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(SCHEMA, None) {
            tracing::error!(error = %e, "creating the dispatch tables failed");
        }
        Self { state, env, shard: Shard::new(SqlShardStore(sql)) }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let cmd: ShardCommand = match read_command(&mut req, "shard command").await {
            Ok(c) => c,
            Err(e) => return refusal(&e),
        };
        let (reply, effects) = self.shard.handle(&Live(&self.env), cmd).await?;
        if !effects.is_empty() {
            let env = self.env.clone();
            self.state.wait_until(async move {
                for Effect::Ring { shard, from } in effects {
                    let ring = ShardCommand::Ring { from };
                    if let Err(e) = call(&env, DISPATCH_BINDING, &shard_name(shard), &ring).await {
                        tracing::warn!(shard, error = %e, "ringing a shard failed");
                    }
                }
            });
        }
        match reply {
            Reply::Done => Response::from_json(&true),
            Reply::Lease(lease) => Response::from_json(&lease),
            Reply::Located(located) => Response::from_json(&located),
            Reply::Stats(stats) => Response::from_json(&stats),
            Reply::Withdrawn(n) => Response::from_json(&n),
            Reply::Refused(e) => refusal(&e),
        }
    }
}
