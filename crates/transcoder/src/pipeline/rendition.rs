//! The audio rendition of a chunked job: the whole source's AAC in an
//! audio-only fMP4 of its own (`audio/init.mp4`, `audio/{seq}.m4s`), made by
//! chunk 0's task while the chunks' video renditions are video only. It is
//! cut where a single pass cuts the audio inside each muxed segment: at the
//! sample where video segment `seq` ends (on the same shifted clock, so the
//! renditions stay in sync as the muxed tracks do), and only when the video
//! has a segment after it; the audio past the video's last segment start
//! goes into the last segment, as in a single pass.

use std::collections::VecDeque;

use media_core::video::ladder::{LadderPlan, AUDIO};
use tokio::sync::mpsc::Sender;

use super::audio::AudioPacket;
use super::fmp4::SegmentWriter;
use super::Produced;
use crate::error::JobError;

/// Segments the audio-only rendition as the audio and the video's position come in.
pub struct AudioRendition {
    writer: SegmentWriter,
    plan: LadderPlan,
    /// x264's reordering delay in frames: the video's timeline starts this late.
    video_shift: u64,
    /// Samples added to audio timestamps so the first is 0 (the AAC priming).
    audio_shift: i64,
    seq: u32,
    /// Where the current segment started, in shifted samples.
    seg_start: i64,
    /// The end of the last packet written, in shifted samples.
    written_to: i64,
    queue: VecDeque<AudioPacket>,
    /// Output frames the video is known to have, at least.
    video_frames: u64,
    video_ended: bool,
    events: Sender<Produced>,
}

impl AudioRendition {
    /// Opens the writer and sends the rendition's init segment.
    pub fn start(
        params: ffmpeg_next::codec::Parameters,
        plan: &LadderPlan,
        delay_frames: u32,
        priming: i64,
        events: &Sender<Produced>,
    ) -> Result<Self, JobError> {
        let writer = SegmentWriter::audio_only(params)?;
        send(events, Produced::AudioInit { bytes: writer.init.clone() })?;
        Ok(Self {
            writer,
            plan: plan.clone(),
            video_shift: u64::from(delay_frames),
            audio_shift: priming,
            seq: 0,
            seg_start: 0,
            written_to: 0,
            queue: VecDeque::new(),
            video_frames: 0,
            video_ended: false,
            events: events.clone(),
        })
    }

    /// Shifted samples at which video frame `frame` plays.
    fn samples_at(&self, frame: u64) -> i64 {
        let fps = self.plan.frame_rate;
        let (num, den) = (i64::from(fps.num.max(1)), i64::from(fps.den));
        ((frame + self.video_shift) as i64 * i64::from(AUDIO.sample_rate) * den + num / 2) / num
    }

    /// Encoded audio, in order.
    pub fn audio(&mut self, packets: Vec<AudioPacket>) -> Result<(), JobError> {
        self.queue.extend(packets);
        self.drain()
    }

    /// The video has at least `frames` output frames.
    pub fn video_reaches(&mut self, frames: u64) -> Result<(), JobError> {
        if frames > self.video_frames {
            self.video_frames = frames;
            self.drain()?;
        }
        Ok(())
    }

    /// Writes what can be written, cutting at every segment end the video has passed.
    fn drain(&mut self) -> Result<(), JobError> {
        while let Some(front) = self.queue.front() {
            let end_frame = self.plan.segment_end_frame(self.seq);
            let cut = self.samples_at(end_frame);
            if front.pts + self.audio_shift < cut || (self.video_ended && self.video_frames <= end_frame) {
                let mut a = self.queue.pop_front().expect("checked");
                a.pts += self.audio_shift;
                a.dts += self.audio_shift;
                self.written_to = self.written_to.max(a.pts + a.duration);
                self.writer.write_audio(&a)?;
            } else if self.video_frames > end_frame {
                let bytes = self.writer.cut()?;
                let duration_s = (cut - self.seg_start) as f64 / f64::from(AUDIO.sample_rate);
                send(&self.events, Produced::AudioSegment { seq: self.seq, duration_s, bytes })?;
                self.seq += 1;
                self.seg_start = cut;
            } else {
                return Ok(()); // wait until the video says whether a segment follows
            }
        }
        Ok(())
    }

    /// The last audio is in and the video has `frames` output frames:
    /// writes the rest and the last segment. Returns the segments written.
    pub fn finish(mut self, frames: u64) -> Result<u32, JobError> {
        self.video_frames = frames;
        self.video_ended = true;
        self.drain()?;
        let duration_s = (self.written_to - self.seg_start).max(0) as f64 / f64::from(AUDIO.sample_rate);
        let seq = self.seq;
        let bytes = self.writer.finish()?;
        if !bytes.is_empty() {
            send(&self.events, Produced::AudioSegment { seq, duration_s, bytes })?;
            return Ok(seq + 1);
        }
        Ok(seq)
    }
}

fn send(events: &Sender<Produced>, p: Produced) -> Result<(), JobError> {
    events.blocking_send(p).map_err(|_| JobError::Stopped)
}
