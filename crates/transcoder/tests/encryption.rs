//! Encrypted HLS against real libav: the same source transcoded in the
//! clear and with AES-128. The encrypted run's media segments are not MP4
//! any more; with the key it stored and the IV rule (the media sequence
//! number) each decrypts to a whole fMP4 media segment (its boxes fill it
//! exactly, no padding left) holding as many frames as the clear run's
//! segment of that number. Its init segments stay clear, its playlists
//! name the key right after the map, and ffmpeg decodes every rung (and
//! the master) through the key the playlists point at.
//!
//! The two runs are compared by structure and frame counts, never byte
//! for byte: two x264 encodes of the same frames are not always the same
//! bytes (even with one thread per rung; seen in a clean-clone run).

mod support;

use std::path::Path;
use std::process::Command;

use media_core::video::access::{Encryption, PlaybackOptions};
use media_core::video::ladder::LadderOptions;
use media_core::video::playlist::{measured_bandwidth, SegmentEntry};
use support::*;
use transcoder::encrypt::SegmentCipher;
use transcoder::local::{transcode_to_dir_with, LocalReport};
use transcoder::pipeline::Tuning;

fn run(src: &Path, out: &Path, encryption: Encryption) -> LocalReport {
    let playback =
        PlaybackOptions { encryption, require_signed_urls: encryption == Encryption::Aes128, download: None };
    let tuning = Tuning::default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(transcode_to_dir_with(src, out, &LadderOptions::default(), &tuning, &playback)).expect("transcodes")
}

/// Video frames and seconds ffmpeg decodes from the streams `map` of
/// `input` (every variant of a master with `-map 0:v`), failing on any error.
fn decoded(input: &Path, map: &str) -> (u64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostats"])
        // Over the file protocol ffmpeg opens only media extensions (the key
        // is `key`); over HTTP, as players fetch it, there is no such check.
        .args(["-allowed_extensions", "ALL", "-i"])
        .arg(input)
        .args(["-map", map, "-f", "null", "-progress", "pipe:1", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg could not decode {}: {}",
        input.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last = |key: &str| -> Option<f64> { text.lines().rev().find_map(|l| l.strip_prefix(key))?.trim().parse().ok() };
    let frames = last("frame=").unwrap_or(0.0) as u64;
    (frames, last("out_time_us=").unwrap_or(0.0) / 1e6)
}

/// The video frames ffprobe reads from `init` followed by `segment`
/// (0 when it is not MP4 or fails).
fn mp4_frames(dir: &Path, init: &[u8], segment: &[u8]) -> u64 {
    let file = dir.join("probe.mp4");
    std::fs::write(&file, [init, segment].concat()).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v", "-show_entries", "stream=nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(&file)
        .output()
        .expect("ffprobe runs");
    let frames = String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().unwrap_or(0);
    if out.status.success() {
        frames
    } else {
        0
    }
}

/// The top-level box types of `bytes`, if its boxes (32-bit sizes) fill it
/// exactly: a decryption that left padding, or garbage, does not.
fn top_level_boxes(bytes: &[u8]) -> Option<Vec<String>> {
    let (mut at, mut kinds) = (0usize, Vec::new());
    while at < bytes.len() {
        let head = bytes.get(at..at + 8)?;
        let size = u32::from_be_bytes(head[..4].try_into().ok()?) as usize;
        if size < 8 || at + size > bytes.len() {
            return None;
        }
        kinds.push(String::from_utf8_lossy(&head[4..8]).into_owned());
        at += size;
    }
    Some(kinds)
}

/// The segment files and durations a media playlist lists, in order.
fn listed(playlist: &str) -> Vec<(String, f64)> {
    let lines: Vec<&str> = playlist.lines().collect();
    lines
        .windows(2)
        .filter_map(|w| {
            let d = w[0].strip_prefix("#EXTINF:")?.trim_end_matches(',').parse().ok()?;
            Some((w[1].to_owned(), d))
        })
        .collect()
}

#[test]
fn an_encrypted_ladder_decrypts_to_the_clear_ladder_and_plays_through_its_key() {
    let dir = Scratch::new("encrypted");
    let src = dir.path("source.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30:duration=9,noise=alls=8:allf=t",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=9",
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
    let (clear, enc) = (dir.path("clear"), dir.path("enc"));
    let clear_report = run(&src, &clear, Encryption::None);
    let report = run(&src, &enc, Encryption::Aes128);
    assert!(!clear.join("key").exists(), "a clear ladder has no key");
    let key: [u8; 16] = std::fs::read(enc.join("key")).unwrap().try_into().expect("a 16-byte key");
    let cipher = SegmentCipher::from_key(key);
    let rungs: Vec<&str> = report.summary.rungs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(rungs, ["360p", "240p"]);
    for (r, rung) in report.summary.rungs.iter().enumerate() {
        let name = rung.name.as_str();
        let playlist = std::fs::read_to_string(enc.join(name).join("index.m3u8")).unwrap();
        let lines: Vec<&str> = playlist.lines().collect();
        let map = lines.iter().position(|l| *l == "#EXT-X-MAP:URI=\"init.mp4\"").expect("a map");
        assert_eq!(lines[map + 1], "#EXT-X-KEY:METHOD=AES-128,URI=\"../key\"", "{playlist}");
        assert!(!std::fs::read_to_string(clear.join(name).join("index.m3u8")).unwrap().contains("EXT-X-KEY"));

        let init = std::fs::read(enc.join(name).join("init.mp4")).unwrap();
        assert_eq!(init, std::fs::read(clear.join(name).join("init.mp4")).unwrap(), "{name}: init stays clear");
        assert_eq!(rung.segments, clear_report.summary.rungs[r].segments);
        assert!(rung.segments >= 3, "{name}: {} segments", rung.segments);
        let files = listed(&playlist);
        assert_eq!(files.len() as u32, rung.segments, "{name}: every segment listed");
        let mut opened_sizes = Vec::new();
        for seq in 0..rung.segments {
            let file = format!("{seq:05}.m4s");
            assert_eq!(files[seq as usize].0, file, "{name}: listed in order");
            let sealed = std::fs::read(enc.join(name).join(&file)).unwrap();
            let plain = std::fs::read(clear.join(name).join(&file)).unwrap();
            assert!(&plain[4..8] == b"moof" || &plain[4..8] == b"styp", "{name}/{file}: a clear fMP4 segment");
            assert_ne!(&sealed[4..8], b"moof", "{name}/{file}");
            assert_eq!(sealed.len() % 16, 0, "{name}/{file}: whole AES blocks");
            let clear_frames = mp4_frames(&dir.0, &init, &plain);
            assert!(clear_frames > 0, "{name}/{file}: the clear segment probes");
            assert_eq!(mp4_frames(&dir.0, &init, &sealed), 0, "{name}/{file}: ciphertext is not MP4");
            let opened = cipher.decrypt(seq, &sealed).expect("decrypts with the key and the IV rule");
            let boxes = top_level_boxes(&opened).unwrap_or_else(|| panic!("{name}/{file}: whole boxes, no padding"));
            assert!(
                boxes.contains(&"moof".to_owned()) && boxes.last().map(String::as_str) == Some("mdat"),
                "{boxes:?}"
            );
            assert!(sealed.len() - opened.len() <= 16, "{name}/{file}: PKCS#7 adds at most a block");
            assert_eq!(mp4_frames(&dir.0, &init, &opened), clear_frames, "{name}/{file}: the clear run's frames");
            // The IV is the sequence number: another one does not give the segment back.
            assert!(cipher.decrypt(seq + 1, &sealed).as_deref() != Some(&opened[..]), "{name}/{file}: IV {}", seq + 1);
            opened_sizes.push(SegmentEntry {
                uri: file,
                duration_s: files[seq as usize].1,
                bytes: opened.len() as u64,
            });
        }
        // Encryption only adds padding: the published bandwidths are the
        // clear bytes' within a few bits a second.
        let (_, clear_average) = measured_bandwidth(init.len() as u64, &opened_sizes);
        let published = report.result.renditions[r].average_bandwidth;
        assert!(published >= clear_average && published - clear_average < 100, "{published} vs {clear_average}");
        // ffmpeg's HLS demuxer fetches ../key and decrypts every segment.
        let (frames, _) = decoded(&enc.join(name).join("index.m3u8"), "0:v");
        assert_eq!(frames, decoded(&clear.join(name).join("index.m3u8"), "0:v").0, "{name}");
        assert!(frames >= 9 * 30 - 1, "{name}: {frames} frames");
    }
    // Through the master, every variant's video and the audio decode.
    let (all, _) = decoded(&enc.join("master.m3u8"), "0:v");
    assert_eq!(all, decoded(&clear.join("master.m3u8"), "0:v").0);
    let (_, audio_s) = decoded(&enc.join("master.m3u8"), "0:a");
    assert!((audio_s - 9.0).abs() < 0.3, "{audio_s} s of audio");
}
