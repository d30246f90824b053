//! The job loop. Each slot (`CONCURRENCY` of them) leases a job, runs the
//! pipeline on a blocking thread while the publisher uploads, heartbeats
//! with progress and stage, and completes or fails the job. A lost lease
//! stops the job at once; a panic fails only its job; on shutdown no new
//! job is leased and a running one gets a grace period, then is handed back.
//! The rules of one attempt are the state machine in [`attempt`]; this
//! module runs it against the [`VideoApi`].

mod attempt;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use media_core::video::job::{bounded_heartbeat_interval_ms, JobResult};
use media_core::video::timeline::job_time_limit_s;
use media_core::wire::api::{CompleteRequest, FailRequest, HeartbeatRequest, JobSpec, JobVideo};
use media_core::Timestamp;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use self::attempt::{Attempt, Beaten, Tick, WorkEnded};
use crate::api::{CallError, HttpVideoApi, VideoApi};
use crate::config::Config;
use crate::error::{panics_fail_the_job, JobError};
use crate::pipeline::{transcode, Control, Machine, Tuning};
use crate::publish::{Playable, Publisher};
use crate::storage::{free_bytes, remove_stale_spools, same_etag, Sink, SourceInfo, SourceReader, Storage, REPLACED};
use crate::telemetry::report_failure;

/// Everything a job slot needs.
#[derive(Clone)]
pub struct Runner<A = HttpVideoApi> {
    pub config: Config,
    pub api: A,
    pub storage: Storage,
    /// The cores each job may use, and the CPU (logged at start).
    pub machine: Machine,
    pub tuning: Tuning,
    /// Work-disk bytes set aside by the jobs running now.
    pub reserved: Arc<AtomicU64>,
}

/// How one job ended, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    Failed { message: String, retryable: bool },
    LeaseLost,
    HandedBack,
}

/// What the work on one job shares with the loop that watches it.
#[derive(Default)]
pub struct JobHandles {
    pub control: Arc<Control>,
    pub playable: Arc<Playable>,
    /// The stage heartbeats report.
    pub stage: Arc<Mutex<&'static str>>,
}

impl Runner {
    pub fn new(config: Config) -> Self {
        let api = HttpVideoApi::new(&config.video_service_url, &config.transcoder_token, &config.worker_name);
        Runner::with_api(config, api)
    }
}

impl<A: VideoApi> Runner<A> {
    /// A runner that talks to the video service through `api`.
    pub fn with_api(config: Config, api: A) -> Self {
        let storage = Storage::new(&config.s3);
        let machine = Machine::detect(config.concurrency);
        let tuning = Tuning::for_machine(&machine);
        Self { config, api, storage, machine, tuning, reserved: Arc::default() }
    }

    /// Runs until `shutdown` turns true, then returns once running jobs have
    /// finished or been handed back.
    pub async fn run(&self, shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.config.worker_name, slots = self.config.concurrency, video_service = %self.config.video_service_url, "transcoder started");
        let m = &self.machine;
        tracing::info!(cores_per_job = m.cores, cpu = %m.model, simd = ?m.simd, decoder_threads = self.tuning.decoder_threads, x264_tuned = self.tuning.x264_tuned, "machine");
        // Spools of jobs a killed run left behind would fill the disk over restarts.
        let freed = remove_stale_spools(&self.config.work_dir);
        if freed > 0 {
            tracing::info!(bytes = freed, work_dir = %self.config.work_dir.display(), "removed stale source spools");
        }
        let mut slots = tokio::task::JoinSet::new();
        for slot in 0..self.config.concurrency {
            let (me, shutdown) = (self.clone(), shutdown.clone());
            slots.spawn(async move { me.slot(slot, shutdown).await });
        }
        while slots.join_next().await.is_some() {}
        tracing::info!("transcoder stopped");
    }

    async fn slot(&self, slot: usize, mut shutdown: watch::Receiver<bool>) {
        use backon::BackoffBuilder as _;
        let new_backoff = || crate::api::backoff().with_max_delay(Duration::from_secs(30)).without_max_times().build();
        let mut backoff = new_backoff();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let lease = self.api.lease(self.config.lease_wait, self.config.job_classes.as_deref());
            tokio::pin!(lease);
            let leased = tokio::select! {
                r = &mut lease => r,
                _ = shutdown.changed() => {
                    // The request stays open at the queue until it answers:
                    // let it, and give back a job it brings, so nothing waits
                    // on a transcoder that has gone.
                    if let Ok(Some(spec)) = lease.await {
                        match self.api.release(&spec).await {
                            Ok(()) => tracing::info!(job_id = %spec.job_id, "shutting down: gave back a job just leased"),
                            Err(e) => tracing::warn!(job_id = %spec.job_id, error = %e, "could not give back a job just leased; its lease will expire"),
                        }
                    }
                    return;
                }
            };
            match leased {
                Ok(Some(spec)) => {
                    backoff = new_backoff();
                    let span = tracing::info_span!("job", job_id = %spec.job_id, app_id = %spec.app_id, video_id = %spec.video_id, attempt = spec.attempt, slot);
                    self.run_job(spec, shutdown.clone()).instrument(span).await;
                }
                Ok(None) => {}
                Err(e) => {
                    match &e {
                        CallError::Refused { status, .. } if *status == 401 || *status == 403 => {
                            tracing::error!(error = %e, "the video service refused the transcoder token: check TRANSCODER_TOKEN")
                        }
                        _ => tracing::warn!(error = %e, "leasing failed; retrying"),
                    }
                    let pause = backoff.next().unwrap_or(Duration::from_secs(30));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// Runs one leased job to its end and reports it.
    pub async fn run_job(&self, spec: JobSpec, shutdown: watch::Receiver<bool>) -> Outcome {
        let job = JobHandles { stage: Arc::new(Mutex::new("reading")), ..JobHandles::default() };
        let work = self.work(&spec, &job);
        self.supervise(&spec, &job, work, shutdown).await
    }

    /// Runs `work` (reading, encoding, publishing) under [`Runner::attempt`]
    /// and reports how it ended: failures to the service, a job handed back
    /// released.
    async fn supervise(
        &self,
        spec: &JobSpec,
        job: &JobHandles,
        work: impl Future<Output = Result<JobResult, JobError>>,
        shutdown: watch::Receiver<bool>,
    ) -> Outcome {
        let started = Instant::now();
        tracing::info!(bytes = spec.source_size, output = %spec.output_prefix, "job started");
        let result = self.attempt(spec, job, work, shutdown).await;
        let outcome = match result {
            Ok(()) => Outcome::Done,
            Err(JobError::LeaseLost) => Outcome::LeaseLost,
            Err(JobError::ShuttingDown) => {
                // Handing back is not a failure: the job keeps its attempts and is queued at once.
                match self.api.release(spec).await {
                    Ok(()) => tracing::info!("shutting down: gave the job back"),
                    Err(e) => {
                        tracing::warn!(error = %e, "shutting down: could not give the job back; its lease will expire")
                    }
                }
                Outcome::HandedBack
            }
            Err(e) => {
                let retryable = e.retryable_flag().unwrap_or(true);
                let message = e.to_string();
                // Ours to fix (a bad upload is the uploader's): to Sentry.
                if retryable {
                    report_failure(spec.job_id.as_str(), &e);
                }
                let req = FailRequest {
                    lease_id: spec.lease_id.clone(),
                    video: JobVideo::of(spec),
                    message: message.clone(),
                    retryable,
                };
                if let Err(err) = self.api.fail(&spec.job_id, &req).await {
                    tracing::warn!(error = %err, "reporting the failure did not work; the lease will expire instead");
                }
                Outcome::Failed { message, retryable }
            }
        };
        let secs = started.elapsed().as_secs_f64();
        match &outcome {
            Outcome::Done => tracing::info!(seconds = secs, "job done"),
            Outcome::Failed { message, retryable } => {
                tracing::warn!(seconds = secs, retryable, message = %message, "job failed")
            }
            Outcome::LeaseLost => tracing::warn!(seconds = secs, "lease lost: stopped working on the job"),
            Outcome::HandedBack => tracing::warn!(seconds = secs, "handed the job back on shutdown"),
        }
        outcome
    }

    /// Works on the job and reports its result while heartbeating, from the
    /// lease until the video service has the result: heartbeats go on while
    /// a completion is retried, so a slow report does not cost the lease.
    /// Stops the work when the lease is lost, when it runs out on this
    /// machine's clock without a heartbeat getting through (the service may
    /// have given the job to someone else), when the job's wall-clock limit
    /// passes, and (after the grace period) on shutdown. The decisions are
    /// [`Attempt`]'s; this loop waits for what happens and carries them out.
    async fn attempt(
        &self,
        spec: &JobSpec,
        job: &JobHandles,
        work: impl Future<Output = Result<JobResult, JobError>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), JobError> {
        let control = &job.control;
        let interval = Duration::from_millis(bounded_heartbeat_interval_ms(spec.heartbeat_interval_ms));
        let now = tokio::time::Instant::now();
        let mut state = Attempt::new(
            now,
            lease_deadline(now, spec.lease_expires_at, interval),
            self.config.shutdown_grace,
            *shutdown.borrow(),
        );
        tokio::pin!(work);
        let mut report = None;
        let mut beat = tokio::time::interval(interval);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                result = &mut work, if state.working() => match state.on_work_ended(result) {
                    WorkEnded::Report(result) => report = Some(Box::pin(self.report(spec, result))),
                    WorkEnded::End(end) => return end,
                },
                reported = async { report.as_mut().expect("guarded").await }, if report.is_some() => {
                    return state.on_report_ended(reported);
                }
                _ = beat.tick(), if state.beating() => {
                    let limit = self.config.job_time_limit.unwrap_or_else(|| Duration::from_secs(job_time_limit_s(control.source_duration_s())));
                    if let Tick::Stop(why) = state.on_tick(tokio::time::Instant::now(), limit) {
                        if why == JobError::LeaseLost {
                            tracing::warn!("the lease ran out before a heartbeat got through; stopping so the next holder works alone");
                        } else {
                            tracing::warn!(limit_s = limit.as_secs(), "the job ran past its time limit; stopping it");
                        }
                        return stop_with(control, work.as_mut(), why).await;
                    }
                    let sent = tokio::time::Instant::now();
                    let answer = match self.beat(spec, job).await {
                        Ok(expires_at) => Ok(expires_at.map(|at| lease_deadline(sent, at, interval))),
                        Err(lost) => {
                            if state.working() {
                                tracing::warn!(reason = %lost, "lease lost; stopping the job");
                            }
                            Err(())
                        }
                    };
                    match state.on_beat(answer) {
                        Beaten::Go | Beaten::StopBeating => {}
                        Beaten::Stop => return stop_with(control, work.as_mut(), JobError::LeaseLost).await,
                    }
                }
                // Tell the service the moment players can start, not at the next tick.
                _ = job.playable.raised(), if state.playable_untold() => {
                    state.on_playable();
                    beat.reset_immediately();
                }
                changed = shutdown.changed(), if state.watches_shutdown() => match changed {
                    Err(_) => state.on_shutdown_gone(),
                    Ok(()) if *shutdown.borrow() => {
                        if state.on_shutdown(tokio::time::Instant::now()) {
                            tracing::info!(grace_s = self.config.shutdown_grace.as_secs(), "shutting down: finishing the current job within the grace period");
                        }
                    }
                    Ok(()) => {}
                },
                _ = tokio::time::sleep_until(state.grace_until().unwrap_or(now)), if state.grace_until().is_some() => {
                    if state.on_grace_over() {
                        tracing::warn!("grace period over; handing the job back");
                        control.stop();
                    }
                }
            }
        }
    }

    /// Reports the finished ladder to the video service.
    async fn report(&self, spec: &JobSpec, result: JobResult) -> Result<(), JobError> {
        let req = CompleteRequest { lease_id: spec.lease_id.clone(), video: JobVideo::of(spec), result };
        self.api.complete(&spec.job_id, &req).await.map_err(|e| match e {
            CallError::LeaseLost(_) => JobError::LeaseLost,
            other => JobError::retryable(format!("the result could not be reported to the video service: {other}")),
        })
    }

    /// One heartbeat: progress, stage and `playable`. `Ok(Some(expiry))`
    /// when the lease was extended, `Ok(None)` when the call failed (logged,
    /// tried again next tick), `Err(reason)` when the lease is gone.
    async fn beat(&self, spec: &JobSpec, job: &JobHandles) -> Result<Option<Timestamp>, String> {
        let JobHandles { control, playable, stage } = job;
        let req = HeartbeatRequest {
            lease_id: spec.lease_id.clone(),
            video: JobVideo::of(spec),
            progress: (1.0 + control.fraction() * 94.0).round() as u8,
            stage: Some((*stage.lock().expect("not poisoned")).to_owned()),
            playable: playable.is_raised(),
        };
        match self.api.heartbeat(&spec.job_id, &req).await {
            Ok(resp) => Ok(Some(resp.lease_expires_at)),
            Err(CallError::LeaseLost(why)) => Err(why),
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed; will retry");
                Ok(None)
            }
        }
    }

    /// Refuses a source this transcoder must not read, before reading it:
    /// gone, empty, too large, replaced since the notify, or larger than
    /// the work disk can spool. Returns its size and version, and the disk
    /// space set aside for it.
    async fn check_source(&self, spec: &JobSpec) -> Result<(SourceInfo, DiskReservation), JobError> {
        let info = match self.storage.head(&spec.source_key).await? {
            Some(i) => i,
            None => return Err(JobError::permanent("the upload is no longer in storage; upload it again and notify")),
        };
        if info.size == 0 {
            return Err(JobError::empty_upload());
        }
        if info.size > self.config.max_video_bytes {
            return Err(JobError::permanent(format!(
                "the upload is {} bytes; the largest accepted is {} bytes",
                info.size, self.config.max_video_bytes
            )));
        }
        if let (Some(notified), Some(now)) = (&spec.source_etag, &info.etag) {
            if !same_etag(notified, now) {
                return Err(JobError::permanent(REPLACED));
            }
        }
        let reservation = DiskReservation::take(&self.reserved, &self.config.work_dir, info.size)?;
        Ok((info, reservation))
    }

    /// The job itself: read, encode and publish, then finish the outputs.
    async fn work(&self, spec: &JobSpec, job: &JobHandles) -> Result<JobResult, JobError> {
        let JobHandles { control, playable, stage } = job;
        let (info, _reservation) = self.check_source(spec).await?;
        let work_dir = self.config.work_dir.join(spec.job_id.as_str());
        let reader = SourceReader::new(
            self.storage.clone(),
            &spec.source_key,
            &info,
            tokio::runtime::Handle::current(),
            &work_dir,
        )?;
        let io_failure = Arc::clone(&reader.failure);
        let (tx, rx) = mpsc::channel(16);
        let (ladder, tuning, pipeline_control) = (spec.ladder.clone(), self.tuning.clone(), Arc::clone(control));
        let pipeline = tokio::task::spawn_blocking(move || {
            panics_fail_the_job(|| transcode(reader, io_failure, &ladder, &tuning, tx, pipeline_control))
        });
        *stage.lock().expect("not poisoned") = "encoding";
        let mut publisher =
            Publisher::new(Sink::Bucket(self.storage.clone()), spec.output_prefix.clone(), Arc::clone(playable));
        let published = publisher.run(rx, control).await;
        if published.is_err() {
            control.stop();
        }
        let summary = pipeline
            .await
            .unwrap_or_else(|e| Err(JobError::retryable(format!("internal error: the encoding task failed ({e})"))));
        let _ = std::fs::remove_dir_all(&work_dir);
        // A publishing failure is the cause when both failed (the pipeline
        // only saw its channel close).
        published?;
        let summary = summary?;
        *stage.lock().expect("not poisoned") = "finishing";
        publisher.finish(&summary).await
    }
}

/// When the lease runs out on this machine's monotonic clock: the time the
/// service says it expires, less this machine's idea of now, counted from
/// when the request was sent. A clock far off is bounded: never less than
/// two heartbeats, never more than five minutes.
fn lease_deadline(sent: tokio::time::Instant, expires_at: Timestamp, interval: Duration) -> tokio::time::Instant {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let remaining = Duration::from_millis(expires_at.millis().saturating_sub(now_ms));
    sent + remaining.clamp(interval * 2, Duration::from_secs(300))
}

/// Stops the pipeline and waits for the work to unwind, then ends with `why`.
async fn stop_with<W: Future>(control: &Control, work: std::pin::Pin<&mut W>, why: JobError) -> Result<(), JobError> {
    control.stop();
    let _ = work.await;
    Err(why)
}

/// Work-disk space set aside for one job's spool, given back when dropped.
/// Jobs running at once each count what the others have set aside, so two
/// large sources cannot both start on a disk that holds one.
struct DiskReservation {
    reserved: Arc<AtomicU64>,
    bytes: u64,
}

/// Space left free beside the spools (logs, libav's own temporaries).
const DISK_MARGIN_BYTES: u64 = 64 * 1024 * 1024;

impl DiskReservation {
    fn take(reserved: &Arc<AtomicU64>, work_dir: &Path, bytes: u64) -> Result<Self, JobError> {
        std::fs::create_dir_all(work_dir)?;
        let free = free_bytes(work_dir)?;
        let others = reserved.fetch_add(bytes, Ordering::SeqCst);
        let reservation = Self { reserved: Arc::clone(reserved), bytes };
        if bytes + others + DISK_MARGIN_BYTES > free {
            return Err(JobError::retryable(format!(
                "the transcoder's work disk (WORK_DIR) has {} MB free; a {} MB upload needs {} MB with what other jobs set aside and {} MB kept free; the job will be retried",
                free / 1_000_000,
                bytes.div_ceil(1_000_000),
                (bytes + others + DISK_MARGIN_BYTES).div_ceil(1_000_000),
                DISK_MARGIN_BYTES / 1_000_000
            )));
        }
        Ok(reservation)
    }
}

impl Drop for DiskReservation {
    fn drop(&mut self) {
        self.reserved.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// The runner's lease, grace-period and time-limit rules against the
/// in-memory API on tokio's paused clock: what the end-to-end tests show
/// with real seconds, here deterministic and instant.
#[cfg(test)]
mod tests {
    use std::future::pending;

    use media_core::ids::{AppId, JobId, LeaseId, VideoId};
    use media_core::keys::OutputId;
    use media_core::video::ladder::LadderOptions;
    use tokio::time::{advance, sleep, timeout};

    use super::*;
    use crate::api::memory::{wall_clock_plus, Beat, MemoryVideoApi};
    use crate::config::Vars;
    use crate::pipeline::Produced;
    use crate::storage::Sink;

    /// Heartbeats every second; the lease lasts 30 s unless said otherwise.
    const BEAT: Duration = Duration::from_secs(1);

    fn runner(extra: &[(&str, &str)]) -> (Runner<MemoryVideoApi>, MemoryVideoApi) {
        let vars = |k: &str| {
            let fixed = [
                ("VIDEO_SERVICE_URL", "http://127.0.0.1:9"),
                ("TRANSCODER_TOKEN", "t"),
                ("S3_ENDPOINT", "http://127.0.0.1:9"),
                ("S3_BUCKET", "media"),
                ("S3_ACCESS_KEY_ID", "GK1"),
                ("S3_SECRET_ACCESS_KEY", "s"),
            ];
            fixed.iter().chain(extra).find(|(name, _)| *name == k).map(|(_, v)| (*v).to_owned())
        };
        let config = Config::from_vars(&Vars(vars)).expect("a complete configuration");
        let api = MemoryVideoApi::default();
        (Runner::with_api(config, api.clone()), api)
    }

    fn spec(lease: Duration) -> JobSpec {
        JobSpec {
            job_id: JobId::from_random([1; 16]),
            app_id: AppId::parse("app").expect("an id"),
            video_id: VideoId::parse("video").expect("an id"),
            attempt: 1,
            lease_id: LeaseId::from_random([2; 16]),
            lease_expires_at: wall_clock_plus(lease),
            heartbeat_interval_ms: BEAT.as_millis() as u64,
            source_key: "uploads/app/video/source".into(),
            source_size: 1000,
            source_etag: None,
            content_type: "video/mp4".into(),
            output_id: OutputId::from_random([3; 10]),
            output_prefix: "hls/app/video/out/".into(),
            ladder: LadderOptions::default(),
        }
    }

    fn result() -> JobResult {
        JobResult { duration_s: 1.0, renditions: Vec::new(), thumbnails: None, has_audio: false }
    }

    /// The attempt's end, or a failed test if it runs on for an hour of (paused) time.
    async fn ends(attempt: impl Future<Output = Outcome>) -> Outcome {
        timeout(Duration::from_secs(3600), attempt).await.expect("the attempt ends within the hour")
    }

    /// Work that runs until it is stopped, then unwinds as the pipeline does.
    async fn until_stopped(control: &Control) -> Result<JobResult, JobError> {
        control.stopped().await;
        Err(JobError::LeaseLost)
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_refused_heartbeat_the_publisher_stops_and_the_lease_is_lost() {
        let (runner, api) = runner(&[]);
        let spec = spec(Duration::from_secs(30));
        let job = JobHandles::default();
        let dir = tempfile::tempdir().expect("a temporary folder");
        // The real publisher, waiting for outputs that keep coming.
        let (tx, rx) = mpsc::channel::<Produced>(4);
        let mut publisher =
            Publisher::new(Sink::Dir(dir.path().into()), spec.output_prefix.clone(), Arc::clone(&job.playable));
        let work = async {
            publisher.run(rx, &job.control).await?;
            pending().await
        };
        let (_, shutdown) = watch::channel(false);
        let supervised = runner.supervise(&spec, &job, work, shutdown);
        tokio::pin!(supervised);
        // Ten seconds of heartbeats that extend the lease.
        assert!(timeout(Duration::from_secs(10), &mut supervised).await.is_err(), "the job goes on under heartbeats");
        let beats = api.state().heartbeats.len();
        assert!((9..=11).contains(&beats), "{beats} heartbeats in 10 s at one a second");
        assert!(!tx.is_closed());
        api.state().beat = Beat::Lost("the video was deleted".into());
        let refused_at = tokio::time::Instant::now();
        let outcome = timeout(Duration::from_secs(60), &mut supervised).await.expect("the job ends");
        assert_eq!(outcome, Outcome::LeaseLost);
        assert!(
            refused_at.elapsed() <= BEAT,
            "stopped at the first refused heartbeat, {:?} after",
            refused_at.elapsed()
        );
        assert!(tx.is_closed(), "the publisher stopped taking outputs");
        assert!(job.control.cancel.load(Ordering::SeqCst), "the pipeline was told to stop");
        let state = api.state();
        assert_eq!(state.heartbeats.len(), beats + 1, "no heartbeat after the refused one");
        assert!(state.failed.is_empty() && state.completed.is_empty(), "a lost job is not reported");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_that_runs_out_without_a_heartbeat_getting_through_stops_the_work() {
        let (runner, api) = runner(&[]);
        api.state().beat = Beat::Unreachable;
        let job = JobHandles::default();
        let (_, shutdown) = watch::channel(false);
        let started = tokio::time::Instant::now();
        let outcome =
            ends(runner.supervise(&spec(Duration::from_secs(10)), &job, until_stopped(&job.control), shutdown)).await;
        assert_eq!(outcome, Outcome::LeaseLost);
        let took = started.elapsed();
        assert!(
            took > Duration::from_secs(9) && took <= Duration::from_secs(11),
            "stopped after {took:?} (lease 10 s)"
        );
        assert!(job.control.cancel.load(Ordering::SeqCst));
        assert!(api.state().failed.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn within_the_grace_period_a_job_finishes_and_is_reported() {
        let (runner, api) = runner(&[("SHUTDOWN_GRACE_S", "30")]);
        let job = JobHandles::default();
        let (stop, shutdown) = watch::channel(false);
        let work = async {
            sleep(Duration::from_secs(25)).await;
            Ok(result())
        };
        let spec = spec(Duration::from_secs(30));
        let supervised = runner.supervise(&spec, &job, work, shutdown);
        tokio::pin!(supervised);
        assert!(timeout(Duration::from_secs(1), &mut supervised).await.is_err());
        stop.send(true).expect("the runner listens");
        // Past the 25 s the work takes, within the 30 s of grace.
        advance(Duration::from_secs(24)).await;
        let outcome = timeout(Duration::from_secs(2), &mut supervised).await.expect("done within the grace period");
        assert_eq!(outcome, Outcome::Done);
        let state = api.state();
        assert_eq!(state.completed.len(), 1);
        assert!(state.released.is_empty(), "a finished job is not handed back");
        assert!(!job.control.cancel.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_grace_period_the_job_is_handed_back() {
        let (runner, api) = runner(&[("SHUTDOWN_GRACE_S", "30")]);
        let job = JobHandles::default();
        let (stop, shutdown) = watch::channel(false);
        let spec = spec(Duration::from_secs(30));
        let supervised = runner.supervise(&spec, &job, until_stopped(&job.control), shutdown);
        tokio::pin!(supervised);
        assert!(timeout(Duration::from_secs(5), &mut supervised).await.is_err());
        stop.send(true).expect("the runner listens");
        let asked = tokio::time::Instant::now();
        assert!(
            timeout(Duration::from_secs(29), &mut supervised).await.is_err(),
            "the job goes on during the grace period"
        );
        assert!(!job.control.cancel.load(Ordering::SeqCst));
        let outcome =
            timeout(Duration::from_secs(2), &mut supervised).await.expect("handed back once the grace is over");
        assert_eq!(outcome, Outcome::HandedBack);
        assert_eq!(asked.elapsed().as_secs(), 30);
        let state = api.state();
        assert_eq!(state.released, vec![spec.job_id.clone()]);
        assert!(state.failed.is_empty(), "handing back is not a failure");
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_time_limit_the_job_fails_with_a_readable_message() {
        let (runner, api) = runner(&[]);
        let job = JobHandles::default();
        // A 10 s source may take 600 + 4 x 10 s.
        job.control.source_duration_ms.store(10_000, Ordering::Relaxed);
        let (_, shutdown) = watch::channel(false);
        let started = tokio::time::Instant::now();
        let outcome =
            ends(runner.supervise(&spec(Duration::from_secs(30)), &job, until_stopped(&job.control), shutdown)).await;
        let message =
            "processing stopped after 640 s, the time limit for this video; the file may be damaged or crafted";
        assert_eq!(outcome, Outcome::Failed { message: message.into(), retryable: false });
        let took = started.elapsed();
        assert!(took > Duration::from_secs(640) && took <= Duration::from_secs(641), "stopped after {took:?}");
        let state = api.state();
        assert_eq!(state.failed.len(), 1);
        assert_eq!((state.failed[0].message.as_str(), state.failed[0].retryable), (message, false));
        assert!(job.control.cancel.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_completion_goes_on_under_heartbeats_past_the_lease_and_the_time_limit() {
        let (runner, api) = runner(&[("JOB_TIME_LIMIT_S", "20")]);
        api.state().complete_takes = Duration::from_secs(120);
        let job = JobHandles::default();
        let (_, shutdown) = watch::channel(false);
        let work = async {
            sleep(Duration::from_secs(10)).await;
            Ok(result())
        };
        let outcome = ends(runner.supervise(&spec(Duration::from_secs(30)), &job, work, shutdown)).await;
        assert_eq!(outcome, Outcome::Done);
        let state = api.state();
        assert_eq!(state.completed.len(), 1);
        assert!(state.heartbeats.len() >= 120, "{} heartbeats", state.heartbeats.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_refused_while_completing_leaves_the_end_to_the_completion() {
        let (runner, api) = runner(&[]);
        api.state().complete_takes = Duration::from_secs(5);
        let job = JobHandles::default();
        let (_, shutdown) = watch::channel(false);
        let work = async {
            sleep(Duration::from_secs(3)).await;
            api.state().beat = Beat::Lost("taken".into());
            Ok(result())
        };
        let outcome = ends(runner.supervise(&spec(Duration::from_secs(30)), &job, work, shutdown)).await;
        assert_eq!(outcome, Outcome::Done);
        let state = api.state();
        let beats_after = state.heartbeats.len();
        assert!(beats_after <= 5, "beating stopped at the refusal: {beats_after} heartbeats");
        assert!(!job.control.cancel.load(Ordering::SeqCst), "a published ladder is not stopped");
    }
}
