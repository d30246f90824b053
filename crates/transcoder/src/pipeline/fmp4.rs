//! Packaging one rung as CMAF-style fragmented MP4 for HLS: libav's mp4
//! muxer writes into memory; the header is the init segment, and every
//! explicit flush (`frag_custom`) closes one media segment whose bytes are
//! taken as they are. Segment boundaries are decided by the caller.
//!
//! A chunk of a chunked job muxes from its own time 0, as segment 0 of a
//! single pass does; [`SegmentWriter::shift_fragments`] then rewrites each
//! fragment's `mfhd` sequence number and `tfdt` decode time to what a single
//! pass over the whole video writes for the same segment, so the chunks'
//! segments stitch into one continuous timeline. (Patching the two boxes
//! does not depend on how a libav version starts its fragment clocks.)

use std::io::Write;
use std::sync::{Arc, Mutex};

use ff::format::context::{Output, StreamIo};
use ffmpeg_next as ff;

use media_core::video::isobmff::boxes;

use super::audio::AudioPacket;
use crate::error::JobError;

/// A `Write` that appends to a buffer the writer can take from (libav's
/// muxers write into it through `StreamIo`).
#[derive(Clone, Default)]
pub(super) struct Memory(pub(super) Arc<Mutex<Vec<u8>>>);

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
    video: Option<usize>,
    audio: Option<usize>,
    /// Added to every fragment's `mfhd` sequence number and its first
    /// track's `tfdt` (in that track's timescale); zero for a single pass.
    shift: (u32, u64),
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
        Self::with_tracks(Some((video, video_tb)), audio)
    }

    /// An audio-only writer: the audio rendition of a chunked job.
    pub fn audio_only(audio: ff::codec::Parameters) -> Result<Self, JobError> {
        Self::with_tracks(None, Some(audio))
    }

    fn with_tracks(
        video: Option<(&ff::encoder::Video, ff::Rational)>,
        audio: Option<ff::codec::Parameters>,
    ) -> Result<Self, JobError> {
        let memory = Memory::default();
        let io = StreamIo::from_write(memory.clone()).map_err(|e| err(e, "I/O"))?;
        let mut octx = ff::format::output_to_stream(io, None, Some("mp4")).map_err(|e| err(e, "muxer"))?;
        let video_tb = video.map_or(ff::Rational(1, 1), |(_, tb)| tb);
        let video_index = match video {
            Some((encoder, tb)) => {
                let mut vs = octx.add_stream(ff::encoder::find(encoder.id())).map_err(|e| err(e, "video stream"))?;
                vs.set_parameters(encoder);
                if encoder.id() == ff::codec::Id::HEVC {
                    // `hvc1`: parameter sets in the sample entry only, the
                    // tag Apple's players require (libav's default is `hev1`).
                    // SAFETY: setting a plain field of the stream's own parameters.
                    unsafe { (*(*vs.as_mut_ptr()).codecpar).codec_tag = u32::from_le_bytes(*b"hvc1") };
                }
                vs.set_time_base(tb);
                Some(vs.index())
            }
            None => None,
        };
        let audio_index = match audio {
            Some(params) => {
                let mut s =
                    octx.add_stream(ff::encoder::find(ff::codec::Id::AAC)).map_err(|e| err(e, "audio stream"))?;
                s.set_parameters(params);
                s.set_time_base(AUDIO_TB);
                Some(s.index())
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
        let video_to = video_index.and_then(|i| octx.stream(i)).map_or(video_tb, |s| s.time_base());
        let audio_to = audio_index.and_then(|i| octx.stream(i)).map_or(AUDIO_TB, |s| s.time_base());
        let mut w = Self {
            octx,
            memory,
            video: video_index,
            audio: audio_index,
            shift: (0, 0),
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

    /// Makes every fragment from now on carry the `mfhd` sequence number
    /// and `tfdt` a single pass writes for it, for a chunk whose first
    /// segment is `first_seq` and whose first frame is output frame
    /// `start_frame` (in the video's time base). Video writers only.
    pub fn shift_fragments(&mut self, first_seq: u32, start_frame: u64) {
        // The muxer's timescale is a multiple of the frame rate's, so this is exact.
        let ticks =
            i128::from(start_frame) * i128::from(self.video_from.numerator()) * i128::from(self.video_to.denominator())
                / (i128::from(self.video_from.denominator()) * i128::from(self.video_to.numerator())).max(1);
        self.shift = (first_seq, u64::try_from(ticks).unwrap_or(0));
    }

    pub fn write_video(&mut self, packet: &mut ff::Packet) -> Result<(), JobError> {
        let Some(index) = self.video else { return Ok(()) };
        packet.rescale_ts(self.video_from, self.video_to);
        packet.set_stream(index);
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
        let mut bytes = self.take();
        if self.shift != (0, 0) {
            shift_fragment(&mut bytes, self.shift.0, self.shift.1)
                .map_err(|why| JobError::retryable(format!("packaging a chunk's fragment: {why}")))?;
        }
        Ok(bytes)
    }

    /// Closes the last fragment and the muxer.
    pub fn finish(mut self) -> Result<Vec<u8>, JobError> {
        let last = self.cut()?;
        self.octx.write_trailer().map_err(|e| err(e, "trailer"))?;
        Ok(last)
    }
}

/// Adds `seq` to the `mfhd` sequence number of every `moof` in `bytes`, and
/// `ticks` to the `tfdt` of its first `traf` (the only track of a chunk).
pub fn shift_fragment(bytes: &mut [u8], seq: u32, ticks: u64) -> Result<(), String> {
    let mut moofs = 0;
    for (kind, _, body, end) in boxes(bytes, 0, bytes.len())? {
        if &kind != b"moof" {
            continue;
        }
        moofs += 1;
        let mut trafs = 0;
        for (child, _, cbody, cend) in boxes(bytes, body, end)? {
            match &child {
                b"mfhd" if cend >= cbody + 8 => {
                    let at = cbody + 4;
                    let n = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
                    let shifted = n.checked_add(seq).ok_or("the fragment sequence number overflows")?;
                    bytes[at..at + 4].copy_from_slice(&shifted.to_be_bytes());
                }
                b"traf" => {
                    trafs += 1;
                    if trafs > 1 {
                        return Err("a fragment of a chunk carries more than one track".into());
                    }
                    let tfdt = boxes(bytes, cbody, cend)?
                        .into_iter()
                        .find(|b| &b.0 == b"tfdt")
                        .ok_or("a track fragment without a tfdt box")?;
                    let (_, _, tbody, tend) = tfdt;
                    let at = tbody + 4;
                    match bytes[tbody] {
                        1 if tend >= at + 8 => {
                            let t = u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
                            let shifted = t.checked_add(ticks).ok_or("the decode time overflows")?;
                            bytes[at..at + 8].copy_from_slice(&shifted.to_be_bytes());
                        }
                        0 if tend >= at + 4 => {
                            let t = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
                            let shifted = u32::try_from(u64::from(t) + ticks)
                                .map_err(|_| "the decode time does not fit a version 0 tfdt")?;
                            bytes[at..at + 4].copy_from_slice(&shifted.to_be_bytes());
                        }
                        v => return Err(format!("a version {v} tfdt box")),
                    }
                }
                _ => {}
            }
        }
    }
    if moofs == 0 {
        return Err("no moof box in the fragment".into());
    }
    Ok(())
}

/// Reads (mfhd sequence number, tfdt of each traf) of every `moof` in `bytes`: for tests.
pub fn fragment_times(bytes: &[u8]) -> Result<Vec<(u32, Vec<u64>)>, String> {
    let mut out = Vec::new();
    for (kind, _, body, end) in boxes(bytes, 0, bytes.len())? {
        if &kind != b"moof" {
            continue;
        }
        let mut seq = 0;
        let mut times = Vec::new();
        for (child, _, cbody, cend) in boxes(bytes, body, end)? {
            if &child == b"mfhd" && cend >= cbody + 8 {
                seq = u32::from_be_bytes(bytes[cbody + 4..cbody + 8].try_into().expect("4 bytes"));
            }
            if &child == b"traf" {
                for (k, _, tbody, tend) in boxes(bytes, cbody, cend)? {
                    if &k == b"tfdt" {
                        let at = tbody + 4;
                        times.push(match bytes[tbody] {
                            1 if tend >= at + 8 => u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes")),
                            _ if tend >= at + 4 => {
                                u64::from(u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")))
                            }
                            _ => return Err("a short tfdt box".into()),
                        });
                    }
                }
            }
        }
        out.push((seq, times));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    fn fragment(seq: u32, tfdt: &[u8]) -> Vec<u8> {
        let mfhd = boxed(b"mfhd", &[[0u8; 4].as_slice(), &seq.to_be_bytes()].concat());
        let tfhd = boxed(b"tfhd", &[0, 2, 0, 0, 0, 0, 0, 1]);
        let traf = boxed(b"traf", &[tfhd, boxed(b"tfdt", tfdt), boxed(b"trun", &[0; 12])].concat());
        [boxed(b"moof", &[mfhd, traf].concat()), boxed(b"mdat", &[7; 20])].concat()
    }

    #[test]
    fn a_fragment_is_shifted_in_place_and_nothing_else_moves() {
        let v1 = [[1u8, 0, 0, 0].as_slice(), &1000u64.to_be_bytes()].concat();
        let mut f = fragment(1, &v1);
        let before = f.clone();
        shift_fragment(&mut f, 7, 15_360 * 40).unwrap();
        assert_eq!(f.len(), before.len());
        assert_eq!(fragment_times(&f).unwrap(), vec![(8, vec![1000 + 15_360 * 40])]);
        assert_eq!(f[f.len() - 28..], before[before.len() - 28..], "the media data is untouched");
        // Version 0: 32 bits, refused when the time no longer fits.
        let v0 = [[0u8, 0, 0, 0].as_slice(), &5u32.to_be_bytes()].concat();
        let mut g = fragment(2, &v0);
        shift_fragment(&mut g, 0, 10).unwrap();
        assert_eq!(fragment_times(&g).unwrap(), vec![(2, vec![15])]);
        assert!(shift_fragment(&mut g, 0, u64::from(u32::MAX)).is_err());
        // Not a fragment, or a box that lies about its size.
        assert!(shift_fragment(&mut boxed(b"mdat", &[0; 4]), 1, 1).is_err());
        let mut bad = fragment(1, &v1);
        bad[3] = 200;
        assert!(shift_fragment(&mut bad, 1, 1).is_err());
    }
}
