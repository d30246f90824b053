//! Opening a rung's video encoder in its codec, with the settings every
//! rung shares whatever its codec: the size, the constant frame rate, the
//! fixed GOP (keyframes where [`LadderPlan::is_keyframe`] puts them), the
//! VBV-capped bitrate, the colour tags, and parameter sets kept out of band
//! (`GLOBAL_HEADER`) so the init segment carries them. An SDR rung takes
//! 8-bit 4:2:0 frames tagged as the rung frames are (BT.709 once an HDR
//! source is tone-mapped); an HDR rung (an HDR source's HEVC or AV1 rung,
//! [`media_core::video::ladder::LadderPlan::keeping_hdr`]) takes 10-bit
//! 4:2:0 frames tagged with the source's own primaries, matrix and transfer
//! ([`rung_pixel_format`]).
//!
//! - **H.264**: libx264, High profile, the job's preset (`veryfast` by
//!   default) and the tuned options of [`super::tuning`]. Keyframes are
//!   forced on the frames the pipeline marks I (`forced-idr`).
//! - **HEVC**: libx265, Main profile, preset [`super::tuning::HEVC_PRESET`], tagged `hvc1`
//!   by the muxer. Forced keyframes as x264's.
//! - **AV1**: SVT-AV1, Main profile, preset [`super::tuning::AV1_PRESET`]. Debian's FFmpeg
//!   5.1 does not pass forced keyframes to SVT-AV1 1.4, so its keyframes
//!   come from its own GOP: every `gop_frames` frames from its first. The
//!   rung therefore gives the short first segment an encoder of its own and
//!   starts the main one at the first full GOP (`rung::first_segment_encoder`),
//!   which puts its keyframes on the same frames as the other rungs'.
//!
//! Presets were chosen on this 2-core machine (Intel Xeon) with the ffmpeg
//! CLI on a 10-s noisy 1080p30 source, each codec at its own bitrate share
//! (wall s, CPU s): x264 `veryfast` 16.0, 27.8; SVT-AV1 preset 12 11.1, 21.3;
//! preset 10 16.8, 32.5; x265 `ultrafast` 14.7, 27.6; `superfast` 17.0,
//! 32.4. The chosen presets cost about what x264's does there; in the
//! pipeline they cost 2-2.5x the H.264 ladder's time, and lose SSIM on busy
//! content: the benchmark report's section 11 has their speed, memory,
//! quality and bytes at equal SSIM.
//!
//! Not thread contention: x265 with its own frame threads and pools, or
//! SVT-AV1 with one thread a rung, took the same CPU and wall time; the
//! pipeline's x264 is cheaper than the CLI's (its tuned options), so the
//! other encoders cost more beside it. No preset keeps H.264 plus a second
//! codec near real time on 2 cores: SVT-AV1's fastest (13) costs about the
//! whole H.264 ladder. A sweep on 20-s cuts of the benchmark's 1080p
//! sources (4-size ladder of one codec, release build, Intel Xeon, 2 cores,
//! 2026-12-07; CPU-s and the 1080p rung's SSIM, noise / motion): x264 31 /
//! 41, 0.982 / 0.979; SVT-AV1 10: 81 / 120, 0.976 / 0.953; 11: 59 / 126,
//! 0.974 / 0.942; 12: 43 / 63, 0.971 / 0.931; 13: 34 / 61, 0.970 / 0.925
//! (and 19% under its bitrate on noise); x265 `ultrafast` 58-65 / 85, 0.970
//! / 0.920; `superfast` 84 / 143, 0.971 / 0.951. SVT-AV1 10 stays: 12 halves
//! its CPU on busy content but loses 0.022 SSIM there, below x264's at 1.7x
//! the bytes. x265 `ultrafast` stays: `superfast` gains 0.03 SSIM on busy
//! content for 1.7x the CPU, and Safari, HEVC's reason to be here, also
//! plays the H.264 rungs. `transcoder transcode --av1-preset/--hevc-preset`
//! try others on a local file (`Tuning`); `node bench/run.mjs --only=11
//! --sweep-presets` runs the sweep.

use ff::format::Pixel;
use ffmpeg_next as ff;
use media_core::video::ladder::{LadderPlan, Rung, VideoCodec};

use super::probe::ColorTags;
use crate::error::JobError;

/// The settings every rung shares.
pub struct RungSettings<'a> {
    pub plan: &'a LadderPlan,
    /// x264's preset (the job's; the other codecs' are the tuning's: [`super::Tuning::hevc_preset`], [`super::Tuning::av1_preset`]).
    pub preset: &'a str,
    /// Threads and x264 options per rung.
    pub tuning: &'a super::Tuning,
    /// The source's colour tags (an SDR rung of an HDR source is tagged BT.709: [`ColorTags::for_sdr_rungs`]).
    pub source_color: ColorTags,
}

impl RungSettings<'_> {
    /// The colour tags of rung `index`'s frames and stream.
    pub fn color_of(&self, index: usize) -> ColorTags {
        if self.plan.rungs[index].range.is_sdr() {
            self.source_color.for_sdr_rungs()
        } else {
            self.source_color
        }
    }
}

/// The pixel format rung `rung` encodes: 10-bit 4:2:0 for an HDR rung, else 8-bit.
pub fn rung_pixel_format(rung: &Rung) -> Pixel {
    if rung.range.is_sdr() {
        Pixel::YUV420P
    } else {
        Pixel::YUV420P10LE
    }
}

/// An encoder's failure, as a rung reports it.
pub(super) fn err(e: ff::Error, what: &str) -> JobError {
    JobError::retryable(format!("encoding {what}: {e}"))
}

/// libav's encoder for `codec`.
fn encoder_name(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::H264 => "libx264",
        VideoCodec::Hevc => "libx265",
        VideoCodec::Av1 => "libsvtav1",
    }
}

/// Whether the codec's encoder makes a keyframe on every frame marked I.
/// SVT-AV1 does not (see the module doc); its rung starts its main encoder
/// on a keyframe instead.
pub fn honours_forced_keyframes(codec: VideoCodec) -> bool {
    codec != VideoCodec::Av1
}

/// An opened encoder. SVT-AV1 (1.4, through FFmpeg 5.1) waits forever in
/// two cases: closed without being told its input ended
/// (`avcodec_free_context` never returns), and told its input ended before
/// it got any frame (`avcodec_send_frame(NULL)` never returns). So an AV1
/// encoder that got no frame is not ended by [`Encoder::send_eof`], and
/// every AV1 encoder is ended and drained when dropped (given one blank
/// frame first if it got none), whichever path drops it: a failed or
/// cancelled job's included.
pub struct Encoder {
    inner: ff::encoder::Video,
    codec: VideoCodec,
    /// Frames sent so far.
    sent: u64,
}

impl Encoder {
    pub fn send_frame(&mut self, frame: &ff::frame::Video) -> Result<(), ff::Error> {
        self.inner.send_frame(frame)?;
        self.sent += 1;
        Ok(())
    }

    /// Tells the encoder its input ended (an AV1 encoder that got no frame
    /// is left alone: it has nothing to give, and ending it would hang).
    pub fn send_eof(&mut self) -> Result<(), ff::Error> {
        if self.codec == VideoCodec::Av1 && self.sent == 0 {
            return Ok(());
        }
        self.inner.send_eof()
    }
}

impl std::ops::Deref for Encoder {
    type Target = ff::encoder::Video;
    fn deref(&self) -> &ff::encoder::Video {
        &self.inner
    }
}

impl std::ops::DerefMut for Encoder {
    fn deref_mut(&mut self) -> &mut ff::encoder::Video {
        &mut self.inner
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        if self.codec == VideoCodec::Av1 {
            if self.sent == 0 {
                let blank = ff::frame::Video::new(self.inner.format(), self.inner.width(), self.inner.height());
                let _ = self.inner.send_frame(&blank);
            }
            // Already ended: send_eof fails and the drain finds nothing left.
            let _ = self.inner.send_eof();
            let mut packet = ff::Packet::empty();
            while self.inner.receive_packet(&mut packet).is_ok() {}
        }
    }
}

/// Opens the encoder of rung `index` of the plan, and its time base.
pub fn open(index: usize, s: &RungSettings<'_>) -> Result<(Encoder, ff::Rational), JobError> {
    let rung = &s.plan.rungs[index];
    let name = encoder_name(rung.codec);
    let codec = ff::encoder::find_by_name(name)
        .ok_or_else(|| JobError::retryable(format!("libavcodec was built without {name}")))?;
    let mut enc =
        ff::codec::context::Context::new_with_codec(codec).encoder().video().map_err(|e| err(e, "encoder context"))?;
    let fps = s.plan.frame_rate;
    let time_base = ff::Rational::new(fps.den as i32, fps.num as i32);
    enc.set_width(rung.width);
    enc.set_height(rung.height);
    enc.set_format(rung_pixel_format(rung));
    enc.set_time_base(time_base);
    enc.set_frame_rate(Some(ff::Rational::new(fps.num as i32, fps.den as i32)));
    enc.set_aspect_ratio(ff::Rational::new(1, 1));
    enc.set_gop(s.plan.gop_frames);
    enc.set_bit_rate(rung.bitrate as usize);
    enc.set_max_bit_rate(rung.max_bitrate as usize);
    let color = s.color_of(index);
    enc.set_colorspace(color.space);
    enc.set_color_primaries(color.primaries);
    enc.set_color_transfer_characteristic(color.transfer);
    enc.set_color_range(ff::color::Range::MPEG);
    enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    let threads = s.tuning.x264_threads_for(index, s.plan);
    let g = s.plan.gop_frames;
    let mut o = ff::Dictionary::new();
    match rung.codec {
        VideoCodec::H264 => {
            o.set("preset", s.preset);
            o.set("profile", "high");
            // No explicit level: x264 picks the level that fits, and a forced level
            // can make it drop B-pyramid on some rungs, which would give rungs
            // different reordering delays (and so different timelines). The codec
            // string is read from the encoder's actual parameter sets instead.
            o.set("bufsize", &rung.buffer_size.to_string());
            o.set("forced-idr", "1");
            // Fixed, closed GOPs on every rung: keyframes land on the same frames
            // ladder-wide, so segments align and players can switch anywhere.
            // Tuned and extra options come after, by the rung's size and name;
            // threads by its share of the ladder.
            o.set("x264-params", &s.tuning.x264_params(g, s.preset, rung));
            o.set("threads", &threads.to_string());
        }
        VideoCodec::Hevc => {
            o.set("preset", &s.tuning.hevc_preset);
            let profile = if rung.range.is_sdr() { "main" } else { "main10" };
            o.set("forced-idr", "1");
            let kbps = |bits: u32| bits.div_ceil(1000);
            o.set(
                "x265-params",
                &format!(
                    "profile={profile}:keyint={g}:min-keyint={g}:scenecut=0:open-gop=0:repeat-headers=0:\
                     vbv-maxrate={}:vbv-bufsize={}:pools={threads}:frame-threads=1:log-level=error",
                    kbps(rung.max_bitrate),
                    kbps(rung.buffer_size)
                ),
            );
        }
        VideoCodec::Av1 => {
            o.set("preset", &s.tuning.av1_preset.to_string());
            // Closed GOPs of key frames (not intra-only frames), no scene cuts
            // of its own: keyframes only every `gop_frames` from its first frame.
            o.set("svtav1-params", &format!("irefresh-type=2:scd=0:lp={threads}"));
        }
    }
    let opened = enc.open_with(o).map_err(|e| err(e, &format!("{name} open")))?;
    Ok((Encoder { inner: opened, codec: rung.codec, sent: 0 }, time_base))
}

/// The encoder's reordering delay in frames (B-frames), as its opened
/// context states it: right for libx264, which sets it when opened.
pub fn reorder_delay(enc: &ff::encoder::Video) -> u32 {
    // SAFETY: reading a plain field of an opened codec context.
    unsafe { (*enc.as_ptr()).has_b_frames }.max(0) as u32
}

/// The encoder's reordering delay in frames, as its first packet shows it
/// (frame 0's decode time is minus the delay): libx265 leaves
/// `has_b_frames` at 0 when opened, though it reorders by 2 frames with
/// `ultrafast`'s B-pyramid. Blank frames go in until a packet comes out.
fn measured_delay(mut enc: Encoder) -> Result<u32, JobError> {
    let mut packet = ff::Packet::empty();
    let mut blank = ff::frame::Video::new(enc.format(), enc.width(), enc.height());
    for n in 0..128i64 {
        blank.set_pts(Some(n));
        enc.send_frame(&blank).map_err(|e| err(e, "a frame to measure the delay"))?;
        if enc.receive_packet(&mut packet).is_ok() {
            return Ok(u32::try_from(-packet.dts().unwrap_or(0)).unwrap_or(0));
        }
    }
    Err(JobError::retryable("internal: the encoder gave no packet for 128 frames"))
}

/// The most frames any rung of `plan` is reordered by: the ladder's delay,
/// which every rung's timeline is shifted by so that all start together
/// (each rung measures its own from its first packet and refuses to run
/// behind it). One encoder per codec that reorders is opened (its smallest
/// rung, the cheapest): x264's states its delay, x265's is measured. AV1
/// never reorders: each temporal unit shows one frame, in order, so its
/// packets' decode and presentation times are the same.
pub fn ladder_delay(s: &RungSettings<'_>) -> Result<u32, JobError> {
    let smallest = |codec: VideoCodec| s.plan.rungs.iter().rposition(|r| r.codec == codec);
    let mut delay = 0;
    if let Some(index) = smallest(VideoCodec::H264) {
        delay = delay.max(reorder_delay(&open(index, s)?.0));
    }
    if let Some(index) = smallest(VideoCodec::Hevc) {
        delay = delay.max(measured_delay(open(index, s)?.0)?);
    }
    Ok(delay)
}

/// The opened encoder's out-of-band parameter sets.
pub fn extradata(enc: &ff::encoder::Video) -> Vec<u8> {
    // SAFETY: an opened encoder's extradata pointer is valid for extradata_size bytes (or null).
    unsafe {
        let ctx = enc.as_ptr();
        if (*ctx).extradata.is_null() || (*ctx).extradata_size <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts((*ctx).extradata, (*ctx).extradata_size as usize).to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_core::video::ladder::{plan_ladder, LadderOptions, Rational, SourceVideo};

    fn settings_for(
        plan: &media_core::video::ladder::LadderPlan,
        tuning: &super::super::Tuning,
    ) -> RungSettings<'static> {
        let plan: &'static _ = Box::leak(Box::new(plan.clone()));
        let tuning: &'static _ = Box::leak(Box::new(tuning.clone()));
        let color = super::super::probe::ColorTags {
            space: ff::color::Space::BT709,
            primaries: ff::color::Primaries::BT709,
            transfer: ff::color::TransferCharacteristic::BT709,
        };
        RungSettings { plan, preset: "veryfast", tuning, source_color: color }
    }

    /// Without [`Encoder`]'s guards this test never ends: SVT-AV1 closed
    /// before its input ended, or ended before any frame, waits forever.
    #[test]
    fn every_codec_opens_and_an_unused_encoder_closes() {
        ff::init().unwrap();
        let source = SourceVideo {
            width: 320,
            height: 180,
            sample_aspect: Rational::new(1, 1),
            rotation: 0,
            frame_rate: Rational::new(30, 1),
        };
        let plan =
            plan_ladder(&source, &LadderOptions { codecs: VideoCodec::ALL.to_vec(), ..Default::default() }).unwrap();
        let settings = settings_for(&plan, &super::super::Tuning::default());
        for (i, rung) in plan.rungs.iter().enumerate() {
            let (encoder, _) = open(i, &settings).unwrap();
            assert_eq!((encoder.width(), encoder.height()), (rung.width, rung.height));
            assert!(!extradata(&encoder).is_empty(), "{}: parameter sets out of band", rung.name.as_str());
            drop(encoder);
            // Ended before any frame, then dropped.
            let (mut ended, _) = open(i, &settings).unwrap();
            ended.send_eof().unwrap();
            let mut packet = ff::Packet::empty();
            assert!(ended.receive_packet(&mut packet).is_err(), "nothing to give");
        }
        // x264 and x265 reorder (B-frames: 2 frames at these presets); AV1 never does.
        assert_eq!(ladder_delay(&settings).unwrap(), 2);
        let hevc = plan.rungs.iter().position(|r| r.codec == VideoCodec::Hevc).unwrap();
        assert_eq!(measured_delay(open(hevc, &settings).unwrap().0).unwrap(), 2, "x265 measured");
    }
}
