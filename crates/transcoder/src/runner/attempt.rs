//! The states of one attempt at a job, from the lease until the video
//! service has its result, as a plain state machine: the runner's loop
//! (`Runner::attempt`) feeds it what happened (a heartbeat tick and its
//! answer, the work's end, shutdown, the grace period's end) and does what
//! it answers (beat, stop the pipeline, report, hand back). No I/O and no
//! clock of its own: every instant is passed in, so the rules are tested
//! here with plain values.
//!
//! ```text
//! Working ──shutdown──▶ Grace ──grace over──▶ HandingBack
//!    │                    │                       │
//!    └──── work done ─────┴───────────────────────┴──▶ Reporting ──report answered──▶ end
//! ```
//! Before `Reporting`, a tick past the time limit or past the lease's end on
//! this machine's clock, or a refused heartbeat, stops the pipeline and ends
//! the attempt. In `Reporting` the ladder is published: ticks only beat, and
//! a refused heartbeat only stops the beating (the report decides the end).

use std::time::Duration;

use media_core::video::job::JobResult;
use tokio::time::Instant;

use crate::error::JobError;

/// Where the attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading, encoding and publishing, under heartbeats.
    Working,
    /// Shutdown was asked: the work may go on until `until`.
    Grace { until: Instant },
    /// The grace period ran out and the pipeline was told to stop; its
    /// lost-lease end means the job is handed back.
    HandingBack,
    /// The ladder is published and the result is being reported.
    /// `beating` until a heartbeat is refused; `handed_back` when the grace
    /// period had run out before the work ended.
    Reporting { beating: bool, handed_back: bool },
}

/// What a heartbeat tick asks of the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// Send a heartbeat.
    Beat,
    /// Stop the pipeline, wait for it to unwind, and end with this.
    Stop(JobError),
}

/// What a heartbeat's answer means for the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beaten {
    /// Go on (the lease was extended, or the call failed and is tried next tick).
    Go,
    /// The lease is gone while the result is being reported: stop beating, let the report end it.
    StopBeating,
    /// The lease is gone: stop the pipeline and end with [`JobError::LeaseLost`].
    Stop,
}

/// What the end of the work asks of the loop.
#[derive(Debug, PartialEq)]
pub enum WorkEnded<R = JobResult> {
    /// Report this result (a ladder's, or a chunk's) to the video service.
    Report(R),
    /// The attempt ends with this.
    End(Result<(), JobError>),
}

/// One attempt's state: its phase, when it started, and when its lease runs
/// out on this machine's clock.
#[derive(Debug)]
pub struct Attempt {
    phase: Phase,
    started: Instant,
    lease_until: Instant,
    grace: Duration,
    told_playable: bool,
    shutdown_watched: bool,
}

impl Attempt {
    /// An attempt started at `now` whose lease runs out at `lease_until`;
    /// `shutting_down` when shutdown was asked before it started (the grace
    /// period starts at once).
    pub fn new(now: Instant, lease_until: Instant, grace: Duration, shutting_down: bool) -> Self {
        let phase = if shutting_down { Phase::Grace { until: now + grace } } else { Phase::Working };
        Self { phase, started: now, lease_until, grace, told_playable: false, shutdown_watched: true }
    }

    #[cfg(test)]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The work is still running (not yet reporting).
    pub fn working(&self) -> bool {
        !matches!(self.phase, Phase::Reporting { .. })
    }

    /// Heartbeats are due.
    pub fn beating(&self) -> bool {
        !matches!(self.phase, Phase::Reporting { beating: false, .. })
    }

    /// Shutdown matters only while working without a grace period yet.
    pub fn watches_shutdown(&self) -> bool {
        self.shutdown_watched && self.phase == Phase::Working
    }

    /// When the grace period runs out, while it runs.
    pub fn grace_until(&self) -> Option<Instant> {
        match self.phase {
            Phase::Grace { until } => Some(until),
            _ => None,
        }
    }

    /// The service has not been told that players can start yet.
    pub fn playable_untold(&self) -> bool {
        !self.told_playable
    }

    /// Players can start: the next heartbeat says so at once.
    pub fn on_playable(&mut self) {
        self.told_playable = true;
    }

    /// A heartbeat tick at `now`, with the job's time limit `limit`.
    pub fn on_tick(&self, now: Instant, limit: Duration) -> Tick {
        if matches!(self.phase, Phase::Reporting { .. }) {
            return Tick::Beat;
        }
        if now.duration_since(self.started) > limit {
            return Tick::Stop(JobError::permanent(format!(
                "processing stopped after {} s, the time limit for this video; the file may be damaged or crafted",
                limit.as_secs()
            )));
        }
        if now > self.lease_until {
            return Tick::Stop(JobError::LeaseLost);
        }
        Tick::Beat
    }

    /// A heartbeat's answer: `Ok(Some(until))` the lease was extended until
    /// then (on this machine's clock), `Ok(None)` the call failed and is
    /// tried next tick, `Err(())` the lease is gone.
    pub fn on_beat(&mut self, answer: Result<Option<Instant>, ()>) -> Beaten {
        match (answer, &mut self.phase) {
            (Ok(Some(until)), _) => {
                self.lease_until = until;
                Beaten::Go
            }
            (Ok(None), _) => Beaten::Go,
            (Err(()), Phase::Reporting { beating, .. }) => {
                *beating = false;
                Beaten::StopBeating
            }
            (Err(()), _) => Beaten::Stop,
        }
    }

    /// Shutdown was asked at `now`: true when the grace period starts.
    pub fn on_shutdown(&mut self, now: Instant) -> bool {
        if self.phase != Phase::Working {
            return false;
        }
        self.phase = Phase::Grace { until: now + self.grace };
        true
    }

    /// Whoever asks for shutdown has gone: nothing will ask any more.
    pub fn on_shutdown_gone(&mut self) {
        self.shutdown_watched = false;
    }

    /// The grace period ran out: true when the pipeline must be stopped to
    /// hand the job back (a job already reporting its result goes on).
    pub fn on_grace_over(&mut self) -> bool {
        if !matches!(self.phase, Phase::Grace { .. }) {
            return false;
        }
        self.phase = Phase::HandingBack;
        true
    }

    /// The work ended with `result`.
    pub fn on_work_ended<R>(&mut self, result: Result<R, JobError>) -> WorkEnded<R> {
        let handed_back = self.phase == Phase::HandingBack;
        match result {
            Ok(result) => {
                self.phase = Phase::Reporting { beating: true, handed_back };
                WorkEnded::Report(result)
            }
            Err(JobError::LeaseLost) if handed_back => WorkEnded::End(Err(JobError::ShuttingDown)),
            Err(e) => WorkEnded::End(Err(e)),
        }
    }

    /// The report of the result was answered: how the attempt ends.
    pub fn on_report_ended(&self, reported: Result<(), JobError>) -> Result<(), JobError> {
        match (reported, self.phase) {
            (Err(JobError::LeaseLost), Phase::Reporting { handed_back: true, .. }) => Err(JobError::ShuttingDown),
            (other, _) => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(30);
    const LIMIT: Duration = Duration::from_secs(600);

    fn result() -> JobResult {
        JobResult { duration_s: 1.0, ..Default::default() }
    }

    fn fresh() -> (Attempt, Instant) {
        let t0 = Instant::now();
        (Attempt::new(t0, t0 + Duration::from_secs(30), GRACE, false), t0)
    }

    #[test]
    fn a_tick_beats_until_the_time_limit_or_the_lease_end_stops_the_work() {
        let (mut a, t0) = fresh();
        assert_eq!(a.on_tick(t0 + Duration::from_secs(10), LIMIT), Tick::Beat);
        // No heartbeat got through for 30 s: the lease ran out on our clock.
        assert_eq!(a.on_tick(t0 + Duration::from_secs(31), LIMIT), Tick::Stop(JobError::LeaseLost));
        // One that got through moves the lease's end.
        assert_eq!(a.on_beat(Ok(Some(t0 + Duration::from_secs(60)))), Beaten::Go);
        assert_eq!(a.on_tick(t0 + Duration::from_secs(31), LIMIT), Tick::Beat);
        // A failed call changes nothing.
        assert_eq!(a.on_beat(Ok(None)), Beaten::Go);
        assert_eq!(a.on_tick(t0 + Duration::from_secs(59), LIMIT), Tick::Beat);
        // The time limit is checked first, with a message for the uploader.
        match a.on_tick(t0 + Duration::from_secs(61), Duration::from_secs(60)) {
            Tick::Stop(JobError::Permanent(m)) => assert!(m.contains("after 60 s, the time limit"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refused_heartbeat_stops_the_work_but_only_the_beating_while_reporting() {
        let (mut a, _) = fresh();
        assert_eq!(a.on_beat(Err(())), Beaten::Stop);
        assert!(a.beating());
        let (mut a, t0) = fresh();
        assert_eq!(a.on_work_ended(Ok(result())), WorkEnded::Report(result()));
        assert!(!a.working());
        // Reporting: neither the time limit nor the lease clock stop anything.
        assert_eq!(a.on_tick(t0 + Duration::from_secs(3600), LIMIT), Tick::Beat);
        assert_eq!(a.on_beat(Err(())), Beaten::StopBeating);
        assert!(!a.beating());
        assert_eq!(a.on_report_ended(Err(JobError::LeaseLost)), Err(JobError::LeaseLost));
        assert_eq!(a.on_report_ended(Ok(())), Ok(()));
    }

    #[test]
    fn shutdown_gives_a_grace_period_then_hands_the_job_back() {
        let (mut a, t0) = fresh();
        assert!(a.watches_shutdown());
        assert!(!a.on_grace_over(), "no grace period runs yet");
        assert!(a.on_shutdown(t0 + Duration::from_secs(5)));
        assert_eq!(a.grace_until(), Some(t0 + Duration::from_secs(35)));
        assert!(!a.watches_shutdown());
        assert!(!a.on_shutdown(t0 + Duration::from_secs(6)), "a second ask changes nothing");
        assert!(a.on_grace_over());
        assert_eq!(a.phase(), Phase::HandingBack);
        assert_eq!(a.grace_until(), None);
        // Heartbeats and limits still apply while the pipeline unwinds.
        assert!(a.beating());
        assert_eq!(a.on_beat(Err(())), Beaten::Stop);
        // The pipeline stopped: a lost-lease end is a hand-back; other errors stay.
        assert_eq!(a.on_work_ended::<JobResult>(Err(JobError::LeaseLost)), WorkEnded::End(Err(JobError::ShuttingDown)));
        let (mut b, t0) = fresh();
        b.on_shutdown(t0);
        b.on_grace_over();
        let bad = JobError::permanent("bad");
        assert_eq!(b.on_work_ended::<JobResult>(Err(bad.clone())), WorkEnded::End(Err(bad)));
    }

    #[test]
    fn a_job_done_within_the_grace_period_is_reported_and_no_longer_handed_back() {
        let (mut a, t0) = fresh();
        a.on_shutdown(t0);
        assert_eq!(a.on_work_ended(Ok(result())), WorkEnded::Report(result()));
        assert_eq!(a.phase(), Phase::Reporting { beating: true, handed_back: false });
        assert!(!a.on_grace_over(), "the grace period no longer counts once the ladder is published");
        assert_eq!(a.on_report_ended(Ok(())), Ok(()));
        // Ended after the grace period ran out, a report refused as lost is still a hand-back.
        let (mut b, t0) = fresh();
        b.on_shutdown(t0);
        b.on_grace_over();
        assert_eq!(b.on_work_ended(Ok(result())), WorkEnded::Report(result()));
        assert_eq!(b.on_report_ended(Err(JobError::LeaseLost)), Err(JobError::ShuttingDown));
    }

    #[test]
    fn shutdown_asked_before_the_start_starts_the_grace_period_at_once() {
        let t0 = Instant::now();
        let mut a = Attempt::new(t0, t0 + Duration::from_secs(30), GRACE, true);
        assert_eq!(a.grace_until(), Some(t0 + GRACE));
        assert!(!a.watches_shutdown());
        let (mut b, _) = fresh();
        b.on_shutdown_gone();
        assert!(!b.watches_shutdown());
        assert!(a.playable_untold());
        a.on_playable();
        assert!(!a.playable_untold());
    }
}
