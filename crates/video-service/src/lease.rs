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
    let cmd = ShardCommand::Lease { worker: req.worker.clone(), wait_ms, classes: classes.to_vec(), standard_first };
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
        if got.job.is_some() {
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
