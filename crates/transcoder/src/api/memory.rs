//! An in-memory [`VideoApi`] for the runner's unit tests: it hands out the
//! jobs it is given, answers plans and heartbeats as a test sets it to (extend, lease
//! lost, unreachable), can take its time over a completion (on tokio's
//! clock, so paused-time tests stay instant), and records every call.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use media_core::ids::JobId;
use media_core::video::chunks::ChunkSpec;
use media_core::video::dispatch::SizeClass;
use media_core::wire::api::{CompleteRequest, FailRequest, HeartbeatRequest, HeartbeatResponse, JobSpec, PlanRequest};
use media_core::Timestamp;

use super::{CallError, VideoApi};

/// How the double answers a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub enum Beat {
    /// The lease is extended by `lease` from the wall clock's now.
    Extend,
    /// 409 `lease_lost` with this reason.
    Lost(String),
    /// The service cannot be reached (a transient failure, tried again next tick).
    Unreachable,
}

/// What the double has been told and how it answers; read and set through [`MemoryVideoApi::state`].
#[derive(Debug)]
pub struct State {
    /// Jobs handed out by `lease`, first first; with none, a lease waits
    /// its whole `wait` (tokio's clock) and answers none, as the service does.
    pub jobs: VecDeque<JobSpec>,
    /// When each lease request was made (tokio's clock).
    pub leases: Vec<tokio::time::Instant>,
    pub beat: Beat,
    /// How long an extended lease lasts.
    pub lease: Duration,
    /// How long a completion takes before it answers.
    pub complete_takes: Duration,
    /// What a completion answers (after `complete_takes`).
    pub complete_answer: Result<(), CallError>,
    /// What a plan call answers.
    pub plan_answer: Result<Option<ChunkSpec>, CallError>,
    pub plans: Vec<PlanRequest>,
    pub heartbeats: Vec<HeartbeatRequest>,
    pub completed: Vec<CompleteRequest>,
    pub failed: Vec<FailRequest>,
    pub released: Vec<JobId>,
    /// `withdraw` calls.
    pub withdrawals: usize,
    /// Errors the next lease calls answer, one each, before any job (a
    /// request the service may still hold: a timeout, a dropped connection).
    pub lease_errors: VecDeque<CallError>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            jobs: VecDeque::new(),
            leases: Vec::new(),
            beat: Beat::Extend,
            lease: Duration::from_secs(30),
            complete_takes: Duration::ZERO,
            complete_answer: Ok(()),
            plan_answer: Ok(None),
            plans: Vec::new(),
            heartbeats: Vec::new(),
            completed: Vec::new(),
            failed: Vec::new(),
            released: Vec::new(),
            withdrawals: 0,
            lease_errors: VecDeque::new(),
        }
    }
}

/// The double; clones share one [`State`].
#[derive(Clone, Default)]
pub struct MemoryVideoApi {
    state: Arc<Mutex<State>>,
    /// Ends the leases waiting now, as a withdraw does at the service.
    withdrawn: Arc<tokio::sync::Notify>,
}

impl MemoryVideoApi {
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }
}

/// The wall clock's now plus `ahead`, as the service would answer a lease's end.
pub fn wall_clock_plus(ahead: Duration) -> Timestamp {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
    Timestamp::from_millis((now + ahead).as_millis() as u64)
}

impl VideoApi for MemoryVideoApi {
    async fn lease(&self, wait: Duration, _classes: Option<&[SizeClass]>) -> Result<Option<JobSpec>, CallError> {
        let job = {
            let mut state = self.state();
            state.leases.push(tokio::time::Instant::now());
            if let Some(e) = state.lease_errors.pop_front() {
                return Err(e);
            }
            state.jobs.pop_front()
        };
        if job.is_none() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.withdrawn.notified() => {}
            }
        }
        Ok(job)
    }

    async fn plan(&self, _job_id: &JobId, req: &PlanRequest) -> Result<Option<ChunkSpec>, CallError> {
        let mut state = self.state();
        state.plans.push(req.clone());
        state.plan_answer.clone()
    }

    async fn heartbeat(&self, _job_id: &JobId, req: &HeartbeatRequest) -> Result<HeartbeatResponse, CallError> {
        let mut state = self.state();
        state.heartbeats.push(req.clone());
        match &state.beat {
            Beat::Extend => Ok(HeartbeatResponse {
                lease_expires_at: wall_clock_plus(state.lease),
                app_id: req.video.app_id.clone(),
                video_id: req.video.video_id.clone(),
            }),
            Beat::Lost(why) => Err(CallError::LeaseLost(why.clone())),
            Beat::Unreachable => Err(CallError::Transient("the double is set to be unreachable".into())),
        }
    }

    async fn complete(&self, _job_id: &JobId, req: &CompleteRequest) -> Result<(), CallError> {
        let takes = self.state().complete_takes;
        tokio::time::sleep(takes).await;
        let mut state = self.state();
        state.completed.push(req.clone());
        state.complete_answer.clone()
    }

    async fn fail(&self, _job_id: &JobId, req: &FailRequest) -> Result<(), CallError> {
        self.state().failed.push(req.clone());
        Ok(())
    }

    async fn release(&self, spec: &JobSpec) -> Result<(), CallError> {
        self.state().released.push(spec.job_id.clone());
        Ok(())
    }

    async fn withdraw(&self) -> Result<u64, CallError> {
        self.state().withdrawals += 1;
        self.withdrawn.notify_waiters();
        Ok(1)
    }
}
