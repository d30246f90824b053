//! Memory that must not grow with the size of the upload. This is its own
//! test binary, so that the process's peak resident memory (Linux's
//! `VmHWM`) is this test's alone.

mod support;

use media_core::video::ladder::LadderOptions;
use support::*;

/// The process's peak resident memory so far, in MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb / 1024.0
}

/// 2 s of video and 6 h of 8 kHz mono PCM behind it (174 MB): the audio past
/// the video is read and dropped, and every packet read is let go. Before,
/// each packet read stayed referenced for the rest of the job (the read
/// loop reused one packet without unreferencing it), so memory grew with
/// the file: 330 MB of peak for this file, against 107 MB for a 2.5 MB one.
#[test]
fn reading_a_long_file_holds_no_packet_it_has_used() {
    let dir = Scratch::new("memory");
    let src = dir.path("tail-6h.mkv");
    audio_tail_mkv(&src, 6 * 3600, "pcm_u8");
    let size_mb = std::fs::metadata(&src).unwrap().len() as f64 / 1e6;
    let before = peak_rss_mb();
    let report = transcode(&src, &dir.path("out"), &LadderOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let grown = peak_rss_mb() - before;
    eprintln!("a {size_mb:.0} MB upload: the peak grew by {grown:.0} MB");
    assert!((report.summary.duration_s - 2.0).abs() < 0.15);
    assert!(grown < 100.0, "the peak grew by {grown:.0} MB reading a {size_mb:.0} MB upload");
}
