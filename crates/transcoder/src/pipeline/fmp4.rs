//! Packaging one rung as CMAF-style fragmented MP4 for HLS: libav's mp4
//! muxer writes into memory; the header is the init segment, and every
//! explicit flush (`frag_custom`) closes one media segment whose bytes are
//! taken as they are. Segment boundaries are decided by the caller.

use std::io::Write;
use std::sync::{Arc, Mutex};

use ff::format::context::{Output, StreamIo};
use ffmpeg_next as ff;

use super::audio::AudioPacket;
use crate::error::JobError;

/// A `Write` that appends to a buffer the writer can take from.
#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Vec<u8>>>);

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn err(e: ff::Error, what: &str) -> JobError {
    JobError::retryable(format!("packaging {what}: {e}"))
}

pub struct SegmentWriter {
    octx: Output,
    memory: Memory,
    video: usize,
    audio: Option<usize>,
    video_from: ff::Rational,
    video_to: ff::Rational,
    audio_to: ff::Rational,
    /// `ftyp` + `moov`: the rung's init segment.
    pub init: Vec<u8>,
}

/// AAC packets count samples at 48 kHz.
const AUDIO_TB: ff::Rational = ff::Rational(1, media_core::video::ladder::AUDIO.sample_rate as i32);

impl SegmentWriter {
    /// `video_tb` is the encoder's time base; `audio` the shared AAC parameters.
    pub fn new(
        video: &ff::encoder::Video,
        video_tb: ff::Rational,
        audio: Option<ff::codec::Parameters>,
    ) -> Result<Self, JobError> {
        let memory = Memory::default();
        let io = StreamIo::from_write(memory.clone()).map_err(|e| err(e, "I/O"))?;
        let mut octx = ff::format::output_to_stream(io, None, Some("mp4")).map_err(|e| err(e, "muxer"))?;
        {
            let mut vs = octx.add_stream(ff::encoder::find(ff::codec::Id::H264)).map_err(|e| err(e, "video stream"))?;
            vs.set_parameters(video);
            vs.set_time_base(video_tb);
        }
        let audio_index = match audio {
            Some(params) => {
                let mut s =
                    octx.add_stream(ff::encoder::find(ff::codec::Id::AAC)).map_err(|e| err(e, "audio stream"))?;
                s.set_parameters(params);
                s.set_time_base(AUDIO_TB);
                Some(1)
            }
            None => None,
        };
        let mut opts = ff::Dictionary::new();
        // An empty moov makes the header a self-contained init segment; each
        // flush then writes one moof+mdat with default-base-is-moof. (The
        // `cmaf` flag is left out on purpose: it re-times the first sample of
        // a track from its B-frame pattern, which differs between rungs and
        // would misalign their timelines.)
        opts.set("movflags", "+frag_custom+empty_moov+default_base_moof+skip_trailer");
        octx.write_header_with(opts).map_err(|e| err(e, "header"))?;
        let video_to = octx.stream(0).expect("added above").time_base();
        let audio_to = audio_index.and_then(|i| octx.stream(i)).map_or(AUDIO_TB, |s| s.time_base());
        let mut w = Self {
            octx,
            memory,
            video: 0,
            audio: audio_index,
            video_from: video_tb,
            video_to,
            audio_to,
            init: Vec::new(),
        };
        w.init = w.take();
        if w.init.is_empty() {
            return Err(JobError::retryable("packaging: the muxer wrote no init segment"));
        }
        Ok(w)
    }

    fn take(&mut self) -> Vec<u8> {
        // SAFETY: the output context owns a valid AVIOContext (`pb`) for its whole life.
        unsafe { ff::ffi::avio_flush((*self.octx.as_mut_ptr()).pb) };
        std::mem::take(&mut *self.memory.0.lock().expect("not poisoned"))
    }

    pub fn write_video(&mut self, packet: &mut ff::Packet) -> Result<(), JobError> {
        packet.rescale_ts(self.video_from, self.video_to);
        packet.set_stream(self.video);
        packet.set_position(-1);
        packet.write(&mut self.octx).map(|_| ()).map_err(|e| err(e, "video packet"))
    }

    pub fn write_audio(&mut self, p: &AudioPacket) -> Result<(), JobError> {
        let Some(index) = self.audio else { return Ok(()) };
        let mut packet = ff::Packet::copy(&p.data);
        packet.set_pts(Some(p.pts));
        packet.set_dts(Some(p.dts));
        packet.set_duration(p.duration);
        packet.set_flags(ff::packet::Flags::KEY);
        packet.rescale_ts(AUDIO_TB, self.audio_to);
        packet.set_stream(index);
        packet.write(&mut self.octx).map(|_| ()).map_err(|e| err(e, "audio packet"))
    }

    /// Closes the current fragment and returns its bytes (one media segment).
    pub fn cut(&mut self) -> Result<Vec<u8>, JobError> {
        // SAFETY: a NULL packet asks a frag_custom muxer to flush its fragment.
        let r = unsafe { ff::ffi::av_write_frame(self.octx.as_mut_ptr(), std::ptr::null_mut()) };
        if r < 0 {
            return Err(err(ff::Error::from(r), "fragment flush"));
        }
        Ok(self.take())
    }

    /// Closes the last fragment and the muxer.
    pub fn finish(mut self) -> Result<Vec<u8>, JobError> {
        let last = self.cut()?;
        self.octx.write_trailer().map_err(|e| err(e, "trailer"))?;
        Ok(last)
    }
}
