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
//! Rows that ended are kept an hour so a late heartbeat's lookup still finds
//! its job (and gets 409, not 404), then pruned. `Stats` counts the requests
//! of each kind, so tests and operators can see what reaches the shards,
//! and the lease requests waiting (one that timed out leaves the list at
//! once, so it holds only live ones).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use media_core::ids::{AppId, JobId, LeaseId, VideoId};
use media_core::keys::OutputId;
use media_core::video::dispatch::{next_class, SizeClass};
use media_core::wire::api::{JobSpec, MAX_LEASE_WAIT_MS};
use media_core::{ApiError, Timestamp};
use serde::Deserialize;
use worker::{durable_object, Delay, DurableObject, Env, Request, Response, SqlStorage, SqlStorageValue, State};
use worker_kit::clock::{now, random_bytes};

use crate::client::call;
use crate::protocol::dispatch::{shard_name, Located, ShardCommand, ShardLeaseReply, ShardStats, DISPATCH_BINDING};
use crate::video_job::{VideoCall, VideoOp, VIDEO_JOBS_BINDING};

/// How long an ended row is kept for late lookups.
const ENDED_RETENTION_MS: u64 = 60 * 60 * 1000;
/// An offer whose grant never answered (the object was reset mid-call) is
/// offered again after this long.
const OFFER_TIMEOUT_MS: u64 = 30_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS waiting (
    job_id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    video_id TEXT NOT NULL,
    class TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    state TEXT NOT NULL,
    changed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS waiting_by_due ON waiting (state, class, not_before, queued_at);
CREATE INDEX IF NOT EXISTS waiting_by_change ON waiting (state, changed_at);
CREATE TABLE IF NOT EXISTS stats (op TEXT PRIMARY KEY, n INTEGER NOT NULL);
";

#[derive(Deserialize)]
struct Row {
    job_id: String,
    app_id: String,
    video_id: String,
}

#[derive(Deserialize)]
struct TimeRow {
    t: Option<f64>,
}

#[derive(Deserialize)]
struct StatRow {
    op: String,
    n: f64,
}

fn int(t: Timestamp) -> SqlStorageValue {
    SqlStorageValue::Integer(t.millis() as i64)
}

fn failure(e: &ApiError) -> worker::Result<Response> {
    Ok(Response::ok(e.to_json())?.with_status(e.status()))
}

#[durable_object]
pub struct DispatchShard {
    state: State,
    env: Env,
    /// Lease requests waiting for work; woken with the ringing shard, if any.
    waiters: RefCell<Vec<oneshot::Sender<Option<u32>>>>,
}

impl DispatchShard {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn count(&self, op: &str) -> worker::Result<()> {
        self.sql().exec(
            "INSERT INTO stats (op, n) VALUES (?, 1) ON CONFLICT (op) DO UPDATE SET n = n + 1",
            vec![op.into()],
        )?;
        Ok(())
    }

    fn set_state(&self, job_id: &str, state: &str, only_if: Option<&str>, at: Timestamp) -> worker::Result<()> {
        match only_if {
            Some(was) => self.sql().exec(
                "UPDATE waiting SET state = ?, changed_at = ? WHERE job_id = ? AND state = ?",
                vec![state.into(), int(at), job_id.into(), was.into()],
            )?,
            None => self.sql().exec(
                "UPDATE waiting SET state = ?, changed_at = ? WHERE job_id = ?",
                vec![state.into(), int(at), job_id.into()],
            )?,
        };
        Ok(())
    }

    /// Wakes every lease request still waiting; how many there were (a
    /// request that timed out is no longer there to take work).
    fn wake(&self, ring: Option<u32>) -> usize {
        let waiters: Vec<_> = self.waiters.borrow_mut().drain(..).collect();
        waiters.into_iter().filter_map(|w| w.send(ring).ok()).count()
    }

    fn enqueue(&self, cmd: &ShardCommand) -> worker::Result<()> {
        let ShardCommand::Enqueue { job_id, app_id, video_id, class, queued_at, not_before, shard, shards } = cmd
        else {
            unreachable!("called with an Enqueue");
        };
        let t = now();
        self.sql().exec(
            "INSERT INTO waiting (job_id, app_id, video_id, class, queued_at, not_before, state, changed_at)
             VALUES (?, ?, ?, ?, ?, ?, 'waiting', ?)
             ON CONFLICT (job_id) DO UPDATE SET class = excluded.class, queued_at = excluded.queued_at,
               not_before = excluded.not_before, state = 'waiting', changed_at = excluded.changed_at",
            vec![
                job_id.as_str().into(),
                app_id.as_str().into(),
                video_id.as_str().into(),
                class.as_str().into(),
                int(*queued_at),
                int(*not_before),
                int(t),
            ],
        )?;
        // Nothing grows forever: ended rows go after their hour.
        self.sql().exec(
            "DELETE FROM waiting WHERE state = 'ended' AND changed_at < ?",
            vec![SqlStorageValue::Integer(t.millis() as i64 - ENDED_RETENTION_MS as i64)],
        )?;
        if self.wake(None) == 0 && *shards > 1 {
            let (env, me, shards) = (self.env.clone(), *shard, *shards);
            self.state.wait_until(async move {
                for n in (0..shards).filter(|n| *n != me) {
                    let ring = ShardCommand::Ring { from: me };
                    if let Err(e) = call(&env, DISPATCH_BINDING, &shard_name(n), &ring).await {
                        tracing::warn!(shard = n, error = %e, "ringing a shard failed");
                    }
                }
            });
        }
        Ok(())
    }

    fn oldest_due(&self, class: SizeClass, t: Timestamp) -> worker::Result<Option<(Row, Timestamp)>> {
        #[derive(Deserialize)]
        struct Due {
            job_id: String,
            app_id: String,
            video_id: String,
            queued_at: f64,
        }
        let rows: Vec<Due> = self
            .sql()
            .exec(
                "SELECT job_id, app_id, video_id, queued_at FROM waiting
                 WHERE ((state = 'waiting') OR (state = 'offered' AND changed_at < ?))
                   AND class = ? AND not_before <= ?
                 ORDER BY queued_at LIMIT 1",
                vec![
                    SqlStorageValue::Integer(t.millis() as i64 - OFFER_TIMEOUT_MS as i64),
                    class.as_str().into(),
                    int(t),
                ],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|d| {
            (
                Row { job_id: d.job_id, app_id: d.app_id, video_id: d.video_id },
                Timestamp::from_millis(d.queued_at as u64),
            )
        }))
    }

    /// The row to offer next among `classes`, standard first unless large starves.
    fn next_row(&self, classes: &[SizeClass], standard_first: bool, t: Timestamp) -> worker::Result<Option<Row>> {
        let mut standard = None;
        let mut large = None;
        for class in classes {
            match class {
                SizeClass::Standard => standard = self.oldest_due(SizeClass::Standard, t)?,
                SizeClass::Large => large = self.oldest_due(SizeClass::Large, t)?,
            }
        }
        Ok(match next_class(standard.as_ref().map(|r| r.1), large.as_ref().map(|r| r.1)) {
            Some(SizeClass::Standard) => standard.map(|r| r.0),
            // Large because nothing standard waits here: the first sweep
            // leaves it for the second, after every shard's standard jobs.
            Some(SizeClass::Large) if standard_first && standard.is_none() => None,
            Some(SizeClass::Large) => large.map(|r| r.0),
            None => None,
        })
    }

    fn next_due(&self, t: Timestamp) -> worker::Result<Option<Timestamp>> {
        let rows: Vec<TimeRow> = self
            .sql()
            .exec("SELECT MIN(not_before) AS t FROM waiting WHERE state = 'waiting' AND not_before > ?", vec![int(t)])?
            .to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.t).map(|t| Timestamp::from_millis(t as u64)))
    }

    /// Offers `row` to its job's object. `Some(spec)` when it granted the lease.
    async fn offer(&self, row: &Row, worker: &str) -> worker::Result<Option<JobSpec>> {
        let t = now();
        self.set_state(&row.job_id, "offered", None, t)?;
        let (Ok(app_id), Ok(video_id), Ok(job_id)) =
            (AppId::parse(&row.app_id), VideoId::parse(&row.video_id), JobId::parse(&row.job_id))
        else {
            self.set_state(&row.job_id, "ended", None, t)?;
            return Ok(None);
        };
        let grant = VideoCall {
            app_id,
            video_id,
            base: None,
            op: VideoOp::Grant {
                job_id,
                lease_id: LeaseId::from_random(random_bytes()),
                output_id: OutputId::from_random(random_bytes()),
                worker: worker.to_owned(),
            },
        };
        let answer = match call(&self.env, VIDEO_JOBS_BINDING, &grant.object_name(), &grant).await {
            Ok(a) => a,
            Err(e) => {
                // Offer it again later; the object is the fence either way.
                self.set_state(&row.job_id, "waiting", Some("offered"), now())?;
                return Err(e);
            }
        };
        match answer.status {
            200 => {
                let spec: Option<JobSpec> = serde_json::from_str(&answer.body)
                    .map_err(|e| worker::Error::RustError(format!("grant answer: {e}")))?;
                let state = if spec.is_some() { "leased" } else { "ended" };
                self.set_state(&row.job_id, state, Some("offered"), now())?;
                Ok(spec)
            }
            // The job moved on (canceled, done, or queued again with a new
            // time, which re-enqueued it and so reset the row from "offered").
            404 | 409 => {
                self.set_state(&row.job_id, "ended", Some("offered"), now())?;
                Ok(None)
            }
            status => {
                self.set_state(&row.job_id, "waiting", Some("offered"), now())?;
                Err(worker::Error::RustError(format!("grant answered {status}: {}", answer.body)))
            }
        }
    }

    async fn lease(
        &self,
        worker: &str,
        wait_ms: u64,
        classes: &[SizeClass],
        standard_first: bool,
    ) -> worker::Result<Response> {
        let deadline = now().plus_millis(wait_ms.min(MAX_LEASE_WAIT_MS));
        loop {
            let t = now();
            while let Some(row) = self.next_row(classes, standard_first, t)? {
                if let Some(spec) = self.offer(&row, worker).await? {
                    tracing::info!(job_id = %spec.job_id, worker, attempt = spec.attempt, "job leased");
                    return Response::from_json(&ShardLeaseReply { job: Some(spec), ring: None });
                }
            }
            if t >= deadline {
                return Response::from_json(&ShardLeaseReply::default());
            }
            // Sleep until woken by new work (here or rung from elsewhere),
            // the next retry comes due, or the deadline.
            let wake_at = match self.next_due(t)? {
                Some(due) => deadline.min(due),
                None => deadline,
            };
            let (tx, rx) = oneshot::channel();
            // Requests that timed out (their receiver is gone) leave now,
            // not at the next enqueue: the list holds live waiters only.
            {
                let mut waiters = self.waiters.borrow_mut();
                waiters.retain(|w| !w.is_canceled());
                waiters.push(tx);
            }
            let timer = Delay::from(Duration::from_millis(wake_at.millis_since(t).max(5)));
            let woken = select(rx, timer).await;
            if let Either::Left((Ok(Some(ring)), _)) = woken {
                return Response::from_json(&ShardLeaseReply { job: None, ring: Some(ring) });
            }
            // Timed out (or woken without a ring): this request's receiver
            // goes, and with it its place in the list.
            drop(woken);
            self.waiters.borrow_mut().retain(|w| !w.is_canceled());
        }
    }

    fn locate(&self, job_id: &JobId) -> worker::Result<Response> {
        let rows: Vec<Row> = self
            .sql()
            .exec("SELECT job_id, app_id, video_id FROM waiting WHERE job_id = ?", vec![job_id.as_str().into()])?
            .to_array()?;
        match rows.into_iter().next() {
            Some(r) => match (AppId::parse(&r.app_id), VideoId::parse(&r.video_id)) {
                (Ok(app_id), Ok(video_id)) => Response::from_json(&Located { app_id, video_id }),
                _ => failure(&ApiError::not_found(format!("no job {job_id}"))),
            },
            None => failure(&ApiError::not_found(format!("no job {job_id}"))),
        }
    }

    fn stats(&self) -> worker::Result<Response> {
        let rows: Vec<StatRow> = self.sql().exec("SELECT op, n FROM stats", None)?.to_array()?;
        let requests: BTreeMap<String, u64> = rows.into_iter().map(|r| (r.op, r.n as u64)).collect();
        Response::from_json(&ShardStats { requests, waiters: self.waiters.borrow().len() as u64 })
    }
}

impl DurableObject for DispatchShard {
    fn new(state: State, env: Env) -> Self {
        if let Err(e) = state.storage().sql().exec(SCHEMA, None) {
            tracing::error!(error = %e, "creating the dispatch tables failed");
        }
        Self { state, env, waiters: RefCell::new(Vec::new()) }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let cmd: ShardCommand = match crate::client::read_command(&mut req, "shard command").await {
            Ok(c) => c,
            Err(e) => return Ok(Response::ok(e.to_json())?.with_status(e.status())),
        };
        let op = match &cmd {
            ShardCommand::Enqueue { .. } => "enqueue",
            ShardCommand::Lease { .. } => "lease",
            ShardCommand::Locate { .. } => "locate",
            ShardCommand::Ended { .. } => "ended",
            ShardCommand::Ring { .. } => "ring",
            ShardCommand::Stats => "stats",
        };
        if op != "stats" {
            self.count(op)?;
        }
        match &cmd {
            ShardCommand::Enqueue { .. } => {
                self.enqueue(&cmd)?;
                Response::from_json(&true)
            }
            ShardCommand::Lease { worker, wait_ms, classes, standard_first } => {
                self.lease(worker, *wait_ms, classes, *standard_first).await
            }
            ShardCommand::Locate { job_id } => self.locate(job_id),
            ShardCommand::Ended { job_id } => {
                self.set_state(job_id.as_str(), "ended", None, now())?;
                Response::from_json(&true)
            }
            ShardCommand::Ring { from } => {
                self.wake(Some(*from));
                Response::from_json(&true)
            }
            ShardCommand::Stats => self.stats(),
        }
    }
}
