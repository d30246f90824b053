//! The transcoder's internal API under `/internal/`, behind the
//! `TRANSCODER_TOKEN` bearer token:
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /internal/jobs/lease` | `LeaseRequest` | `LeaseResponse` (`job` null when none came within `wait_ms`) |
//! | `POST /internal/jobs/{id}/heartbeat` | `HeartbeatRequest` | `HeartbeatResponse`, 409 `lease_lost` |
//! | `POST /internal/jobs/{id}/complete` | `CompleteRequest` | the job, 409 `lease_lost` (a repeat by the lease that completed it: the job, 200) |
//! | `POST /internal/jobs/{id}/fail` | `FailRequest` | the job, 409 `lease_lost` |
//! | `POST /internal/jobs/{id}/release` | `ReleaseRequest` | the job, queued again without using an attempt |
//! | `POST /internal/jobs/inspect` | `{"app_id", "video_id"}` | the stored job, failure texts in full (for operators and tests; the public routes show them sanitised), 404 |
//!
//! A call that changes a job drops the job's cached public read in this
//! location (`crate::status::forget`), so pollers here see it at once.
//!
//! Job and lease ids follow `media_core::ids`' rule: one that could never
//! have been minted is refused with 400 before the queue is asked.

use media_core::api::{CompleteRequest, FailRequest, HeartbeatRequest, LeaseRequest, ReleaseRequest};
use media_core::auth::check_bearer;
use media_core::ids::{AppId, JobId, VideoId};
use media_core::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use worker::{Headers, Method, Request, Response};
use worker_kit::body::read_body;
use worker_kit::failure::no_route;
use worker_kit::method::{known_method, method_not_allowed_response};
use worker_kit::{Failure, Handled};

use crate::client;
use crate::queue::QueueCommand;
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

/// The video named in a queue answer: a job, a `HeartbeatResponse`, or
/// (`job`) a `LeaseResponse`.
#[derive(Deserialize)]
struct VideoOf {
    app_id: AppId,
    video_id: VideoId,
}

#[derive(Deserialize)]
struct LeasedVideo {
    job: Option<VideoOf>,
}

/// The video the queue's answer to `cmd` is about.
fn video_of(cmd: &QueueCommand, answer: &str) -> Option<(AppId, VideoId)> {
    let ids = match cmd {
        QueueCommand::Lease { .. } => serde_json::from_str::<LeasedVideo>(answer).ok()?.job?,
        _ => serde_json::from_str::<VideoOf>(answer).ok()?,
    };
    Some((ids.app_id, ids.video_id))
}

fn job_id(segment: &str) -> Result<JobId, Failure> {
    Ok(JobId::parse(segment).map_err(ApiError::from)?)
}

pub async fn route(mut req: Request, cx: &VideoContext<'_>) -> Handled {
    let token = cx.settings.transcoder_token.as_deref();
    if token.is_none() {
        tracing::error!("TRANSCODER_TOKEN is not set: the internal API admits nobody");
    }
    check_bearer(req.headers().get("authorization")?.as_deref(), token.unwrap_or(""))?;
    if known_method(&req) != Some(Method::Post) {
        return Ok(method_not_allowed_response("POST"));
    }
    let path = req.path();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let cmd = match parts.as_slice() {
        ["internal", "jobs", "inspect"] => {
            let r: InspectRequest = body(&mut req).await?;
            QueueCommand::Get { app_id: r.app_id, video_id: r.video_id }
        }
        ["internal", "jobs", "lease"] => {
            let r: LeaseRequest = body(&mut req).await?;
            QueueCommand::Lease { worker: r.worker, wait_ms: r.wait_ms }
        }
        ["internal", "jobs", id, "heartbeat"] => {
            QueueCommand::Heartbeat { job_id: job_id(id)?, req: body::<HeartbeatRequest>(&mut req).await? }
        }
        ["internal", "jobs", id, "complete"] => {
            QueueCommand::Complete { job_id: job_id(id)?, req: body::<CompleteRequest>(&mut req).await? }
        }
        ["internal", "jobs", id, "fail"] => {
            QueueCommand::Fail { job_id: job_id(id)?, req: body::<FailRequest>(&mut req).await? }
        }
        ["internal", "jobs", id, "release"] => {
            QueueCommand::Release { job_id: job_id(id)?, req: body::<ReleaseRequest>(&mut req).await? }
        }
        _ => return Err(no_route(&path)),
    };
    let answer = client::send(cx.env, &cmd).await?;
    if answer.status >= 500 {
        return Err(Failure::internal(format!("queue answered {}: {}", answer.status, answer.body)));
    }
    let changed = !matches!(cmd, QueueCommand::Get { .. });
    if let (true, 200, Some((app, video))) = (changed, answer.status, video_of(&cmd, &answer.body)) {
        crate::status::forget(&app, &video).await;
    }
    if !changed && answer.body.trim() == "null" {
        return Err(ApiError::not_found("no job for that app_id and video_id").into());
    }
    let headers = Headers::new();
    headers.set("content-type", "application/json; charset=utf-8")?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::ok(answer.body)?.with_status(answer.status).with_headers(headers))
}
