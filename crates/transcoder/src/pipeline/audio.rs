//! The audio of the ladder, made once and shared by every rung: decode,
//! resample and downmix to stereo 48 kHz float, then encode AAC-LC in exact
//! 1024-sample frames. The first sample is aligned with the first video
//! frame (trimmed, or padded with silence), so every rung starts in sync.
//!
//! Memory stays bounded whatever the file's timing: audio may start at most
//! a minute after the video (the silence before it is allocated), may be
//! stored at most a minute ahead of the video in the file, and when it falls
//! more than [`MAX_AUDIO_LAG_S`] behind the video while reading (it comes at
//! the end of a badly interleaved file, or never), the track is filled with
//! silence from there on instead of holding encoded video until it arrives.
//! The other way round, audio is encoded only up to [`AUDIO_TAIL_S`] past
//! the video read so far, and once it runs more than [`MAX_AUDIO_LEAD_S`]
//! ahead of it (the video has ended, or never catches up) the rest of the
//! source's audio is dropped unread, as late audio is; at the end, audio
//! past the video's last frame plus [`AUDIO_TAIL_S`] is cut.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use ff::format::sample::Type as SampleType;
use ff::format::Sample;
use ff::ChannelLayout;
use ffmpeg_next as ff;
use media_core::video::ladder::AUDIO;
use media_core::video::timeline::{
    check_audio_offset, AUDIO_TAIL_S, MAX_AUDIO_LAG_S, MAX_AUDIO_LEAD_S, MAX_TIMESTAMP_GAP_S,
};

use crate::error::JobError;

/// One encoded AAC packet; timestamps count samples at 48 kHz.
#[derive(Debug, Clone)]
pub struct AudioPacket {
    pub data: Bytes,
    pub pts: i64,
    pub dts: i64,
    pub duration: i64,
}

/// Decoder, resampler and encoder of the source's audio.
pub struct AudioTrack {
    decoder: ff::decoder::Audio,
    resampler: Option<(ff::software::resampling::Context, (Sample, u64, u32))>,
    encoder: ff::encoder::Audio,
    frame_size: usize,
    src_time_base: ff::Rational,
    /// Resampled samples waiting to be encoded, per channel.
    fifo: [VecDeque<f32>; 2],
    /// When the first buffered sample plays, in source seconds.
    first_sample_s: Option<f64>,
    /// The video's first frame time; encoding waits until it is known.
    video_start_s: Option<f64>,
    aligned: bool,
    next_pts: i64,
    /// Samples to add before the first one (negative: to drop), so that the
    /// first real sample plays with the first video frame in the packaged output.
    lead: i64,
    /// The encoder's priming samples: its first packet's pts is minus this.
    priming: i64,
    /// The source's audio was given up on (it lagged, or ran ahead, too
    /// far): silence fills the track and source packets are dropped.
    silent: bool,
    /// How far the video has been read, in seconds from its first frame;
    /// audio is encoded up to this plus [`AUDIO_TAIL_S`].
    video_s: f64,
    /// The most decoded audio buffered at once, in samples (bounded by the lead limit).
    peak_buffered: usize,
}

/// The longest audio one source packet may decode to, in seconds.
const MAX_FRAME_S: f64 = 10.0;

fn av(e: ff::Error, what: &str) -> JobError {
    JobError::retryable(format!("audio {what}: {e}"))
}

impl AudioTrack {
    /// `video_delay_s`: how late the packaged video's first frame is presented.
    pub fn new(stream: &ff::format::stream::Stream<'_>, video_delay_s: f64) -> Result<Self, JobError> {
        let decoder = ff::codec::context::Context::from_parameters(stream.parameters())
            .and_then(|c| c.decoder().audio())
            .map_err(|e| JobError::permanent(format!("the audio stream cannot be decoded: {e}")))?;
        let codec = ff::encoder::find(ff::codec::Id::AAC)
            .ok_or_else(|| JobError::retryable("libavcodec has no AAC encoder"))?;
        let mut enc =
            ff::codec::context::Context::new_with_codec(codec).encoder().audio().map_err(|e| av(e, "encoder"))?;
        enc.set_rate(AUDIO.sample_rate as i32);
        enc.set_channel_layout(ChannelLayout::STEREO);
        enc.set_format(Sample::F32(SampleType::Planar));
        enc.set_bit_rate(AUDIO.bitrate as usize);
        enc.set_time_base(ff::Rational::new(1, AUDIO.sample_rate as i32));
        enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        let encoder = enc.open_with(ff::Dictionary::new()).map_err(|e| av(e, "encoder open"))?;
        let frame_size = (encoder.frame_size() as usize).max(1);
        // SAFETY: reading a plain field of the opened encoder context.
        let priming = i64::from(unsafe { (*encoder.as_ptr()).initial_padding });
        let lead = (video_delay_s * f64::from(AUDIO.sample_rate)).round() as i64 - priming;
        Ok(Self {
            decoder,
            resampler: None,
            encoder,
            frame_size,
            src_time_base: stream.time_base(),
            fifo: [VecDeque::new(), VecDeque::new()],
            first_sample_s: None,
            video_start_s: None,
            aligned: false,
            next_pts: 0,
            lead,
            priming,
            silent: false,
            video_s: 0.0,
            peak_buffered: 0,
        })
    }

    /// The most decoded audio that waited at once to be encoded, in seconds.
    pub fn peak_buffered_s(&self) -> f64 {
        self.peak_buffered as f64 / f64::from(AUDIO.sample_rate)
    }

    /// How far before zero the first packet starts (the AAC encoder's priming).
    pub fn priming(&self) -> i64 {
        self.priming
    }

    /// The encoder's parameters, for each rung's muxer.
    pub fn parameters(&self) -> ff::codec::Parameters {
        ff::codec::Parameters::from(&*self.encoder)
    }

    /// Tells the track when the video starts; buffered audio is then aligned.
    pub fn set_video_start(&mut self, t0: f64) -> Result<Vec<AudioPacket>, JobError> {
        self.video_start_s = Some(t0);
        self.encode_ready(false)
    }

    /// How far the track reaches, in seconds of video from its first frame
    /// (`None` before it is aligned with the video).
    fn covered_s(&self) -> Option<f64> {
        self.aligned
            .then(|| (self.next_pts + self.fifo[0].len() as i64 - self.lead) as f64 / f64::from(AUDIO.sample_rate))
    }

    /// Called as video is read, with the video's position (seconds from its
    /// first frame). When the audio has fallen more than [`MAX_AUDIO_LAG_S`]
    /// behind, it is given up on: silence fills the track up to the video,
    /// now and from then on, and source audio that arrives later is dropped.
    /// Audio buffered up to [`AUDIO_TAIL_S`] past the video is encoded.
    pub fn keep_up(&mut self, video_s: f64) -> Result<Vec<AudioPacket>, JobError> {
        let Some(v0) = self.video_start_s else { return Ok(Vec::new()) };
        self.video_s = self.video_s.max(video_s);
        let covered = self.covered_s().unwrap_or(0.0);
        if !self.silent && video_s - covered <= MAX_AUDIO_LAG_S {
            return self.encode_ready(false);
        }
        if !self.silent {
            tracing::warn!(video_s, audio_s = covered, "the audio lags the video by more than {MAX_AUDIO_LAG_S} s in the file (late or missing); filling it with silence");
            self.silent = true;
            if self.first_sample_s.is_none() {
                // No audio at all so far: the track starts with the video.
                self.first_sample_s = Some(v0);
                self.encode_ready(false)?;
            }
        }
        self.pad_to(video_s);
        self.encode_ready(false)
    }

    /// Appends silence until the track reaches `video_s`.
    fn pad_to(&mut self, video_s: f64) {
        let target = (video_s * f64::from(AUDIO.sample_rate)).round() as i64 + self.lead;
        let missing = (target - self.next_pts - self.fifo[0].len() as i64).max(0) as usize;
        for ch in &mut self.fifo {
            ch.extend(std::iter::repeat_n(0.0, missing));
        }
    }

    /// Decodes one source packet; returns what is ready to mux.
    pub fn push(&mut self, packet: &ff::Packet) -> Result<Vec<AudioPacket>, JobError> {
        if self.silent {
            return Ok(Vec::new());
        }
        // A corrupt audio packet loses a few milliseconds, not the job.
        if self.decoder.send_packet(packet).is_err() {
            return Ok(Vec::new());
        }
        self.drain_decoder()?;
        self.encode_ready(false)
    }

    /// Flushes everything at the end of the stream; the video ended at
    /// `video_end_s` (a silent track is filled up to it).
    pub fn finish(&mut self, video_end_s: f64) -> Result<Vec<AudioPacket>, JobError> {
        self.video_s = video_end_s;
        if self.silent {
            self.pad_to(video_end_s);
        } else {
            self.flush_source()?;
        }
        let mut out = self.encode_ready(true)?;
        self.encoder.send_eof().map_err(|e| av(e, "flush"))?;
        out.extend(self.receive()?);
        Ok(out)
    }

    /// [`Self::finish`], with silence after the source's audio up to the
    /// video's end (and for the whole video when no audio was ever
    /// decoded): an audio rendition of its own needs a segment for every
    /// video segment, where a muxed track may simply end early.
    pub fn finish_filled(&mut self, video_end_s: f64) -> Result<Vec<AudioPacket>, JobError> {
        self.video_s = video_end_s;
        if !self.silent {
            self.flush_source()?;
        }
        if self.first_sample_s.is_none() {
            self.first_sample_s = self.video_start_s;
        }
        let mut out = self.encode_ready(false)?;
        self.pad_to(video_end_s);
        out.extend(self.encode_ready(true)?);
        self.encoder.send_eof().map_err(|e| av(e, "flush"))?;
        out.extend(self.receive()?);
        Ok(out)
    }

    /// Takes what the decoder and the resampler still hold into the buffer.
    fn flush_source(&mut self) -> Result<(), JobError> {
        let _ = self.decoder.send_eof();
        self.drain_decoder()?;
        if let Some((r, _)) = self.resampler.as_mut() {
            loop {
                let mut out = ff::frame::Audio::new(Sample::F32(SampleType::Planar), 4096, ChannelLayout::STEREO);
                match r.flush(&mut out) {
                    Ok(_) if out.samples() > 0 => append(&mut self.fifo, &out),
                    _ => break,
                }
            }
        }
        if self.video_start_s.is_none() {
            self.video_start_s = self.first_sample_s;
        }
        Ok(())
    }

    fn drain_decoder(&mut self) -> Result<(), JobError> {
        let mut frame = ff::frame::Audio::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            if frame.samples() as f64 > MAX_FRAME_S * f64::from(frame.rate().max(1)) {
                // One packet of minutes of low-rate PCM would be resampled
                // to 48 kHz stereo float in one allocation: crafted, given up on.
                tracing::warn!(
                    samples = frame.samples(),
                    rate = frame.rate(),
                    "an audio packet decodes to more than {MAX_FRAME_S} s; dropping the rest of the source's audio"
                );
                self.silent = true;
                return Ok(());
            }
            if self.first_sample_s.is_none() {
                let ts = frame.timestamp().or(frame.pts()).unwrap_or(0);
                self.first_sample_s = Some(ts as f64 * f64::from(self.src_time_base));
            }
            let layout = if frame.channel_layout().channels() > 0 && frame.channel_layout().bits() != 0 {
                frame.channel_layout()
            } else {
                ChannelLayout::default(i32::from(frame.channels().max(1)))
            };
            frame.set_channel_layout(layout);
            let key = (frame.format(), layout.bits(), frame.rate());
            if self.resampler.as_ref().is_none_or(|(_, k)| *k != key) {
                let r = ff::software::resampling::Context::get(
                    frame.format(),
                    layout,
                    frame.rate(),
                    Sample::F32(SampleType::Planar),
                    ChannelLayout::STEREO,
                    AUDIO.sample_rate,
                )
                .map_err(|e| {
                    JobError::permanent(format!(
                        "the audio ({} channels at {} Hz) cannot be converted: {e}",
                        frame.channels(),
                        frame.rate()
                    ))
                })?;
                self.resampler = Some((r, key));
            }
            let capacity = frame.samples() * AUDIO.sample_rate as usize / frame.rate().max(1) as usize + 256;
            let mut out = ff::frame::Audio::new(Sample::F32(SampleType::Planar), capacity, ChannelLayout::STEREO);
            let (r, _) = self.resampler.as_mut().expect("set above");
            r.run(&frame, &mut out).map_err(|e| av(e, "resample"))?;
            append(&mut self.fifo, &out);
            self.peak_buffered = self.peak_buffered.max(self.fifo[0].len());
            if self.aligned && self.covered_s().is_some_and(|c| c - self.video_s > MAX_AUDIO_LEAD_S) {
                tracing::warn!(video_s = self.video_s, "the audio runs more than {MAX_AUDIO_LEAD_S} s ahead of the video in the file (the video ended, or the file is badly interleaved); dropping the rest of the source's audio");
                self.silent = true;
                return Ok(());
            }
            if self.video_start_s.is_none()
                && self.fifo[0].len() as f64 > MAX_TIMESTAMP_GAP_S * f64::from(AUDIO.sample_rate)
            {
                return Err(JobError::permanent(format!(
                    "the file stores its audio more than {MAX_TIMESTAMP_GAP_S} s ahead of its video; remux it with its streams interleaved (for example ffmpeg -i in -c copy out.mp4)"
                )));
            }
        }
        Ok(())
    }

    /// Aligns the start once the video start is known, then encodes whole frames.
    fn encode_ready(&mut self, last: bool) -> Result<Vec<AudioPacket>, JobError> {
        let (Some(v0), Some(a0)) = (self.video_start_s, self.first_sample_s) else {
            return Ok(Vec::new());
        };
        if !self.aligned {
            // The silence before late audio is allocated here: bound it first.
            check_audio_offset(a0 - v0).map_err(|e| JobError::permanent(e.to_string()))?;
            let offset = ((a0 - v0) * f64::from(AUDIO.sample_rate)).round() as i64 + self.lead;
            for ch in &mut self.fifo {
                if offset > 0 {
                    for _ in 0..offset {
                        ch.push_front(0.0);
                    }
                } else {
                    let drop = (offset.unsigned_abs() as usize).min(ch.len());
                    ch.drain(..drop);
                }
            }
            self.aligned = true;
        }
        // Audio is encoded up to the tail past the video read so far; at
        // the end, what lies beyond is cut.
        let limit = ((self.video_s + AUDIO_TAIL_S) * f64::from(AUDIO.sample_rate)).round() as i64 + self.lead;
        let mut out = Vec::new();
        loop {
            let room = (limit - self.next_pts).max(0) as usize;
            let n = self.fifo[0].len().min(self.frame_size).min(room);
            if n == 0 || (n < self.frame_size && !last) {
                break;
            }
            let mut frame = ff::frame::Audio::new(Sample::F32(SampleType::Planar), n, ChannelLayout::STEREO);
            frame.set_rate(AUDIO.sample_rate);
            for (ch, fifo) in self.fifo.iter_mut().enumerate() {
                for (dst, src) in frame.plane_mut::<f32>(ch).iter_mut().zip(fifo.drain(..n)) {
                    *dst = src;
                }
            }
            frame.set_pts(Some(self.next_pts));
            self.next_pts += n as i64;
            self.encoder.send_frame(&frame).map_err(|e| av(e, "encode"))?;
            out.extend(self.receive()?);
        }
        if last {
            for ch in &mut self.fifo {
                ch.clear();
            }
        }
        Ok(out)
    }

    fn receive(&mut self) -> Result<Vec<AudioPacket>, JobError> {
        let mut out = Vec::new();
        let mut pkt = ff::Packet::empty();
        while self.encoder.receive_packet(&mut pkt).is_ok() {
            out.push(AudioPacket {
                data: Bytes::copy_from_slice(pkt.data().unwrap_or_default()),
                pts: pkt.pts().unwrap_or(0),
                dts: pkt.dts().unwrap_or(0),
                duration: pkt.duration().max(0),
            });
        }
        Ok(out)
    }
}

fn append(fifo: &mut [VecDeque<f32>; 2], frame: &ff::frame::Audio) {
    let n = frame.samples();
    for (ch, q) in fifo.iter_mut().enumerate() {
        q.extend(&frame.plane::<f32>(ch)[..n]);
    }
}

/// Encoded audio, shared by all rungs.
pub type SharedAudio = Arc<Vec<AudioPacket>>;
