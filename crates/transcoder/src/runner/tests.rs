//! The runner's lease, grace-period and time-limit rules against the
//! in-memory API on tokio's paused clock: what the end-to-end tests show
//! with real seconds, here deterministic and instant.

use std::future::pending;

use media_core::ids::{AppId, JobId, LeaseId, VideoId};
use media_core::keys::OutputId;
use media_core::video::chunks::ChunkSpec;
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
        playback: Default::default(),
        extras: Default::default(),
        chunk: None,
        chunk_from_s: None,
    }
}

fn result() -> JobResult {
    JobResult { duration_s: 1.0, ..Default::default() }
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
        pending::<Result<JobResult, JobError>>().await
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
    assert!(refused_at.elapsed() <= BEAT, "stopped at the first refused heartbeat, {:?} after", refused_at.elapsed());
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
    assert!(took > Duration::from_secs(9) && took <= Duration::from_secs(11), "stopped after {took:?} (lease 10 s)");
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
    let outcome = timeout(Duration::from_secs(2), &mut supervised).await.expect("handed back once the grace is over");
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
    let message = "processing stopped after 640 s, the time limit for this video; the file may be damaged or crafted";
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

fn source(duration_s: f64) -> ChunkSource {
    let plan = media_core::video::ladder::plan_ladder(
        &media_core::video::ladder::SourceVideo {
            width: 640,
            height: 360,
            sample_aspect: media_core::video::ladder::Rational::new(1, 1),
            rotation: 0,
            frame_rate: media_core::video::ladder::Rational::new(30, 1),
        },
        &LadderOptions::default(),
    )
    .expect("a plan");
    let geometry = media_core::video::chunks::ChunkGeometry::of_plan(&plan, (duration_s * 30.0) as u64);
    ChunkSource { geometry, t0_s: 0.0, duration_s, has_audio: true, rungs: plan.rungs }
}

/// Runs the decision a whole-job lease makes once the source is probed, on
/// a blocking thread as the pipeline does.
async fn decide(
    runner: &Runner<MemoryVideoApi>,
    spec: &JobSpec,
    probed: ChunkSource,
) -> Result<Option<ChunkSpec>, JobError> {
    let Mode::Decide(decide) = runner.mode(spec, &Stages::default()) else {
        panic!("a whole job that may be split decides")
    };
    tokio::task::spawn_blocking(move || decide(&probed)).await.expect("no panic")
}

/// A whole-job lease that may be split asks the service once the source is
/// probed, and only when it is at least `chunk_from_s` long: the plan call
/// carries the lease and the probe; the answer is the chunk this lease runs.
/// A refusal, or no split, is one pass; a lost lease stops the job.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_source_is_planned_as_chunks_after_the_probe() {
    let (runner, api) = runner(&[]);
    let mut spec = spec(Duration::from_secs(30));
    assert!(matches!(runner.mode(&spec, &Stages::default()), Mode::Whole), "no chunk_from_s: one pass, no question");
    spec.chunk_from_s = Some(120.0);
    assert_eq!(decide(&runner, &spec, source(119.0)).await, Ok(None));
    assert!(api.state().plans.is_empty(), "a short source is not planned");

    let probed = source(600.0);
    let chunk = ChunkSpec {
        index: 0,
        count: 20,
        start_frame: 0,
        end_frame: Some(315),
        first_seq: 0,
        t0_s: 0.0,
        geometry: probed.geometry,
        audio: true,
    };
    api.state().plan_answer = Ok(Some(chunk.clone()));
    assert_eq!(decide(&runner, &spec, probed.clone()).await, Ok(Some(chunk.clone())));
    let plans = api.state().plans.clone();
    assert_eq!(plans.len(), 1);
    assert_eq!((&plans[0].lease_id, &plans[0].source), (&spec.lease_id, &probed));

    api.state().plan_answer = Err(CallError::Refused { status: 400, message: "no".into() });
    assert_eq!(decide(&runner, &spec, probed.clone()).await, Ok(None), "refused: one pass");
    api.state().plan_answer = Err(CallError::LeaseLost("taken".into()));
    assert_eq!(decide(&runner, &spec, probed.clone()).await, Err(JobError::LeaseLost));
    api.state().plan_answer = Err(CallError::Transient("down".into()));
    assert!(matches!(decide(&runner, &spec, probed).await, Err(JobError::Retryable(_))));

    // A chunk task leased as such runs its chunk without asking.
    spec.chunk = Some(chunk.clone());
    assert!(matches!(runner.mode(&spec, &Stages::default()), Mode::Chunk(c) if c == chunk));
}

/// A chunk task's heartbeats carry how many of its segments are stored.
#[tokio::test(start_paused = true)]
async fn a_chunk_tasks_heartbeats_carry_its_published_segments() {
    let (runner, api) = runner(&[]);
    let job = JobHandles::default();
    let (_, shutdown) = watch::channel(false);
    let spec = spec(Duration::from_secs(30));
    let supervised = runner.supervise(&spec, &job, until_stopped(&job.control), shutdown);
    tokio::pin!(supervised);
    assert!(timeout(Duration::from_millis(1500), &mut supervised).await.is_err());
    assert!(api.state().heartbeats.iter().all(|b| b.published_segments.is_none()), "a whole job sends none");
    job.published.set_for_test(4, Some(6));
    assert!(timeout(Duration::from_secs(2), &mut supervised).await.is_err());
    let last = api.state().heartbeats.last().cloned().expect("heartbeats");
    assert_eq!((last.published_segments, last.published_audio_segments), (Some(4), Some(6)));
}

/// A chunk task completes with its report and no ladder result.
#[tokio::test(start_paused = true)]
async fn a_chunk_task_completes_with_its_report() {
    let (runner, api) = runner(&[]);
    let job = JobHandles::default();
    let (_, shutdown) = watch::channel(false);
    let report =
        media_core::video::chunks::ChunkReport { frames: 900, segments: 8, poster: false, ..Default::default() };
    let work = {
        let report = report.clone();
        async move { Ok::<_, JobError>(Finished::Chunk(report)) }
    };
    assert_eq!(ends(runner.supervise(&spec(Duration::from_secs(30)), &job, work, shutdown)).await, Outcome::Done);
    let state = api.state();
    assert_eq!(state.completed.len(), 1);
    assert_eq!(state.completed[0].chunk, Some(report));
    assert_eq!(state.completed[0].result, JobResult::default());
}

/// After a long-poll answers no job, the next one is asked for at once:
/// no pause in which a queued job would wait for this transcoder.
#[tokio::test(start_paused = true)]
async fn the_lease_long_poll_is_asked_again_at_once_after_no_job() {
    let (runner, api) = runner(&[("LEASE_WAIT_MS", "20000")]);
    let (stop, shutdown) = watch::channel(false);
    let started = tokio::time::Instant::now();
    let slot = tokio::spawn({
        let runner = runner.clone();
        async move { runner.slot(0, shutdown).await }
    });
    sleep(Duration::from_secs(70)).await;
    stop.send(true).expect("the slot listens");
    timeout(Duration::from_secs(30), slot).await.expect("the slot stops").expect("no panic");
    let leases = api.state().leases.clone();
    let at: Vec<u64> = leases.iter().map(|t| t.duration_since(started).as_millis() as u64).collect();
    assert_eq!(at, [0, 20_000, 40_000, 60_000], "each long-poll follows the last without a pause");
}

#[tokio::test(start_paused = true)]
async fn an_idle_transcoder_takes_back_its_lease_request_and_stops_at_once() {
    let work = tempfile::tempdir().expect("a temporary folder");
    let dir = work.path().to_str().expect("a UTF-8 path").to_owned();
    let (runner, api) = runner(&[("LEASE_WAIT_MS", "20000"), ("WORK_DIR", &dir)]);
    let (stop, shutdown) = watch::channel(false);
    let running = tokio::spawn(async move { runner.run(shutdown).await });
    sleep(Duration::from_secs(1)).await;
    assert_eq!(api.state().leases.len(), 1, "the slot's lease request waits");
    let asked = tokio::time::Instant::now();
    stop.send(true).expect("the runner listens");
    timeout(Duration::from_secs(60), running).await.expect("it stops").expect("no panic");
    // Without the withdraw it would wait out the request's 20 s, and a job
    // queued meanwhile would be leased to a transcoder that has gone.
    assert!(asked.elapsed() < Duration::from_secs(1), "stopped {:?} after the signal", asked.elapsed());
    assert_eq!(api.state().withdrawals, 1);
    assert_eq!(api.state().leases.len(), 1, "no lease asked after the signal");
}

#[tokio::test(start_paused = true)]
async fn a_lease_request_that_failed_here_is_taken_back_before_the_next() {
    // Its answer was lost (a timeout, a dropped connection) but the service
    // may still hold it as a waiter, which would be granted the next job.
    let work = tempfile::tempdir().expect("a temporary folder");
    let dir = work.path().to_str().expect("a UTF-8 path").to_owned();
    let (runner, api) = runner(&[("LEASE_WAIT_MS", "20000"), ("WORK_DIR", &dir)]);
    api.state().lease_errors.push_back(CallError::Transient("operation timed out".into()));
    let (stop, shutdown) = watch::channel(false);
    let running = tokio::spawn(async move { runner.run(shutdown).await });
    sleep(Duration::from_secs(5)).await;
    assert_eq!(api.state().withdrawals, 1, "taken back once");
    assert_eq!(api.state().leases.len(), 2, "then the slot asks again, after its backoff");
    stop.send(true).expect("the runner listens");
    timeout(Duration::from_secs(60), running).await.expect("it stops").expect("no panic");
}
