//! The transcoder's internal API under `/internal/`, behind the
//! `TRANSCODER_TOKEN` bearer token:
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /internal/jobs/lease` | `LeaseRequest` | `LeaseResponse` (`job` null when none came within `wait_ms`) |
//! | `POST /internal/jobs/{id}/plan` | `PlanRequest` | `PlanResponse`: the chunk the caller's lease now runs (task 0), `chunk` null to go on single-pass; 409 `lease_lost` |
//! | `POST /internal/jobs/{id}/heartbeat` | `HeartbeatRequest` | `HeartbeatResponse`, 409 `lease_lost` |
//! | `POST /internal/jobs/{id}/complete` | `CompleteRequest` | the job, 409 `lease_lost` (a repeat by the lease that completed it: the job, 200) |
//! | `POST /internal/jobs/{id}/fail` | `FailRequest` | the job, 409 `lease_lost` |
//! | `POST /internal/jobs/{id}/release` | `ReleaseRequest` | the job, queued again without using an attempt |
//! | `POST /internal/jobs/withdraw` | `WithdrawRequest` (`{"worker"}`) | `WithdrawResponse`: how many of that transcoder's waiting lease requests were ended (each answers `{"job": null}` at once); a stopping transcoder sends it, so no job is granted to it after it has gone |
//! | `POST /internal/dispatch/stats` | `{}` | requests each queue shard has served, by kind (`{"shards": [{"shard", "requests": {"lease": n, ...}}]}`) |
//! | `POST /internal/jobs/inspect` | `{"app_id", "video_id"}` | the stored job, failure texts in full (for operators and tests; the public routes show them sanitised), 404 |
//!
//! A lease sweeps the queue shards (`crate::lease`); a transcoder that
//! says it runs chunks (`LeaseRequest::chunks`) may get a chunk task
//! (`JobSpec::chunk`), whose lease id then names the task in every later
//! call (heartbeat, complete, fail, release). The calls about
//! one job go to its video's object, the fence that checks the job id and
//! the lease: the video named in the body (`app_id`, `video_id` from the
//! `JobSpec`, `media_core::wire::api::JobVideo`), else the one the shard the job
//! was queued in knows (`Locate`, by `media_core::video::dispatch::shard_of`). A call that changes a job drops the job's
//! cached public read in this location (`crate::status::forget`), so pollers
//! here see it at once.
//!
//! Job and lease ids follow `media_core::ids`' rule: one that could never
//! have been minted is refused with 400 before any object is asked.

use std::collections::BTreeMap;

use media_core::http::auth::check_bearer;
use media_core::ids::{AppId, JobId, VideoId};
use media_core::video::dispatch::shard_of;
use media_core::wire::api::{
    CompleteRequest, FailRequest, HeartbeatRequest, LeaseRequest, PlanRequest, ReleaseRequest, WithdrawRequest,
    WithdrawResponse,
};
use media_core::wire::routes::{Route, VideoRoute};
use media_core::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::{Headers, Request, Response};
use worker_kit::body::read_body;
use worker_kit::failure::no_route;
use worker_kit::method::{known_method, strict_gate};
use worker_kit::reply::json;
use worker_kit::{Failure, Handled};

use crate::client;
use crate::lease;
use crate::protocol::dispatch::{shard_name, Located, ShardCommand, ShardStats, DISPATCH_BINDING};
use crate::protocol::video_job::{VideoCall, VideoOp, VIDEO_JOBS_BINDING};
use crate::VideoContext;

/// Bodies of the internal API are small; completion reports are the largest.
const MAX_INTERNAL_BODY: u64 = 256 * 1024;

async fn body<T: DeserializeOwned>(req: &mut Request) -> Result<T, Failure> {
    let bytes = read_body(req, MAX_INTERNAL_BODY).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!(
                "the request body is not a valid {}: {e}",
                std::any::type_name::<T>().rsplit("::").next().unwrap_or("body")
            ),
        )
        .into()
    })
}

/// `POST /internal/jobs/inspect`.
#[derive(Deserialize)]
struct InspectRequest {
    app_id: AppId,
    video_id: VideoId,
}

fn job_id(segment: &str) -> Result<JobId, Failure> {
    Ok(JobId::parse(segment).map_err(ApiError::from)?)
}

/// `POST /internal/dispatch/stats`: each shard's counts, in shard order.
#[derive(Serialize)]
struct DispatchStats {
    shards: Vec<ShardCounts>,
}

#[derive(Serialize)]
struct ShardCounts {
    requests: BTreeMap<String, u64>,
    shard: u32,
    waiters: u64,
}

/// The `Internal` row of the route table: the token, then the method (so
/// callers without the token learn nothing), then the route by its path.
pub async fn route(mut req: Request, cx: &VideoContext<'_>, row: &'static Route<VideoRoute>) -> Handled {
    let token = cx.settings.transcoder_token.as_deref();
    if token.is_none() {
        tracing::error!("TRANSCODER_TOKEN is not set: the internal API admits nobody");
    }
    check_bearer(req.headers().get("authorization")?.as_deref(), token.unwrap_or(""))?;
    if let Some(refused) = strict_gate(known_method(&req).as_ref(), row.methods) {
        return Ok(refused);
    }
    let path = req.path();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (job_id, named, op) = match parts.as_slice() {
        ["internal", "jobs", "inspect"] => {
            let r: InspectRequest = body(&mut req).await?;
            let call = VideoCall { app_id: r.app_id, video_id: r.video_id, base: None, op: VideoOp::Get };
            let answer = client::call(cx.env, VIDEO_JOBS_BINDING, &call.object_name(), &call)
                .await
                .map_err(|e| Failure::Unavailable { detail: format!("video job: {e}") })?;
            if answer.status == 200 && answer.body.trim() == "null" {
                return Err(ApiError::not_found("no job for that app_id and video_id").into());
            }
            return relay(answer);
        }
        ["internal", "jobs", "withdraw"] => {
            let r: WithdrawRequest = body(&mut req).await?;
            let mut withdrawn = 0;
            for n in 0..cx.settings.objects.dispatch.queue_shards {
                let cmd = ShardCommand::Withdraw { worker: r.worker.clone() };
                withdrawn += client::ask::<_, u64>(cx.env, DISPATCH_BINDING, &shard_name(n), &cmd).await?;
            }
            return json(200, &WithdrawResponse { withdrawn });
        }
        ["internal", "dispatch", "stats"] => {
            let mut shards = Vec::new();
            for n in 0..cx.settings.objects.dispatch.queue_shards {
                let stats: ShardStats =
                    client::ask(cx.env, DISPATCH_BINDING, &shard_name(n), &ShardCommand::Stats).await?;
                shards.push(ShardCounts { requests: stats.requests, shard: n, waiters: stats.waiters });
            }
            return json(200, &DispatchStats { shards });
        }
        ["internal", "jobs", "lease"] => {
            let r: LeaseRequest = body(&mut req).await?;
            // Grants run by the retry rules, checked with the other objects'
            // settings at the Worker's entry (`VideoSettings::load`).
            let leased = lease::from_shards(cx.env, cx.settings.objects.dispatch.queue_shards, &r).await?;
            if let Some(spec) = &leased.job {
                crate::status::forget(&spec.app_id, &spec.video_id).await;
            }
            return json(200, &leased);
        }
        ["internal", "jobs", id, "plan"] => {
            let id = job_id(id)?;
            let r: PlanRequest = body(&mut req).await?;
            (id.clone(), r.video.ids(), VideoOp::Plan { job_id: id, req: r })
        }
        ["internal", "jobs", id, "heartbeat"] => {
            let id = job_id(id)?;
            let r: HeartbeatRequest = body(&mut req).await?;
            (id.clone(), r.video.ids(), VideoOp::Heartbeat { job_id: id, req: r })
        }
        ["internal", "jobs", id, "complete"] => {
            let id = job_id(id)?;
            let r: CompleteRequest = body(&mut req).await?;
            (id.clone(), r.video.ids(), VideoOp::Complete { job_id: id, req: Box::new(r) })
        }
        ["internal", "jobs", id, "fail"] => {
            let id = job_id(id)?;
            let r: FailRequest = body(&mut req).await?;
            (id.clone(), r.video.ids(), VideoOp::Fail { job_id: id, req: r })
        }
        ["internal", "jobs", id, "release"] => {
            let id = job_id(id)?;
            let r: ReleaseRequest = body(&mut req).await?;
            (id.clone(), r.video.ids(), VideoOp::Release { job_id: id, req: r })
        }
        _ => return Err(no_route(&path)),
    };
    // The job's video: as the transcoder named it (from its JobSpec), else
    // from the shard the job was queued in. Its object checks the job id.
    let (app_id, video_id) = match named {
        Some(ids) => ids,
        None => {
            let home = shard_of(&job_id, cx.settings.objects.dispatch.queue_shards);
            let located: Located =
                client::ask(cx.env, DISPATCH_BINDING, &shard_name(home), &ShardCommand::Locate { job_id }).await?;
            (located.app_id, located.video_id)
        }
    };
    let call = VideoCall { app_id, video_id, base: Some(cx.public_base(&req)), op };
    let answer = client::call(cx.env, VIDEO_JOBS_BINDING, &call.object_name(), &call)
        .await
        .map_err(|e| Failure::Unavailable { detail: format!("video job: {e}") })?;
    if answer.status == 200 {
        crate::status::forget(&call.app_id, &call.video_id).await;
    }
    relay(answer)
}

/// Passes an object's answer on: its status and JSON, never cached; its
/// server errors become ours (500, detail reported).
fn relay(answer: client::Answer) -> Handled {
    if answer.status >= 500 {
        return Err(Failure::internal(format!("video job answered {}: {}", answer.status, answer.body)));
    }
    let headers = Headers::new();
    headers.set("content-type", "application/json; charset=utf-8")?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::ok(answer.body)?.with_status(answer.status).with_headers(headers))
}
