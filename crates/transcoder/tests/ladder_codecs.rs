//! A ladder in H.264, HEVC and AV1 against real libav (libx264, libx265,
//! SVT-AV1), from sources made at test time: each rung carries its codec
//! with the right sample entry (`avc1`, `hvc1`, `av01`) at its size, its
//! keyframes fall on the same times as the H.264 rung's of that size (SVT-AV1
//! takes no forced keyframes, so this checks the rung's first-segment
//! encoder), every rung presents its first frame at the same time (AV1
//! reorders nothing, unlike x264 and x265), the whole of each rung decodes
//! without an error, and the master's `CODECS` name what each rung holds.

mod support;

use std::path::Path;

use media_core::video::ladder::{LadderOptions, VideoCodec};
use support::*;

fn all_codecs() -> LadderOptions {
    LadderOptions { codecs: VideoCodec::ALL.to_vec(), max_rungs: 2, ..LadderOptions::default() }
}

/// A `seconds`-long 640x360 30 fps test pattern with a tone.
fn source(dir: &Scratch, seconds: &str) -> std::path::PathBuf {
    let src = dir.path("src.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=640x360:rate=30:duration={seconds}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:duration={seconds}"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-shortest",
        src.to_str().unwrap(),
    ]);
    src
}

/// (codec_name, codec_tag_string, width, height) of a rung's video.
fn stream(playlist: &Path) -> (String, String, u64, u64) {
    let v = ffprobe(
        playlist,
        &["-select_streams", "v", "-show_entries", "stream=codec_name,codec_tag_string,width,height"],
    );
    let s = &v["streams"][0];
    (
        s["codec_name"].as_str().unwrap().to_owned(),
        s["codec_tag_string"].as_str().unwrap().to_owned(),
        s["width"].as_u64().unwrap(),
        s["height"].as_u64().unwrap(),
    )
}

/// The earliest presentation time of a rung's video, in seconds.
fn first_shown(playlist: &Path) -> f64 {
    let v = ffprobe(playlist, &["-select_streams", "v", "-show_entries", "packet=pts_time"]);
    v["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pts_time"].as_str().unwrap().parse::<f64>().unwrap())
        .fold(f64::INFINITY, f64::min)
}

/// What the ffmpeg CLI says while decoding the whole rung (nothing, when it decodes cleanly).
fn decode_errors(playlist: &Path) -> String {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(playlist)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_codec_s_rungs_align_with_h264_s_and_say_what_they_hold() {
    let dir = Scratch::new("ladder-codecs");
    let src = source(&dir, "5");
    let out = dir.path("out");
    let report = transcode(&src, &out, &all_codecs()).unwrap();
    let names: Vec<&str> = report.summary.rungs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["360p", "360p-hevc", "360p-av1", "240p", "240p-hevc", "240p-av1"]);
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    let expected = [("360p", "h264", "avc1", 640, 360), ("240p", "h264", "avc1", 426, 240)];
    for (size, _, _, width, height) in expected {
        let h264 = out.join(size).join("index.m3u8");
        let h264_keys = keyframes(&h264);
        assert_eq!(h264_keys.len(), 4, "keyframes at 0, 0.5, 2.5 and 4.5 s: {h264_keys:?}");
        let h264_first = first_shown(&h264);
        for (suffix, codec, tag, prefix) in
            [("", "h264", "avc1", "avc1."), ("-hevc", "hevc", "hvc1", "hvc1.1."), ("-av1", "av1", "av01", "av01.0.")]
        {
            let name = format!("{size}{suffix}");
            let playlist = out.join(&name).join("index.m3u8");
            assert_eq!(stream(&playlist), (codec.into(), tag.into(), width, height), "{name}");
            assert_eq!(keyframes(&playlist), h264_keys, "{name}: keyframes on the H.264 rung's times");
            let first = first_shown(&playlist);
            assert!(
                (first - h264_first).abs() < 1e-6,
                "{name} shows its first frame at {first} s, H.264 at {h264_first}"
            );
            let errors = decode_errors(&playlist);
            assert!(errors.is_empty(), "{name} decodes cleanly: {errors}");
            // The master names the rung's own codec string, with the audio's.
            let inf = variant_line(&master, &name);
            assert!(inf.contains(&format!("CODECS=\"{prefix}")), "{name}: {inf}");
            assert!(inf.contains(",mp4a.40.2\"") && inf.contains(&format!("RESOLUTION={width}x{height}")), "{inf}");
            let reported = report.summary.rungs.iter().find(|r| r.name == name).unwrap();
            assert!(inf.contains(&format!("CODECS=\"{},", reported.video_codec)), "{inf} vs {reported:?}");
        }
    }
}

#[test]
fn an_av1_ladder_shorter_than_its_first_segment_still_ends() {
    let dir = Scratch::new("ladder-av1-short");
    let src = source(&dir, "0.3");
    let out = dir.path("out");
    let options = LadderOptions { codecs: vec![VideoCodec::Av1], max_rungs: 1, ..LadderOptions::default() };
    let report = transcode(&src, &out, &options).unwrap();
    assert_eq!(report.summary.rungs.len(), 1);
    let playlist = out.join("360p-av1").join("index.m3u8");
    assert_eq!(stream(&playlist).0, "av1");
    assert_eq!(keyframes(&playlist).len(), 1);
    assert!(decode_errors(&playlist).is_empty());
}
