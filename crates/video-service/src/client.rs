//! Talking to the Durable Objects: a JSON command to one named object and its
//! answer, for the Worker (errors as [`Failure`]s, the objects' client
//! errors relayed as they are) and for the objects themselves (one calls
//! another). And the Worker's side of a lease: a fair sweep of the queue
//! shards, then a long-poll on one of them.

use media_core::video::dispatch::SizeClass;
use media_core::wire::api::{LeaseRequest, LeaseResponse, MAX_LEASE_WAIT_MS};
use media_core::ApiError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Env, Method, Request, RequestInit};
use worker_kit::clock::{now, random_bytes};
use worker_kit::Failure;

use crate::protocol::dispatch::{shard_name, ShardCommand, ShardLeaseReply, DISPATCH_BINDING};

/// An object's raw answer: status and JSON text.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends `cmd` to the object `name` of `binding`.
pub async fn call<C: Serialize>(env: &Env, binding: &str, name: &str, cmd: &C) -> worker::Result<Answer> {
    let mut resp = open(env, binding, name, cmd).await?;
    Ok(Answer { status: resp.status_code(), body: resp.text().await? })
}

/// Sends `cmd` and reads a 200 as `T`; relays the object's client errors
/// (404, 409) as they are; anything else is ours (500, detail reported).
pub async fn ask<C: Serialize, T: DeserializeOwned>(
    env: &Env,
    binding: &str,
    name: &str,
    cmd: &C,
) -> Result<T, Failure> {
    let answer = call(env, binding, name, cmd)
        .await
        .map_err(|e| Failure::Unavailable { detail: format!("{binding} {name}: {e}") })?;
    read(binding, answer)
}

/// An object's answer as `T` (200), or the error it stands for.
pub fn read<T: DeserializeOwned>(binding: &str, answer: Answer) -> Result<T, Failure> {
    if answer.status == 200 {
        return serde_json::from_str(&answer.body).map_err(|e| Failure::internal(format!("{binding} answer: {e}")));
    }
    match ApiError::from_json(&answer.body) {
        Some(e) if answer.status < 500 => Err(Failure::Client(e)),
        _ => Err(Failure::internal(format!("{binding} answered {}: {}", answer.status, answer.body))),
    }
}

/// One shard's answer to a lease of `worker` for `classes`.
async fn lease_from(
    env: &Env,
    shard: u32,
    req: &LeaseRequest,
    classes: &[SizeClass],
    wait_ms: u64,
    standard_first: bool,
) -> Result<ShardLeaseReply, Failure> {
    let cmd = ShardCommand::Lease { worker: req.worker.clone(), wait_ms, classes: classes.to_vec(), standard_first };
    ask(env, DISPATCH_BINDING, &shard_name(shard), &cmd).await
}

/// The most rounds of sweep-then-wait one lease request makes: each costs
/// at most `2 × shards + 2` subrequests.
const MAX_LEASE_ROUNDS: u32 = 4;

/// `POST /internal/jobs/lease` across `shards` queue shards, fairly: from a
/// random shard on, ask each for a due job without waiting (standard jobs
/// of every shard first, then any, so the size-class rule holds across
/// shards); when none has one, wait on the first for the rest of the
/// request's wait. A shard that gets work while another holds the waiter
/// rings that one, which answers at once with the shard to try
/// (`ShardLeaseReply::ring`).
pub async fn lease(env: &Env, shards: u32, req: &LeaseRequest) -> Result<LeaseResponse, Failure> {
    let classes = req.classes.clone().unwrap_or_else(|| SizeClass::ALL.to_vec());
    let deadline = now().plus_millis(req.wait_ms.min(MAX_LEASE_WAIT_MS));
    let shards = shards.max(1);
    let start = u32::from_le_bytes(random_bytes::<4>()) % shards;
    let passes: &[bool] = if classes.len() > 1 { &[true, false] } else { &[false] };
    for _ in 0..MAX_LEASE_ROUNDS {
        if shards > 1 {
            for &standard_first in passes {
                for i in 0..shards {
                    let got = lease_from(env, (start + i) % shards, req, &classes, 0, standard_first).await?;
                    if got.job.is_some() {
                        return Ok(LeaseResponse { job: got.job });
                    }
                }
            }
        }
        let wait = deadline.millis_since(now());
        let got = lease_from(env, start, req, &classes, wait, false).await?;
        if got.job.is_some() {
            return Ok(LeaseResponse { job: got.job });
        }
        if let Some(ringing) = got.ring {
            let got = lease_from(env, ringing % shards, req, &classes, 0, false).await?;
            if got.job.is_some() {
                return Ok(LeaseResponse { job: got.job });
            }
        }
        if now() >= deadline {
            break;
        }
    }
    Ok(LeaseResponse { job: None })
}

/// Sends `cmd` and returns the object's response as it is (an event stream).
pub async fn open<C: Serialize>(env: &Env, binding: &str, name: &str, cmd: &C) -> worker::Result<worker::Response> {
    let stub = env.durable_object(binding)?.id_from_name(name)?.get_stub()?;
    let body = serde_json::to_string(cmd).map_err(|e| worker::Error::RustError(format!("command: {e}")))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    stub.fetch_with_request(Request::new_with_init("https://object.internal/", &init)?).await
}

/// Reads a command an object was sent. With serde_json on the text, not the
/// runtime's `Request::json` (JavaScript's JSON.parse): that turns integers
/// past 2^53 (a client's `Last-Event-ID`) into floats, which a `u64` refuses.
pub async fn read_command<T: DeserializeOwned>(req: &mut Request, what: &str) -> Result<T, ApiError> {
    let text =
        req.text().await.map_err(|e| ApiError::new(media_core::ErrorCode::InvalidJson, format!("{what}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| ApiError::new(media_core::ErrorCode::InvalidJson, format!("{what}: {e}")))
}
