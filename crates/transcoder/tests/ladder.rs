//! The pipeline against real libav: generated sources of every kind the
//! platform must take, transcoded to a folder and checked with ffprobe (rung
//! sizes, segment durations, keyframes aligned across rungs, playlists,
//! audio present or absent, durations), and the inputs it must refuse.

mod support;

use media_core::video::ladder::LadderOptions;
use support::*;
use transcoder::error::JobError;

fn run(name: &str, make: impl FnOnce(&str), expect: Expect<'_>) {
    let dir = Scratch::new(name);
    let src = dir.path("source");
    make(src.to_str().unwrap());
    let out = dir.path("out");
    let options = LadderOptions::default();
    let report = transcode(&src, &out, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
    check_ladder(&out, &report, &options, &expect);
    assert!(report.playable_after_s <= report.wall_s, "playable before done");
}

#[test]
fn hd_with_audio() {
    run(
        "hd",
        |s| {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                // Temporal noise makes every rung spend its whole bitrate.
                "testsrc2=size=1920x1080:rate=30:duration=6,noise=alls=12:allf=t",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=6",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-f",
                "mp4",
                s,
            ])
        },
        Expect {
            rungs: &[
                ("1080p", 1920, 1080),
                ("720p", 1280, 720),
                ("480p", 852, 480),
                ("360p", 640, 360),
                ("240p", 426, 240),
            ],
            audio: true,
            duration_s: 6.0,
            bitrate: true,
        },
    );
}

#[test]
fn portrait_phone_video_with_rotation_metadata() {
    let dir = Scratch::new("rotated-src");
    let plain = dir.path("plain.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=30:duration=5,noise=alls=12:allf=t",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=5",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        plain.to_str().unwrap(),
    ]);
    run(
        "rotated",
        |s| with_rotation(&plain, std::path::Path::new(s), 90),
        Expect {
            rungs: &[("720p", 720, 1280), ("480p", 480, 852), ("360p", 360, 640), ("240p", 240, 426)],
            audio: true,
            duration_s: 5.0,
            bitrate: true,
        },
    );
}

#[test]
fn odd_dimensions_round_down_to_even() {
    run(
        "odd",
        |s| {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=641x361:rate=25:duration=5",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-f",
                "mp4",
                s,
            ])
        },
        Expect { rungs: &[("360p", 640, 360), ("240p", 426, 240)], audio: false, duration_s: 5.0, bitrate: false },
    );
}

#[test]
fn surround_audio_is_downmixed_to_stereo() {
    run(
        "surround",
        |s| {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=30:duration=5",
                "-f",
                "lavfi",
                "-i",
                "sine=duration=5",
                "-filter_complex",
                "[1:a]pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0[a]",
                "-map",
                "0:v",
                "-map",
                "[a]",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-c:a",
                "aac",
                "-f",
                "mp4",
                s,
            ])
        },
        Expect { rungs: &[("360p", 640, 360), ("240p", 426, 240)], audio: true, duration_s: 5.0, bitrate: false },
    );
}

#[test]
fn mono_audio_becomes_stereo() {
    run(
        "mono",
        |s| {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=30:duration=3",
                "-f",
                "lavfi",
                "-i",
                "sine=duration=3",
                "-ac",
                "1",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-c:a",
                "aac",
                "-f",
                "mp4",
                s,
            ])
        },
        Expect { rungs: &[("240p", 320, 240)], audio: true, duration_s: 3.0, bitrate: false },
    );
}

#[test]
fn variable_frame_rate_becomes_constant() {
    run(
        "vfr",
        |s| {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=30:duration=5",
                "-vf",
                "setpts='PTS+0.015*sin(N)/TB'",
                "-vsync",
                "vfr",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-f",
                "mp4",
                s,
            ])
        },
        Expect { rungs: &[("360p", 640, 360), ("240p", 426, 240)], audio: false, duration_s: 5.0, bitrate: false },
    );
}

#[test]
fn ten_bit_hevc_becomes_8_bit_h264() {
    run(
        "hevc10",
        |s| {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=24:duration=5",
                "-pix_fmt",
                "yuv420p10le",
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-x265-params",
                "log-level=error",
                "-f",
                "mp4",
                s,
            ])
        },
        Expect { rungs: &[("360p", 640, 360), ("240p", 426, 240)], audio: false, duration_s: 5.0, bitrate: false },
    );
}

#[test]
fn vp9_with_opus_in_webm() {
    run(
        "vp9",
        |s| {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=30:duration=3",
                "-f",
                "lavfi",
                "-i",
                "sine=duration=3",
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-c:a",
                "libopus",
                "-f",
                "webm",
                s,
            ])
        },
        Expect { rungs: &[("360p", 640, 360), ("240p", 426, 240)], audio: true, duration_s: 3.0, bitrate: false },
    );
}

fn refused(name: &str, make: impl FnOnce(&std::path::Path), expect_in_message: &[&str]) {
    let dir = Scratch::new(name);
    let src = dir.path("upload.mp4");
    make(&src);
    match transcode(&src, &dir.path("out"), &LadderOptions::default()) {
        Err(JobError::Permanent(msg)) => {
            for want in expect_in_message {
                assert!(msg.contains(want), "{name}: {msg:?} should mention {want:?}");
            }
        }
        other => panic!("{name}: expected a permanent failure, got {other:?}"),
    }
}

#[test]
fn bad_inputs_fail_permanently_with_a_readable_reason() {
    refused("empty", |p| std::fs::write(p, b"").unwrap(), &["empty"]);
    refused("text", |p| std::fs::write(p, "just some text, not a video\n".repeat(100)).unwrap(), &["not a video file"]);
    // Random bytes are misdetected as raw h263 about once in a thousand; a
    // single raw h263 frame is the same low-score guess, made deterministic.
    refused(
        "low-score-guess",
        |p| {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=176x144",
                "-frames:v",
                "1",
                "-c:v",
                "h263",
                "-f",
                "h263",
                p.to_str().unwrap(),
            ])
        },
        &["not a video file", "only guessed"],
    );
    refused(
        "audio-only",
        |p| ffmpeg(&["-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", "-f", "mp4", p.to_str().unwrap()]),
        &["no video stream", "audio only"],
    );
    refused(
        "image",
        |p| {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "color=red:size=64x48",
                "-frames:v",
                "1",
                "-f",
                "image2",
                "-c:v",
                "png",
                p.to_str().unwrap(),
            ])
        },
        &["still image"],
    );
    refused(
        "truncated",
        |p| {
            // The index (moov) is written last by default: cut the file in half and it is gone.
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=30:duration=4",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-f",
                "mp4",
                p.to_str().unwrap(),
            ]);
            let bytes = std::fs::read(p).unwrap();
            std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
        },
        &["not a video file"],
    );
    refused(
        "truncated-data",
        |p| {
            // Index first (faststart), then the media data cut off: the index promises more than there is.
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=30:duration=6",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
                p.to_str().unwrap(),
            ]);
            let bytes = std::fs::read(p).unwrap();
            std::fs::write(p, &bytes[..bytes.len() / 3]).unwrap();
        },
        &["truncated"],
    );
}

#[test]
fn audio_and_video_stay_in_sync() {
    // A white flash and a beep at exactly 1.0 s in the source must land at the same time in every rung.
    let dir = Scratch::new("sync");
    let src = dir.path("sync.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=black:s=320x240:r=30:d=3,geq=lum='if(between(T,1,1.1),255,16)':cb=128:cr=128",
        "-f",
        "lavfi",
        "-i",
        "aevalsrc='if(between(t,1,1.1),sin(2*PI*1000*t),0)':s=44100:d=3",
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
    let out = dir.path("out");
    transcode(&src, &out, &LadderOptions::default()).unwrap();
    let playlist = out.join("240p/index.m3u8");
    let frames = ffprobe(
        std::path::Path::new(&format!("movie={},signalstats", playlist.display())),
        &["-f", "lavfi", "-show_entries", "frame=pts_time:frame_tags=lavfi.signalstats.YAVG"],
    );
    let flash: f64 = frames["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["tags"]["lavfi.signalstats.YAVG"].as_str().unwrap().parse::<f64>().unwrap() > 100.0)
        .map(|f| f["pts_time"].as_str().unwrap().parse().unwrap())
        .expect("a flash");
    let pcm = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-i",
            playlist.to_str().unwrap(),
            "-map",
            "0:a",
            "-f",
            "s16le",
            "-ac",
            "1",
            "-ar",
            "48000",
            "-",
        ])
        .output()
        .unwrap()
        .stdout;
    let beep = pcm.chunks(2).position(|s| i16::from_le_bytes([s[0], s[1]]).unsigned_abs() > 3000).expect("a beep")
        as f64
        / 48000.0;
    assert!((flash - beep).abs() < 0.025, "flash at {flash} s, beep at {beep} s");
}

#[test]
fn av1_in_matroska() {
    run(
        "av1",
        |s| {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=24:duration=2",
                "-c:v",
                "libaom-av1",
                "-cpu-used",
                "8",
                "-row-mt",
                "1",
                "-f",
                "matroska",
                s,
            ])
        },
        Expect { rungs: &[("240p", 320, 240)], audio: false, duration_s: 2.0, bitrate: false },
    );
}

#[test]
fn prores_in_quicktime() {
    run(
        "prores",
        |s| {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=25:duration=2",
                "-f",
                "lavfi",
                "-i",
                "sine=duration=2",
                "-c:v",
                "prores_ks",
                "-c:a",
                "pcm_s16le",
                "-f",
                "mov",
                s,
            ])
        },
        Expect { rungs: &[("360p", 640, 360), ("240p", 426, 240)], audio: true, duration_s: 2.0, bitrate: false },
    );
}
