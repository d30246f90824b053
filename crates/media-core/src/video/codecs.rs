//! Which codecs the transcoder decodes: the whitelist, in one place. libav
//! carries hundreds of decoders (most written for one old game or camera,
//! rarely fuzzed), and a container the platform accepts (Matroska's codec
//! ids, Ogg's old OGM headers, MP4 sample entries) can name almost any of
//! them. The transcoder reaches only the decoders listed here: libavformat's
//! `codec_whitelist` (built by [`decoder_whitelist`]) keeps every other one
//! closed while a file is probed, and the streams it picks are checked with
//! [`check_video`] and [`check_audio`] before it opens a decoder itself.
//!
//! Codecs are named as libav names them (`avcodec_get_name`: `h264`,
//! `mpeg2video`, `pcm_s16le`), decoders by their own names (`libdav1d`,
//! `mp3float`), which are what `codec_whitelist` matches.

/// An accepted codec: libav's name for it, the name people know it by, and
/// the decoders libav may pick for it (its first choice must be among them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    pub name: &'static str,
    pub label: &'static str,
    pub decoders: &'static [&'static str],
}

const fn codec(name: &'static str, label: &'static str, decoders: &'static [&'static str]) -> Codec {
    Codec { name, label, decoders }
}

/// Video codecs the transcoder decodes. MPEG-1, Theora, VC-1, the
/// Windows Media and RealVideo families and every game or screen codec are
/// left out.
pub const VIDEO_CODECS: &[Codec] = &[
    codec("h264", "H.264", &["h264"]),
    codec("hevc", "HEVC", &["hevc"]),
    codec("vp8", "VP8", &["vp8", "libvpx"]),
    codec("vp9", "VP9", &["vp9", "libvpx-vp9"]),
    // libav prefers libdav1d, then libaom; its own `av1` decoder needs a hardware decoder.
    codec("av1", "AV1", &["libdav1d", "libaom-av1"]),
    codec("mpeg4", "MPEG-4 Part 2", &["mpeg4"]),
    codec("mpeg2video", "MPEG-2", &["mpeg2video", "mpegvideo"]),
    codec("prores", "ProRes", &["prores"]),
    codec("mjpeg", "MJPEG", &["mjpeg"]),
];

/// Audio codecs the transcoder decodes, besides linear PCM ([`PCM_CODECS`]).
pub const AUDIO_CODECS: &[Codec] = &[
    codec("aac", "AAC", &["aac", "aac_fixed"]),
    codec("mp3", "MP3", &["mp3float", "mp3"]),
    codec("opus", "Opus", &["opus", "libopus"]),
    codec("vorbis", "Vorbis", &["vorbis", "libvorbis"]),
    codec("flac", "FLAC", &["flac"]),
    codec("ac3", "AC-3", &["ac3", "ac3_fixed"]),
    codec("eac3", "E-AC-3", &["eac3"]),
    codec("alac", "ALAC", &["alac"]),
];

/// Linear PCM in every sample layout a container stores (and G.711 A-law
/// and µ-law, which IP cameras record): each decoder has the codec's name.
/// DVD, Blu-ray and broadcast variants are left out.
pub const PCM_CODECS: &[&str] = &[
    "pcm_u8",
    "pcm_s8",
    "pcm_s16le",
    "pcm_s16be",
    "pcm_u16le",
    "pcm_u16be",
    "pcm_s24le",
    "pcm_s24be",
    "pcm_u24le",
    "pcm_u24be",
    "pcm_s32le",
    "pcm_s32be",
    "pcm_u32le",
    "pcm_u32be",
    "pcm_s64le",
    "pcm_s64be",
    "pcm_f32le",
    "pcm_f32be",
    "pcm_f64le",
    "pcm_f64be",
    "pcm_alaw",
    "pcm_mulaw",
];

/// The sample rates accepted for PCM, in Hz.
pub const PCM_SAMPLE_RATES: std::ops::RangeInclusive<u32> = 8_000..=192_000;
/// The channel counts accepted for PCM.
pub const PCM_CHANNELS: std::ops::RangeInclusive<u16> = 1..=8;

/// libavformat's `codec_whitelist`: every decoder of every accepted codec,
/// comma-separated.
pub fn decoder_whitelist() -> String {
    let mut names: Vec<&str> =
        VIDEO_CODECS.iter().chain(AUDIO_CODECS).flat_map(|c| c.decoders.iter().copied()).collect();
    names.extend_from_slice(PCM_CODECS);
    names.join(",")
}

/// Whether `decoder` (a libav decoder name) may decode the codec `codec`.
pub fn decoder_allowed(codec: &str, decoder: &str) -> bool {
    VIDEO_CODECS.iter().chain(AUDIO_CODECS).any(|c| c.name == codec && c.decoders.contains(&decoder))
        || (PCM_CODECS.contains(&codec) && decoder == codec)
}

/// Why a stream's codec is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("the video stream is {}, which is not accepted; send H.264, HEVC, VP8, VP9, AV1, MPEG-4 Part 2, MPEG-2, ProRes or MJPEG video", described(.name, .long_name))]
    Video { name: String, long_name: String },
    #[error("the audio stream is {}, which is not accepted; send AAC, MP3, Opus, Vorbis, FLAC, PCM, AC-3, E-AC-3 or ALAC audio", described(.name, .long_name))]
    Audio { name: String, long_name: String },
    #[error("the audio stream is PCM ({name}) at {sample_rate} Hz with {channels} channels; PCM is accepted at 8-192 kHz with 1-8 channels")]
    PcmLayout { name: String, sample_rate: u32, channels: u16 },
}

/// `Cinepak (cinepak)`, or the bare name when libav has no longer one.
fn described(name: &str, long_name: &str) -> String {
    if long_name.is_empty() || long_name == name {
        name.to_owned()
    } else {
        format!("{long_name} ({name})")
    }
}

/// Checks a video stream's codec; `long_name` is libav's description of it.
pub fn check_video(name: &str, long_name: &str) -> Result<(), CodecError> {
    if VIDEO_CODECS.iter().any(|c| c.name == name) {
        Ok(())
    } else {
        Err(CodecError::Video { name: name.to_owned(), long_name: long_name.to_owned() })
    }
}

/// Whether an audio stream's codec is accepted, whatever its layout.
pub fn is_accepted_audio(name: &str) -> bool {
    AUDIO_CODECS.iter().any(|c| c.name == name) || PCM_CODECS.contains(&name)
}

/// Checks an audio stream's codec, and for PCM its rate and channels.
pub fn check_audio(name: &str, long_name: &str, sample_rate: u32, channels: u16) -> Result<(), CodecError> {
    if !is_accepted_audio(name) {
        return Err(CodecError::Audio { name: name.to_owned(), long_name: long_name.to_owned() });
    }
    if PCM_CODECS.contains(&name) && !(PCM_SAMPLE_RATES.contains(&sample_rate) && PCM_CHANNELS.contains(&channels)) {
        return Err(CodecError::PcmLayout { name: name.to_owned(), sample_rate, channels });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_s_codecs_are_accepted_and_others_are_refused_by_name() {
        for v in ["h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video", "prores", "mjpeg"] {
            assert_eq!(check_video(v, ""), Ok(()), "{v}");
        }
        for a in ["aac", "mp3", "opus", "vorbis", "flac", "pcm_s16le", "pcm_f32le", "ac3", "eac3", "alac"] {
            assert_eq!(check_audio(a, "", 48_000, 2), Ok(()), "{a}");
        }
        let e = check_video("cinepak", "Cinepak").unwrap_err().to_string();
        assert!(e.starts_with("the video stream is Cinepak (cinepak), which is not accepted"), "{e}");
        for v in ["smackvideo", "msmpeg4v3", "theora", "mpeg1video", "png", "rawvideo", "vc1"] {
            assert!(check_video(v, "").unwrap_err().to_string().contains(v), "{v}");
        }
        for a in ["dts", "truehd", "wmav2", "adpcm_ima_wav", "pcm_dvd", "speex"] {
            assert!(check_audio(a, "", 48_000, 2).unwrap_err().to_string().contains(a), "{a}");
        }
    }

    #[test]
    fn pcm_must_have_a_sane_rate_and_channel_count() {
        assert!(check_audio("pcm_s16le", "", 8_000, 1).is_ok());
        assert!(check_audio("pcm_s24le", "", 192_000, 8).is_ok());
        for (rate, ch) in [(4_000, 2), (384_000, 2), (48_000, 0), (48_000, 9), (1, 64)] {
            let e = check_audio("pcm_s16le", "", rate, ch).unwrap_err();
            assert!(e.to_string().contains(&format!("{rate} Hz with {ch} channels")), "{e}");
        }
        // Other codecs keep their own layouts (Opus reports 48 kHz, AAC may be 7.35 kHz).
        assert!(check_audio("aac", "", 7_350, 2).is_ok());
    }

    #[test]
    fn the_decoder_whitelist_lists_every_decoder_once() {
        let list = decoder_whitelist();
        let names: Vec<&str> = list.split(',').collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "{list}");
        for n in ["h264", "libdav1d", "libaom-av1", "vp9", "libvpx-vp9", "mp3float", "pcm_s16le", "pcm_mulaw"] {
            assert!(names.contains(&n), "{n} missing from {list}");
        }
        assert!(!names.contains(&"cinepak") && !names.contains(&"smackvid"));
        assert!(decoder_allowed("av1", "libdav1d") && decoder_allowed("pcm_s16le", "pcm_s16le"));
        assert!(!decoder_allowed("av1", "h264") && !decoder_allowed("cinepak", "cinepak"));
    }
}
