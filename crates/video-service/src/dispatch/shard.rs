//! A queue shard's logic, apart from its Durable Object: each command of
//! [`ShardCommand`] as a function of the stored rows ([`ShardStore`]), the
//! time and the shard's rules, answering a [`Reply`] and the [`Effect`]s its
//! shell carries out. The calls a lease makes (the grant to the job's
//! object, the wait) go through [`ShardIo`], so the whole of it runs under
//! `cargo test` with fake time and in-memory rows.
//!
//! A row's [`RowState`]: `waiting` (due from `not_before`), `offered` (the
//! job's object is being asked to grant it; offered again after
//! [`Rules::offer_timeout_ms`] if it never answered), `leased`, `ended`
//! (kept [`Rules::ended_retention_ms`] for late lookups, then pruned).
//!
//! Rows are keyed `(job_id, task)`: a job waits as one row (`task: None`)
//! until its first transcoder plans it into chunk tasks; each task then
//! waits as its own row, granted by the job's object task by task. Task
//! rows are offered only to lease requests that run chunks
//! (`LeaseRequest::chunks`), so a transcoder that predates them never gets
//! one.

use std::cell::RefCell;
use std::collections::BTreeMap;

use futures_channel::oneshot;
use media_core::ids::{AppId, JobId, VideoId};
use media_core::video::dispatch::{next_class, SizeClass};
use media_core::wire::api::{JobSpec, MAX_LEASE_WAIT_MS};
use media_core::{ApiError, Timestamp};

use crate::client::Answer;
use crate::protocol::dispatch::{Located, ShardCommand, ShardLeaseReply, ShardStats};

/// How long an ended row is kept for late lookups.
const ENDED_RETENTION_MS: u64 = 60 * 60 * 1000;
/// An offer whose grant never answered (the object was reset mid-call) is
/// offered again after this long.
const OFFER_TIMEOUT_MS: u64 = 30_000;
/// The shortest sleep of a waiting lease request.
const MIN_SLEEP_MS: u64 = 5;

/// Where a job's row stands; stored as its text ([`RowState::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Waiting,
    Offered,
    Leased,
    Ended,
}

impl RowState {
    pub const ALL: [RowState; 4] = [RowState::Waiting, RowState::Offered, RowState::Leased, RowState::Ended];

    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Waiting => "waiting",
            RowState::Offered => "offered",
            RowState::Leased => "leased",
            RowState::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Option<RowState> {
        RowState::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One job's row in a shard, or one of its chunk tasks' rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub job_id: JobId,
    /// The chunk task, or `None` for the whole job.
    pub task: Option<u16>,
    pub app_id: AppId,
    pub video_id: VideoId,
    pub class: SizeClass,
    pub queued_at: Timestamp,
    pub not_before: Timestamp,
    pub state: RowState,
    pub changed_at: Timestamp,
}

/// A shard's stored rows and request counts (SQL in the object, in memory
/// in tests).
pub trait ShardStore {
    /// Inserts `row`, or for a `(job, task)` already here sets its class,
    /// times, state and change time (its app and video stay).
    fn upsert(&self, row: &Row) -> worker::Result<()>;
    /// Sets the state of the row of `job_id`'s `task`, only when it is `only_if` (if given).
    fn set_state(
        &self,
        job_id: &JobId,
        task: Option<u16>,
        to: RowState,
        only_if: Option<RowState>,
        at: Timestamp,
    ) -> worker::Result<()>;
    /// Ends every row of `job_id` (the job's and its tasks').
    fn end_job(&self, job_id: &JobId, at: Timestamp) -> worker::Result<()>;
    /// Deletes the rows in `state` last changed before `before`.
    fn delete_changed_before(&self, state: RowState, before: Timestamp) -> worker::Result<()>;
    /// The earliest queued row of `class` due at `now` (`not_before <= now`)
    /// that is waiting, or offered before `offered_before`; task rows only
    /// with `tasks`. Rows queued at the same time go by job, then task.
    fn oldest_due(
        &self,
        class: SizeClass,
        now: Timestamp,
        offered_before: Timestamp,
        tasks: bool,
    ) -> worker::Result<Option<Row>>;
    /// The earliest `not_before` after `now` of a waiting row (task rows
    /// only with `tasks`).
    fn next_due(&self, now: Timestamp, tasks: bool) -> worker::Result<Option<Timestamp>>;
    /// A row of `job_id` (any of its rows: they name the same video).
    fn get(&self, job_id: &JobId) -> worker::Result<Option<Row>>;
    /// Counts one request of kind `op`.
    fn count(&self, op: &str) -> worker::Result<()>;
    /// The requests counted, by kind.
    fn counts(&self) -> worker::Result<BTreeMap<String, u64>>;
}

/// What a lease does outside the shard: asking the job's object for the
/// grant, waiting, and the time.
pub trait ShardIo {
    fn now(&self) -> Timestamp;
    /// Asks the object of `row`'s job to grant it to `worker`.
    async fn grant(&self, row: &Row, worker: &str) -> worker::Result<Answer>;
    /// Waits `ms`, or less when `woken` is sent: why it woke (`None`: the time ran out).
    async fn sleep(&self, woken: oneshot::Receiver<Wake>, ms: u64) -> Option<Wake>;
}

/// Why a waiting lease request woke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Work came to this shard.
    Here,
    /// Shard `n` got work nobody waits for there.
    Ring(u32),
    /// Its transcoder is stopping ([`ShardCommand::Withdraw`]).
    Withdrawn,
}

/// A lease request waiting for work: how to wake it, whether it takes
/// chunk tasks, and the transcoder that sent it.
struct Waiter {
    wake: oneshot::Sender<Wake>,
    tasks: bool,
    worker: String,
}

/// The lease requests waiting for work, in memory (they end with the
/// object); each is woken with why ([`Wake`]).
#[derive(Default)]
pub struct Waiters(RefCell<Vec<Waiter>>);

impl Waiters {
    /// A new waiter (`tasks`: it takes chunk tasks) of `worker`. Requests
    /// that timed out (their receiver is gone) leave now, not at the next
    /// enqueue: the list holds live ones only.
    pub fn wait(&self, tasks: bool, worker: &str) -> oneshot::Receiver<Wake> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.0.borrow_mut();
        waiters.retain(|w| !w.wake.is_canceled());
        waiters.push(Waiter { wake: tx, tasks, worker: worker.to_owned() });
        rx
    }

    /// Wakes every waiter; how many were still there to take the work
    /// (with `tasks`, chunk tasks: only the waiters that take them count).
    pub fn wake(&self, ring: Option<u32>, tasks: bool) -> usize {
        let waiters: Vec<_> = self.0.borrow_mut().drain(..).collect();
        let why = ring.map_or(Wake::Here, Wake::Ring);
        // Every one is woken (and sent the ring); only the able are counted.
        waiters.into_iter().map(|w| w.wake.send(why).is_ok() && (w.tasks || !tasks)).filter(|able| *able).count()
    }

    /// Ends the waiting requests of `worker` (it is stopping); how many.
    pub fn withdraw(&self, worker: &str) -> usize {
        let mut waiters = self.0.borrow_mut();
        let (gone, kept): (Vec<_>, Vec<_>) = waiters.drain(..).partition(|w| w.worker == worker);
        *waiters = kept;
        gone.into_iter().map(|w| w.wake.send(Wake::Withdrawn).is_ok()).filter(|woken| *woken).count()
    }

    /// Forgets the waiters whose request has gone.
    pub fn forget_gone(&self) {
        self.0.borrow_mut().retain(|w| !w.wake.is_canceled());
    }

    /// How many are listed.
    pub fn count(&self) -> usize {
        self.0.borrow().len()
    }
}

/// The shard's timing rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub ended_retention_ms: u64,
    pub offer_timeout_ms: u64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules { ended_retention_ms: ENDED_RETENTION_MS, offer_timeout_ms: OFFER_TIMEOUT_MS }
    }
}

/// What a lease request asks for.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// Names the transcoder in logs.
    pub worker: &'a str,
    pub classes: &'a [SizeClass],
    /// A large job only when it starves (the Worker's first sweep).
    pub standard_first: bool,
    /// Task rows too: the transcoder runs chunk tasks.
    pub tasks: bool,
}

/// A command's answer.
#[derive(Debug)]
pub enum Reply {
    /// `true`.
    Done,
    Lease(Box<ShardLeaseReply>),
    Located(Located),
    Stats(ShardStats),
    /// How many waiting lease requests a `Withdraw` ended.
    Withdrawn(u64),
    /// A client error (no such job).
    Refused(ApiError),
}

/// What the shell does after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Tell shard `shard` that shard `from` got work nobody here waits for.
    Ring { shard: u32, from: u32 },
}

/// One queue shard: its rows, its waiting lease requests, its rules.
pub struct Shard<S> {
    pub store: S,
    pub waiters: Waiters,
    pub rules: Rules,
}

/// The name a command is counted under (`Stats` is not counted).
pub fn op_name(cmd: &ShardCommand) -> &'static str {
    match cmd {
        ShardCommand::Enqueue { .. } => "enqueue",
        ShardCommand::Lease { .. } => "lease",
        ShardCommand::Locate { .. } => "locate",
        ShardCommand::Ended { .. } => "ended",
        ShardCommand::Ring { .. } => "ring",
        ShardCommand::Withdraw { .. } => "withdraw",
        ShardCommand::Stats => "stats",
    }
}

impl<S: ShardStore> Shard<S> {
    pub fn new(store: S) -> Self {
        Shard { store, waiters: Waiters::default(), rules: Rules::default() }
    }

    /// Runs `cmd`.
    pub async fn handle(&self, io: &impl ShardIo, cmd: ShardCommand) -> worker::Result<(Reply, Vec<Effect>)> {
        let op = op_name(&cmd);
        if op != "stats" {
            self.store.count(op)?;
        }
        Ok(match cmd {
            ShardCommand::Enqueue { job_id, tasks, app_id, video_id, class, queued_at, not_before, shard, shards } => {
                let t = io.now();
                let row = |task| Row {
                    job_id: job_id.clone(),
                    task,
                    app_id: app_id.clone(),
                    video_id: video_id.clone(),
                    class,
                    queued_at,
                    not_before,
                    state: RowState::Waiting,
                    changed_at: t,
                };
                let rows: Vec<Row> = match tasks.is_empty() {
                    true => vec![row(None)],
                    false => tasks.iter().map(|k| row(Some(*k))).collect(),
                };
                (Reply::Done, self.enqueue(&rows, shard, shards, t)?)
            }
            ShardCommand::Lease { worker, wait_ms, classes, standard_first, chunks } => {
                let asked = Asked { worker: &worker, classes: &classes, standard_first, tasks: chunks };
                (Reply::Lease(Box::new(self.lease(io, &asked, wait_ms).await?)), Vec::new())
            }
            ShardCommand::Locate { job_id } => (self.locate(&job_id)?, Vec::new()),
            ShardCommand::Ended { job_id, task: None } => {
                self.store.end_job(&job_id, io.now())?;
                (Reply::Done, Vec::new())
            }
            ShardCommand::Ended { job_id, task } => {
                self.store.set_state(&job_id, task, RowState::Ended, None, io.now())?;
                (Reply::Done, Vec::new())
            }
            ShardCommand::Ring { from } => {
                self.waiters.wake(Some(from), false);
                (Reply::Done, Vec::new())
            }
            ShardCommand::Withdraw { worker } => {
                let n = self.waiters.withdraw(&worker);
                if n > 0 {
                    tracing::info!(worker, requests = n, "lease requests withdrawn");
                }
                (Reply::Withdrawn(n as u64), Vec::new())
            }
            ShardCommand::Stats => (
                Reply::Stats(ShardStats { requests: self.store.counts()?, waiters: self.waiters.count() as u64 }),
                Vec::new(),
            ),
        })
    }

    /// Upserts `rows`, prunes the rows that ended over the retention ago,
    /// and wakes the lease requests waiting here; with none that can take
    /// them (chunk tasks need one that runs chunks), every other shard is rung.
    fn enqueue(&self, rows: &[Row], shard: u32, shards: u32, t: Timestamp) -> worker::Result<Vec<Effect>> {
        for row in rows {
            self.store.upsert(row)?;
        }
        // Nothing grows forever: ended rows go after their hour.
        let before = Timestamp::from_millis(t.millis().saturating_sub(self.rules.ended_retention_ms));
        self.store.delete_changed_before(RowState::Ended, before)?;
        let tasks = rows.iter().all(|r| r.task.is_some());
        if self.waiters.wake(None, tasks) == 0 && shards > 1 {
            return Ok((0..shards).filter(|n| *n != shard).map(|n| Effect::Ring { shard: n, from: shard }).collect());
        }
        Ok(Vec::new())
    }

    fn locate(&self, job_id: &JobId) -> worker::Result<Reply> {
        Ok(match self.store.get(job_id)? {
            Some(r) => Reply::Located(Located { app_id: r.app_id, video_id: r.video_id }),
            None => Reply::Refused(ApiError::not_found(format!("no job {job_id}"))),
        })
    }

    /// The row to offer next to `asked` (`media_core::video::dispatch::
    /// next_class`), standard first unless large starves.
    pub fn next_row(&self, asked: &Asked<'_>, t: Timestamp) -> worker::Result<Option<Row>> {
        let offered_before = Timestamp::from_millis(t.millis().saturating_sub(self.rules.offer_timeout_ms));
        let mut standard = None;
        let mut large = None;
        for class in asked.classes {
            let due = self.store.oldest_due(*class, t, offered_before, asked.tasks)?;
            match class {
                SizeClass::Standard => standard = due,
                SizeClass::Large => large = due,
            }
        }
        Ok(match next_class(standard.as_ref().map(|r| r.queued_at), large.as_ref().map(|r| r.queued_at)) {
            Some(SizeClass::Standard) => standard,
            // Large because nothing standard waits here: the first sweep
            // leaves it for the second, after every shard's standard jobs.
            Some(SizeClass::Large) if asked.standard_first && standard.is_none() => None,
            Some(SizeClass::Large) => large,
            None => None,
        })
    }

    /// Offers `row` to its job's object, marked offered before the call (so
    /// no other request here offers it too). `Some(spec)` when it granted
    /// the lease; the row ends when the object refused (the job moved on).
    async fn offer(&self, io: &impl ShardIo, row: &Row, worker: &str) -> worker::Result<Option<JobSpec>> {
        let (job_id, task) = (&row.job_id, row.task);
        self.store.set_state(job_id, task, RowState::Offered, None, io.now())?;
        let answer = match io.grant(row, worker).await {
            Ok(a) => a,
            Err(e) => {
                // Offer it again later; the object is the fence either way.
                self.store.set_state(job_id, task, RowState::Waiting, Some(RowState::Offered), io.now())?;
                return Err(e);
            }
        };
        match answer.status {
            200 => {
                let spec: Option<JobSpec> = serde_json::from_str(&answer.body)
                    .map_err(|e| worker::Error::RustError(format!("grant answer: {e}")))?;
                let state = if spec.is_some() { RowState::Leased } else { RowState::Ended };
                self.store.set_state(job_id, task, state, Some(RowState::Offered), io.now())?;
                Ok(spec)
            }
            // The job moved on (canceled, done, or queued again with a new
            // time, which re-enqueued it and so reset the row from "offered").
            404 | 409 => {
                self.store.set_state(job_id, task, RowState::Ended, Some(RowState::Offered), io.now())?;
                Ok(None)
            }
            status => {
                self.store.set_state(job_id, task, RowState::Waiting, Some(RowState::Offered), io.now())?;
                Err(worker::Error::RustError(format!("grant answered {status}: {}", answer.body)))
            }
        }
    }

    /// A due job (or task) for `asked`, waiting up to `wait_ms` (at most
    /// `MAX_LEASE_WAIT_MS`) for one: asleep until new work here wakes it, a
    /// ring from another shard (answered at once with that shard), the next
    /// retry comes due, or the deadline.
    async fn lease(&self, io: &impl ShardIo, asked: &Asked<'_>, wait_ms: u64) -> worker::Result<ShardLeaseReply> {
        let deadline = io.now().plus_millis(wait_ms.min(MAX_LEASE_WAIT_MS));
        let worker = asked.worker;
        loop {
            let t = io.now();
            while let Some(row) = self.next_row(asked, t)? {
                if let Some(spec) = self.offer(io, &row, worker).await? {
                    tracing::info!(job_id = %spec.job_id, task = ?row.task, worker, attempt = spec.attempt, "job leased");
                    return Ok(ShardLeaseReply { job: Some(spec), ..Default::default() });
                }
            }
            if t >= deadline {
                return Ok(ShardLeaseReply::default());
            }
            let wake_at = match self.store.next_due(t, asked.tasks)? {
                Some(due) => deadline.min(due),
                None => deadline,
            };
            let woken = self.waiters.wait(asked.tasks, worker);
            match io.sleep(woken, wake_at.millis_since(t).max(MIN_SLEEP_MS)).await {
                Some(Wake::Ring(ring)) => return Ok(ShardLeaseReply { ring: Some(ring), ..Default::default() }),
                // Its transcoder is stopping: nothing is offered to it any more.
                Some(Wake::Withdrawn) => return Ok(ShardLeaseReply { withdrawn: true, ..Default::default() }),
                Some(Wake::Here) | None => {}
            }
            // Timed out (or woken without a ring): this request's receiver
            // is gone, and with it its place in the list.
            self.waiters.forget_gone();
        }
    }
}
