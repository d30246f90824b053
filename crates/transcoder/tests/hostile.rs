//! Hostile media against the real pipeline (libav, x264): uploads that try
//! to make the transcoder fetch from its network, timestamp bombs, frames
//! that grow mid-stream, audio that never comes, and a full work disk. Each
//! must end its own job with a message a person understands, quickly and
//! within bounded memory. Media is made at test time with the ffmpeg CLI.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use media_core::video::ladder::LadderOptions;
use support::*;
use transcoder::error::JobError;
use transcoder::local::LocalReport;
use transcoder::pipeline::{probe, transcode as run_pipeline, Control, Tuning};
use transcoder::storage::{SourceInfo, SourceReader};

/// A listener on 127.0.0.1 that counts the connections made to it.
struct Listener {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Listener {
    fn start() -> Self {
        let socket = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        std::thread::spawn(move || {
            for conn in socket.incoming() {
                counted.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut c) = conn {
                    let mut buf = [0u8; 1024];
                    let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
                    let _ = c.read(&mut buf);
                }
            }
        });
        Self { port, hits }
    }

    /// Connections seen, after a moment for any in flight to land.
    fn hits(&self) -> usize {
        std::thread::sleep(Duration::from_millis(300));
        self.hits.load(Ordering::SeqCst)
    }
}

/// Transcodes `src` with a watchdog: a hostile file must end within a
/// minute, not after days (a hang fails the test instead of stalling it).
fn transcode_bounded(src: &Path, out: &Path) -> Result<LocalReport, JobError> {
    let (src, out) = (src.to_owned(), out.to_owned());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(transcode(&src, &out, &LadderOptions::default()));
    });
    rx.recv_timeout(Duration::from_secs(60)).expect("the transcode ended within 60 s")
}

fn permanent_message(name: &str, r: Result<LocalReport, JobError>) -> String {
    match r {
        Err(JobError::Permanent(m)) => m,
        other => panic!("{name}: expected a permanent failure, got {other:?}"),
    }
}

#[test]
fn playlists_manifests_and_lists_are_refused_and_nothing_is_fetched() {
    let listener = Listener::start();
    let url = format!("http://127.0.0.1:{}", listener.port);
    let dir = Scratch::new("ssrf");
    let uploads: [(&str, String, &str); 4] = [
        (
            "hls-media",
            format!(
                "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{url}/segment0.ts\n#EXT-X-ENDLIST\n"
            ),
            "an HLS playlist",
        ),
        (
            "hls-master",
            format!("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n{url}/variant.m3u8\n"),
            "an HLS playlist",
        ),
        (
            "dash",
            format!(
                r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT4S" minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
  <BaseURL>{url}/</BaseURL>
  <Period><AdaptationSet mimeType="video/mp4"><Representation id="v" bandwidth="800000" width="640" height="360" codecs="avc1.64001f">
    <SegmentTemplate initialization="init.mp4" media="seg-$Number$.m4s" startNumber="1" duration="2" timescale="1"/>
  </Representation></AdaptationSet></Period>
</MPD>
"#
            ),
            "a DASH manifest",
        ),
        (
            "ffconcat",
            format!("ffconcat version 1.0\nfile '{url}/part1.mp4'\nfile '{url}/part2.mp4'\n"),
            "an ffconcat list",
        ),
    ];
    for (name, text, what) in &uploads {
        let src = dir.path(&format!("{name}.mp4"));
        std::fs::write(&src, text).unwrap();
        let message = permanent_message(name, transcode_bounded(&src, &dir.path(&format!("out-{name}"))));
        assert!(message.contains(what) && message.contains("never fetched"), "{name}: {message}");
    }
    assert_eq!(listener.hits(), 0, "the transcoder connected to the listener");

    // The second lock: even a demuxer that follows links, when allowed,
    // opens nothing, because nested opens have an empty protocol whitelist.
    ffmpeg_next::init().unwrap();
    for (name, text, _) in &uploads[..3] {
        let demuxer = if name.starts_with("hls") { "hls" } else { "dash" };
        let opened = probe::open_restricted(std::io::Cursor::new(text.clone().into_bytes()), || false, demuxer);
        assert!(opened.is_err(), "{name}: opened as {demuxer} although every nested open must fail");
    }
    assert_eq!(listener.hits(), 0, "a nested open reached the listener");
}

#[test]
fn timestamp_bombs_end_at_once_with_a_readable_message() {
    let dir = Scratch::new("bombs");
    let video = |p: &Path, jump: &str| {
        // The 11th frame is stamped `jump` seconds late (ffmpeg drops the frames after it).
        let filter = format!("setpts='if(eq(N,10),PTS+{jump}/TB,PTS)'");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10:duration=2",
            "-vf",
            &filter,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-f",
            "matroska",
            p.to_str().unwrap(),
        ]);
    };
    let audio = |p: &Path, offset: &str| {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10:duration=2",
            "-itsoffset",
            offset,
            "-f",
            "lavfi",
            "-i",
            "sine=duration=2",
            "-map",
            "0",
            "-map",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-f",
            "matroska",
            p.to_str().unwrap(),
        ]);
    };
    type Make<'a> = &'a dyn Fn(&Path, &str);
    let cases: [(&str, Make<'_>, &str, &str); 4] = [
        // The reproduction of the issue: refused by its declared duration, 277 h.
        ("video-1e6", &video, "1000000", "the longest accepted is 6 h"),
        // Under the 6 h ceiling: the jump itself is refused.
        ("video-5000", &video, "5000", "timestamps jump 1 h 23 min"),
        ("audio-1e6", &audio, "1000000", "the longest accepted is 6 h"),
        // The silence before the audio would be 1.9 GB, allocated at once.
        ("audio-5000", &audio, "5000", "the audio starts 1 h 23 min 20 s after the video"),
    ];
    for (name, make, amount, want) in cases {
        let src = dir.path(&format!("{name}.mkv"));
        make(&src, amount);
        let message = permanent_message(name, transcode_bounded(&src, &dir.path(&format!("out-{name}"))));
        assert!(message.contains(want), "{name}: {message:?} should contain {want:?}");
    }
}

/// Two raw H.264 streams of different sizes, one after the other, in an MP4
/// (the second's parameter sets travel in-band, as when a camera switches).
/// The second is red on its left half and blue on its right.
fn size_change(dir: &Scratch, name: &str, first: &str, second: (u32, u32), extra: &[&str]) -> std::path::PathBuf {
    let raw = dir.path(&format!("{name}.h264"));
    let mut bytes = Vec::new();
    let (w, h) = second;
    let halves = [
        format!("color=red:size={}x{h}:rate=10:duration=1", w / 2),
        format!("color=blue:size={}x{h}:rate=10:duration=1", w / 2),
    ];
    let parts: [Vec<&str>; 2] = [
        vec!["-f", "lavfi", "-i", "testsrc2=rate=10:duration=1:size=SIZE"],
        vec!["-f", "lavfi", "-i", &halves[0], "-f", "lavfi", "-i", &halves[1], "-filter_complex", "hstack"],
    ];
    for (i, inputs) in parts.iter().enumerate() {
        let part = dir.path(&format!("{name}-{i}.h264"));
        let first_src = format!("testsrc2=rate=10:duration=1:size={first}");
        let mut args: Vec<&str> =
            inputs.iter().map(|a| if a.ends_with("size=SIZE") { first_src.as_str() } else { a }).collect();
        args.extend([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "h264",
            part.to_str().unwrap(),
        ]);
        ffmpeg(&args);
        bytes.extend(std::fs::read(&part).unwrap());
    }
    std::fs::write(&raw, bytes).unwrap();
    let out = dir.path(&format!("{name}.mp4"));
    let mut args = vec!["-r", "10", "-f", "h264", "-i", raw.to_str().unwrap(), "-c", "copy"];
    args.extend_from_slice(extra);
    args.push(out.to_str().unwrap());
    ffmpeg(&args);
    out
}

#[test]
fn a_frame_size_that_changes_mid_stream_is_scaled_into_the_plan_or_refused() {
    let dir = Scratch::new("sizes");
    // Rotated, so the rotation filter made for the first size must take the second too.
    let src = size_change(&dir, "grows", "320x240", (640, 480), &["-metadata:s:v:0", "rotate=90"]);
    let out = dir.path("out");
    let report = transcode_bounded(&src, &out).unwrap_or_else(|e| panic!("a size change should transcode: {e}"));
    let rungs: Vec<_> = report.summary.rungs.iter().map(|r| (r.width, r.height, r.frames)).collect();
    assert_eq!(rungs, vec![(240, 320, 20)], "the plan of the first size holds, every frame is kept");
    // The whole larger picture is in the last frame, upright: red and blue
    // halves, one above the other (a filter made for the first size would
    // show a corner of it, all red).
    let frames = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(out.join("240p/index.m3u8"))
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(frames.len(), 20 * 240 * 320 * 3, "twenty 240x320 frames");
    let last = &frames[19 * 240 * 320 * 3..];
    let pixel = |x: usize, y: usize| (last[(y * 240 + x) * 3], last[(y * 240 + x) * 3 + 2]);
    let (top, bottom) = (pixel(120, 40), pixel(120, 280));
    let red = |(r, b): (u8, u8)| r > 150 && b < 100;
    let blue = |(r, b): (u8, u8)| b > 150 && r < 100;
    assert!((red(top) && blue(bottom)) || (blue(top) && red(bottom)), "top {top:?}, bottom {bottom:?} (red, blue)");

    // A later frame beyond the largest accepted size is refused, not decoded into the plan.
    let src = size_change(&dir, "huge", "64x64", (8400, 64), &[]);
    let message = permanent_message("huge", transcode_bounded(&src, &dir.path("out-huge")));
    assert!(message.contains("8400x64") && message.contains("largest accepted"), "{message}");
}

#[test]
fn audio_that_never_comes_does_not_hold_the_video_in_memory() {
    let dir = Scratch::new("no-audio-packets");
    let src = dir.path("silent-track.mkv");
    // An audio track is declared, but not one audio packet is stored.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:rate=10:duration=40",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=40",
        "-map",
        "0",
        "-map",
        "1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-frames:a",
        "0",
        "-f",
        "matroska",
        src.to_str().unwrap(),
    ]);
    let report = transcode_bounded(&src, &dir.path("out")).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.summary.has_audio, "the declared track stays, filled with silence");
    let rung = &report.summary.rungs[0];
    assert_eq!(rung.frames, 400);
    // Unbounded, all 400 encoded frames would wait for audio; bounded, at
    // most the lag limit (10 s) plus a segment and the queues.
    assert!(rung.peak_waiting_frames < 200, "{} frames waited for audio", rung.peak_waiting_frames);
    let audio =
        ffprobe(&dir.path("out/240p/index.m3u8"), &["-select_streams", "a", "-show_entries", "stream=codec_name"]);
    assert_eq!(audio["streams"][0]["codec_name"], "aac", "{audio}");
}

#[test]
fn a_full_work_disk_is_our_fault_and_retryable_not_a_damaged_upload() {
    let dir = Scratch::new("disk-full");
    let src = dir.path("clip.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=10:duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        src.to_str().unwrap(),
    ]);
    let bytes = Bytes::from(std::fs::read(&src).unwrap());
    let info = SourceInfo { size: bytes.len() as u64, etag: None };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // Every write to /dev/full fails with ENOSPC, as on a full disk.
    let full = std::fs::OpenOptions::new().read(true).write(true).open("/dev/full").unwrap();
    let reader = SourceReader::with_spool(
        bytes,
        "raw/app/vid/source.mp4",
        &info,
        rt.handle().clone(),
        full,
        "/dev/full-not-removed".into(),
    )
    .unwrap();
    let failure = Arc::clone(&reader.failure);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let drain = rt.spawn(async move { while rx.recv().await.is_some() {} });
    let result = rt.block_on(async {
        tokio::task::spawn_blocking(move || {
            run_pipeline(
                reader,
                failure,
                &LadderOptions::default(),
                &Tuning::default(),
                tx,
                Arc::new(Control::default()),
            )
        })
        .await
        .unwrap()
    });
    rt.block_on(drain).unwrap();
    match result {
        Err(JobError::Retryable(m)) => {
            assert!(m.contains("work disk (WORK_DIR) is full") && m.contains("will be retried"), "{m}")
        }
        other => panic!("expected a retryable failure naming the disk, got {other:?}"),
    }
}

#[test]
fn audio_past_the_end_of_the_video_is_cut_and_never_held() {
    let dir = Scratch::new("audio-tail");
    let src = dir.path("tail.mkv");
    // 2 s of video and 300 s of 8 kHz mono PCM (4.8 MB) behind it, the file
    // declaring 3 s: the issue's reproduction.
    audio_tail_mkv(&src, 300, "pcm_s16le");
    let out = dir.path("out");
    let report = transcode_bounded(&src, &out).unwrap_or_else(|e| panic!("{e}"));
    assert!((report.summary.duration_s - 2.0).abs() < 0.15, "{} s of video", report.summary.duration_s);
    let playlist = out.join("240p/index.m3u8");
    let listed: f64 = extinf(&std::fs::read_to_string(&playlist).unwrap()).iter().sum();
    assert!((listed - 2.0).abs() < 0.15, "{listed} s listed");
    // The published audio: at most the video plus the tail (2 s), not 300 s.
    // Both end on the packaged timeline (where the video starts after x264's reordering delay).
    let end = |stream: &str| {
        let v = ffprobe(&playlist, &["-select_streams", stream, "-show_entries", "packet=pts_time,duration_time"]);
        let time = |p: &serde_json::Value, k: &str| p[k].as_str().unwrap().parse::<f64>().unwrap();
        v["packets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| time(p, "pts_time") + time(p, "duration_time"))
            .fold(0.0, f64::max)
    };
    let (video_end, audio_end) = (end("v"), end("a"));
    let span = audio_end - video_end;
    let tail = media_core::video::timeline::AUDIO_TAIL_S;
    assert!(span > 0.0 && span <= tail + 0.1, "the audio runs {span} s past the video's end at {video_end} s");
    // Every published byte: a 2 s 240p ladder, not 300 s of AAC (4.8 MB).
    let published: u64 = walk(&out).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert!(published < 400_000, "{published} bytes published");
    // While reading, decoded audio ran at most a minute ahead of the video
    // before the rest was dropped (held all, it would be the whole 300 s).
    let peak = report.summary.peak_audio_buffered_s;
    assert!(peak <= media_core::video::timeline::MAX_AUDIO_LEAD_S + 1.0, "{peak} s of audio held at once");
    eprintln!("audio tail: {published} bytes published, audio {span:.2} s past the video, peak {peak:.1} s buffered");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            found.extend(walk(&e.path()));
        } else {
            found.push(e.path());
        }
    }
    found
}
