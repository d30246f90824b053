//! The MP4 download against real libav: a source with audio is transcoded
//! with a download asked, and the file is checked with ffprobe and ffmpeg:
//! one H.264 stream of the chosen rung's size and one AAC stream, `moov`
//! before `mdat` (faststart), its duration within a segment of the
//! source's, every frame decodes, and nothing is left on the work disk.
//! An encrypted ladder still yields a clear MP4.

mod support;

use std::path::Path;
use std::process::Command;

use media_core::video::access::{DownloadOption, Encryption, PlaybackOptions};
use media_core::video::download::DownloadReport;
use media_core::video::ladder::LadderOptions;
use support::*;
use transcoder::local::{transcode_to_dir_with, LocalReport, LOCAL_DOWNLOAD};
use transcoder::pipeline::Tuning;

const SOURCE_S: f64 = 9.0;

/// A 1280x720 30 fps source with a tone, `SOURCE_S` long.
fn source(dir: &Scratch) -> std::path::PathBuf {
    let src = dir.path("source.mp4");
    let duration = format!("{SOURCE_S}");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=1280x720:rate=30:duration={duration}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:duration={duration}"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        src.to_str().unwrap(),
    ]);
    src
}

fn run(src: &Path, out: &Path, playback: &PlaybackOptions) -> LocalReport {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(transcode_to_dir_with(src, out, &LadderOptions::default(), &Tuning::default(), playback))
        .expect("transcodes")
}

/// The top-level MP4 boxes of `bytes`, in order.
fn top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut boxes = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size32 = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
        let kind = String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned();
        let size = match size32 {
            1 => u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap()),
            0 => (bytes.len() - at) as u64,
            n => n,
        };
        assert!(size >= 8, "a box of {size} bytes at {at}");
        boxes.push(kind);
        at += size as usize;
    }
    assert_eq!(at, bytes.len(), "the boxes end with the file");
    boxes
}

/// Checks the download in `out` and returns its size: one video stream of
/// `width`x`height`, one audio stream, faststart, the source's duration.
fn check_download(out: &Path, report: &LocalReport, rung: &str, width: u64, height: u64) -> u64 {
    let file = out.join(LOCAL_DOWNLOAD);
    let bytes = std::fs::read(&file).expect("the download is in the folder");
    assert_eq!(report.result.download, Some(DownloadReport::Ready { rung: rung.into(), size: bytes.len() as u64 }));
    let probe = ffprobe(&file, &["-show_streams", "-show_format"]);
    let streams = probe["streams"].as_array().unwrap();
    let kinds: Vec<&str> = streams.iter().map(|s| s["codec_type"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "video").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "audio").count(), 1, "{kinds:?}");
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    let video = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(
        (video["codec_name"].as_str(), video["width"].as_u64(), video["height"].as_u64()),
        (Some("h264"), Some(width), Some(height))
    );
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").unwrap();
    assert_eq!(audio["codec_name"].as_str(), Some("aac"));
    assert!(probe["format"]["format_name"].as_str().unwrap().contains("mp4"), "{}", probe["format"]);
    let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
    let segment_s = 4.0;
    assert!((duration - SOURCE_S).abs() <= segment_s, "{duration} s against a {SOURCE_S} s source");
    let boxes = top_level_boxes(&bytes);
    let (moov, mdat) = (boxes.iter().position(|b| b == "moov"), boxes.iter().position(|b| b == "mdat"));
    assert!(matches!((moov, mdat), (Some(m), Some(d)) if m < d), "moov before mdat: {boxes:?}");
    assert!(!boxes.iter().any(|b| b == "moof"), "progressive, not fragmented: {boxes:?}");
    // Every packet decodes.
    let decoded = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostats", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(decoded.status.success() && decoded.stderr.is_empty(), "{}", String::from_utf8_lossy(&decoded.stderr));
    // The fragments and the remux are gone from the work folder.
    let work = out.join(".download-work");
    let left: Vec<_> = std::fs::read_dir(&work).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "left on the disk: {left:?}");
    bytes.len() as u64
}

#[test]
fn the_asked_rung_is_remuxed_with_its_audio_moov_first() {
    let dir = Scratch::new("download-rung");
    let src = source(&dir);
    let out = dir.path("out");
    let playback =
        PlaybackOptions { download: Some(DownloadOption { rung: Some("480p".into()) }), ..Default::default() };
    let report = run(&src, &out, &playback);
    check_download(&out, &report, "480p", 852, 480);
    // Stream copy: the MP4 holds the rung's own samples (boxes aside: measured 0.3% more), not a second encode.
    let rung_bytes: u64 = std::fs::read_dir(out.join("480p"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".m4s"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let size = std::fs::metadata(out.join(LOCAL_DOWNLOAD)).unwrap().len();
    let within = size.abs_diff(rung_bytes) * 100 / rung_bytes;
    assert!(within <= 2, "{size} bytes from {rung_bytes} bytes of segments");
}

#[test]
fn an_encrypted_ladder_gives_a_clear_download_of_the_top_rung() {
    let dir = Scratch::new("download-encrypted");
    let src = source(&dir);
    let out = dir.path("out");
    let playback = PlaybackOptions {
        require_signed_urls: true,
        encryption: Encryption::Aes128,
        download: Some(DownloadOption { rung: None }),
    };
    let report = run(&src, &out, &playback);
    check_download(&out, &report, "720p", 1280, 720);
}

#[test]
fn without_the_option_no_download_is_made() {
    let dir = Scratch::new("download-none");
    let src = source(&dir);
    let out = dir.path("out");
    let report = run(&src, &out, &PlaybackOptions::default());
    assert_eq!(report.result.download, None);
    assert!(!out.join(LOCAL_DOWNLOAD).exists());
    assert!(!out.join(".download-work").exists());
}
