//! The cover and the animated preview against real libav: a generated
//! source whose brightness rises with time (luma 40 per second), so the
//! frame a cover shows can be read off its pixels; previews checked for
//! their frame count, size and container (WebP chunks parsed here, GIF read
//! by ffprobe), including windows past the video's end.

mod support;

use std::path::Path;
use std::sync::Arc;

use media_core::video::extras::{CoverOption, Extras, PreviewFormat, PreviewOption};
use support::*;
use transcoder::pipeline::extras::{make_extras, Made};
use transcoder::pipeline::Control;

/// A 6-s 320x240 25-fps H.264 source, 2-s GOPs, whose luma is 40 × t
/// (limited range as coded), so t = 3 s shows luma 120.
fn rising(dir: &Scratch) -> std::path::PathBuf {
    let src = dir.path("rising.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=320x240:r=25:d=6,format=yuv420p,geq=lum='min(235,16+40*T)':cb=128:cr=128",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-qp",
        "0",
        "-g",
        "50",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "mp4",
        src.to_str().unwrap(),
    ]);
    src
}

fn make(src: &Path, extras: Extras) -> Made {
    let file = std::fs::File::open(src).unwrap();
    make_extras(file, &extras, Arc::new(Control::default())).unwrap()
}

/// The mean luma of an image file as it decodes (full range for the JPEG,
/// limited for the WebP and the GIF's frames as libav reads them back).
fn mean_luma(dir: &Scratch, name: &str, bytes: &[u8]) -> f64 {
    let path = dir.path(name);
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-i",
            path.to_str().unwrap(),
            "-vf",
            "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-",
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("lavfi.signalstats.YAVG="))
        .unwrap_or_else(|| panic!("{name}: no YAVG in {text:?} / {}", String::from_utf8_lossy(&out.stderr)))
        .parse()
        .unwrap()
}

/// The source's coded (limited-range) luma at `t` seconds.
fn coded(t: f64) -> f64 {
    (16.0 + 40.0 * t).min(235.0)
}

/// The same luma in full range (as the JPEG carries it).
fn full(y: f64) -> f64 {
    (y - 16.0) * 255.0 / 219.0
}

/// A 6-s 640x480 25-fps source whose every frame differs (moving test
/// pattern and noise), so an animation encoder merges none of them.
fn busy(dir: &Scratch) -> std::path::PathBuf {
    let src = dir.path("busy.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x480:rate=25:duration=6,noise=alls=30:allf=t",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "50",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "mp4",
        src.to_str().unwrap(),
    ]);
    src
}

/// An animated WebP's canvas size, its ANIM chunk's loop count, its frames
/// (ANMF chunks) and their durations added up, in ms.
fn webp_animation(bytes: &[u8]) -> (u32, u32, u16, usize, u32) {
    assert_eq!(&bytes[0..4], b"RIFF", "a RIFF file");
    assert_eq!(&bytes[8..12], b"WEBP");
    let (mut at, mut size, mut loops, mut frames, mut ms) = (12, None, None, 0, 0);
    while at + 8 <= bytes.len() {
        let kind = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..at + 8 + len];
        match kind {
            b"VP8X" => {
                assert!(body[0] & 0x02 != 0, "the animation flag");
                let n = |b: &[u8]| 1 + (u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16);
                size = Some((n(&body[4..7]), n(&body[7..10])));
            }
            b"ANIM" => loops = Some(u16::from_le_bytes([body[4], body[5]])),
            b"ANMF" => {
                frames += 1;
                ms += u32::from(body[12]) | u32::from(body[13]) << 8 | u32::from(body[14]) << 16;
            }
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    let (w, h) = size.expect("a VP8X chunk");
    (w, h, loops.expect("an ANIM chunk"), frames, ms)
}

#[test]
fn the_cover_shows_the_frame_at_its_time_as_jpeg_and_webp() {
    let dir = Scratch::new("extras-cover");
    let src = rising(&dir);
    // 3.0 s sits in the second GOP: the read seeks, then decodes up to it.
    let made = make(&src, Extras { codecs: vec![], cover: Some(CoverOption { time_s: 3.0 }), preview: None });
    let cover = made.cover.expect("a cover");
    assert!(made.preview.is_none());
    assert_eq!((cover.meta.time_s, cover.meta.width, cover.meta.height), (3.0, 320, 240));
    assert_eq!(&cover.jpeg[0..3], &[0xFF, 0xD8, 0xFF], "a JPEG");
    assert_eq!((&cover.webp[0..4], &cover.webp[8..12]), (&b"RIFF"[..], &b"WEBP"[..]), "a WebP");
    for (name, bytes, expect) in [("cover.jpg", &cover.jpeg, full(coded(3.0))), ("cover.webp", &cover.webp, coded(3.0))]
    {
        let y = mean_luma(&dir, name, bytes);
        // One frame earlier or later would be 1.6 coded levels off; a second off, 40.
        assert!((y - expect).abs() < 4.0, "{name}: luma {y}, the frame at 3 s has {expect}");
    }
    // Past the end: the last frame (5.96 s).
    let late =
        make(&src, Extras { codecs: vec![], cover: Some(CoverOption { time_s: 100.0 }), preview: None }).cover.unwrap();
    assert!((late.meta.time_s - 5.96).abs() < 0.001, "{}", late.meta.time_s);
    // 1 s is in the first GOP (no seek) and is 40 coded levels below 2 s.
    let early =
        make(&src, Extras { codecs: vec![], cover: Some(CoverOption { time_s: 1.0 }), preview: None }).cover.unwrap();
    let y = mean_luma(&dir, "early.jpg", &early.jpeg);
    assert!((early.meta.time_s, (y - full(coded(1.0))).abs() < 4.0) == (1.0, true), "luma {y}");
}

#[test]
fn an_animated_webp_preview_has_one_frame_per_tick_at_its_width() {
    let dir = Scratch::new("extras-webp");
    let src = busy(&dir);
    let option = PreviewOption { start_s: 1.0, duration_s: 2.0, width: 160, fps: 10, format: PreviewFormat::Webp };
    let preview = make(&src, Extras { codecs: vec![], cover: None, preview: Some(option) }).preview.expect("a preview");
    let (w, h, loops, frames, ms) = webp_animation(&preview.bytes);
    assert_eq!((w, h, loops, frames, ms), (160, 120, 0, 20, 2000), "160x120, looping, 2 s at 10 fps");
    let m = preview.meta;
    assert_eq!(
        (m.format, m.start_s, m.duration_s, m.width, m.height, m.fps, m.frames),
        (PreviewFormat::Webp, 1.0, 2.0, 160, 120, 10, 20)
    );
}

#[test]
fn a_gif_preview_past_the_end_ends_with_the_video() {
    let dir = Scratch::new("extras-gif");
    let src = rising(&dir);
    // 5 s + 3 s would end past the 6-s video: it starts at 3 s instead.
    let option = PreviewOption { start_s: 5.0, duration_s: 3.0, width: 320, fps: 5, format: PreviewFormat::Gif };
    let preview = make(&src, Extras { codecs: vec![], cover: None, preview: Some(option) }).preview.expect("a preview");
    assert_eq!(&preview.bytes[0..6], b"GIF89a");
    let path = dir.path("preview.gif");
    std::fs::write(&path, &preview.bytes).unwrap();
    let probe = ffprobe(&path, &["-count_frames", "-show_entries", "stream=width,height,nb_read_frames"]);
    let s = &probe["streams"][0];
    assert_eq!((s["width"].as_u64(), s["height"].as_u64()), (Some(320), Some(240)));
    assert_eq!(s["nb_read_frames"].as_str(), Some("15"), "3 s at 5 fps: {probe}");
    assert_eq!((preview.meta.start_s, preview.meta.frames, preview.meta.duration_s), (3.0, 15, 3.0));
    // The first frame is the one at 3 s, the last the one at 5.8 s: the palette keeps them apart.
    let first = dir.path("first.png");
    ffmpeg(&["-i", path.to_str().unwrap(), "-frames:v", "1", first.to_str().unwrap()]);
    let y = mean_luma(&dir, "first-again.png", &std::fs::read(&first).unwrap());
    assert!((y - coded(3.0)).abs() < 8.0, "first frame luma {y}, the frame at 3 s has {}", coded(3.0));
}

#[test]
fn a_cover_late_in_the_video_then_a_preview_from_its_start() {
    // The cover's read leaves the input near the end; the preview's must go back to 0.
    let dir = Scratch::new("extras-both");
    let src = rising(&dir);
    let preview = PreviewOption { start_s: 0.0, duration_s: 1.0, width: 160, fps: 10, format: PreviewFormat::Gif };
    let made = make(&src, Extras { codecs: vec![], cover: Some(CoverOption { time_s: 4.5 }), preview: Some(preview) });
    assert_eq!(made.cover.expect("a cover").meta.time_s, 4.48, "the frame shown at 4.5 s (25 fps)");
    let preview = made.preview.expect("a preview");
    assert_eq!((preview.meta.start_s, preview.meta.frames), (0.0, 10));
    let path = dir.path("p.gif");
    std::fs::write(&path, &preview.bytes).unwrap();
    let first = dir.path("first.png");
    ffmpeg(&["-i", path.to_str().unwrap(), "-frames:v", "1", first.to_str().unwrap()]);
    let y = mean_luma(&dir, "first-again.png", &std::fs::read(&first).unwrap());
    assert!((y - coded(0.0)).abs() < 8.0, "the preview starts at 0 s: luma {y}");
}

#[test]
fn nothing_asked_reads_nothing() {
    // Not even a file: no extras never opens the source.
    let made = make_extras(std::io::Cursor::new(Vec::new()), &Extras::default(), Arc::new(Control::default())).unwrap();
    assert!(made.cover.is_none() && made.preview.is_none());
}
