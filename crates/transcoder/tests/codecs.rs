//! The codec whitelist against real libav (Debian's FFmpeg 5.1): every
//! accepted codec the ffmpeg CLI can encode still transcodes, libav's own
//! choice of decoder for each is on the list, and streams in other codecs
//! (Cinepak and Microsoft Video 1 in Matroska, DivX 3 in an OGM file, WMA,
//! PCM at an absurd rate) are refused with a message naming the codec.
//! Media is made at test time: with the ffmpeg CLI, and the OGM file byte
//! by byte (ffmpeg cannot write one).

mod support;

use std::path::{Path, PathBuf};

use ffmpeg_next as ff;
use media_core::video::codecs::{decoder_allowed, decoder_whitelist, AUDIO_CODECS, PCM_CODECS, VIDEO_CODECS};
use media_core::video::ladder::LadderOptions;
use support::*;
use transcoder::error::JobError;
use transcoder::pipeline::probe;

/// A 1 s 64x64 clip at 10 fps with a sine tone, in the codecs and container given.
fn clip(dir: &Scratch, name: &str, video: &[&str], audio: &[&str]) -> PathBuf {
    let out = dir.path(name);
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:rate=10:duration=1",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1:sample_rate=48000",
        "-map",
        "0",
        "-map",
        "1",
    ];
    args.extend_from_slice(video);
    args.extend_from_slice(audio);
    args.push(out.to_str().unwrap());
    ffmpeg(&args);
    out
}

fn refusal(src: &Path, out: &Path) -> String {
    match transcode(src, out, &LadderOptions::default()) {
        Err(JobError::Permanent(m)) => m,
        other => panic!("{}: expected a permanent refusal, got {other:?}", src.display()),
    }
}

/// (file, video args, audio args, video codec, audio codec).
type Case<'a> = (&'a str, Vec<&'a str>, Vec<&'a str>, &'a str, &'a str);

#[test]
fn every_accepted_codec_the_cli_can_encode_still_transcodes() {
    let dir = Scratch::new("codecs-accepted");
    let x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"];
    // (file, video args, audio args, video codec, audio codec): every video
    // family once, every audio family once beside one of them.
    let cases: Vec<Case<'_>> = vec![
        ("h264-aac.mp4", x264.to_vec(), vec!["-c:a", "aac"], "h264", "aac"),
        (
            "hevc-mp3.mkv",
            vec!["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"],
            vec!["-c:a", "libmp3lame"],
            "hevc",
            "mp3",
        ),
        (
            "vp8-vorbis.webm",
            vec!["-c:v", "libvpx", "-deadline", "realtime"],
            vec!["-c:a", "libvorbis"],
            "vp8",
            "vorbis",
        ),
        (
            "vp9-opus.webm",
            vec!["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
            vec!["-c:a", "libopus"],
            "vp9",
            "opus",
        ),
        (
            "av1-flac.mkv",
            vec!["-c:v", "libaom-av1", "-cpu-used", "8", "-usage", "realtime"],
            vec!["-c:a", "flac"],
            "av1",
            "flac",
        ),
        ("mpeg4-ac3.mkv", vec!["-c:v", "mpeg4"], vec!["-c:a", "ac3"], "mpeg4", "ac3"),
        ("mpeg2-eac3.mkv", vec!["-c:v", "mpeg2video"], vec!["-c:a", "eac3"], "mpeg2video", "eac3"),
        ("prores-pcm.mov", vec!["-c:v", "prores_ks"], vec!["-c:a", "pcm_s16le"], "prores", "pcm_s16le"),
        ("mjpeg-alac.mov", vec!["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"], vec!["-c:a", "alac"], "mjpeg", "alac"),
        ("h264-mulaw.mov", x264.to_vec(), vec!["-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1"], "h264", "pcm_mulaw"),
    ];
    for (name, video, audio, vcodec, acodec) in cases {
        let src = clip(&dir, name, &video, &audio);
        let out = dir.path(&format!("out-{name}"));
        let report = transcode(&src, &out, &LadderOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = &report.summary.probe;
        assert_eq!((p.video.codec.as_str(), p.audio.as_ref().map(|a| a.codec.as_str())), (vcodec, Some(acodec)));
        assert!(report.summary.has_audio, "{name}: the audio was kept");
        assert!((report.summary.duration_s - 1.0).abs() < 0.15, "{name}: {} s", report.summary.duration_s);
        assert_eq!(report.summary.rungs[0].frames, 10, "{name}");
    }
}

/// The name of the codec `name` (libav's) as an id.
fn codec_id(name: &str) -> ff::codec::Id {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: a NUL-terminated name; the result is null or a static descriptor.
    let d = unsafe { ff::ffi::avcodec_descriptor_get_by_name(c.as_ptr()) };
    assert!(!d.is_null(), "libav has no codec named {name}");
    // SAFETY: non-null, checked above.
    ff::codec::Id::from(unsafe { (*d).id })
}

/// libav's first choice of decoder for every accepted codec is on the
/// whitelist (so `codec_whitelist` never keeps an accepted codec from
/// decoding), and how much of libav the list leaves out.
#[test]
fn libav_s_own_decoders_for_accepted_codecs_are_whitelisted() {
    ff::init().unwrap();
    let mut accepted: Vec<&str> = VIDEO_CODECS.iter().chain(AUDIO_CODECS).map(|c| c.name).collect();
    accepted.extend_from_slice(PCM_CODECS);
    for name in accepted {
        let id = codec_id(name);
        let decoder = ff::decoder::find(id).unwrap_or_else(|| panic!("no decoder for {name}"));
        assert!(decoder_allowed(name, decoder.name()), "{name} is decoded by {}, not on the list", decoder.name());
        assert_eq!(id.name(), name);
    }
    let (mut all, mut listed) = (0, 0);
    let list = decoder_whitelist();
    let names: Vec<&str> = list.split(',').collect();
    let mut opaque = std::ptr::null_mut();
    loop {
        // SAFETY: iterating libav's static codec list with its own cursor.
        let codec = unsafe { ff::ffi::av_codec_iterate(&mut opaque) };
        if codec.is_null() {
            break;
        }
        // SAFETY: a non-null codec from the static list.
        if unsafe { ff::ffi::av_codec_is_decoder(codec) } != 0 {
            all += 1;
            // SAFETY: every codec in the list has a static name.
            let name = unsafe { std::ffi::CStr::from_ptr((*codec).name) }.to_string_lossy();
            if names.contains(&name.as_ref()) {
                listed += 1;
            }
        }
    }
    eprintln!("libav decoders: {all}; on the whitelist: {listed}");
    assert!(listed >= 40 && all > 4 * listed, "{listed} of {all}");
}

/// An Ogg file with OGM's old-style headers (what DivX-era tools wrote):
/// one video stream whose header names the FourCC `fourcc`, then `frames`
/// one-packet pages of opaque data. ffmpeg cannot write OGM, so the bytes
/// are built here, CRCs and all.
pub fn ogm(fourcc: &[u8; 4], frames: u32) -> Vec<u8> {
    fn crc(data: &[u8]) -> u32 {
        data.iter().fold(0u32, |mut c, b| {
            c ^= u32::from(*b) << 24;
            for _ in 0..8 {
                c = if c & 0x8000_0000 != 0 { (c << 1) ^ 0x04c1_1db7 } else { c << 1 };
            }
            c
        })
    }
    fn page(flags: u8, granule: u64, seq: u32, packet: &[u8]) -> Vec<u8> {
        let mut lacing = vec![255u8; packet.len() / 255];
        lacing.push((packet.len() % 255) as u8);
        let mut p = b"OggS\0".to_vec();
        p.push(flags);
        p.extend(granule.to_le_bytes());
        p.extend(0x4f47_4d31u32.to_le_bytes()); // serial
        p.extend(seq.to_le_bytes());
        p.extend([0; 4]); // CRC, filled below
        p.push(lacing.len() as u8);
        p.extend(lacing);
        p.extend(packet);
        let c = crc(&p);
        p[22..26].copy_from_slice(&c.to_le_bytes());
        p
    }
    let mut header = b"\x01video\0\0\0".to_vec();
    header.extend(fourcc);
    header.extend(56u32.to_le_bytes()); // header size
    header.extend(1_000_000u64.to_le_bytes()); // time unit: 0.1 s in 100 ns units
    header.extend(1u64.to_le_bytes()); // samples per unit
    header.extend(1u32.to_le_bytes()); // default length
    header.extend([0; 8]); // buffer size, bits per sample, padding
    header.extend(64u32.to_le_bytes());
    header.extend(64u32.to_le_bytes());
    let mut out = page(0x02, 0, 0, &header);
    out.extend(page(0, 0, 1, &[3, 0, 0, 0, 0, 0, 0, 0, 0]));
    for i in 0..frames {
        let data: Vec<u8> = std::iter::once(0x08).chain(std::iter::repeat_n(i as u8, 200)).collect();
        out.extend(page(if i + 1 == frames { 0x04 } else { 0 }, u64::from(i), 2 + i, &data));
    }
    out
}

#[test]
fn streams_in_other_codecs_are_refused_by_name() {
    let dir = Scratch::new("codecs-refused");
    let video = |name: &str, codec: &str| {
        let out = dir.path(name);
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x64:rate=10:duration=1",
            "-c:v",
            codec,
            "-f",
            "matroska",
            out.to_str().unwrap(),
        ]);
        out
    };
    let cinepak = video("cinepak.mkv", "cinepak");
    let m = refusal(&cinepak, &dir.path("out-cinepak"));
    assert!(m.starts_with("the video stream is Cinepak (cinepak), which is not accepted"), "{m}");

    // Smacker cannot be named inside Matroska by this libav (no Matroska,
    // RIFF or QuickTime tag maps to it; only the smacker demuxer, which the
    // format whitelist keeps out, reads it): Microsoft Video 1, which ffmpeg
    // encodes, stands in for the game codecs; and a Smacker FourCC written
    // over its tag is an unknown codec.
    let msvideo1 = video("msvideo1.mkv", "msvideo1");
    let m = refusal(&msvideo1, &dir.path("out-msvideo1"));
    assert!(m.starts_with("the video stream is Microsoft Video 1 (msvideo1), which is not accepted"), "{m}");
    let mut bytes = std::fs::read(&msvideo1).unwrap();
    let at = bytes.windows(4).position(|w| w == b"MSVC").expect("the BITMAPINFOHEADER's FourCC");
    bytes[at..at + 4].copy_from_slice(b"SMK2");
    let smacker = dir.path("smk2.mkv");
    std::fs::write(&smacker, bytes).unwrap();
    let m = refusal(&smacker, &dir.path("out-smk2"));
    assert!(m.contains("unknown codec (\"SMK2\")") && m.contains("cannot decode"), "{m}");

    // OGM: Ogg's old headers carry any FourCC; DivX 3 (msmpeg4v3) was their usual load.
    let ogm_file = dir.path("divx3.ogv");
    std::fs::write(&ogm_file, ogm(b"DIV3", 20)).unwrap();
    let m = refusal(&ogm_file, &dir.path("out-ogm"));
    assert!(m.contains("(msmpeg4v3), which is not accepted"), "{m}");

    // Audio: WMA beside accepted video, and PCM at a rate no recorder uses.
    let x264 = ["-c:v", "libx264", "-preset", "ultrafast"];
    let wma = clip(&dir, "wma.mkv", &x264, &["-c:a", "wmav2"]);
    let m = refusal(&wma, &dir.path("out-wma"));
    assert!(m.starts_with("the audio stream is Windows Media Audio 2 (wmav2), which is not accepted"), "{m}");
    let slow = clip(&dir, "pcm-2k.mkv", &x264, &["-c:a", "pcm_s16le", "-ar", "2000"]);
    let m = refusal(&slow, &dir.path("out-pcm"));
    assert!(m.contains("PCM (pcm_s16le) at 2000 Hz"), "{m}");
}

/// A file with an accepted track beside refused ones: the accepted audio is
/// picked, and the subtitle and the other audio track are ignored, never
/// decoded. While probing, libav may open only whitelisted decoders.
#[test]
fn other_tracks_are_ignored_and_probing_opens_only_whitelisted_decoders() {
    let dir = Scratch::new("codecs-tracks");
    let srt = dir.path("subs.srt");
    std::fs::write(&srt, "1\n00:00:00,000 --> 00:00:01,000\nhello\n").unwrap();
    let src = dir.path("tracks.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:rate=10:duration=1",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        "-i",
        srt.to_str().unwrap(),
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "1",
        "-map",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a:0",
        "wmav2",
        "-c:a:1",
        "aac",
        "-c:s",
        "srt",
        src.to_str().unwrap(),
    ]);
    let report = transcode(&src, &dir.path("out"), &LadderOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.summary.probe.audio.as_ref().map(|a| a.codec.as_str()), Some("aac"));
    assert!(report.summary.has_audio);

    let input = probe::open(std::fs::File::open(&src).unwrap(), || false).unwrap();
    // Matroska does not declare WMA's sample format: only a decoder opened
    // while probing fills it in. Opened without the whitelist, libav does;
    // through probe::open, the WMA decoder never opened.
    let wma_format = |input: &ff::format::context::Input| {
        let wma = input.streams().find(|s| s.parameters().id() == ff::codec::Id::WMAV2).expect("the WMA track");
        // SAFETY: reading a plain field of valid codec parameters.
        unsafe { (*wma.parameters().as_ptr()).format }
    };
    let unguarded = ff::format::input(&src).unwrap();
    assert_ne!(
        wma_format(&unguarded),
        ff::ffi::AVSampleFormat::AV_SAMPLE_FMT_NONE as i32,
        "libav decodes WMA while probing"
    );
    assert_eq!(
        wma_format(&input),
        ff::ffi::AVSampleFormat::AV_SAMPLE_FMT_NONE as i32,
        "the WMA decoder opened while probing"
    );
    // SAFETY: reading a string option of the opened format context.
    let set = unsafe { std::ffi::CStr::from_ptr((*input.as_ptr()).codec_whitelist) }.to_string_lossy().into_owned();
    assert_eq!(set, decoder_whitelist());
}
