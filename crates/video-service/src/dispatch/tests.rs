//! A queue shard's commands against in-memory rows, with fake time
//! ([`FakeIo`]): what the workerd tests and the transcoder rely on (handout
//! order by size class, waits and retries, duplicate enqueues, ended rows
//! and their pruning, long-poll waiters and rings).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use futures_channel::oneshot;
use media_core::ids::{AppId, JobId, LeaseId, VideoId};
use media_core::keys::OutputId;
use media_core::video::dispatch::{SizeClass, CLASS_STARVATION_MS};
use media_core::video::ladder::LadderOptions;
use media_core::wire::api::{JobSpec, MAX_LEASE_WAIT_MS};
use media_core::Timestamp;
use worker_kit::store::memory::block_on;

use super::shard::{Effect, Reply, Row, RowState, Shard, ShardIo, ShardStore, Wake};
use super::store::MemoryShardStore;
use crate::client::Answer;
use crate::protocol::dispatch::{ShardCommand, ShardLeaseReply};

use SizeClass::{Large, Standard};

pub(crate) fn t0() -> Timestamp {
    Timestamp::from_secs(1_700_000_000)
}

/// What the job's objects answer to grants.
#[derive(Clone)]
pub(crate) enum Grant {
    /// The object answers with this status and body.
    Status(u16, &'static str),
    /// The call fails.
    Unreachable,
}

/// Fake time and fake video objects: a grant is given unless `answers`
/// says otherwise; a sleep runs the next `during_sleep` action, then
/// returns at once when that woke the waiter, or moves the clock on by its
/// length.
#[derive(Default)]
pub(crate) struct FakeIo {
    pub clock: Cell<Timestamp>,
    pub answers: RefCell<BTreeMap<String, Grant>>,
    pub grants: RefCell<Vec<String>>,
    /// The task each grant named.
    pub asked_tasks: RefCell<Vec<Option<u16>>>,
    pub sleeps: RefCell<Vec<u64>>,
    pub during_sleep: RefCell<VecDeque<Box<dyn FnOnce()>>>,
}

impl FakeIo {
    pub fn at(t: Timestamp) -> Self {
        FakeIo { clock: Cell::new(t), ..FakeIo::default() }
    }

    pub fn advance(&self, ms: u64) {
        self.clock.set(self.clock.get().plus_millis(ms));
    }
}

pub(crate) fn spec(row: &Row) -> JobSpec {
    JobSpec {
        job_id: row.job_id.clone(),
        app_id: row.app_id.clone(),
        video_id: row.video_id.clone(),
        attempt: 1,
        lease_id: LeaseId::parse("lease_1").unwrap(),
        lease_expires_at: t0(),
        heartbeat_interval_ms: 10_000,
        source_key: format!("raw/{}/{}/source.mp4", row.app_id, row.video_id),
        source_size: 10,
        source_etag: None,
        content_type: "video/mp4".into(),
        output_id: OutputId::from_random([1; 10]),
        output_prefix: format!("hls/{}/{}/o/", row.app_id, row.video_id),
        ladder: LadderOptions::default(),
        playback: Default::default(),
        extras: Default::default(),
        chunk: None,
        chunk_from_s: None,
    }
}

impl ShardIo for FakeIo {
    fn now(&self) -> Timestamp {
        self.clock.get()
    }

    async fn grant(&self, row: &Row, _worker: &str) -> worker::Result<Answer> {
        self.grants.borrow_mut().push(row.job_id.to_string());
        self.asked_tasks.borrow_mut().push(row.task);
        match self.answers.borrow().get(row.job_id.as_str()).cloned() {
            None => Ok(Answer { status: 200, body: serde_json::to_string(&Some(spec(row))).unwrap() }),
            Some(Grant::Status(status, body)) => Ok(Answer { status, body: body.into() }),
            Some(Grant::Unreachable) => Err(worker::Error::RustError("object unreachable".into())),
        }
    }

    async fn sleep(&self, mut woken: oneshot::Receiver<Wake>, ms: u64) -> Option<Wake> {
        self.sleeps.borrow_mut().push(ms);
        let action = self.during_sleep.borrow_mut().pop_front();
        if let Some(action) = action {
            action();
        }
        match woken.try_recv() {
            Ok(Some(why)) => Some(why),
            _ => {
                self.advance(ms);
                None
            }
        }
    }
}

type MemShard = Shard<MemoryShardStore>;

pub(crate) fn shard() -> MemShard {
    Shard::new(MemoryShardStore::default())
}

pub(crate) fn run(shard: &MemShard, io: &FakeIo, cmd: ShardCommand) -> (Reply, Vec<Effect>) {
    block_on(shard.handle(io, cmd)).unwrap()
}

/// An enqueue of `job` in shard 0 of 1.
pub(crate) fn enqueue(job: &str, class: SizeClass, queued_at: Timestamp, not_before: Timestamp) -> ShardCommand {
    enqueue_in(job, class, queued_at, not_before, 0, 1)
}

pub(crate) fn enqueue_in(
    job: &str,
    class: SizeClass,
    queued_at: Timestamp,
    not_before: Timestamp,
    shard: u32,
    shards: u32,
) -> ShardCommand {
    ShardCommand::Enqueue {
        job_id: JobId::parse(job).unwrap(),
        tasks: Vec::new(),
        app_id: AppId::parse("app-a").unwrap(),
        video_id: VideoId::parse(&format!("v-{job}")).unwrap(),
        class,
        queued_at,
        not_before,
        shard,
        shards,
    }
}

fn lease_cmd(classes: &[SizeClass], wait_ms: u64, standard_first: bool) -> ShardCommand {
    ShardCommand::Lease { worker: "w1".into(), wait_ms, classes: classes.to_vec(), standard_first, chunks: false }
}

fn try_lease(shard: &MemShard, io: &FakeIo, cmd: ShardCommand) -> worker::Result<ShardLeaseReply> {
    match block_on(shard.handle(io, cmd))?.0 {
        Reply::Lease(l) => Ok(*l),
        other => panic!("not a lease reply: {other:?}"),
    }
}

fn lease(shard: &MemShard, io: &FakeIo, classes: &[SizeClass], wait_ms: u64) -> ShardLeaseReply {
    try_lease(shard, io, lease_cmd(classes, wait_ms, false)).unwrap()
}

/// The job id a lease handed out, if any.
fn leased(reply: &ShardLeaseReply) -> Option<String> {
    reply.job.as_ref().map(|s| s.job_id.to_string())
}

fn state_of(shard: &MemShard, job: &str) -> Option<RowState> {
    shard.store.rows().into_iter().find(|r| r.job_id.as_str() == job).map(|r| r.state)
}

fn located(shard: &MemShard, io: &FakeIo, job: &str) -> Result<String, u16> {
    match run(shard, io, ShardCommand::Locate { job_id: JobId::parse(job).unwrap() }).0 {
        Reply::Located(l) => Ok(format!("{}/{}", l.app_id, l.video_id)),
        Reply::Refused(e) => Err(e.status()),
        other => panic!("not a locate reply: {other:?}"),
    }
}

#[test]
fn row_states_keep_their_stored_text() {
    // The SQL rows of a deployed shard hold these texts.
    let texts: Vec<_> = RowState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(texts, ["waiting", "offered", "leased", "ended"]);
    for s in RowState::ALL {
        assert_eq!(RowState::parse(s.as_str()), Some(s));
    }
    assert_eq!(RowState::parse("Waiting"), None);
}

#[test]
fn jobs_of_a_class_go_oldest_first_and_once() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    run(&shard, &io, enqueue("job_b", Standard, t0().plus_millis(2), t0()));
    run(&shard, &io, enqueue("job_a", Standard, t0().plus_millis(1), t0()));
    run(&shard, &io, enqueue("job_c", Standard, t0().plus_millis(3), t0()));
    let order: Vec<_> = (0..4).map(|_| leased(&lease(&shard, &io, &SizeClass::ALL, 0))).collect();
    assert_eq!(order, [Some("job_a".into()), Some("job_b".into()), Some("job_c".into()), None]);
    assert_eq!(state_of(&shard, "job_a"), Some(RowState::Leased));
    assert_eq!(*io.grants.borrow(), ["job_a", "job_b", "job_c"], "each job offered once");
}

#[test]
fn standard_jobs_go_first_until_a_large_one_starves() {
    let (shard, io) = (shard(), FakeIo::at(t0().plus_millis(CLASS_STARVATION_MS * 3)));
    // The large job waited longer, but not a minute longer than the standard one.
    run(&shard, &io, enqueue("job_large", Large, t0(), t0()));
    run(&shard, &io, enqueue("job_std", Standard, t0().plus_millis(CLASS_STARVATION_MS), t0()));
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)).as_deref(), Some("job_std"));
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)).as_deref(), Some("job_large"));

    // A minute and a millisecond longer: the large job goes first.
    let (shard, io) = (self::shard(), FakeIo::at(t0().plus_millis(CLASS_STARVATION_MS * 3)));
    run(&shard, &io, enqueue("job_large", Large, t0(), t0()));
    run(&shard, &io, enqueue("job_std", Standard, t0().plus_millis(CLASS_STARVATION_MS + 1), t0()));
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)).as_deref(), Some("job_large"));
}

#[test]
fn a_transcoder_gets_only_the_classes_it_takes() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    run(&shard, &io, enqueue("job_large", Large, t0(), t0()));
    assert_eq!(leased(&lease(&shard, &io, &[Standard], 0)), None);
    assert_eq!(state_of(&shard, "job_large"), Some(RowState::Waiting), "left for a transcoder that takes it");
    assert_eq!(leased(&lease(&shard, &io, &[Large], 0)).as_deref(), Some("job_large"));
}

#[test]
fn the_first_sweep_leaves_large_jobs_to_the_second_unless_they_starve() {
    let (shard, io) = (shard(), FakeIo::at(t0().plus_millis(CLASS_STARVATION_MS * 3)));
    run(&shard, &io, enqueue("job_large", Large, t0(), t0()));
    let first = try_lease(&shard, &io, lease_cmd(&SizeClass::ALL, 0, true)).unwrap();
    assert_eq!(leased(&first), None, "the first sweep looks for standard jobs on every shard");
    // A starving large job beats a standard one in the first sweep too.
    run(&shard, &io, enqueue("job_std", Standard, t0().plus_millis(CLASS_STARVATION_MS + 1), t0()));
    let first = try_lease(&shard, &io, lease_cmd(&SizeClass::ALL, 0, true)).unwrap();
    assert_eq!(leased(&first).as_deref(), Some("job_large"));
    let second = try_lease(&shard, &io, lease_cmd(&SizeClass::ALL, 0, false)).unwrap();
    assert_eq!(leased(&second).as_deref(), Some("job_std"));
}

#[test]
fn a_repeated_enqueue_updates_the_one_row_and_queues_it_again() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    run(&shard, &io, enqueue("job_a", Standard, t0(), t0()));
    run(&shard, &io, enqueue("job_a", Large, t0().plus_millis(5), t0().plus_millis(7)));
    let rows = shard.store.rows();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!((row.class, row.queued_at, row.not_before), (Large, t0().plus_millis(5), t0().plus_millis(7)));
    assert_eq!(row.video_id.as_str(), "v-job_a");

    io.advance(7);
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)).as_deref(), Some("job_a"));
    // Its lease expired or it failed with a retry: the object enqueues it again.
    run(&shard, &io, enqueue("job_a", Large, t0().plus_millis(10), t0().plus_millis(10)));
    assert_eq!(state_of(&shard, "job_a"), Some(RowState::Waiting));
    io.advance(3);
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)).as_deref(), Some("job_a"));
}

#[test]
fn a_job_waits_out_its_backoff_and_a_long_poll_wakes_when_it_is_due() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    run(&shard, &io, enqueue("job_a", Standard, t0(), t0().plus_millis(4_000)));
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)), None, "not before its not_before");
    let got = lease(&shard, &io, &SizeClass::ALL, 20_000);
    assert_eq!(leased(&got).as_deref(), Some("job_a"));
    assert_eq!(*io.sleeps.borrow(), [4_000], "slept until the job came due, not the whole wait");
    assert_eq!(io.clock.get(), t0().plus_millis(4_000));
}

#[test]
fn a_long_poll_with_nothing_to_do_times_out_and_leaves_no_waiter() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    let got = lease(&shard, &io, &SizeClass::ALL, 60_000);
    assert_eq!((got.job.is_none(), got.ring), (true, None));
    assert_eq!(io.clock.get(), t0().plus_millis(MAX_LEASE_WAIT_MS), "the wait is capped");
    assert_eq!(shard.waiters.count(), 0, "a request that timed out leaves the list at once");
    match run(&shard, &io, ShardCommand::Stats).0 {
        Reply::Stats(s) => assert_eq!(s.waiters, 0),
        other => panic!("{other:?}"),
    }
    // Even a zero wait sleeps at least a little: never a busy loop.
    let got = lease(&shard, &io, &SizeClass::ALL, 1);
    assert!(got.job.is_none());
    assert_eq!(io.sleeps.borrow().last(), Some(&5));
}

#[test]
fn new_work_wakes_a_waiting_lease_and_rings_no_one() {
    let (shard, io) = (Rc::new(shard()), Rc::new(FakeIo::at(t0())));
    let effects = Rc::new(RefCell::new(None));
    let (s, i, e) = (shard.clone(), io.clone(), effects.clone());
    io.during_sleep.borrow_mut().push_back(Box::new(move || {
        let t = i.clock.get();
        *e.borrow_mut() = Some(run(&s, &i, enqueue_in("job_a", Standard, t, t, 0, 4)).1);
    }));
    let got = lease(&shard, &io, &SizeClass::ALL, 20_000);
    assert_eq!(leased(&got).as_deref(), Some("job_a"));
    assert_eq!(io.clock.get(), t0(), "answered at once, not at the deadline");
    assert_eq!(effects.borrow().as_deref(), Some(&[][..]), "a waiter here took it: no ring");
}

#[test]
fn work_with_nobody_waiting_rings_every_other_shard() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    let (_, effects) = run(&shard, &io, enqueue_in("job_a", Standard, t0(), t0(), 1, 3));
    assert_eq!(effects, [Effect::Ring { shard: 0, from: 1 }, Effect::Ring { shard: 2, from: 1 }]);
    let (_, effects) = run(&shard, &io, enqueue_in("job_b", Standard, t0(), t0(), 0, 1));
    assert_eq!(effects, [], "a single shard has no one to ring");
}

#[test]
fn a_ring_answers_a_waiting_lease_with_the_shard_that_rang() {
    let (shard, io) = (Rc::new(shard()), Rc::new(FakeIo::at(t0())));
    let (s, i) = (shard.clone(), io.clone());
    io.during_sleep.borrow_mut().push_back(Box::new(move || {
        run(&s, &i, ShardCommand::Ring { from: 2 });
    }));
    let got = lease(&shard, &io, &SizeClass::ALL, 20_000);
    assert_eq!((got.job.is_none(), got.ring), (true, Some(2)));
    // A ring with nobody waiting is lost, harmlessly.
    run(&shard, &io, ShardCommand::Ring { from: 3 });
    assert_eq!(lease(&shard, &io, &SizeClass::ALL, 0).ring, None);
}

#[test]
fn a_withdrawn_lease_request_answers_at_once_and_takes_no_job() {
    let (shard, io) = (Rc::new(shard()), Rc::new(FakeIo::at(t0())));
    let effects = Rc::new(RefCell::new(None));
    let (s, i, e) = (shard.clone(), io.clone(), effects.clone());
    // While w1's request waits, its transcoder stops and withdraws it; then a job comes.
    io.during_sleep.borrow_mut().push_back(Box::new(move || {
        let other = run(&s, &i, ShardCommand::Withdraw { worker: "w2".into() }).0;
        assert!(matches!(other, Reply::Withdrawn(0)), "another worker's withdraw ends nothing: {other:?}");
        let mine = run(&s, &i, ShardCommand::Withdraw { worker: "w1".into() }).0;
        assert!(matches!(mine, Reply::Withdrawn(1)), "{mine:?}");
        let t = i.clock.get();
        *e.borrow_mut() = Some(run(&s, &i, enqueue_in("job_a", Standard, t, t, 0, 2)).1);
    }));
    let got = lease(&shard, &io, &SizeClass::ALL, 20_000);
    assert_eq!((got.job.is_none(), got.ring, got.withdrawn), (true, None, true));
    assert_eq!(io.clock.get(), t0(), "answered at once, not at the deadline");
    assert!(io.grants.borrow().is_empty(), "nothing was granted to the stopping transcoder");
    assert_eq!(state_of(&shard, "job_a"), Some(RowState::Waiting));
    assert_eq!(
        effects.borrow().as_deref(),
        Some(&[Effect::Ring { shard: 1, from: 0 }][..]),
        "with nobody left waiting here, the other shard is rung"
    );
    assert_eq!(shard.waiters.count(), 0);
    // The next transcoder gets it.
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)).as_deref(), Some("job_a"));
}

#[test]
fn a_refused_grant_ends_the_row_and_the_next_job_is_offered() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    for (i, job) in ["job_canceled", "job_moved", "job_done", "job_ok"].into_iter().enumerate() {
        run(&shard, &io, enqueue(job, Standard, t0().plus_millis(i as u64), t0()));
    }
    io.answers.borrow_mut().insert("job_canceled".into(), Grant::Status(409, r#"{"error":{}}"#));
    io.answers.borrow_mut().insert("job_moved".into(), Grant::Status(404, r#"{"error":{}}"#));
    io.answers.borrow_mut().insert("job_done".into(), Grant::Status(200, "null"));
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)).as_deref(), Some("job_ok"));
    for job in ["job_canceled", "job_moved", "job_done"] {
        assert_eq!(state_of(&shard, job), Some(RowState::Ended), "{job}");
    }
    assert_eq!(*io.grants.borrow(), ["job_canceled", "job_moved", "job_done", "job_ok"]);
}

#[test]
fn a_grant_that_fails_leaves_the_job_waiting_for_the_next_lease() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    run(&shard, &io, enqueue("job_a", Standard, t0(), t0()));
    for answer in [Grant::Unreachable, Grant::Status(500, "boom")] {
        io.answers.borrow_mut().insert("job_a".into(), answer);
        assert!(try_lease(&shard, &io, lease_cmd(&SizeClass::ALL, 0, false)).is_err());
        assert_eq!(state_of(&shard, "job_a"), Some(RowState::Waiting));
    }
    io.answers.borrow_mut().clear();
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)).as_deref(), Some("job_a"));
}

#[test]
fn an_offer_never_answered_is_offered_again_after_30_seconds() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    run(&shard, &io, enqueue("job_a", Standard, t0(), t0()));
    // The shard was reset while the object was being asked: the row stays offered.
    shard.store.set_state(&JobId::parse("job_a").unwrap(), None, RowState::Offered, None, t0()).unwrap();
    io.advance(29_999);
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)), None);
    io.advance(2);
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)).as_deref(), Some("job_a"));
}

#[test]
fn an_ended_job_is_never_handed_out_and_is_found_for_an_hour() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    run(&shard, &io, enqueue("job_a", Standard, t0(), t0()));
    run(&shard, &io, enqueue("job_b", Standard, t0(), t0()));
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)).as_deref(), Some("job_a"));
    // Canceled while queued, deleted while running: the video's object says so.
    for job in ["job_a", "job_b"] {
        run(&shard, &io, ShardCommand::Ended { job_id: JobId::parse(job).unwrap(), task: None });
    }
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)), None);
    // A late heartbeat's lookup still finds the job (its object answers 409, not 404).
    assert_eq!(located(&shard, &io, "job_a").as_deref(), Ok("app-a/v-job_a"));

    // An hour on, the next enqueue prunes them; not a millisecond before.
    io.advance(60 * 60 * 1000);
    run(&shard, &io, enqueue("job_c", Standard, io.clock.get(), io.clock.get()));
    assert_eq!(located(&shard, &io, "job_a").as_deref(), Ok("app-a/v-job_a"));
    io.advance(1);
    run(&shard, &io, enqueue("job_c", Standard, io.clock.get(), io.clock.get()));
    assert_eq!(located(&shard, &io, "job_a"), Err(404));
    assert_eq!(located(&shard, &io, "job_b"), Err(404));
    assert_eq!(shard.store.rows().len(), 1, "only job_c is left");
    // A leased row is not pruned however old it is.
    assert_eq!(leased(&lease(&shard, &io, &SizeClass::ALL, 0)).as_deref(), Some("job_c"));
    io.advance(2 * 60 * 60 * 1000);
    run(&shard, &io, enqueue("job_d", Standard, io.clock.get(), io.clock.get()));
    assert_eq!(state_of(&shard, "job_c"), Some(RowState::Leased));
}

#[test]
fn a_job_unknown_here_is_404() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    assert_eq!(located(&shard, &io, "job_nowhere"), Err(404));
}

#[test]
fn stats_count_the_requests_of_each_kind_but_not_themselves() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    run(&shard, &io, enqueue("job_a", Standard, t0(), t0()));
    lease(&shard, &io, &SizeClass::ALL, 0);
    lease(&shard, &io, &SizeClass::ALL, 0);
    run(&shard, &io, ShardCommand::Ended { job_id: JobId::parse("job_a").unwrap(), task: None });
    run(&shard, &io, ShardCommand::Stats);
    match run(&shard, &io, ShardCommand::Stats).0 {
        Reply::Stats(s) => {
            let counts: Vec<_> = s.requests.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            assert_eq!(counts, [("ended", 1), ("enqueue", 1), ("lease", 2)]);
        }
        other => panic!("{other:?}"),
    }
}

/// An enqueue of chunk tasks `tasks` of `job`, due at `not_before`.
fn enqueue_tasks(job: &str, tasks: &[u16], queued_at: Timestamp, not_before: Timestamp) -> ShardCommand {
    with_tasks(enqueue(job, Standard, queued_at, not_before), tasks)
}

/// `cmd`, an enqueue, made an enqueue of chunk `tasks`.
fn with_tasks(mut cmd: ShardCommand, tasks: &[u16]) -> ShardCommand {
    match &mut cmd {
        ShardCommand::Enqueue { tasks: t, .. } => *t = tasks.to_vec(),
        _ => unreachable!(),
    }
    cmd
}

fn lease_as(shard: &MemShard, io: &FakeIo, chunks: bool, wait_ms: u64) -> ShardLeaseReply {
    let cmd = ShardCommand::Lease {
        worker: "w1".into(),
        wait_ms,
        classes: SizeClass::ALL.to_vec(),
        standard_first: false,
        chunks,
    };
    try_lease(shard, io, cmd).unwrap()
}

/// The (job, task, state) of every row.
fn task_states(shard: &MemShard) -> Vec<(String, Option<u16>, RowState)> {
    shard.store.rows().into_iter().map(|r| (r.job_id.to_string(), r.task, r.state)).collect()
}

#[test]
fn chunk_tasks_wait_in_their_own_rows_offered_only_to_transcoders_that_run_chunks() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    run(&shard, &io, enqueue("job_a", Standard, t0(), t0()));
    assert_eq!(leased(&lease_as(&shard, &io, true, 0)).as_deref(), Some("job_a"), "a whole job goes to either");
    // Its holder planned it: tasks 1..3 wait at once, in one message.
    run(&shard, &io, enqueue_tasks("job_a", &[1, 2, 3], t0(), t0()));
    assert_eq!(leased(&lease_as(&shard, &io, false, 0)), None, "never a task for an older transcoder");
    assert_eq!(*io.grants.borrow(), ["job_a"], "nor even offered to one");
    // A later whole job goes to the older transcoder; the tasks keep their job's place.
    run(&shard, &io, enqueue("job_b", Standard, t0().plus_millis(5), t0()));
    assert_eq!(leased(&lease_as(&shard, &io, false, 0)).as_deref(), Some("job_b"));
    let offered: Vec<_> = (0..4).map(|_| leased(&lease_as(&shard, &io, true, 0))).collect();
    assert_eq!(offered, [Some("job_a".into()), Some("job_a".into()), Some("job_a".into()), None]);
    assert_eq!(
        task_states(&shard),
        [
            ("job_a".into(), None, RowState::Leased),
            ("job_a".into(), Some(1), RowState::Leased),
            ("job_a".into(), Some(2), RowState::Leased),
            ("job_a".into(), Some(3), RowState::Leased),
            ("job_b".into(), None, RowState::Leased),
        ],
        "each task offered once, in order"
    );
    // The grants named their task.
    let asked: Vec<_> = io.asked_tasks.borrow().clone();
    assert_eq!(asked, [None, None, Some(1), Some(2), Some(3)]);
}

#[test]
fn a_task_that_waits_again_is_its_own_row_and_the_end_of_the_job_ends_them_all() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    run(&shard, &io, enqueue("job_a", Standard, t0(), t0()));
    lease_as(&shard, &io, true, 0);
    run(&shard, &io, enqueue_tasks("job_a", &[1, 2], t0(), t0()));
    lease_as(&shard, &io, true, 0);
    lease_as(&shard, &io, true, 0);
    // Task 2's lease expired: it alone waits again, after its backoff; task 1 is done.
    run(&shard, &io, enqueue_tasks("job_a", &[2], t0(), t0().plus_millis(500)));
    run(&shard, &io, ShardCommand::Ended { job_id: JobId::parse("job_a").unwrap(), task: Some(1) });
    let states: Vec<_> = task_states(&shard).into_iter().map(|(_, t, s)| (t, s)).collect();
    assert_eq!(states, [(None, RowState::Leased), (Some(1), RowState::Ended), (Some(2), RowState::Waiting)]);
    assert_eq!(leased(&lease_as(&shard, &io, true, 0)), None, "not before its backoff");
    let got = lease_as(&shard, &io, true, 2_000);
    assert_eq!(leased(&got).as_deref(), Some("job_a"));
    assert_eq!(*io.sleeps.borrow(), [500], "a long poll wakes when the task comes due");
    // Canceled: every row of the job ends with one message; a lookup still finds it.
    run(&shard, &io, enqueue_tasks("job_a", &[2], t0(), io.clock.get()));
    run(&shard, &io, ShardCommand::Ended { job_id: JobId::parse("job_a").unwrap(), task: None });
    assert!(task_states(&shard).iter().all(|(_, _, s)| *s == RowState::Ended));
    assert_eq!(leased(&lease_as(&shard, &io, true, 0)), None);
    assert_eq!(located(&shard, &io, "job_a").as_deref(), Ok("app-a/v-job_a"));
}

#[test]
fn an_older_transcoders_long_poll_sleeps_through_task_retries() {
    let (shard, io) = (shard(), FakeIo::at(t0()));
    run(&shard, &io, enqueue_tasks("job_a", &[3], t0(), t0().plus_millis(300)));
    let got = lease_as(&shard, &io, false, 1_000);
    assert_eq!(leased(&got), None);
    assert_eq!(*io.sleeps.borrow(), [1_000], "a task coming due wakes only those who could take it");
}

#[test]
fn tasks_with_only_older_transcoders_waiting_here_ring_the_other_shards() {
    let (shard, io) = (Rc::new(shard()), Rc::new(FakeIo::at(t0())));
    let effects = Rc::new(RefCell::new(None));
    let (s, i, e) = (shard.clone(), io.clone(), effects.clone());
    io.during_sleep.borrow_mut().push_back(Box::new(move || {
        let t = i.clock.get();
        let tasks = with_tasks(enqueue_in("job_a", Standard, t, t, 0, 3), &[1, 2]);
        *e.borrow_mut() = Some(run(&s, &i, tasks).1);
    }));
    // An older transcoder waits here: it cannot take the tasks, so a
    // chunk-capable one waiting on another shard is rung.
    assert_eq!(leased(&lease_as(&shard, &io, false, 1_000)), None);
    assert_eq!(
        effects.borrow().as_deref(),
        Some(&[Effect::Ring { shard: 1, from: 0 }, Effect::Ring { shard: 2, from: 0 }][..])
    );
}
