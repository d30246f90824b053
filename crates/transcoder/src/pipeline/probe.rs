//! Opening an upload with libav and finding out what it is: streams,
//! duration, frame rate, dimensions, rotation, audio layout. Everything that
//! makes an upload unusable is reported here as a permanent failure with a
//! message the uploader can understand.

use std::io::{Read, Seek};

use ff::format::context::{Input, StreamIo};
use ff::media::Type as MediaType;
use ffmpeg_next as ff;
use media_core::video::codecs;
use media_core::video::ladder::{Rational, SourceVideo, VideoRange};
use media_core::video::timeline::Timeline;

use crate::error::JobError;

/// What the probe found.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The demuxer's name (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`...).
    pub format: String,
    /// Container duration in seconds, when known.
    pub duration_s: Option<f64>,
    pub video: VideoStream,
    pub audio: Option<AudioStream>,
}

#[derive(Debug, Clone)]
pub struct VideoStream {
    pub index: usize,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub sample_aspect: Rational,
    /// Clockwise rotation to apply for display (0, 90, 180, 270).
    pub rotation: i32,
    pub frame_rate: Rational,
    /// When the stream starts, in source seconds (its declared start time; 0 when it has none).
    pub start_s: f64,
    pub pixel_format: String,
    /// Color tags, carried to the output unchanged (pixels are not converted
    /// between matrices), except in an HDR stream's SDR rungs: tone-mapped to BT.709.
    pub color: ColorTags,
}

/// A stream's color description.
#[derive(Debug, Clone, Copy)]
pub struct ColorTags {
    pub space: ff::color::Space,
    pub primaries: ff::color::Primaries,
    pub transfer: ff::color::TransferCharacteristic,
}

impl ColorTags {
    /// The transfer of an HDR stream (PQ or HLG), as zscale names it; the
    /// pipeline tone-maps such a stream to SDR BT.709 (`frames::ToneMapper`).
    pub fn hdr_transfer(&self) -> Option<&'static str> {
        match self.range() {
            VideoRange::Pq => Some("smpte2084"),
            VideoRange::Hlg => Some("arib-std-b67"),
            VideoRange::Sdr => None,
        }
    }

    /// The stream's dynamic range, as HLS names it.
    pub fn range(&self) -> VideoRange {
        match self.transfer {
            ff::color::TransferCharacteristic::SMPTE2084 => VideoRange::Pq,
            ff::color::TransferCharacteristic::ARIB_STD_B67 => VideoRange::Hlg,
            _ => VideoRange::Sdr,
        }
    }

    /// The tags of an SDR rung's frames: BT.709 once an HDR stream is
    /// tone-mapped, else the source's own, carried unchanged.
    pub fn for_sdr_rungs(&self) -> ColorTags {
        match self.hdr_transfer() {
            Some(_) => ColorTags {
                space: ff::color::Space::BT709,
                primaries: ff::color::Primaries::BT709,
                transfer: ff::color::TransferCharacteristic::BT709,
            },
            None => *self,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AudioStream {
    pub index: usize,
    pub codec: String,
    pub channels: u16,
    pub sample_rate: u32,
}

impl Probe {
    pub fn source_video(&self) -> SourceVideo {
        SourceVideo {
            width: self.video.width,
            height: self.video.height,
            sample_aspect: self.video.sample_aspect,
            rotation: self.video.rotation,
            frame_rate: self.video.frame_rate,
        }
    }
}

/// The demuxers of the containers the API accepts (`media_core::media::VideoType`:
/// MP4, QuickTime, Matroska, WebM, Ogg), by libav's names. No other demuxer
/// ever reads an upload: playlists (HLS), manifests (DASH) and lists
/// (ffconcat) name other files and URLs, and opening those from an upload
/// would let an uploader make the transcoder fetch from its own network.
pub const ACCEPTED_DEMUXERS: &str = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,ogg";

/// The containers of [`ACCEPTED_DEMUXERS`] in words, for messages.
const ACCEPTED_IN_WORDS: &str = "MP4, QuickTime (MOV), Matroska (MKV), WebM or Ogg";

/// How much of the start of an upload is read to name what it is when it is refused.
const HEAD_BYTES: usize = 64 * 1024;

/// Opens `reader` as a media file in one of the accepted containers;
/// `cancelled` aborts a stalled read.
pub fn open<R: Read + Seek + Send + 'static>(
    reader: R,
    cancelled: impl FnMut() -> bool + Send + 'static,
) -> Result<Input, JobError> {
    open_restricted(reader, cancelled, ACCEPTED_DEMUXERS)
}

/// [`open`] with a chosen list of demuxers. Whatever the list, the upload
/// may not open anything else: its protocol whitelist is empty, so a nested
/// open (an HLS variant, a DASH `BaseURL`, an ffconcat entry, a MOV data
/// reference) fails before any connection is made. Public so that tests can
/// show that this holds even for a demuxer that tries.
pub fn open_restricted<R: Read + Seek + Send + 'static>(
    mut reader: R,
    cancelled: impl FnMut() -> bool + Send + 'static,
    demuxers: &str,
) -> Result<Input, JobError> {
    let size = reader.seek(std::io::SeekFrom::End(0)).and_then(|n| reader.seek(std::io::SeekFrom::Start(0)).map(|_| n));
    if let Ok(0) = size {
        return Err(JobError::empty_upload());
    }
    let head =
        read_head(&mut reader).map_err(|e| JobError::retryable(format!("reading the start of the upload: {e}")))?;
    let io = StreamIo::from_read_seek_with_capacity(reader, 256 * 1024)
        .map_err(|e| JobError::retryable(format!("allocating libav I/O: {e}")))?;
    let mut options = ff::Dictionary::new();
    options.set("format_whitelist", demuxers);
    options.set("protocol_whitelist", "");
    // While libav probes the streams it opens only the decoders of the
    // accepted codecs; a stream in any other codec is never decoded.
    options.set("codec_whitelist", &codecs::decoder_whitelist());
    let opened = ff::format::input_from_stream_with_interrupt(io, None, Some(options), cancelled);
    let input = match opened {
        Ok(input) => input,
        Err(ff::Error::Exit) => return Err(JobError::retryable("reading the upload was interrupted")),
        Err(e) => {
            // Say what the upload is when libav can tell, rather than how opening it failed.
            if let Some(refusal) = describe_refused(&head, demuxers) {
                return Err(JobError::permanent(refusal));
            }
            return Err(match e {
                ff::Error::InvalidData => JobError::permanent(
                    "the upload is not a video file that can be read: libav found no known format in it (it may be corrupt, truncated, or another kind of file)",
                ),
                ff::Error::Eof => JobError::permanent("the upload is empty or ends before any media data"),
                other => JobError::permanent(format!("the upload could not be opened as a video: {other}")),
            });
        }
    };
    let picked = input.format().name().to_owned();
    if !is_one_of(&picked, demuxers) {
        // libav enforces the whitelist itself; this is the second lock on the door.
        return Err(JobError::permanent(format!(
            "the upload is a {picked} file, not a video in an accepted container ({ACCEPTED_IN_WORDS})"
        )));
    }
    // SAFETY: `input` owns a valid, opened format context.
    let score = unsafe { (*input.as_ptr()).probe_score };
    if score <= MISDETECTION_SCORE {
        // Random bytes pass a raw-stream probe (h263, mp3…) about once in a
        // thousand; every container this platform accepts scores far higher.
        return Err(only_guessed(&picked, score));
    }
    Ok(input)
}

fn only_guessed(format: &str, score: i32) -> JobError {
    JobError::permanent(format!(
        "the upload is not a video file that can be read: libav only guessed it might be raw {format} (probe score {score} of 100), so it is corrupt or another kind of file"
    ))
}

/// Whether demuxer `name` (libav names some with a list, `mov,mp4,m4a,…`)
/// is one of `demuxers` (a comma-separated list).
fn is_one_of(name: &str, demuxers: &str) -> bool {
    demuxers.split(',').any(|d| name.split(',').any(|n| n == d))
}

/// Reads up to [`HEAD_BYTES`] from the start, then rewinds.
fn read_head<R: Read + Seek>(reader: &mut R) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(HEAD_BYTES);
    reader.by_ref().take(HEAD_BYTES as u64).read_to_end(&mut head)?;
    reader.seek(std::io::SeekFrom::Start(0))?;
    Ok(head)
}

/// When the start of an upload is something other than an accepted
/// container, says what it is (`None` when libav cannot tell, or when it is
/// an accepted container after all).
fn describe_refused(head: &[u8], demuxers: &str) -> Option<String> {
    let mut buf = head.to_vec();
    buf.extend_from_slice(&[0u8; ff::ffi::AVPROBE_PADDING_SIZE as usize]);
    let empty = c"";
    let probe = ff::ffi::AVProbeData {
        filename: empty.as_ptr(),
        buf: buf.as_mut_ptr(),
        buf_size: head.len() as i32,
        mime_type: std::ptr::null(),
    };
    let mut score = 0;
    // SAFETY: `probe` points at `buf`, which is padded as libav requires and outlives the call.
    let format = unsafe { ff::ffi::av_probe_input_format3(&probe, 1, &mut score) };
    if format.is_null() {
        return None;
    }
    // SAFETY: a non-null demuxer from libav's static list has valid name strings.
    let (name, long_name) = unsafe {
        let f = &*format;
        let text = |p: *const std::os::raw::c_char| {
            if p.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        (text(f.name), text(f.long_name))
    };
    if is_one_of(&name, demuxers) {
        return None;
    }
    if score <= MISDETECTION_SCORE {
        return Some(only_guessed(&name, score).to_string());
    }
    if is_image_format(&name) {
        return Some(format!("the upload is a still image ({}), not a video", name.trim_end_matches("_pipe")));
    }
    let what = match name.as_str() {
        "hls" => "an HLS playlist".to_owned(),
        "dash" => "a DASH manifest".to_owned(),
        "concat" => "an ffconcat list".to_owned(),
        _ if long_name.is_empty() => format!("a {name} file"),
        _ => format!("a {long_name} file ({name})"),
    };
    let pointer = matches!(name.as_str(), "hls" | "dash" | "concat");
    Some(if pointer {
        format!("the upload is {what}, not a video: it only points at other files, which are never fetched; upload the video itself ({ACCEPTED_IN_WORDS})")
    } else {
        format!("the upload is {what}, which is not an accepted container; convert it to {ACCEPTED_IN_WORDS}")
    })
}

/// libav's own "misdetection possible" threshold (`AVPROBE_SCORE_RETRY`):
/// a format detected at or below this score is a guess, not a file type.
const MISDETECTION_SCORE: i32 = ff::ffi::AVPROBE_SCORE_MAX / 4;

/// Formats that hold a still image, not a video.
fn is_image_format(format: &str) -> bool {
    format.ends_with("_pipe") || format == "image2" || format == "apng"
}

fn rational(r: ff::Rational) -> Rational {
    Rational::new(r.numerator().max(0) as u32, r.denominator().max(0) as u32)
}

/// The clockwise display rotation of a stream (its display matrix, as
/// ffmpeg's autorotate reads it), snapped to a multiple of 90°.
fn rotation(stream: &ff::format::stream::Stream<'_>) -> i32 {
    for side in stream.side_data() {
        if side.kind() == ff::codec::packet::side_data::Type::DisplayMatrix && side.data().len() >= 36 {
            // SAFETY: the display matrix is nine 32-bit integers; the slice is at least that long.
            let ccw = unsafe { ffmpeg_sys_next::av_display_rotation_get(side.data().as_ptr().cast::<i32>()) };
            if ccw.is_finite() {
                let cw = (-ccw).round() as i32;
                return (((cw + 45).rem_euclid(360)) / 90) * 90;
            }
        }
    }
    0
}

/// The stream of `kind` to transcode: libav's best one when its codec is
/// `accepted`, else the first accepted one (cover art aside). `Err` with
/// the best stream when there are streams of `kind` but none is accepted,
/// `Ok(None)` when there is none at all.
fn pick<'a>(
    input: &'a Input,
    kind: MediaType,
    accepted: impl Fn(&ff::codec::Parameters) -> bool,
) -> Result<Option<ff::format::stream::Stream<'a>>, ff::format::stream::Stream<'a>> {
    let Some(best) = input.streams().best(kind) else { return Ok(None) };
    if accepted(&best.parameters()) {
        return Ok(Some(best));
    }
    let cover = ff::format::stream::Disposition::ATTACHED_PIC;
    match input
        .streams()
        .find(|s| s.parameters().medium() == kind && !s.disposition().contains(cover) && accepted(&s.parameters()))
    {
        Some(s) => Ok(Some(s)),
        None => Err(best),
    }
}

/// Refuses a stream whose decoder is not one the whitelist names for its
/// codec (libav's first choice for every accepted codec is; a build with
/// another choice is refused rather than trusted). Called before any of
/// the transcoder's own decoders opens.
pub fn check_decoder(params: &ff::codec::Parameters) -> Result<(), JobError> {
    let id = params.id();
    let decoder = ff::decoder::find(id).map(|d| d.name().to_owned()).unwrap_or_default();
    if codecs::decoder_allowed(id.name(), &decoder) {
        Ok(())
    } else {
        Err(JobError::permanent(format!(
            "the {} stream would be decoded by libav's {decoder:?} decoder, which is not one the transcoder uses",
            codec_name(params)
        )))
    }
}

/// Inspects an opened input. The streams it picks are checked against the
/// codec whitelist before any decoder opens.
pub fn inspect(input: &Input) -> Result<Probe, JobError> {
    let format = input.format().name().to_owned();
    let duration_s = (input.duration() > 0).then(|| input.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE));
    let refused = |s: ff::format::stream::Stream<'_>, video: bool| {
        let params = s.parameters();
        let (name, long_name) = (codec_name(&params), long_name(params.id()));
        let e = if video {
            codecs::CodecError::Video { name, long_name }
        } else {
            codecs::CodecError::Audio { name, long_name }
        };
        JobError::permanent(e.to_string())
    };
    let vs = match pick(input, MediaType::Video, |p| codecs::check_video(p.id().name(), "").is_ok()) {
        Ok(Some(vs)) => vs,
        Err(vs) if vs.parameters().id() != ff::codec::Id::None => return Err(refused(vs, true)),
        // An unknown codec: refused below, as libav cannot decode it.
        Err(vs) => vs,
        Ok(None) => {
            return Err(JobError::permanent(match input.streams().best(MediaType::Audio) {
                Some(a) => {
                    // SAFETY: reading a plain field of valid codec parameters (no decoder is opened).
                    let channels = unsafe { (*a.parameters().as_ptr()).ch_layout.nb_channels };
                    format!(
                        "the upload has no video stream: it is audio only ({}, {})",
                        codec_name(&a.parameters()),
                        if channels == 1 { "mono".to_owned() } else { format!("{channels} channels") }
                    )
                }
                None => "the upload contains no video stream".to_owned(),
            }));
        }
    };
    let audio_stream =
        pick(input, MediaType::Audio, |p| codecs::is_accepted_audio(p.id().name())).map_err(|s| refused(s, false))?;
    let audio = match audio_stream {
        Some(s) => {
            let params = s.parameters();
            check_decoder(&params)?;
            // The rate and channels the container declares are checked before
            // any audio decoder opens (PCM at 2 kHz or with 64 channels never reaches one).
            // SAFETY: reading plain fields of valid codec parameters (no decoder is opened).
            let (declared_rate, declared_channels) =
                unsafe { ((*params.as_ptr()).sample_rate, (*params.as_ptr()).ch_layout.nb_channels) };
            if let (Ok(rate @ 1..), Ok(channels @ 1..)) =
                (u32::try_from(declared_rate), u16::try_from(declared_channels))
            {
                codecs::check_audio(params.id().name(), &long_name(params.id()), rate, channels)
                    .map_err(|e| JobError::permanent(e.to_string()))?;
            }
            let ctx = ff::codec::context::Context::from_parameters(params.clone());
            let (channels, sample_rate) = match ctx.and_then(|c| c.decoder().audio()) {
                Ok(a) => (a.channels(), a.rate()),
                Err(_) => (0, 0),
            };
            if channels > 0 && sample_rate > 0 {
                codecs::check_audio(params.id().name(), &long_name(params.id()), sample_rate, channels)
                    .map_err(|e| JobError::permanent(e.to_string()))?;
            }
            Some(AudioStream { index: s.index(), codec: codec_name(&params), channels, sample_rate })
        }
        None => None,
    };
    let params = vs.parameters();
    let codec = codec_name(&params);
    Timeline::new(duration_s).map_err(|e| JobError::permanent(e.to_string()))?;
    if params.id() == ff::codec::Id::None || ff::decoder::find(params.id()).is_none() {
        return Err(JobError::permanent(format!("the video stream is {codec}, which this transcoder cannot decode")));
    }
    check_decoder(&params)?;
    let decoder = ff::codec::context::Context::from_parameters(params)
        .and_then(|c| c.decoder().video())
        .map_err(|e| JobError::permanent(format!("the {codec} video stream cannot be decoded: {e}")))?;
    let (width, height) = (decoder.width(), decoder.height());
    if width == 0 || height == 0 {
        return Err(JobError::permanent(format!(
            "the {codec} video stream has no usable picture size: it declares none, or one too large to decode; the file is damaged or not meant to be played"
        )));
    }
    let avg = rational(vs.avg_frame_rate());
    let frame_rate = if avg.num > 0 && avg.den > 0 && avg.as_f64() <= 1000.0 {
        avg
    } else {
        let r = rational(vs.rate());
        if r.num > 0 && r.den > 0 && r.as_f64() <= 1000.0 {
            r
        } else {
            Rational::new(30, 1)
        }
    };
    let start_s = match vs.start_time() {
        t if t == ff::ffi::AV_NOPTS_VALUE => 0.0,
        t => t as f64 * f64::from(vs.time_base()),
    };
    let start_s = if start_s.is_finite() { start_s } else { 0.0 };
    let sar = rational(decoder.aspect_ratio());
    let pixel_format = format!("{:?}", decoder.format()).to_lowercase();
    let color = ColorTags {
        space: decoder.color_space(),
        primaries: decoder.color_primaries(),
        transfer: decoder.color_transfer_characteristic(),
    };
    Ok(Probe {
        format,
        duration_s,
        video: VideoStream {
            index: vs.index(),
            codec,
            width,
            height,
            sample_aspect: sar,
            rotation: rotation(&vs),
            frame_rate,
            start_s,
            pixel_format,
            color,
        },
        audio: audio.filter(|a| a.channels > 0 && a.sample_rate > 0),
    })
}

/// The codec's name, or for a codec libav does not know, its four-character tag.
fn codec_name(params: &ff::codec::Parameters) -> String {
    if params.id() != ff::codec::Id::None {
        return params.id().name().to_owned();
    }
    // SAFETY: reading a plain field of valid codec parameters.
    let tag = unsafe { (*params.as_ptr()).codec_tag }.to_le_bytes();
    if tag.iter().all(|b| b.is_ascii_graphic() || *b == b' ') && tag != [0; 4] {
        format!("an unknown codec (\"{}\")", String::from_utf8_lossy(&tag).trim_end())
    } else {
        "an unknown codec".to_owned()
    }
}

/// libav's description of a codec (`Cinepak`), or nothing.
fn long_name(id: ff::codec::Id) -> String {
    // SAFETY: avcodec_descriptor_get returns null or a pointer into libav's static descriptor table.
    unsafe {
        let d = ff::ffi::avcodec_descriptor_get(id.into());
        if d.is_null() || (*d).long_name.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr((*d).long_name).to_string_lossy().into_owned()
        }
    }
}
