//! Encrypted HLS against real libav: the same source transcoded in the
//! clear and with AES-128. The encrypted run's media segments are not MP4
//! any more, decrypt with the key it stored and the IV rule (the media
//! sequence number) to exactly the clear run's segments, its init segments
//! stay clear, its playlists name the key right after the map, and ffmpeg
//! decodes every rung (and the master) through the key the playlists point at.

mod support;

use std::path::Path;
use std::process::Command;

use media_core::video::access::{Encryption, PlaybackOptions};
use media_core::video::ladder::LadderOptions;
use support::*;
use transcoder::encrypt::SegmentCipher;
use transcoder::local::{transcode_to_dir_with, LocalReport};
use transcoder::pipeline::Tuning;

fn run(src: &Path, out: &Path, encryption: Encryption) -> LocalReport {
    let playback =
        PlaybackOptions { encryption, require_signed_urls: encryption == Encryption::Aes128, download: None };
    // One x264 thread per rung: frame threads make x264's bytes vary run to
    // run (seen here), and the two runs must be byte-comparable.
    let tuning = Tuning { x264_threads_top: Some(1), x264_threads: Some(1), ..Tuning::default() };
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

/// Whether ffprobe finds any video frame in `init` followed by `segment`.
fn probes_as_mp4(dir: &Path, init: &[u8], segment: &[u8]) -> bool {
    let file = dir.join("probe.mp4");
    std::fs::write(&file, [init, segment].concat()).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v", "-show_entries", "stream=nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(&file)
        .output()
        .expect("ffprobe runs");
    let frames = String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().unwrap_or(0);
    out.status.success() && frames > 0
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
        for seq in 0..rung.segments {
            let file = format!("{seq:05}.m4s");
            assert!(playlist.contains(&format!("\n{file}\n")), "{name}: {file} listed");
            let sealed = std::fs::read(enc.join(name).join(&file)).unwrap();
            let plain = std::fs::read(clear.join(name).join(&file)).unwrap();
            assert!(&plain[4..8] == b"moof" || &plain[4..8] == b"styp", "{name}/{file}: a clear fMP4 segment");
            assert_ne!(&sealed[4..8], b"moof", "{name}/{file}");
            assert_eq!(sealed.len() % 16, 0, "{name}/{file}: whole AES blocks");
            assert!(probes_as_mp4(&dir.0, &init, &plain), "{name}/{file}: the clear segment probes");
            assert!(!probes_as_mp4(&dir.0, &init, &sealed), "{name}/{file}: ciphertext is not MP4");
            let opened = cipher.decrypt(seq, &sealed).expect("decrypts with the key and the IV rule");
            assert!(opened == plain, "{name}/{file}: decrypts to the clear run's bytes");
            // The IV is the sequence number: another one does not give the segment back.
            assert!(cipher.decrypt(seq + 1, &sealed).as_deref() != Some(&plain[..]), "{name}/{file}: IV {}", seq + 1);
        }
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
    // Encryption only adds padding: the published bandwidths stay within a few bits a second.
    for (a, b) in report.result.renditions.iter().zip(&clear_report.result.renditions) {
        assert!(
            a.average_bandwidth >= b.average_bandwidth && a.average_bandwidth - b.average_bandwidth < 100,
            "{a:?} {b:?}"
        );
    }
}
