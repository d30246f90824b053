//! Test media made at test time with the ffmpeg CLI (lavfi sources), and
//! ffprobe-based checks of what the transcoder wrote. Nothing binary is
//! committed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use media_core::video::ladder::LadderOptions;
use serde_json::Value;
use transcoder::error::JobError;
use transcoder::local::{transcode_to_dir, LocalReport};
use transcoder::pipeline::Tuning;

/// Runs the ffmpeg CLI quietly; panics with its message on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// ffprobe's JSON for `path` with extra `args`.
pub fn ffprobe(path: &Path, args: &[&str]) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe {} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe prints JSON")
}

/// A scratch folder removed at the end of the test.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("transcoder-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Transcodes `input` into `out` with `options`.
pub fn transcode(input: &Path, out: &Path, options: &LadderOptions) -> Result<LocalReport, JobError> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(transcode_to_dir(input, out, options, &Tuning::default()))
}

/// What a ladder must look like.
pub struct Expect<'a> {
    pub rungs: &'a [(&'a str, u32, u32)],
    pub audio: bool,
    pub duration_s: f64,
    /// Whether each rung's video bitrate must be within 10% of its target:
    /// only for sources busy enough to need it (a still test pattern is
    /// encoded well below any target).
    pub bitrate: bool,
}

/// A rung's average video bitrate: its video packets' bytes over `duration_s`.
pub fn video_bitrate(playlist: &Path, duration_s: f64) -> f64 {
    let v = ffprobe(playlist, &["-select_streams", "v", "-show_entries", "packet=size"]);
    let bytes: u64 =
        v["packets"].as_array().unwrap().iter().map(|p| p["size"].as_str().unwrap().parse::<u64>().unwrap()).sum();
    bytes as f64 * 8.0 / duration_s
}

/// The EXTINF durations of a media playlist.
pub fn extinf(playlist: &str) -> Vec<f64> {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse().unwrap())
        .collect()
}

/// Keyframe times of a rung's video, as ffprobe reads them through its playlist.
pub fn keyframes(playlist: &Path) -> Vec<String> {
    let v = ffprobe(playlist, &["-select_streams", "v", "-show_entries", "packet=pts_time,flags"]);
    v["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["flags"].as_str().unwrap_or("").starts_with('K'))
        .map(|p| p["pts_time"].as_str().unwrap().to_owned())
        .collect()
}

/// Checks everything the ladder in `out` must satisfy.
pub fn check_ladder(out: &Path, report: &LocalReport, options: &LadderOptions, expect: &Expect<'_>) {
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    assert!(master.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"), "{master}");
    let listed: Vec<&str> = master.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(listed.len(), expect.rungs.len(), "{master}");
    let names: Vec<&str> = report.summary.rungs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, expect.rungs.iter().map(|r| r.0).collect::<Vec<_>>());
    let mut first_keyframes: Option<Vec<String>> = None;
    let segment_s = 4.0;
    let plan = media_core::video::ladder::plan_ladder(&report.summary.probe.source_video(), options)
        .expect("the source was planned");
    for (name, w, h) in expect.rungs {
        let playlist = out.join(name).join("index.m3u8");
        assert!(master.contains(&format!("RESOLUTION={w}x{h}")), "{name}: {master}");
        let text = std::fs::read_to_string(&playlist).unwrap();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD") && text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
        assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\""));
        let durations = extinf(&text);
        let (last, full) = durations.split_last().unwrap();
        for (i, d) in full.iter().enumerate() {
            // The first segment is half a second (whole frames) so playback can start early.
            let want = if i == 0 { f64::from(plan.first_segment_frames) / plan.frame_rate.as_f64() } else { segment_s };
            assert!((d - want).abs() < 0.01, "{name}: segment {i} of {d} s in {durations:?}");
        }
        assert!(*last > 0.0 && *last <= segment_s + 0.01, "{name}: last segment {last}");
        let total: f64 = durations.iter().sum();
        assert!((total - expect.duration_s).abs() < 0.15, "{name}: {total} s listed, expected {}", expect.duration_s);

        let probe = ffprobe(&playlist, &["-show_streams", "-show_format"]);
        let streams = probe["streams"].as_array().unwrap();
        let video = streams.iter().find(|s| s["codec_type"] == "video").expect("a video stream");
        assert_eq!(
            (video["width"].as_u64().unwrap() as u32, video["height"].as_u64().unwrap() as u32),
            (*w, *h),
            "{name}"
        );
        assert_eq!(video["codec_name"], "h264");
        assert_eq!(video["profile"], "High");
        assert_eq!(video["pix_fmt"], "yuv420p");
        let audio = streams.iter().find(|s| s["codec_type"] == "audio");
        assert_eq!(audio.is_some(), expect.audio, "{name}: audio presence");
        if let Some(a) = audio {
            assert_eq!(
                (a["codec_name"].as_str(), a["channels"].as_u64(), a["sample_rate"].as_str()),
                (Some("aac"), Some(2), Some("48000"))
            );
        }
        let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
        assert!(
            (duration - expect.duration_s).abs() < 0.2,
            "{name}: decodes to {duration} s, expected {}",
            expect.duration_s
        );

        if expect.bitrate {
            // x264's 1-pass ABR hits each rung's target over the whole video.
            let target = plan.rungs.iter().find(|r| r.name.as_str() == *name).expect("a planned rung").bitrate as f64;
            let measured = video_bitrate(&playlist, duration);
            let ratio = measured / target;
            eprintln!("{name}: video {measured:.0} b/s, target {target:.0} ({ratio:.3})");
            assert!((ratio - 1.0).abs() <= 0.10, "{name}: video at {measured:.0} b/s against a target of {target:.0}");
        }

        let keys = keyframes(&playlist);
        assert!(!keys.is_empty());
        match &first_keyframes {
            None => first_keyframes = Some(keys),
            Some(first) => assert_eq!(&keys, first, "{name}: keyframes differ from the top rung's"),
        }
    }
    // Keyframes at 0, at the end of the half-second first segment, then
    // every 2 s (the GOP), so every segment starts with one.
    let keys = first_keyframes.unwrap();
    let times: Vec<f64> = keys.iter().map(|k| k.parse().unwrap()).collect();
    let first_s = f64::from(plan.first_segment_frames) / plan.frame_rate.as_f64();
    assert!(times.len() >= 2 && (times[1] - times[0] - first_s).abs() < 0.05, "first GOP: {times:?}");
    for pair in times[1..].windows(2) {
        assert!((pair[1] - pair[0] - 2.0).abs() < 0.05, "GOPs: {times:?}");
    }
    // Images and the thumbnails track.
    for img in ["poster.jpg", "sprite.jpg"] {
        let bytes = std::fs::read(out.join(img)).unwrap();
        assert!(bytes.starts_with(&[0xFF, 0xD8, 0xFF]), "{img} is not a JPEG");
    }
    let vtt = std::fs::read_to_string(out.join("thumbnails.vtt")).unwrap();
    let meta = report.result.thumbnails.expect("thumbnail metadata");
    assert!(vtt.starts_with("WEBVTT\n"));
    assert_eq!(vtt.matches("-->").count() as u32, meta.count);
    let sprite = ffprobe(&out.join("sprite.jpg"), &["-show_streams"]);
    assert_eq!(sprite["streams"][0]["width"].as_u64().unwrap() as u32, meta.cols * meta.tile_w);
    assert_eq!(sprite["streams"][0]["height"].as_u64().unwrap() as u32, meta.rows * meta.tile_h);
    // The result reported to the video service matches.
    assert_eq!(report.result.renditions.len(), expect.rungs.len());
    assert_eq!(report.result.has_audio, expect.audio);
    for r in &report.result.renditions {
        assert!(r.bandwidth >= r.average_bandwidth && r.average_bandwidth > 0, "{r:?}");
        assert!(r.codecs.starts_with("avc1.64"), "{r:?}");
        assert_eq!(r.codecs.ends_with(",mp4a.40.2"), expect.audio);
    }
}

/// Sets a 90°-rotation display matrix on `src`'s video track (a phone's
/// portrait video is stored landscape with this), by remuxing.
pub fn with_rotation(src: &Path, dst: &Path, degrees: i32) {
    ffmpeg(&[
        "-i",
        src.to_str().unwrap(),
        "-c",
        "copy",
        "-metadata:s:v:0",
        &format!("rotate={degrees}"),
        "-f",
        "mp4",
        dst.to_str().unwrap(),
    ]);
}

/// The hostile file of issue 23: 2 s of 320x240 video and `audio_s` seconds
/// of 8 kHz mono PCM (`pcm`: `pcm_u8`, `pcm_s16le`) behind it in Matroska,
/// its Segment Duration patched to 3 s (the real duration would be refused
/// as truncated video). Patched in place from the file's first 64 KiB, so
/// making a large one does not set a memory test's peak.
pub fn audio_tail_mkv(path: &Path, audio_s: u32, pcm: &str) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let audio = format!("anoisesrc=duration={audio_s}:sample_rate=8000:amplitude=0.5");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=10:duration=2",
        "-f",
        "lavfi",
        "-i",
        &audio,
        "-map",
        "0",
        "-map",
        "1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        pcm,
        "-ac",
        "1",
        "-f",
        "matroska",
        path.to_str().unwrap(),
    ]);
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut head = vec![0u8; 64 * 1024];
    let n = f.read(&mut head).unwrap();
    let at = head[..n].windows(3).position(|w| w == [0x44, 0x89, 0x88]).expect("a Segment Duration element");
    f.seek(SeekFrom::Start(at as u64 + 3)).unwrap();
    f.write_all(&3000.0f64.to_be_bytes()).unwrap();
}

/// The `EXT-X-STREAM-INF` line of rung `name`'s variant in `master`.
pub fn variant_line<'a>(master: &'a str, name: &str) -> &'a str {
    master
        .lines()
        .zip(master.lines().skip(1))
        .find(|(_, uri)| *uri == format!("{name}/index.m3u8"))
        .map(|(inf, _)| inf)
        .unwrap_or_else(|| panic!("{name} is in the master: {master}"))
}
