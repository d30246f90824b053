//! The job loop. Each slot (`CONCURRENCY` of them) leases a job, runs the
//! pipeline on a blocking thread while the publisher uploads, heartbeats
//! with progress and stage, and completes or fails the job. A lost lease
//! stops the job at once; a panic fails only its job; on shutdown no new
//! job is leased and a running one gets a grace period, then is handed back.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use media_core::api::{CompleteRequest, FailRequest, HeartbeatRequest, JobSpec};
use media_core::job::JobResult;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::api::{CallError, VideoApi};
use crate::config::Config;
use crate::error::{panics_fail_the_job, JobError};
use crate::pipeline::{transcode, Control, Tuning};
use crate::publish::{Playable, Publisher};
use crate::storage::{Sink, SourceReader, Storage};
use crate::telemetry::Reporter;

/// Everything a job slot needs.
#[derive(Clone)]
pub struct Runner {
    pub config: Config,
    pub api: VideoApi,
    pub storage: Storage,
    pub reporter: Reporter,
    pub tuning: Tuning,
}

/// How one job ended, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    Failed { message: String, retryable: bool },
    LeaseLost,
    HandedBack,
}

impl Runner {
    pub fn new(config: Config) -> Self {
        let api = VideoApi::new(&config.video_service_url, &config.transcoder_token, &config.worker_name);
        let storage = Storage::new(&config.s3);
        let reporter = Reporter::new(config.sentry_dsn.as_deref());
        Self { config, api, storage, reporter, tuning: Tuning::default() }
    }

    /// Runs until `shutdown` turns true, then returns once running jobs have
    /// finished or been handed back.
    pub async fn run(&self, shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.config.worker_name, slots = self.config.concurrency, video_service = %self.config.video_service_url, "transcoder started");
        let mut slots = tokio::task::JoinSet::new();
        for slot in 0..self.config.concurrency {
            let (me, shutdown) = (self.clone(), shutdown.clone());
            slots.spawn(async move { me.slot(slot, shutdown).await });
        }
        while slots.join_next().await.is_some() {}
        tracing::info!("transcoder stopped");
    }

    async fn slot(&self, slot: usize, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(500);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let lease = self.api.lease(self.config.lease_wait);
            tokio::pin!(lease);
            let leased = tokio::select! {
                r = &mut lease => r,
                _ = shutdown.changed() => {
                    // The request stays open at the queue until it answers:
                    // let it, and give back a job it brings, so nothing waits
                    // on a transcoder that has gone.
                    if let Ok(Some(spec)) = lease.await {
                        match self.api.release(&spec.job_id, &spec.lease_id).await {
                            Ok(()) => tracing::info!(job_id = %spec.job_id, "shutting down: gave back a job just leased"),
                            Err(e) => tracing::warn!(job_id = %spec.job_id, error = %e, "could not give back a job just leased; its lease will expire"),
                        }
                    }
                    return;
                }
            };
            match leased {
                Ok(Some(spec)) => {
                    backoff = Duration::from_millis(500);
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
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Runs one leased job to its end and reports it.
    pub async fn run_job(&self, spec: JobSpec, shutdown: watch::Receiver<bool>) -> Outcome {
        let started = std::time::Instant::now();
        tracing::info!(source = %spec.source_key, bytes = spec.source_size, output = %spec.output_prefix, "job started");
        let control = Arc::new(Control::default());
        let playable = Arc::new(Playable::default());
        let stage = Arc::new(Mutex::new("reading"));
        let result = self.attempt(&spec, &control, &playable, &stage, shutdown).await;
        let outcome = match result {
            Ok(result) => {
                let req = CompleteRequest { lease_id: spec.lease_id.clone(), result };
                match self.api.complete(&spec.job_id, &req).await {
                    Ok(()) => Outcome::Done,
                    Err(CallError::LeaseLost(_)) => Outcome::LeaseLost,
                    Err(e) => {
                        tracing::error!(error = %e, "the result could not be reported; the lease will expire and the job will be retried");
                        Outcome::Failed { message: e.to_string(), retryable: true }
                    }
                }
            }
            Err(JobError::LeaseLost) => Outcome::LeaseLost,
            Err(e) => {
                let retryable = e.retryable_flag().unwrap_or(true);
                let message = e.to_string();
                if retryable && e != JobError::ShuttingDown {
                    self.reporter.report(&spec.job_id, &message).await;
                }
                let req = FailRequest { lease_id: spec.lease_id.clone(), message: message.clone(), retryable };
                if let Err(err) = self.api.fail(&spec.job_id, &req).await {
                    tracing::warn!(error = %err, "reporting the failure did not work; the lease will expire instead");
                }
                if e == JobError::ShuttingDown {
                    Outcome::HandedBack
                } else {
                    Outcome::Failed { message, retryable }
                }
            }
        };
        let secs = started.elapsed().as_secs_f64();
        match &outcome {
            Outcome::Done => tracing::info!(seconds = secs, "job done"),
            Outcome::Failed { message, retryable } => tracing::warn!(seconds = secs, retryable, message = %message, "job failed"),
            Outcome::LeaseLost => tracing::warn!(seconds = secs, "lease lost: stopped working on the job"),
            Outcome::HandedBack => tracing::warn!(seconds = secs, "handed the job back on shutdown"),
        }
        outcome
    }

    async fn attempt(
        &self,
        spec: &JobSpec,
        control: &Arc<Control>,
        playable: &Arc<Playable>,
        stage: &Arc<Mutex<&'static str>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<JobResult, JobError> {
        let work = self.work(spec, control, playable, stage);
        tokio::pin!(work);
        let mut beat = tokio::time::interval(Duration::from_millis(spec.heartbeat_interval_ms.clamp(200, 10_000)));
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let mut handed_back = false;
        let mut watching = true;
        let mut told_playable = false;
        if *shutdown.borrow() {
            grace = Some(Box::pin(tokio::time::sleep(self.config.shutdown_grace)));
        }
        loop {
            tokio::select! {
                result = &mut work => {
                    return match result {
                        Err(JobError::LeaseLost) if handed_back => Err(JobError::ShuttingDown),
                        other => other,
                    };
                }
                _ = beat.tick() => {
                    if let Err(lost) = self.beat(spec, control, playable, stage).await {
                        tracing::warn!(reason = %lost, "lease lost; stopping the job");
                        control.cancel.store(true, Ordering::Relaxed);
                        // Let the pipeline unwind, but do not report anything.
                        let _ = (&mut work).await;
                        return Err(JobError::LeaseLost);
                    }
                }
                // Tell the service the moment players can start, not at the next tick.
                _ = playable.raised(), if !told_playable => {
                    told_playable = true;
                    beat.reset_immediately();
                }
                changed = shutdown.changed(), if watching && grace.is_none() => {
                    match changed {
                        Err(_) => watching = false,
                        Ok(()) if *shutdown.borrow() => {
                            tracing::info!(grace_s = self.config.shutdown_grace.as_secs(), "shutting down: finishing the current job within the grace period");
                            grace = Some(Box::pin(tokio::time::sleep(self.config.shutdown_grace)));
                        }
                        Ok(()) => {}
                    }
                }
                _ = async { grace.as_mut().expect("guarded").await }, if grace.is_some() && !handed_back => {
                    tracing::warn!("grace period over; handing the job back");
                    handed_back = true;
                    control.cancel.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// One heartbeat: progress, stage and `playable`. `Err` (the reason) when
    /// the lease is gone; other failures are logged and retried next tick.
    async fn beat(&self, spec: &JobSpec, control: &Control, playable: &Playable, stage: &Mutex<&'static str>) -> Result<(), String> {
        let req = HeartbeatRequest {
            lease_id: spec.lease_id.clone(),
            progress: (1.0 + control.fraction() * 94.0).round() as u8,
            stage: Some((*stage.lock().expect("not poisoned")).to_owned()),
            playable: playable.is_raised(),
        };
        match self.api.heartbeat(&spec.job_id, &req).await {
            Ok(_) => Ok(()),
            Err(CallError::LeaseLost(why)) => Err(why),
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed; will retry");
                Ok(())
            }
        }
    }

    /// The job itself: read, encode and publish, then finish the outputs.
    async fn work(&self, spec: &JobSpec, control: &Arc<Control>, playable: &Arc<Playable>, stage: &Arc<Mutex<&'static str>>) -> Result<JobResult, JobError> {
        let size = match self.storage.head_size(&spec.source_key).await? {
            Some(0) => return Err(JobError::permanent("the upload is empty (0 bytes)")),
            Some(n) => n,
            None => return Err(JobError::permanent(format!("the upload {} is no longer in storage; upload it again and notify", spec.source_key))),
        };
        let work_dir = self.config.work_dir.join(&spec.job_id);
        let reader = SourceReader::new(self.storage.clone(), &spec.source_key, size, tokio::runtime::Handle::current(), &work_dir)?;
        let io_failure = Arc::clone(&reader.failure);
        let (tx, rx) = mpsc::channel(16);
        let (ladder, tuning, pipeline_control) = (spec.ladder.clone(), self.tuning.clone(), Arc::clone(control));
        let pipeline = tokio::task::spawn_blocking(move || panics_fail_the_job(|| transcode(reader, io_failure, &ladder, &tuning, tx, pipeline_control)));
        *stage.lock().expect("not poisoned") = "encoding";
        let mut publisher = Publisher::new(Sink::Bucket(self.storage.clone()), spec.output_prefix.clone(), Arc::clone(playable));
        let published = publisher.run(rx).await;
        if published.is_err() {
            control.cancel.store(true, Ordering::Relaxed);
        }
        let summary = pipeline.await.unwrap_or_else(|e| Err(JobError::retryable(format!("internal error: the encoding task failed ({e})"))));
        let _ = std::fs::remove_dir_all(&work_dir);
        // A publishing failure is the cause when both failed (the pipeline
        // only saw its channel close).
        published?;
        let summary = summary?;
        *stage.lock().expect("not poisoned") = "finishing";
        publisher.finish(&summary).await
    }
}
