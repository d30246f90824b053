//! The client side of the video service's internal job API (`/internal/jobs/...`,
//! bearer token): lease, plan (a long source into chunk tasks), heartbeat,
//! complete, fail, release. [`VideoApi`] is
//! the seam the runner works through; [`HttpVideoApi`] is the real client,
//! and `memory::MemoryVideoApi` (tests only) a double that answers from
//! memory, so the runner's lease, grace and time-limit logic runs under
//! `cargo test` with tokio's paused clock.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};

use media_core::ids::JobId;
use media_core::video::chunks::ChunkSpec;
use media_core::video::dispatch::SizeClass;
use media_core::wire::api::{
    CompleteRequest, FailRequest, HeartbeatRequest, HeartbeatResponse, JobSpec, JobVideo, LeaseRequest, LeaseResponse,
    PlanRequest, PlanResponse, ReleaseRequest, WithdrawRequest, WithdrawResponse,
};
use media_core::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How a call to the video service went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// 409 `lease_lost`: the job is no longer ours.
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// Any other 4xx: our request was refused (a bug or a misconfiguration).
    #[error("refused with {status}: {message}")]
    Refused { status: u16, message: String },
    /// Network trouble or a 5xx: worth retrying.
    #[error("video service unreachable or failing: {0}")]
    Transient(String),
}

/// The video service's job API as the runner uses it. Every future is
/// `Send`, so a job slot can run on any of tokio's threads.
pub trait VideoApi: Clone + Send + Sync + 'static {
    /// Waits up to `wait` for a job of one of `classes` (every class when `None`).
    fn lease(
        &self,
        wait: Duration,
        classes: Option<&[SizeClass]>,
    ) -> impl Future<Output = Result<Option<JobSpec>, CallError>> + Send;

    /// Asks the service to split the leased job into chunk tasks (after the
    /// probe, for a long source): `Some(spec)` is this lease's own chunk
    /// (task 0), `None` means go on in one pass (the service chose not to
    /// split, or it is older and has no such route).
    fn plan(
        &self,
        job_id: &JobId,
        req: &PlanRequest,
    ) -> impl Future<Output = Result<Option<ChunkSpec>, CallError>> + Send;

    /// Extends the lease and reports progress; [`CallError::LeaseLost`] when the job is no longer ours.
    fn heartbeat(
        &self,
        job_id: &JobId,
        req: &HeartbeatRequest,
    ) -> impl Future<Output = Result<HeartbeatResponse, CallError>> + Send;

    /// Reports success (retrying transient failures).
    fn complete(&self, job_id: &JobId, req: &CompleteRequest) -> impl Future<Output = Result<(), CallError>> + Send;

    /// Reports a failure (retrying transient failures).
    fn fail(&self, job_id: &JobId, req: &FailRequest) -> impl Future<Output = Result<(), CallError>> + Send;

    /// Gives back a job just leased, without using one of its attempts.
    fn release(&self, spec: &JobSpec) -> impl Future<Output = Result<(), CallError>> + Send;

    /// Takes back this transcoder's waiting lease requests (it is
    /// stopping): they answer no job at once, so none is granted to it
    /// after it has gone. How many there were.
    fn withdraw(&self) -> impl Future<Output = Result<u64, CallError>> + Send;
}

/// The job API over HTTP with the bearer token.
#[derive(Clone)]
pub struct HttpVideoApi {
    http: reqwest::Client,
    base: String,
    token: String,
    worker: String,
}

impl HttpVideoApi {
    pub fn new(base: &str, token: &str, worker: &str) -> Self {
        crate::install_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("the HTTP client builds with static settings");
        Self { http, base: base.trim_end_matches('/').to_owned(), token: token.to_owned(), worker: worker.to_owned() }
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let (status, text) = self.send(path, body, timeout).await?;
        if status == 200 {
            return serde_json::from_str(&text)
                .map_err(|e| CallError::Refused { status, message: format!("unexpected answer to POST {path}: {e}") });
        }
        Err(refusal(path, status, &text))
    }

    /// `POST {path}`: the answer's status and body.
    async fn send<B: Serialize>(&self, path: &str, body: &B, timeout: Duration) -> Result<(u16, String), CallError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| CallError::Transient(format!("POST {path}: {e}")))?;
        let status = resp.status().as_u16();
        let text =
            resp.text().await.map_err(|e| CallError::Transient(format!("POST {path}: reading the answer: {e}")))?;
        Ok((status, text))
    }

    async fn with_retries<T, F, Fut>(&self, call: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        call.retry(backoff().with_max_times(REPORT_RETRIES))
            .when(|e| matches!(e, CallError::Transient(_)))
            .notify(|e, wait| tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "call to the video service failed; retrying"))
            .await
    }
}

impl VideoApi for HttpVideoApi {
    /// Waits up to `wait` for a job.
    async fn lease(&self, wait: Duration, classes: Option<&[SizeClass]>) -> Result<Option<JobSpec>, CallError> {
        let req = LeaseRequest {
            worker: self.worker.clone(),
            wait_ms: wait.as_millis() as u64,
            classes: classes.map(<[_]>::to_vec),
            // This transcoder runs chunk tasks (`JobSpec.chunk`).
            chunks: true,
        };
        let resp: LeaseResponse = self.post("/internal/jobs/lease", &req, wait + Duration::from_secs(15)).await?;
        Ok(resp.job)
    }

    /// Retries transient failures like a report (the service answers a
    /// repeat by the same lease with the same chunk). A 404 is an older
    /// service without the route (or a job gone, which the next heartbeat
    /// finds): the job goes on in one pass.
    async fn plan(&self, job_id: &JobId, req: &PlanRequest) -> Result<Option<ChunkSpec>, CallError> {
        let path = format!("/internal/jobs/{job_id}/plan");
        let call = || async {
            match self.send(&path, req, Duration::from_secs(15)).await? {
                (status, text) if status >= 500 => Err(refusal(&path, status, &text)),
                answer => Ok(answer),
            }
        };
        let (status, text) = self.with_retries(call).await?;
        match status {
            200 => serde_json::from_str::<PlanResponse>(&text)
                .map(|r| r.chunk)
                .map_err(|e| CallError::Refused { status, message: format!("unexpected answer to POST {path}: {e}") }),
            404 => Ok(None),
            _ => Err(refusal(&path, status, &text)),
        }
    }

    async fn heartbeat(&self, job_id: &JobId, req: &HeartbeatRequest) -> Result<HeartbeatResponse, CallError> {
        self.post(&format!("/internal/jobs/{job_id}/heartbeat"), req, Duration::from_secs(10)).await
    }

    /// Reports success, retrying transient failures for about a minute: the
    /// ladder is already published, so this report must not be lost lightly.
    async fn complete(&self, job_id: &JobId, req: &CompleteRequest) -> Result<(), CallError> {
        let path = format!("/internal/jobs/{job_id}/complete");
        self.with_retries(|| self.post::<_, serde_json::Value>(&path, req, Duration::from_secs(15))).await.map(|_| ())
    }

    async fn fail(&self, job_id: &JobId, req: &FailRequest) -> Result<(), CallError> {
        let path = format!("/internal/jobs/{job_id}/fail");
        self.with_retries(|| self.post::<_, serde_json::Value>(&path, req, Duration::from_secs(15))).await.map(|_| ())
    }

    /// Gives back a job just leased, without using one of its attempts.
    async fn release(&self, spec: &JobSpec) -> Result<(), CallError> {
        let path = format!("/internal/jobs/{}/release", spec.job_id);
        let req = ReleaseRequest { lease_id: spec.lease_id.clone(), video: JobVideo::of(spec) };
        self.with_retries(|| self.post::<_, serde_json::Value>(&path, &req, Duration::from_secs(15))).await.map(|_| ())
    }

    async fn withdraw(&self) -> Result<u64, CallError> {
        // Once, briefly: the process is stopping, and without it the request
        // still ends by itself within its wait.
        let req = WithdrawRequest { worker: self.worker.clone() };
        let answer: WithdrawResponse = self.post("/internal/jobs/withdraw", &req, Duration::from_secs(5)).await?;
        Ok(answer.withdrawn)
    }
}

/// What a non-200 answer to `POST {path}` means. The lease is lost on 409
/// `lease_lost`, and on 404 `not_found` to a call about one job
/// (`/internal/jobs/{id}/...`): the job is gone (its video was deleted, or a
/// new job replaced it), which no retry mends, so the work stops at once
/// instead of running on until the lease would have run out.
fn refusal(path: &str, status: u16, text: &str) -> CallError {
    let err = ApiError::from_json(text);
    // `/internal/jobs/{id}/{call}`, not `/internal/jobs/lease` or `/internal/jobs/withdraw`.
    let about_a_job = path.strip_prefix("/internal/jobs/").is_some_and(|rest| rest.contains('/'));
    match (status, err) {
        (409, Some(e)) if e.code == ErrorCode::LeaseLost => CallError::LeaseLost(e.message),
        (404, Some(e)) if about_a_job && e.code == ErrorCode::NotFound => {
            CallError::LeaseLost(format!("the job is gone: {}", e.message))
        }
        (s, e) if (400..500).contains(&s) => {
            CallError::Refused { status: s, message: e.map(|e| e.message).unwrap_or_else(|| text.to_owned()) }
        }
        (s, _) => {
            CallError::Transient(format!("POST {path}: status {s}: {}", text.chars().take(200).collect::<String>()))
        }
    }
}

/// Retries of a report (complete, fail, release) after the first try:
/// about a minute with [`backoff`]'s pauses.
const REPORT_RETRIES: usize = 7;

/// The one backoff of calls to the video service: from half a second,
/// doubling, at most 15 s apart, with jitter so that transcoders that lost
/// the service together do not come back in step.
pub fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(15))
        .with_factor(2.0)
        .with_jitter()
}

#[cfg(test)]
pub mod memory;

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: ErrorCode, message: &str) -> String {
        ApiError::new(code, message).to_json()
    }

    #[test]
    fn a_deleted_job_stops_the_work_like_a_lost_lease() {
        let hb = "/internal/jobs/job_1/heartbeat";
        // The tombstone of a deleted video answers lease_lost...
        let lost = refusal(hb, 409, &body(ErrorCode::LeaseLost, "the video was deleted; stop working on it"));
        assert_eq!(lost, CallError::LeaseLost("the video was deleted; stop working on it".into()));
        // ...and once it is gone, the job is not found: lost too, never retried.
        for call in ["heartbeat", "complete", "fail", "release"] {
            let got = refusal(&format!("/internal/jobs/job_1/{call}"), 404, &body(ErrorCode::NotFound, "no job job_1"));
            assert!(matches!(got, CallError::LeaseLost(ref m) if m.contains("no job job_1")), "{call}: {got:?}");
        }
    }

    #[test]
    fn other_refusals_keep_their_meaning() {
        // A 404 to the lease call is a misconfigured address, not a lost job.
        let lease = refusal("/internal/jobs/lease", 404, &body(ErrorCode::NotFound, "no route"));
        assert!(matches!(lease, CallError::Refused { status: 404, .. }), "{lease:?}");
        // Nor to a withdraw (an older service without the route).
        let withdraw = refusal("/internal/jobs/withdraw", 404, &body(ErrorCode::NotFound, "no route"));
        assert!(matches!(withdraw, CallError::Refused { status: 404, .. }), "{withdraw:?}");
        // A 404 that is not the service's JSON (a proxy's page) is refused, not a lost lease.
        let proxy = refusal("/internal/jobs/job_1/heartbeat", 404, "<html>not found</html>");
        assert!(matches!(proxy, CallError::Refused { status: 404, .. }), "{proxy:?}");
        let conflict = refusal("/internal/jobs/job_1/heartbeat", 409, &body(ErrorCode::Conflict, "x"));
        assert!(matches!(conflict, CallError::Refused { status: 409, .. }));
        assert!(matches!(refusal("/internal/jobs/job_1/heartbeat", 503, "down"), CallError::Transient(_)));
    }
}
