//! HDR sources against real libav: 10-bit HEVC clips in PQ and in HLG,
//! made at test time from the same test pattern as an SDR render, go
//! through the whole pipeline; the H.264 rung must be tagged BT.709 and
//! look like the SDR render (its luma spread and mean), not flat. With
//! HEVC and AV1 rungs asked for, those keep the source's HDR: 10-bit, its
//! transfer and primaries, its luma as it was (not tone-mapped), keyframes
//! with the H.264 rung's, and `VIDEO-RANGE` in the master for them alone. Converted
//! without tone mapping (`format=yuv420p`, as the pipeline did before), a
//! 1080p PQ render of this scene keeps 39% of the SDR render's luma spread.

mod support;

use std::path::Path;

use media_core::video::ladder::{LadderOptions, VideoCodec};
use support::*;

const SCENE: &str = "testsrc2=size=640x360:rate=25:duration=2";

/// The scene, converted from SDR BT.709 to an HDR transfer (`smpte2084` or
/// `arib-std-b67`) in BT.2020, its SDR white at 203 nits (BT.2408's
/// reference white), as 10-bit HEVC tagged as such.
fn hdr_clip(path: &Path, transfer: &str) {
    let convert = format!(
        "{SCENE},zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t={transfer}:m=bt2020nc:p=bt2020:r=tv:npl=203,format=yuv420p10le"
    );
    let params = format!("log-level=error:colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &convert,
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        &params,
        "-pix_fmt",
        "yuv420p10le",
        "-tag:v",
        "hvc1",
        "-f",
        "mp4",
        path.to_str().unwrap(),
    ]);
}

/// Luma (mean, 10th-90th percentile spread) of the frame at 1 s of `input` (a file, a graph with `-f lavfi`).
fn luma(input: &[&str]) -> (f64, f64) {
    let mut args = vec!["-v", "error"];
    args.extend_from_slice(input);
    args.extend_from_slice(&[
        "-ss",
        "1",
        "-frames:v",
        "1",
        "-vf",
        "signalstats,metadata=print:file=-",
        "-f",
        "null",
        "-",
    ]);
    let out = std::process::Command::new("ffmpeg").args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = |key: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("lavfi.signalstats.{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {text:?}: {}", String::from_utf8_lossy(&out.stderr)))
            .parse()
            .unwrap()
    };
    (value("YAVG"), value("YHIGH") - value("YLOW"))
}

fn tone_mapped(transfer: &str) {
    let dir = Scratch::new(&format!("hdr-{transfer}"));
    let src = dir.path("hdr.mp4");
    hdr_clip(&src, transfer);
    let probe = ffprobe(&src, &["-show_entries", "stream=color_transfer,pix_fmt"]);
    assert_eq!(probe["streams"][0]["color_transfer"].as_str(), Some(transfer), "the source is HDR: {probe}");
    let out = dir.path("out");
    let options = LadderOptions::default();
    transcode(&src, &out, &options).unwrap_or_else(|e| panic!("{transfer}: {e}"));
    let top = out.join("360p").join("index.m3u8");
    let tags =
        ffprobe(&top, &["-show_entries", "stream=codec_name,pix_fmt,color_transfer,color_primaries,color_space"]);
    let s = &tags["streams"][0];
    assert_eq!(
        (s["codec_name"].as_str(), s["pix_fmt"].as_str(), s["color_transfer"].as_str(), s["color_primaries"].as_str()),
        (Some("h264"), Some("yuv420p"), Some("bt709"), Some("bt709")),
        "{tags}"
    );
    let (sdr_mean, sdr_spread) = luma(&["-f", "lavfi", "-i", SCENE]);
    let (mean, spread) = luma(&["-i", top.to_str().unwrap()]);
    assert!(
        spread >= 0.85 * sdr_spread && (mean - sdr_mean).abs() < 15.0,
        "{transfer}: the rung's luma mean {mean:.1}, spread {spread} against the SDR render's {sdr_mean:.1}, {sdr_spread}"
    );
}

#[test]
fn a_pq_source_is_tone_mapped_to_sdr_bt709() {
    tone_mapped("smpte2084");
}

#[test]
fn an_hlg_source_is_tone_mapped_to_sdr_bt709() {
    tone_mapped("arib-std-b67");
}

/// (codec, profile, pix_fmt, transfer, primaries, tag, width, height) of a rung's video.
fn described(playlist: &Path) -> (String, String, String, String, String, String, u64, u64) {
    let v = ffprobe(
        playlist,
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "stream=codec_name,profile,pix_fmt,color_transfer,color_primaries,codec_tag_string,width,height",
        ],
    );
    let s = &v["streams"][0];
    let text = |k: &str| s[k].as_str().unwrap_or("").to_owned();
    (
        text("codec_name"),
        text("profile"),
        text("pix_fmt"),
        text("color_transfer"),
        text("color_primaries"),
        text("codec_tag_string"),
        s["width"].as_u64().unwrap(),
        s["height"].as_u64().unwrap(),
    )
}

fn kept_hdr(transfer: &str, range: &str, rotation: i32) {
    let dir = Scratch::new(&format!("hdr-kept-{transfer}"));
    let made = dir.path("hdr.mp4");
    hdr_clip(&made, transfer);
    let src = if rotation == 0 {
        made.clone()
    } else {
        let turned = dir.path("turned.mp4");
        with_rotation(&made, &turned, rotation);
        turned
    };
    let out = dir.path("out");
    let options = LadderOptions { codecs: VideoCodec::ALL.to_vec(), max_rungs: 2, ..LadderOptions::default() };
    let report = transcode(&src, &out, &options).unwrap_or_else(|e| panic!("{transfer}: {e}"));
    let names: Vec<&str> = report.summary.rungs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["360p", "360p-hevc", "360p-av1", "240p", "240p-hevc", "240p-av1"]);
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    let (w, h) = if rotation == 0 { (640, 360) } else { (360, 640) };
    let (w2, h2) = if rotation == 0 { (426, 240) } else { (240, 426) };
    // The source's own luma, on its own 10-bit scale.
    let (src_mean, src_spread) = luma(&["-i", made.to_str().unwrap()]);
    for (size, width, height) in [("360p", w, h), ("240p", w2, h2)] {
        let h264 = out.join(size).join("index.m3u8");
        let d = described(&h264);
        assert_eq!((d.0.as_str(), d.2.as_str(), d.3.as_str()), ("h264", "yuv420p", "bt709"), "{size}: {d:?}");
        let h264_keys = keyframes(&h264);
        for (suffix, codec, profile, tag, prefix) in
            [("-hevc", "hevc", "Main 10", "hvc1", "hvc1.2.4."), ("-av1", "av1", "Main", "av01", "av01.0.")]
        {
            let name = format!("{size}{suffix}");
            let playlist = out.join(&name).join("index.m3u8");
            let d = described(&playlist);
            assert_eq!(
                d,
                (
                    codec.into(),
                    profile.into(),
                    "yuv420p10le".into(),
                    transfer.into(),
                    "bt2020".into(),
                    tag.into(),
                    width,
                    height
                ),
                "{name} keeps the source's HDR"
            );
            assert_eq!(keyframes(&playlist), h264_keys, "{name}: keyframes on the H.264 rung's times");
            if rotation == 0 {
                let (mean, spread) = luma(&["-i", playlist.to_str().unwrap()]);
                assert!(
                    // A tone-mapped picture on the same scale has a mean about 33 higher and over twice the spread.
                    (mean - src_mean).abs() < 12.0 && (spread - src_spread).abs() <= 0.1 * src_spread,
                    "{name}: luma mean {mean:.1}, spread {spread} against the HDR source's {src_mean:.1}, {src_spread}"
                );
            }
            let inf = variant_line(&master, &name);
            assert!(
                inf.contains(&format!("CODECS=\"{prefix}")) && inf.contains(&format!(",VIDEO-RANGE={range}")),
                "{name}: {inf}"
            );
            if codec == "av1" {
                assert!(inf.contains(".10\""), "{name}: a 10-bit AV1 codec string: {inf}");
            }
        }
    }
    assert_eq!(master.matches("VIDEO-RANGE=").count(), 4, "the H.264 variants are SDR: {master}");
    let ranges: Vec<_> = report.result.renditions.iter().map(|r| (r.name.as_str(), r.video_range.as_str())).collect();
    assert_eq!(ranges.iter().filter(|(_, r)| *r == range).count(), 4, "{ranges:?}");
}

#[test]
fn a_pq_source_keeps_hdr_in_its_hevc_and_av1_rungs() {
    kept_hdr("smpte2084", "PQ", 0);
}

#[test]
fn an_hlg_source_turned_upright_keeps_hdr_in_its_hevc_and_av1_rungs() {
    kept_hdr("arib-std-b67", "HLG", 90);
}
