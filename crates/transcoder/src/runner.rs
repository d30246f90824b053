//! The job loop. Each slot (`CONCURRENCY` of them) leases a job, runs the
//! pipeline on a blocking thread while the publisher uploads, heartbeats
//! with progress and stage, and completes or fails the job. A lost lease
//! stops the job at once; a panic fails only its job; on shutdown no new
//! job is leased and a running one gets a grace period, then is handed back.
//! A whole job whose source proves long enough is split into chunk tasks
//! after its probe (`Runner::mode`), and a chunk task runs its chunk and
//! reports it (`Finished::Chunk`).
//! The rules of one attempt are the state machine in `attempt`; this
//! module runs it against the [`VideoApi`].

mod attempt;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use media_core::keys::{CachePolicy, ObjectKey};
use media_core::video::access::Encryption;
use media_core::video::chunks::{ChunkReport, ChunkSource};
use media_core::video::extras::{CoverMeta, PreviewMeta};
use media_core::video::job::{bounded_heartbeat_interval_ms, JobResult};
use media_core::video::timeline::job_time_limit_s;
use media_core::wire::api::{CompleteRequest, FailRequest, HeartbeatRequest, JobSpec, JobVideo, PlanRequest};
use media_core::Timestamp;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use self::attempt::{Attempt, Beaten, Tick, WorkEnded};
use crate::api::{CallError, HttpVideoApi, VideoApi};
use crate::config::Config;
use crate::download::{self, DownloadRequest};
use crate::encrypt::SegmentCipher;
use crate::error::{panics_fail_the_job, JobError};
use crate::pipeline::extras::make_extras;
use crate::pipeline::{transcode_with, Control, Machine, Mode, Tuning};
use crate::publish::{Playable, Published, Publisher, Stages};
use crate::storage::{
    free_bytes, remove_stale_spools, same_etag, FirstRead, Sink, SourceInfo, SourceReader, Storage, CHUNK, REPLACED,
};
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

/// What an attempt made, reported at complete.
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    /// A whole job's ladder.
    Ladder(JobResult),
    /// One chunk task's part of a chunked job.
    Chunk(ChunkReport),
}

impl From<JobResult> for Finished {
    fn from(result: JobResult) -> Self {
        Finished::Ladder(result)
    }
}

/// What the work on one job shares with the loop that watches it.
#[derive(Default)]
pub struct JobHandles {
    pub control: Arc<Control>,
    pub playable: Arc<Playable>,
    /// The stage heartbeats report.
    pub stage: Arc<Mutex<&'static str>>,
    /// When the attempt reached each stage on its way to `playable` (logged).
    pub stages: Stages,
    /// A chunk task's stored segments, which its heartbeats report.
    pub published: Arc<Published>,
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
        let tuning = Tuning { first_segment_encoder: config.first_segment_encoder, ..Tuning::for_machine(&machine) };
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
                    // take it back, so it answers at once (an older service,
                    // or a request not yet waiting there, answers within its
                    // wait), and give back a job it brings, so nothing waits
                    // on a transcoder that has gone.
                    match self.api.withdraw().await {
                        Ok(n) => tracing::info!(requests = n, "shutting down: took back the waiting lease request"),
                        Err(e) => tracing::warn!(error = %e, "could not take back the waiting lease request; it ends within its wait"),
                    }
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
                    if matches!(e, CallError::Transient(_)) {
                        // The request may still wait at the queue (the answer
                        // was lost, or timed out here): take it back, or the
                        // next job is granted to it and waits out a lease TTL.
                        if let Err(e) = self.api.withdraw().await {
                            tracing::debug!(error = %e, "could not take back a lease request that failed here");
                        }
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
        job.stages.reach("leased");
        let work = self.work(&spec, &job);
        self.supervise(&spec, &job, work, shutdown).await
    }

    /// Runs `work` (reading, encoding, publishing) under [`Runner::attempt`]
    /// and reports how it ended: failures to the service, a job handed back
    /// released.
    async fn supervise<R: Into<Finished>>(
        &self,
        spec: &JobSpec,
        job: &JobHandles,
        work: impl Future<Output = Result<R, JobError>>,
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
    async fn attempt<R: Into<Finished>>(
        &self,
        spec: &JobSpec,
        job: &JobHandles,
        work: impl Future<Output = Result<R, JobError>>,
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
                    WorkEnded::Report(result) => report = Some(Box::pin(self.report(spec, result.into()))),
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

    /// Reports the finished ladder, or chunk, to the video service.
    async fn report(&self, spec: &JobSpec, finished: Finished) -> Result<(), JobError> {
        let (result, chunk) = match finished {
            Finished::Ladder(result) => (result, None),
            Finished::Chunk(report) => (JobResult::default(), Some(report)),
        };
        let req = CompleteRequest { lease_id: spec.lease_id.clone(), video: JobVideo::of(spec), result, chunk };
        self.api.complete(&spec.job_id, &req).await.map_err(|e| match e {
            CallError::LeaseLost(_) => JobError::LeaseLost,
            other => JobError::retryable(format!("the result could not be reported to the video service: {other}")),
        })
    }

    /// One heartbeat: progress, stage and `playable`. `Ok(Some(expiry))`
    /// when the lease was extended, `Ok(None)` when the call failed (logged,
    /// tried again next tick), `Err(reason)` when the lease is gone.
    async fn beat(&self, spec: &JobSpec, job: &JobHandles) -> Result<Option<Timestamp>, String> {
        let JobHandles { control, playable, stage, stages, published } = job;
        let told = playable.is_raised();
        let published = published.get();
        let req = HeartbeatRequest {
            lease_id: spec.lease_id.clone(),
            video: JobVideo::of(spec),
            progress: (1.0 + control.fraction() * 94.0).round() as u8,
            stage: Some((*stage.lock().expect("not poisoned")).to_owned()),
            playable: told,
            published_segments: published.map(|(video, _)| video),
            published_audio_segments: published.and_then(|(_, audio)| audio),
        };
        match self.api.heartbeat(&spec.job_id, &req).await {
            Ok(resp) => {
                if told {
                    stages.reach("playable_told");
                }
                Ok(Some(resp.lease_expires_at))
            }
            Err(CallError::LeaseLost(why)) => Err(why),
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed; will retry");
                Ok(None)
            }
        }
    }

    /// Refuses a source this transcoder must not read, from its first
    /// ranged read (no `HEAD` before it): gone, empty, too large, replaced
    /// since the notify, or larger than the work disk can spool. Returns its
    /// size and version, its first chunk, and the disk space set aside for it.
    async fn check_source(&self, spec: &JobSpec) -> Result<(SourceInfo, Bytes, DiskReservation), JobError> {
        let (info, first) = match self.storage.read_first(&spec.source_key, CHUNK, spec.source_etag.as_deref()).await? {
            FirstRead::Read { info, bytes } => (info, bytes),
            FirstRead::Missing => {
                return Err(JobError::permanent("the upload is no longer in storage; upload it again and notify"))
            }
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
        // A store that ignores If-Match still names the version it read.
        if let (Some(notified), Some(now)) = (&spec.source_etag, &info.etag) {
            if !same_etag(notified, now) {
                return Err(JobError::permanent(REPLACED));
            }
        }
        let reservation = DiskReservation::take(&self.reserved, &self.config.work_dir, info.size)?;
        Ok((info, first, reservation))
    }

    /// The job itself: read, encode and publish, then finish the outputs.
    async fn work(&self, spec: &JobSpec, job: &JobHandles) -> Result<Finished, JobError> {
        let JobHandles { control, playable, stage, stages, published } = job;
        let (info, first, _reservation) = self.check_source(spec).await?;
        stages.reach("source_open");
        // Chunk tasks of one job may run side by side on one machine: a folder each.
        let work_dir = match &spec.chunk {
            None => self.config.work_dir.join(spec.job_id.as_str()),
            Some(c) => self.config.work_dir.join(format!("{}-c{}", spec.job_id, c.index)),
        };
        // The job's folder goes when the work ends, however it ends (its
        // source spool already has; a download's files live until then).
        let _work_dir = RemovedOnDrop(work_dir.clone());
        let reader = SourceReader::new(
            self.storage.clone(),
            &spec.source_key,
            &info,
            tokio::runtime::Handle::current(),
            &work_dir,
        )?
        .with_first_chunk(first)?;
        let io_failure = Arc::clone(&reader.failure);
        let (tx, rx) = mpsc::channel(16);
        let (ladder, tuning, pipeline_control) = (spec.ladder_options(), self.tuning.clone(), Arc::clone(control));
        let mode = self.mode(spec, stages);
        // The pipeline's thread logs in the job's span too.
        let span = tracing::Span::current();
        let pipeline = tokio::task::spawn_blocking(move || {
            let _job = span.enter();
            panics_fail_the_job(|| transcode_with(reader, io_failure, &ladder, &tuning, mode, tx, pipeline_control))
        });
        *stage.lock().expect("not poisoned") = "encoding";
        let mut publisher =
            Publisher::new(Sink::Bucket(self.storage.clone()), spec.output_prefix.clone(), Arc::clone(playable));
        publisher.log_stages(stages.clone());
        publisher.count_published(Arc::clone(published));
        if spec.playback.encryption == Encryption::Aes128 {
            // A fresh key per attempt (its own output), outside the public `hls/` prefix.
            let key = ObjectKey::HlsKey {
                app: spec.app_id.clone(),
                video: spec.video_id.clone(),
                output: spec.output_id.clone(),
            };
            publisher.encrypt_with(SegmentCipher::random()?, key.to_string());
        }
        if let Some(download) = &spec.playback.download {
            publisher.keep_download(DownloadRequest { rung: download.rung.clone(), dir: work_dir.clone() });
        }
        let published = publisher.run(rx, control).await;
        if published.is_err() {
            control.stop();
        }
        let summary = pipeline
            .await
            .unwrap_or_else(|e| Err(JobError::retryable(format!("internal error: the encoding task failed ({e})"))));
        // A publishing failure is the cause when both failed (the pipeline
        // only saw its channel close).
        published?;
        let summary = summary?;
        *stage.lock().expect("not poisoned") = "finishing";
        if let Some(done) = summary.chunk {
            let mut report = publisher.finish_chunk(done)?;
            let chunk = spec.chunk.as_ref().map_or(0, |c| c.index);
            // Task 0 makes the cover and the preview, wherever in the video they fall.
            if chunk == 0 {
                (report.cover, report.preview) = self.extras(spec, &info, &work_dir, job).await?;
            }
            tracing::info!(
                chunk,
                frames = done.frames,
                segments = done.segments,
                elapsed_ms = stages.elapsed_ms(),
                "chunk done"
            );
            return Ok(Finished::Chunk(report));
        }
        let mut result = publisher.finish(&summary).await?;
        (result.cover, result.preview) = self.extras(spec, &info, &work_dir, job).await?;
        if let Some(spool) = publisher.take_download() {
            *stage.lock().expect("not poisoned") = "download";
            let key = ObjectKey::Download {
                app: spec.app_id.clone(),
                video: spec.video_id.clone(),
                output: spec.output_id.clone(),
            };
            let sink = Sink::Bucket(self.storage.clone());
            result.download = Some(download::publish(spool, &sink, &key.to_string(), control).await?);
        }
        Ok(Finished::Ladder(result))
    }

    /// The cover and the preview the job asks for, made by a second short
    /// read of the source (`pipeline::extras`) and stored beside the ladder.
    async fn extras(
        &self,
        spec: &JobSpec,
        info: &SourceInfo,
        work_dir: &Path,
        job: &JobHandles,
    ) -> Result<(Option<CoverMeta>, Option<PreviewMeta>), JobError> {
        if spec.extras.is_default() {
            return Ok((None, None));
        }
        *job.stage.lock().expect("not poisoned") = "extras";
        let started = Instant::now();
        let reader = SourceReader::new(
            self.storage.clone(),
            &spec.source_key,
            info,
            tokio::runtime::Handle::current(),
            &work_dir.join("extras"),
        )?;
        let (extras, control) = (spec.extras.clone(), Arc::clone(&job.control));
        let span = tracing::Span::current();
        let made = tokio::task::spawn_blocking(move || {
            let _job = span.enter();
            panics_fail_the_job(|| make_extras(reader, &extras, control))
        })
        .await
        .unwrap_or_else(|e| Err(JobError::retryable(format!("internal error: the extras task failed ({e})"))))?;
        let sink = Sink::Bucket(self.storage.clone());
        let immutable = CachePolicy::Immutable.header_value();
        for (file, bytes) in made.files() {
            let key = format!("{}{}", spec.output_prefix, file.relative_path());
            sink.put(&key, Bytes::copy_from_slice(bytes), file.content_type(), immutable).await?;
        }
        let (cover, preview) = (made.cover.map(|c| c.meta), made.preview.map(|p| p.meta));
        tracing::info!(?cover, ?preview, elapsed_ms = started.elapsed().as_millis() as u64, "extras made");
        Ok((cover, preview))
    }

    /// How the pipeline runs this lease: a chunk task as its spec says; a
    /// whole job in one pass, or (when the service may split it) asking the
    /// service once the source is probed, on the pipeline's thread: a source
    /// at least `chunk_from_s` long is planned as chunk tasks and this lease
    /// runs task 0; a shorter one, a refusal or an older service (404) means
    /// one pass.
    fn mode(&self, spec: &JobSpec, stages: &Stages) -> Mode {
        if let Some(chunk) = &spec.chunk {
            log_chunk_started(chunk, spec.attempt);
            return Mode::Chunk(chunk.clone());
        }
        let Some(from_s) = spec.chunk_from_s else { return Mode::Whole };
        let (api, handle, job_id, stages, attempt) =
            (self.api.clone(), tokio::runtime::Handle::current(), spec.job_id.clone(), stages.clone(), spec.attempt);
        let (lease_id, video) = (spec.lease_id.clone(), JobVideo::of(spec));
        Mode::Decide(Box::new(move |source: &ChunkSource| {
            if source.duration_s < from_s {
                return Ok(None);
            }
            let req = PlanRequest { lease_id, video, source: source.clone() };
            match handle.block_on(api.plan(&job_id, &req)) {
                Ok(Some(chunk)) => {
                    tracing::info!(
                        chunks = chunk.count,
                        duration_s = source.duration_s,
                        elapsed_ms = stages.elapsed_ms(),
                        "job planned"
                    );
                    log_chunk_started(&chunk, attempt);
                    Ok(Some(chunk))
                }
                Ok(None) => {
                    tracing::info!(duration_s = source.duration_s, "the video service did not split the job; one pass");
                    Ok(None)
                }
                Err(CallError::LeaseLost(_)) => Err(JobError::LeaseLost),
                Err(e @ CallError::Refused { .. }) => {
                    tracing::warn!(error = %e, "planning chunks was refused; one pass");
                    Ok(None)
                }
                Err(e) => Err(JobError::retryable(format!("the video service could not plan the chunks: {e}"))),
            }
        }))
    }
}

/// The log line the benchmarks and the reliability run look for.
fn log_chunk_started(chunk: &media_core::video::chunks::ChunkSpec, attempt: u32) {
    tracing::info!(
        chunk = chunk.index,
        count = chunk.count,
        attempt,
        start_frame = chunk.start_frame,
        end_frame = chunk.end_frame,
        audio = chunk.audio,
        "chunk started"
    );
}

/// A folder of the work directory, removed with everything in it when dropped.
struct RemovedOnDrop(std::path::PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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

#[cfg(test)]
mod tests;
