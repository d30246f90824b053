//! The Worker's side of a lease (`POST /internal/jobs/lease`): a fair sweep
//! of the queue shards, then a long-poll on one of them. The shards
//! themselves ([`crate::dispatch`]) hand out their own rows; this only
//! decides which shard is asked when, through [`Shards`], so the order is
//! tested natively against in-memory shards.

use media_core::video::dispatch::SizeClass;
use media_core::wire::api::{LeaseRequest, LeaseResponse, MAX_LEASE_WAIT_MS};
use media_core::Timestamp;
use worker::Env;
use worker_kit::clock::{now, random_bytes};
use worker_kit::Failure;

use crate::client::ask;
use crate::protocol::dispatch::{shard_name, ShardCommand, ShardLeaseReply, DISPATCH_BINDING};

/// The most rounds of sweep-then-wait one lease request makes: each costs
/// at most `2 × shards + 2` subrequests.
const MAX_LEASE_ROUNDS: u32 = 4;

/// The queue shards as a lease sees them: one shard's answer to a lease
/// command, and the time.
pub(crate) trait Shards {
    async fn lease(&self, shard: u32, cmd: &ShardCommand) -> Result<ShardLeaseReply, Failure>;
    fn now(&self) -> Timestamp;
}

/// The deployment's shards, through their Durable Object binding.
struct Bound<'a>(&'a Env);

impl Shards for Bound<'_> {
    async fn lease(&self, shard: u32, cmd: &ShardCommand) -> Result<ShardLeaseReply, Failure> {
        ask(self.0, DISPATCH_BINDING, &shard_name(shard), cmd).await
    }

    fn now(&self) -> Timestamp {
        now()
    }
}

/// A lease of `req` across the `shards` queue shards of `env`, from a random one.
pub async fn from_shards(env: &Env, shards: u32, req: &LeaseRequest) -> Result<LeaseResponse, Failure> {
    let start = u32::from_le_bytes(random_bytes::<4>());
    sweep(&Bound(env), shards, start, req).await
}

/// One shard's answer to a lease of `req.worker` for `classes`.
async fn lease_from(
    shards: &impl Shards,
    shard: u32,
    req: &LeaseRequest,
    classes: &[SizeClass],
    wait_ms: u64,
    standard_first: bool,
) -> Result<ShardLeaseReply, Failure> {
    let cmd = ShardCommand::Lease {
        worker: req.worker.clone(),
        wait_ms,
        classes: classes.to_vec(),
        standard_first,
        chunks: req.chunks,
    };
    shards.lease(shard, &cmd).await
}

/// A lease across `shards` queue shards, fairly: from shard `start %
/// shards` on, ask each for a due job without waiting (standard jobs of
/// every shard first, then any, so the size-class rule holds across
/// shards); when none has one, wait on the first for the rest of the
/// request's wait. A shard that gets work while another holds the waiter
/// rings that one, which answers at once with the shard to try
/// (`ShardLeaseReply::ring`).
pub(crate) async fn sweep(
    api: &impl Shards,
    shards: u32,
    start: u32,
    req: &LeaseRequest,
) -> Result<LeaseResponse, Failure> {
    let classes = req.classes.clone().unwrap_or_else(|| SizeClass::ALL.to_vec());
    let deadline = api.now().plus_millis(req.wait_ms.min(MAX_LEASE_WAIT_MS));
    let shards = shards.max(1);
    let start = start % shards;
    let passes: &[bool] = if classes.len() > 1 { &[true, false] } else { &[false] };
    for _ in 0..MAX_LEASE_ROUNDS {
        if shards > 1 {
            for &standard_first in passes {
                for i in 0..shards {
                    let got = lease_from(api, (start + i) % shards, req, &classes, 0, standard_first).await?;
                    if got.job.is_some() {
                        return Ok(LeaseResponse { job: got.job });
                    }
                }
            }
        }
        let wait = deadline.millis_since(api.now());
        let got = lease_from(api, start, req, &classes, wait, false).await?;
        // A job, or the transcoder is stopping and withdrew this request.
        if got.job.is_some() || got.withdrawn {
            return Ok(LeaseResponse { job: got.job });
        }
        if let Some(ringing) = got.ring {
            let got = lease_from(api, ringing % shards, req, &classes, 0, false).await?;
            if got.job.is_some() {
                return Ok(LeaseResponse { job: got.job });
            }
        }
        if api.now() >= deadline {
            break;
        }
    }
    Ok(LeaseResponse { job: None })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use media_core::video::dispatch::SizeClass::{self, Large, Standard};
    use media_core::video::dispatch::CLASS_STARVATION_MS;
    use media_core::wire::api::LeaseRequest;
    use media_core::Timestamp;
    use worker_kit::store::memory::block_on;
    use worker_kit::Failure;

    use super::{sweep, Shards};
    use crate::dispatch::shard::{Effect, Reply, Shard};
    use crate::dispatch::store::MemoryShardStore;
    use crate::dispatch::tests::{enqueue_in, t0, FakeIo};
    use crate::protocol::dispatch::{ShardCommand, ShardLeaseReply};

    /// In-memory shards on one fake clock; rings between them are
    /// delivered at once. Records each lease asked: (shard, wait, standard first).
    struct Fleet {
        shards: Vec<Shard<MemoryShardStore>>,
        io: FakeIo,
        asked: RefCell<Vec<(u32, u64, bool)>>,
    }

    impl Fleet {
        fn new(n: u32) -> Rc<Fleet> {
            let shards = (0..n).map(|_| Shard::new(MemoryShardStore::default())).collect();
            Rc::new(Fleet { shards, io: FakeIo::at(t0()), asked: RefCell::default() })
        }

        fn run(&self, shard: u32, cmd: ShardCommand) -> Reply {
            let (reply, effects) = block_on(self.shards[shard as usize].handle(&self.io, cmd)).unwrap();
            for Effect::Ring { shard, from } in effects {
                self.run(shard, ShardCommand::Ring { from });
            }
            reply
        }

        fn enqueue(&self, shard: u32, job: &str, class: SizeClass, queued_at: Timestamp) {
            let shards = self.shards.len() as u32;
            self.run(shard, enqueue_in(job, class, queued_at, queued_at, shard, shards));
        }
    }

    impl Shards for Fleet {
        async fn lease(&self, shard: u32, cmd: &ShardCommand) -> Result<ShardLeaseReply, Failure> {
            let ShardCommand::Lease { wait_ms, standard_first, .. } = cmd else { panic!("{cmd:?}") };
            self.asked.borrow_mut().push((shard, *wait_ms, *standard_first));
            let cmd = serde_json::from_value(serde_json::to_value(cmd).unwrap()).unwrap();
            match self.run(shard, cmd) {
                Reply::Lease(l) => Ok(*l),
                other => panic!("{other:?}"),
            }
        }

        fn now(&self) -> Timestamp {
            self.io.clock.get()
        }
    }

    fn request(wait_ms: u64, classes: Option<Vec<SizeClass>>) -> LeaseRequest {
        LeaseRequest { worker: "w1".into(), wait_ms, classes, chunks: false }
    }

    fn leased(fleet: &Fleet, start: u32, req: &LeaseRequest) -> Option<String> {
        block_on(sweep(fleet, fleet.shards.len() as u32, start, req)).unwrap().job.map(|j| j.job_id.to_string())
    }

    #[test]
    fn standard_jobs_of_every_shard_go_before_a_large_one() {
        let fleet = Fleet::new(3);
        fleet.io.advance(CLASS_STARVATION_MS);
        fleet.enqueue(0, "job_large", Large, t0());
        fleet.enqueue(2, "job_std", Standard, t0().plus_millis(10));
        assert_eq!(leased(&fleet, 0, &request(0, None)).as_deref(), Some("job_std"));
        assert_eq!(*fleet.asked.borrow(), [(0, 0, true), (1, 0, true), (2, 0, true)]);
        // Then the large one, in the second pass.
        fleet.asked.borrow_mut().clear();
        assert_eq!(leased(&fleet, 0, &request(0, None)).as_deref(), Some("job_large"));
        assert_eq!(*fleet.asked.borrow(), [(0, 0, true), (1, 0, true), (2, 0, true), (0, 0, false)]);
    }

    #[test]
    fn one_class_is_one_pass_from_the_start_shard_round() {
        let fleet = Fleet::new(3);
        fleet.enqueue(0, "job_a", Standard, t0());
        assert_eq!(leased(&fleet, 4, &request(0, Some(vec![Standard]))).as_deref(), Some("job_a"));
        // Shard 4 % 3 = 1 first, then 2, then 0.
        assert_eq!(*fleet.asked.borrow(), [(1, 0, false), (2, 0, false), (0, 0, false)]);
    }

    #[test]
    fn with_nothing_anywhere_it_waits_on_its_start_shard_until_the_deadline() {
        let fleet = Fleet::new(2);
        assert_eq!(leased(&fleet, 1, &request(10_000, Some(vec![Standard]))), None);
        assert_eq!(*fleet.asked.borrow(), [(1, 0, false), (0, 0, false), (1, 10_000, false)]);
        assert_eq!(fleet.io.clock.get(), t0().plus_millis(10_000));
        assert!(fleet.shards.iter().all(|s| s.waiters.count() == 0));
    }

    #[test]
    fn a_single_shard_is_waited_on_without_a_sweep() {
        let fleet = Fleet::new(1);
        fleet.enqueue(0, "job_a", Large, t0());
        assert_eq!(leased(&fleet, 7, &request(5_000, None)).as_deref(), Some("job_a"));
        assert_eq!(*fleet.asked.borrow(), [(0, 5_000, false)]);
    }

    #[test]
    fn work_on_another_shard_rings_the_waiting_one_and_is_taken_from_there() {
        let fleet = Fleet::new(3);
        let f = Rc::clone(&fleet);
        fleet.io.during_sleep.borrow_mut().push_back(Box::new(move || {
            f.io.advance(1_000);
            f.enqueue(2, "job_late", Standard, f.io.clock.get());
        }));
        assert_eq!(leased(&fleet, 0, &request(20_000, Some(vec![Standard]))).as_deref(), Some("job_late"));
        let asked = fleet.asked.borrow();
        assert_eq!(asked[3], (0, 20_000, false), "waited on its start shard");
        assert_eq!(asked[4], (2, 0, false), "then asked the shard that rang");
        assert_eq!(asked.len(), 5);
        assert_eq!(fleet.io.clock.get(), t0().plus_millis(1_000), "at once, not at the deadline");
    }

    #[test]
    fn a_withdrawn_request_ends_the_sweep_without_waiting_again() {
        let fleet = Fleet::new(2);
        let f = Rc::clone(&fleet);
        fleet.io.during_sleep.borrow_mut().push_back(Box::new(move || {
            f.io.advance(1_000);
            f.run(0, ShardCommand::Withdraw { worker: "w1".into() });
            f.enqueue(0, "job_late", Standard, f.io.clock.get());
        }));
        assert_eq!(leased(&fleet, 0, &request(20_000, Some(vec![Standard]))), None);
        assert_eq!(fleet.asked.borrow().len(), 3, "two quick asks, one wait, and no second wait");
        assert_eq!(fleet.io.clock.get(), t0().plus_millis(1_000), "at once, not at the deadline");
        // The job waits for the next transcoder.
        assert_eq!(leased(&fleet, 1, &request(0, Some(vec![Standard]))).as_deref(), Some("job_late"));
    }
}
