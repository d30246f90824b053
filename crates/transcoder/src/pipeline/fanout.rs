//! The rungs' threads and what feeds them: frames go to the top rung (each
//! rung passes its scaled frames to the one below, [`RungFrame`]), audio to every rung.
//! A rung that stops early hangs up its channel; a send then returns false,
//! and joining reports that rung's own error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

use tokio::sync::mpsc::Sender;

use super::audio::{AudioPacket, SharedAudio};
use super::rung::{self, ChunkPlace, RungInput, RungJob, RungReport, RungSettings};
use super::{Control, Produced, RungFrame};
use crate::error::JobError;

/// The running rungs of one ladder.
pub struct Fanout<'scope> {
    senders: Vec<SyncSender<RungInput>>,
    handles: Vec<ScopedJoinHandle<'scope, Result<RungReport, JobError>>>,
}

/// What every rung thread is started with.
pub struct RungStart<'a> {
    pub settings: &'a RungSettings<'a>,
    pub audio: Option<ffmpeg_next::codec::Parameters>,
    pub events: &'a Sender<Produced>,
    pub counters: &'a [Arc<AtomicU64>],
    pub control: &'a Arc<Control>,
    pub delay_frames: u32,
    pub audio_priming: i64,
    pub frame_queue: usize,
    /// A chunk's place in the whole video (`None`: a single pass).
    pub chunk: Option<ChunkPlace>,
}

impl<'scope> Fanout<'scope> {
    /// Starts one thread per rung of the plan inside `scope`.
    pub fn start<'env>(scope: &'scope Scope<'scope, 'env>, s: &'scope RungStart<'scope>) -> Result<Self, JobError>
    where
        'env: 'scope,
    {
        let rungs = &s.settings.plan.rungs;
        let (senders, receivers): (Vec<SyncSender<RungInput>>, Vec<_>) =
            rungs.iter().map(|_| sync_channel::<RungInput>(s.frame_queue.max(1))).unzip();
        let mut handles = Vec::new();
        for ((i, rung), rx) in rungs.iter().enumerate().zip(receivers) {
            let next = senders.get(i + 1).cloned();
            let (events, done, control, audio) =
                (s.events.clone(), Arc::clone(&s.counters[i]), Arc::clone(s.control), s.audio.clone());
            let (settings, delay, priming, chunk) = (s.settings, s.delay_frames, s.audio_priming, s.chunk);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("rung-{}", rung.name.as_str()))
                    .spawn_scoped(scope, move || {
                        rung::run(RungJob {
                            index: i,
                            rung,
                            settings,
                            audio,
                            input: rx,
                            next,
                            events: &events,
                            frames_done: &done,
                            cancel: &control.cancel,
                            expected_delay: delay,
                            audio_priming: priming,
                            chunk,
                        })
                    })
                    .map_err(|e| JobError::retryable(format!("starting an encoder thread: {e}")))?,
            );
        }
        Ok(Self { senders, handles })
    }

    /// Frame `n` of the constant-rate output, to the top rung.
    pub fn frame(&self, frame: RungFrame) -> bool {
        self.senders.first().is_some_and(|tx| tx.send(RungInput::Frame(frame)).is_ok())
    }

    /// No more input for any rung: each finishes its last segment now (a
    /// chunk's task then still reads the file on for the audio rendition).
    pub fn close_input(&mut self) {
        self.senders.clear();
    }

    /// Encoded audio, to every rung.
    pub fn audio(&self, packets: Vec<AudioPacket>) -> bool {
        if packets.is_empty() {
            return true;
        }
        let shared: SharedAudio = Arc::new(packets);
        self.senders.iter().all(|tx| tx.send(RungInput::Audio(Arc::clone(&shared))).is_ok())
    }

    /// No more audio will come.
    pub fn audio_end(&self) -> bool {
        self.senders.iter().all(|tx| tx.send(RungInput::AudioEnd).is_ok())
    }

    /// Hangs up and waits for every rung; the first real error wins over the
    /// hang-ups it caused, and a cancelled job is a lost lease.
    pub fn join(self, control: &Control) -> Result<Vec<RungReport>, JobError> {
        drop(self.senders);
        let mut reports = Vec::new();
        let mut first_error: Option<JobError> = None;
        for h in self.handles {
            match h.join() {
                Ok(Ok(r)) => reports.push(r),
                Ok(Err(e)) => {
                    // A rung that only stopped because another did yields to that one's error.
                    if first_error.as_ref().is_none_or(|f| matches!(f, JobError::LeaseLost | JobError::Stopped)) {
                        first_error = Some(e);
                    }
                }
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    first_error = Some(JobError::retryable(format!("an encoder thread crashed: {msg}")));
                }
            }
        }
        if control.cancel.load(Ordering::Relaxed) {
            return Err(JobError::LeaseLost);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(reports),
        }
    }
}
