//! The text formats the platform publishes: HLS media and master playlists
//! (RFC 8216, version 7, fMP4), the WebVTT thumbnails track, and the RFC 6381
//! codec strings they advertise. Also the thumbnail sprite layout.

use std::fmt::Write as _;

pub use crate::video::bandwidth::{measured_bandwidth, SegmentEntry};
use crate::video::job::ThumbnailMeta;

/// The integer target duration for segments of nominal length `segment_s`:
/// EXTINF values rounded to the nearest integer may not exceed it.
pub fn target_duration(segment_s: f64, segments: &[SegmentEntry]) -> u32 {
    segments.iter().map(|s| s.duration_s).fold(segment_s, f64::max).round().max(1.0) as u32
}

/// A rung's media playlist. While `finished` is false it is an EVENT
/// playlist that starts players at the beginning (not the live edge); once
/// finished it is VOD with an end tag. With `key_uri`, its media segments
/// are AES-128 encrypted with the key there ([`crate::video::encryption`]).
pub fn media_playlist(
    target_duration: u32,
    init_uri: &str,
    key_uri: Option<&str>,
    segments: &[SegmentEntry],
    finished: bool,
) -> String {
    let mut s = String::with_capacity(128 + segments.len() * 32);
    s.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(s, "#EXT-X-TARGETDURATION:{target_duration}");
    s.push_str("#EXT-X-MEDIA-SEQUENCE:0\n");
    s.push_str(if finished {
        "#EXT-X-PLAYLIST-TYPE:VOD\n"
    } else {
        "#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-START:TIME-OFFSET=0,PRECISE=YES\n"
    });
    s.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = writeln!(s, "#EXT-X-MAP:URI=\"{init_uri}\"");
    // After the map: the key applies to the media segments only, the init segment stays clear.
    if let Some(uri) = key_uri {
        s.push_str(&crate::video::encryption::key_tag(uri));
    }
    for seg in segments {
        let _ = writeln!(s, "#EXTINF:{:.6},\n{}", seg.duration_s, seg.uri);
    }
    if finished {
        s.push_str("#EXT-X-ENDLIST\n");
    }
    s
}

/// The rung playlist a player of a replaced attempt (retried under a new
/// output, or canceled) reloads: ended (`#EXT-X-ENDLIST`) and empty, so the
/// player stops cleanly instead of failing on a 404. The attempt's segments
/// are not served any more, so none is listed.
pub fn ended_playlist() -> String {
    "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-ENDLIST\n"
        .to_owned()
}

/// One variant in a master playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub uri: String,
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    pub codecs: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
}

/// The master playlist. Variants are listed best first, except that the one
/// a player should start with (the best at or under 3 Mb/s on average) leads,
/// since many players begin with the first entry.
pub fn master_playlist(variants: &[Variant]) -> String {
    let mut order: Vec<&Variant> = variants.iter().collect();
    order.sort_by_key(|r| std::cmp::Reverse(r.bandwidth));
    if let Some(i) = order.iter().position(|v| v.average_bandwidth <= 3_000_000) {
        let start = order.remove(i);
        order.insert(0, start);
    }
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in order {
        let _ = writeln!(
            s,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\",RESOLUTION={}x{},FRAME-RATE={:.3}\n{}",
            v.bandwidth, v.average_bandwidth, v.codecs, v.width, v.height, v.frame_rate, v.uri
        );
    }
    s
}

/// The RFC 6381 string of an H.264 stream (`avc1.PPCCLL`), read from its
/// decoder configuration: an `avcC` record or Annex B SPS/PPS.
pub fn avc1_codec_string(extradata: &[u8]) -> Option<String> {
    let sps = if extradata.first() == Some(&1) && extradata.len() >= 4 {
        &extradata[1..4]
    } else {
        // Annex B: find the first NAL of type 7 (SPS) after a start code.
        let mut i = 0;
        loop {
            let rest = extradata.get(i..)?;
            let pos = rest.windows(3).position(|w| w == [0, 0, 1])?;
            let nal = i + pos + 3;
            if extradata.get(nal)? & 0x1f == 7 {
                break extradata.get(nal + 1..nal + 4)?;
            }
            i = nal;
        }
    };
    Some(format!("avc1.{:02x}{:02x}{:02x}", sps[0], sps[1], sps[2]))
}

/// AAC-LC.
pub const AAC_LC_CODEC: &str = "mp4a.40.2";

/// Tiles are at most this many pixels on their long side.
pub const THUMB_TILE_LONG: u32 = 160;
/// Columns in the sprite.
pub const THUMB_COLS: u32 = 10;
/// At most this many thumbnails per video (the interval grows instead).
pub const THUMB_MAX: u32 = 100;

/// Lays out the sprite for a video of `duration_s` shown at `width`x`height`:
/// one thumbnail per second for short videos, at most [`THUMB_MAX`].
pub fn plan_thumbnails(duration_s: f64, width: u32, height: u32) -> ThumbnailMeta {
    let duration = if duration_s.is_finite() && duration_s > 0.0 { duration_s } else { 0.0 };
    let interval_s = (duration / f64::from(THUMB_MAX)).ceil().max(1.0);
    let count = ((duration / interval_s).ceil() as u32).clamp(1, THUMB_MAX);
    let (w, h) = (width.max(2), height.max(2));
    let (tile_w, tile_h) = if w >= h {
        (THUMB_TILE_LONG, ((THUMB_TILE_LONG * h / w) & !1).max(2))
    } else {
        (((THUMB_TILE_LONG * w / h) & !1).max(2), THUMB_TILE_LONG)
    };
    let cols = count.min(THUMB_COLS);
    ThumbnailMeta { interval_s, tile_w, tile_h, cols, rows: count.div_ceil(cols), count }
}

fn vtt_time(s: f64) -> String {
    let ms = (s * 1000.0).round() as u64;
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// The WebVTT thumbnails track: one cue per tile, pointing into the sprite
/// with a media fragment (`sprite.jpg#xywh=x,y,w,h`).
pub fn thumbnails_vtt(meta: &ThumbnailMeta, duration_s: f64, sprite_uri: &str) -> String {
    let mut s = String::from("WEBVTT\n");
    for i in 0..meta.count {
        let start = f64::from(i) * meta.interval_s;
        let end = (start + meta.interval_s).min(duration_s.max(start + 0.001));
        let (col, row) = (i % meta.cols, i / meta.cols);
        let _ = write!(
            s,
            "\n{} --> {}\n{sprite_uri}#xywh={},{},{},{}\n",
            vtt_time(start),
            vtt_time(end),
            col * meta.tile_w,
            row * meta.tile_h,
            meta.tile_w,
            meta.tile_h
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_attempts_playlist_is_ended_and_lists_nothing() {
        let p = ended_playlist();
        assert!(p.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"));
        assert!(p.ends_with("#EXT-X-ENDLIST\n"));
        assert!(!p.contains("#EXTINF") && !p.contains("#EXT-X-MAP"));
    }

    fn segs(durations: &[f64]) -> Vec<SegmentEntry> {
        durations
            .iter()
            .enumerate()
            .map(|(i, d)| SegmentEntry { uri: format!("{i:05}.m4s"), duration_s: *d, bytes: (d * 125_000.0) as u64 })
            .collect()
    }

    #[test]
    fn media_playlist_in_progress_and_final() {
        let s = segs(&[4.0, 4.0]);
        let live = media_playlist(4, "init.mp4", None, &s, false);
        assert_eq!(
            live,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:EVENT\n\
             #EXT-X-START:TIME-OFFSET=0,PRECISE=YES\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXTINF:4.000000,\n00000.m4s\n#EXTINF:4.000000,\n00001.m4s\n"
        );
        let vod = media_playlist(4, "init.mp4", None, &segs(&[4.0, 4.0, 1.5]), true);
        assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(!vod.contains("EXT-X-START"));
        assert!(vod.ends_with("#EXTINF:1.500000,\n00002.m4s\n#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn an_encrypted_playlist_names_its_key_after_the_map_and_before_every_segment() {
        use crate::video::encryption::KEY_URI;
        for finished in [false, true] {
            let p = media_playlist(4, "init.mp4", Some(KEY_URI), &segs(&[4.0, 2.0]), finished);
            let lines: Vec<&str> = p.lines().collect();
            let map = lines.iter().position(|l| l.starts_with("#EXT-X-MAP:")).unwrap();
            assert_eq!(lines[map + 1], "#EXT-X-KEY:METHOD=AES-128,URI=\"../key\"", "{p}");
            assert_eq!(lines.iter().filter(|l| l.starts_with("#EXT-X-KEY")).count(), 1, "{p}");
            let first_segment = lines.iter().position(|l| l.starts_with("#EXTINF")).unwrap();
            assert!(map + 1 < first_segment, "{p}");
            // The media sequence the IVs count from.
            assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{p}");
        }
        assert!(!media_playlist(4, "init.mp4", None, &segs(&[4.0]), true).contains("EXT-X-KEY"));
    }

    #[test]
    fn target_duration_covers_every_segment() {
        assert_eq!(target_duration(4.004, &segs(&[4.004, 4.004, 2.0])), 4);
        assert_eq!(target_duration(4.0, &segs(&[4.6])), 5);
        assert_eq!(target_duration(0.2, &[]), 1);
    }

    #[test]
    fn bandwidth_is_measured_from_segments() {
        // 1 Mb/s for 8 s, then a 2 Mb/s segment.
        let mut s = segs(&[4.0, 4.0]);
        s.push(SegmentEntry { uri: "x".into(), duration_s: 4.0, bytes: 1_000_000 });
        let (peak, avg) = measured_bandwidth(0, &s);
        assert_eq!(peak, 2_000_000);
        assert_eq!(avg, 1_333_334);
        // The init segment is charged to the first segment.
        let (peak, _) = measured_bandwidth(2_000_000, &segs(&[4.0]));
        assert_eq!(peak, 5_000_000);
        // A tiny tail segment does not dominate the peak.
        let mut t = segs(&[4.0]);
        t.push(SegmentEntry { uri: "t".into(), duration_s: 0.04, bytes: 20_000 });
        assert_eq!(measured_bandwidth(0, &t), (1_029_703, 1_029_703));
        // A short first segment judged over a second: the peak is still at least the average.
        let mut short_first = vec![SegmentEntry { uri: "0".into(), duration_s: 0.5, bytes: 80_000 }];
        short_first.extend(segs(&[4.0, 4.0]));
        assert_eq!(measured_bandwidth(0, &short_first), (1_016_471, 1_016_471));
        assert_eq!(measured_bandwidth(0, &[]), (0, 0));
    }

    #[test]
    fn master_lists_the_start_variant_first_then_best_first() {
        let v = |name: &str, bw: u64, w: u32, h: u32| Variant {
            uri: format!("{name}/index.m3u8"),
            bandwidth: bw,
            average_bandwidth: bw * 4 / 5,
            codecs: "avc1.640028,mp4a.40.2".into(),
            width: w,
            height: h,
            frame_rate: 30.0,
        };
        let m = master_playlist(&[
            v("240p", 500_000, 426, 240),
            v("1080p", 7_000_000, 1920, 1080),
            v("720p", 3_500_000, 1280, 720),
        ]);
        let uris: Vec<&str> = m.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(uris, ["720p/index.m3u8", "1080p/index.m3u8", "240p/index.m3u8"]);
        assert!(m.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"));
        assert!(m.contains(
            "#EXT-X-STREAM-INF:BANDWIDTH=7000000,AVERAGE-BANDWIDTH=5600000,CODECS=\"avc1.640028,mp4a.40.2\",RESOLUTION=1920x1080,FRAME-RATE=30.000\n1080p/index.m3u8\n"
        ));
    }

    #[test]
    fn codec_strings() {
        // avcC: version 1, High (100), no constraints, level 4.0.
        assert_eq!(avc1_codec_string(&[1, 100, 0, 40, 0xff]).as_deref(), Some("avc1.640028"));
        // Annex B with an SEI first, then SPS: Main 3.1.
        let annexb = [0, 0, 0, 1, 0x06, 5, 5, 0, 0, 1, 0x67, 77, 0x40, 31, 0xAA];
        assert_eq!(avc1_codec_string(&annexb).as_deref(), Some("avc1.4d401f"));
        assert_eq!(avc1_codec_string(&[0, 0, 1, 0x68, 1]), None);
        assert_eq!(avc1_codec_string(&[]), None);
    }

    #[test]
    fn thumbnail_layouts() {
        let m = plan_thumbnails(30.0, 1920, 1080);
        assert_eq!((m.interval_s, m.count, m.cols, m.rows, m.tile_w, m.tile_h), (1.0, 30, 10, 3, 160, 90));
        let long = plan_thumbnails(1200.0, 1920, 1080);
        assert_eq!((long.interval_s, long.count, long.rows), (12.0, 100, 10));
        let portrait = plan_thumbnails(5.5, 1080, 1920);
        assert_eq!(
            (portrait.tile_w, portrait.tile_h, portrait.count, portrait.cols, portrait.rows),
            (90, 160, 6, 6, 1)
        );
        let empty = plan_thumbnails(0.0, 0, 0);
        assert_eq!((empty.count, empty.cols, empty.rows), (1, 1, 1));
    }

    #[test]
    fn vtt_points_into_the_sprite() {
        let m = plan_thumbnails(12.5, 1920, 1080);
        let vtt = thumbnails_vtt(&m, 12.5, "sprite.jpg");
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nsprite.jpg#xywh=0,0,160,90\n"));
        // The 11th tile wraps to the second row; the last cue ends at the video's end.
        assert!(vtt.contains("00:00:10.000 --> 00:00:11.000\nsprite.jpg#xywh=0,90,160,90\n"));
        assert!(vtt.ends_with("00:00:12.000 --> 00:00:12.500\nsprite.jpg#xywh=320,90,160,90\n"));
        assert_eq!(vtt.matches("-->").count(), 13);
        assert_eq!(vtt_time(3725.5), "01:02:05.500");
    }
}
