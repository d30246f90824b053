//! HDR sources against real libav: 10-bit HEVC clips in PQ and in HLG,
//! made at test time from the same test pattern as an SDR render, go
//! through the whole pipeline; the H.264 rung must be tagged BT.709 and
//! look like the SDR render (its luma spread and mean), not flat. Converted
//! without tone mapping (`format=yuv420p`, as the pipeline did before), a
//! 1080p PQ render of this scene keeps 39% of the SDR render's luma spread.

mod support;

use std::path::Path;

use media_core::video::ladder::LadderOptions;
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
