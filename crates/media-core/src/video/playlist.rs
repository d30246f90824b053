//! The text formats the platform publishes: HLS media and master playlists
//! (RFC 8216, version 7, fMP4) and the WebVTT thumbnails track. Also the
//! thumbnail sprite layout. The codec strings they advertise are read in
//! [`crate::video::codec_strings`].

use std::fmt::Write as _;

use crate::keys::{segment_file_name, RungName};
pub use crate::video::bandwidth::{measured_bandwidth, SegmentEntry};
pub use crate::video::codec_strings::avc1_codec_string;
use crate::video::job::{Job, JobStatus, ThumbnailMeta};
use crate::video::ladder::{VideoRange, AUDIO};

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
    /// `VIDEO-RANGE`, written for HDR variants only (absent means SDR).
    pub video_range: VideoRange,
}

/// The master playlist. Variants are listed best first, except that the one
/// a player should start with (the best at or under 3 Mb/s on average) leads,
/// since many players begin with the first entry.
pub fn master_playlist(variants: &[Variant]) -> String {
    master_playlist_with(variants, None)
}

/// An alternate audio rendition: its own playlist, which every variant
/// plays beside its video (`AUDIO="{group}"` on each `EXT-X-STREAM-INF`).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioGroup {
    pub group_id: String,
    pub uri: String,
    pub channels: u32,
}

/// The master playlist, with the audio group every variant names when
/// `audio` is set (its `CODECS` then lists the audio codec too, as the
/// rendition a player needs to play the variant).
pub fn master_playlist_with(variants: &[Variant], audio: Option<&AudioGroup>) -> String {
    let mut order: Vec<&Variant> = variants.iter().collect();
    order.sort_by_key(|r| std::cmp::Reverse(r.bandwidth));
    if let Some(i) = order.iter().position(|v| v.average_bandwidth <= 3_000_000) {
        let start = order.remove(i);
        order.insert(0, start);
    }
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if let Some(a) = audio {
        let _ = writeln!(
            s,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{}\",NAME=\"Main\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"{}\",URI=\"{}\"",
            a.group_id, a.channels, a.uri
        );
    }
    let group = audio.map(|a| format!(",AUDIO=\"{}\"", a.group_id)).unwrap_or_default();
    for v in order {
        let range =
            if v.video_range.is_sdr() { String::new() } else { format!(",VIDEO-RANGE={}", v.video_range.as_str()) };
        let _ = writeln!(
            s,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\",RESOLUTION={}x{},FRAME-RATE={:.3}{range}{group}\n{}",
            v.bandwidth, v.average_bandwidth, v.codecs, v.width, v.height, v.frame_rate, v.uri
        );
    }
    s
}

/// A chunked job's playlist for `rendition` (a video rung's name, or
/// `audio`), rendered from the job: its chunks finish out of order, so no
/// transcoder writes it. While the job runs it is an EVENT playlist of the
/// contiguous prefix only (every done chunk in order, then the published
/// segments of the first chunk not done: never past a gap, so it only
/// grows); once done, VOD with every segment. Segment lengths come from
/// the plan's geometry, the last from where the video ended. `None`: the
/// job is not in chunks, or has no such rendition.
pub fn chunked_media_playlist(job: &Job, rendition: &str) -> Option<String> {
    let table = job.chunks.as_ref()?;
    let known = if rendition == RungName::AUDIO {
        table.has_audio
    } else {
        let names = table.rung_names();
        RungName::parse(rendition).is_some() && (names.is_empty() || names.iter().any(|n| n == rendition))
    };
    if !known {
        return None;
    }
    let segments: Vec<SegmentEntry> = table
        .listed_segments(rendition)
        .into_iter()
        .map(|(seq, bytes)| SegmentEntry {
            uri: segment_file_name(seq),
            duration_s: table.segment_duration_s(seq),
            bytes: bytes.unwrap_or(0),
        })
        .collect();
    let target = target_duration(table.geometry.segment_s(), &segments);
    Some(media_playlist(target, "init.mp4", None, &segments, job.status == JobStatus::Done))
}

/// A chunked job's master playlist, rendered from the job: a variant per
/// video rung and, when the source has audio, the `audio` group they all
/// play. Bandwidths are the planned ones (the rung's cap plus the audio's
/// bitrate) until the job is done, then the measured ones of its result;
/// codecs are task 0's once it reported them. `None`: not in chunks.
pub fn chunked_master_playlist(job: &Job) -> Option<String> {
    let table = job.chunks.as_ref()?;
    let fps = table.geometry.frame_rate.as_f64();
    let audio = table.has_audio.then(|| AudioGroup {
        group_id: "audio".into(),
        uri: format!("{}/index.m3u8", RungName::AUDIO),
        channels: AUDIO.channels,
    });
    let audio_bps = if table.has_audio { u64::from(AUDIO.bitrate) } else { 0 };
    let with_audio = |video: &str| if table.has_audio { format!("{video},{AAC_LC_CODEC}") } else { video.to_owned() };
    let reported = table.tasks.first().and_then(|t| t.report.as_ref()).map_or(&[][..], |r| &r.rungs[..]);
    let measured = job.result.as_ref().filter(|_| job.status == JobStatus::Done).map_or(&[][..], |r| &r.renditions[..]);
    let variants: Vec<Variant> = if !measured.is_empty() {
        measured
            .iter()
            .map(|r| Variant {
                uri: format!("{}/index.m3u8", r.name),
                bandwidth: r.bandwidth,
                average_bandwidth: r.average_bandwidth,
                codecs: r.codecs.clone(),
                width: r.width,
                height: r.height,
                frame_rate: r.frame_rate,
                video_range: r.video_range,
            })
            .collect()
    } else {
        table
            .rungs
            .iter()
            .map(|rung| {
                let name = rung.name.as_str();
                // Before task 0 reported its own: what the rung's codec encodes to up to 1080p30.
                let codec = reported
                    .iter()
                    .find(|r| r.name == name)
                    .map_or(rung.codec.planned_codec_string(rung.range), |r| r.codecs.as_str());
                Variant {
                    uri: format!("{name}/index.m3u8"),
                    bandwidth: u64::from(rung.max_bitrate) + audio_bps,
                    average_bandwidth: u64::from(rung.bitrate) + audio_bps,
                    codecs: with_audio(codec),
                    width: rung.width,
                    height: rung.height,
                    frame_rate: fps,
                    video_range: rung.range,
                }
            })
            .collect()
    };
    if variants.is_empty() {
        return None;
    }
    Some(master_playlist_with(&variants, audio.as_ref()))
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
            video_range: VideoRange::Sdr,
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
        assert!(!m.contains("VIDEO-RANGE"), "SDR variants carry no VIDEO-RANGE: {m}");
        // An HDR variant says its range, after its frame rate.
        let hdr = Variant {
            uri: "720p-hevc/index.m3u8".into(),
            video_range: VideoRange::Hlg,
            ..v("x", 2_000_000, 1280, 720)
        };
        let m = master_playlist(&[v("720p", 3_500_000, 1280, 720), hdr]);
        assert!(m.contains("RESOLUTION=1280x720,FRAME-RATE=30.000,VIDEO-RANGE=HLG\n720p-hevc/index.m3u8\n"), "{m}");
        assert_eq!(m.matches("VIDEO-RANGE").count(), 1, "{m}");
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

    mod chunked {
        use super::super::*;
        use crate::ids::{AppId, JobId, LeaseId, VideoId};
        use crate::keys::OutputId;
        use crate::time::Timestamp;
        use crate::video::chunks::{ChunkGeometry, ChunkReport, ChunkSettings, ChunkSource, RungReport};
        use crate::video::job::{JobResult, RetryPolicy, SourceUpload};
        use crate::video::ladder::{LadderOptions, Rational, Rung};

        const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

        fn lid(s: &str) -> LeaseId {
            LeaseId::parse(s).unwrap()
        }

        /// 100 s at 30 fps with audio, a 0.5-s first segment and 4-s
        /// segments, in four chunks of 3, 8, 8 and 7 segments (26 in all),
        /// every task leased.
        fn running() -> Job {
            let p = RetryPolicy::default();
            let source = SourceUpload {
                raw_key: "raw/a/v/source.mp4".into(),
                content_type: "video/mp4".into(),
                size: 1,
                etag: None,
            };
            let mut j = Job::new(
                JobId::parse("job_1").unwrap(),
                AppId::parse("a").unwrap(),
                VideoId::parse("v").unwrap(),
                source,
                LadderOptions::default(),
                &p,
                T0,
            );
            j.lease(lid("L0"), OutputId::parse("o1").unwrap(), &p, T0).unwrap();
            let rung = |h: u32, w: u32, bitrate: u32| Rung {
                name: RungName::from_short_side(h),
                width: w,
                height: h,
                bitrate,
                max_bitrate: bitrate * 3 / 2,
                buffer_size: bitrate * 2,
                codec: Default::default(),
                range: Default::default(),
            };
            let source = ChunkSource {
                geometry: ChunkGeometry {
                    frame_rate: Rational::new(30, 1),
                    gop_frames: 60,
                    first_segment_frames: 15,
                    segment_frames: 120,
                    total_frames: 3000,
                },
                t0_s: 0.0,
                duration_s: 100.0,
                has_audio: true,
                rungs: vec![rung(720, 1280, 2_800_000), rung(360, 640, 800_000)],
            };
            let settings = ChunkSettings { from_s: 60.0, chunk_s: 30.0, first_chunk_s: 10.0 };
            j.plan(&lid("L0"), source, &settings, T0).unwrap().unwrap();
            for k in 1..4 {
                j.lease_task(k, lid(&format!("L{k}")), &p, T0).unwrap();
            }
            j
        }

        fn report(k: u16, frames: u64, segments: u32) -> ChunkReport {
            let rung = |name: &str, codecs: &str, w: u32, h: u32| RungReport {
                name: name.into(),
                width: w,
                height: h,
                codecs: codecs.into(),
                init_bytes: if k == 0 { 900 } else { 0 },
                segment_bytes: vec![200_000; segments as usize],
            };
            ChunkReport {
                frames,
                segments,
                rungs: vec![rung("720p", "avc1.64001f", 1280, 720), rung("360p", "avc1.64001e", 640, 360)],
                audio: (k == 0).then(|| RungReport {
                    name: "audio".into(),
                    codecs: "mp4a.40.2".into(),
                    init_bytes: 700,
                    segment_bytes: vec![64_000; 26],
                    ..Default::default()
                }),
                poster: k == 0,
                ..Default::default()
            }
        }

        fn publish(j: &mut Job, k: u16, video: u32, audio: Option<u32>) {
            j.record_published(&lid(&format!("L{k}")), Some(video), audio).unwrap();
        }

        fn finish(j: &mut Job, k: u16, frames: u64, segments: u32) {
            j.finish(&lid(&format!("L{k}")), JobResult::default(), Some(report(k, frames, segments)), T0).unwrap();
        }

        fn listed(playlist: &str) -> Vec<&str> {
            playlist.lines().filter(|l| l.ends_with(".m4s")).collect()
        }

        #[test]
        fn the_event_playlist_lists_the_contiguous_prefix_only() {
            let mut j = running();
            let p = |j: &Job| chunked_media_playlist(j, "720p").unwrap();
            assert_eq!(listed(&p(&j)), Vec::<&str>::new());
            assert!(p(&j).contains("#EXT-X-PLAYLIST-TYPE:EVENT\n") && p(&j).contains("#EXT-X-MAP:URI=\"init.mp4\"\n"));
            // Chunks 1 and 3 are ahead of chunk 0: nothing past the gap.
            finish(&mut j, 1, 960, 8);
            publish(&mut j, 3, 4, None);
            publish(&mut j, 0, 1, Some(3));
            assert_eq!(listed(&p(&j)), ["00000.m4s"]);
            assert!(p(&j).contains("#EXTINF:0.500000,\n00000.m4s\n"), "the short first segment");
            publish(&mut j, 0, 2, None);
            let before = p(&j);
            finish(&mut j, 0, 255, 3);
            // Chunk 0 and chunk 1 done, then chunk 2's published prefix.
            publish(&mut j, 2, 2, None);
            let now = p(&j);
            assert_eq!(listed(&now).len(), 3 + 8 + 2);
            assert_eq!(listed(&now)[3], "00003.m4s");
            assert_eq!(listed(&now).last(), Some(&"00012.m4s"));
            assert!(now.starts_with(before.trim_end_matches(|c| c != '\n')), "an EVENT playlist only grows");
            assert!(now.contains("#EXTINF:4.000000,\n00003.m4s\n"));
            assert!(!now.contains("#EXT-X-ENDLIST"));
            assert!(now.contains("#EXT-X-TARGETDURATION:4\n"));
        }

        #[test]
        fn the_last_chunk_lists_only_surely_full_segments_until_it_is_done() {
            let mut j = running();
            for (k, frames, segments) in [(0, 255, 3), (1, 960, 8), (2, 960, 8)] {
                finish(&mut j, k, frames, segments);
            }
            // All 7 of chunk 3 published, the final one maybe short: 19..=23 only.
            publish(&mut j, 3, 7, None);
            let running = chunked_media_playlist(&j, "360p").unwrap();
            assert_eq!(listed(&running).len(), 24);
            assert_eq!(listed(&running).last(), Some(&"00023.m4s"));
            // Done: VOD, every segment, the last as long as the video ran (815 frames from 2175: 2990).
            finish(&mut j, 3, 815, 7);
            assert_eq!(j.status, JobStatus::Done);
            let vod = chunked_media_playlist(&j, "360p").unwrap();
            assert_eq!(listed(&vod).len(), 26);
            assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
            let tail = (2990.0 - 2895.0) / 30.0;
            assert!(vod.ends_with(&format!("#EXTINF:{tail:.6},\n00025.m4s\n#EXT-X-ENDLIST\n")), "{vod}");
            assert!(vod.contains("#EXT-X-TARGETDURATION:4\n"));
        }

        #[test]
        fn the_audio_playlist_follows_task_0() {
            let mut j = running();
            publish(&mut j, 0, 1, Some(5));
            let a = chunked_media_playlist(&j, "audio").unwrap();
            assert_eq!(listed(&a), ["00000.m4s", "00001.m4s", "00002.m4s", "00003.m4s", "00004.m4s"]);
            finish(&mut j, 0, 255, 3);
            let a = chunked_media_playlist(&j, "audio").unwrap();
            assert_eq!(listed(&a).len(), 24, "the whole track is up, listed as far as the video surely goes");
            assert!(a.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"), "until the job is done");
            // Unknown renditions, and audio of a silent source.
            assert_eq!(chunked_media_playlist(&j, "1080p"), None);
            assert_eq!(chunked_media_playlist(&j, "master"), None);
            j.chunks.as_mut().unwrap().has_audio = false;
            assert_eq!(chunked_media_playlist(&j, "audio"), None);
            j.chunks = None;
            assert_eq!(chunked_media_playlist(&j, "720p"), None);
            assert_eq!(chunked_master_playlist(&j), None);
        }

        #[test]
        fn the_master_names_the_audio_group_with_planned_then_measured_bandwidth() {
            let mut j = running();
            let m = chunked_master_playlist(&j).unwrap();
            assert!(m.starts_with(
                "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
                 #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Main\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n"
            ), "{m}");
            // Planned: the rung's cap and target plus 128 kb/s of audio; the planned codec until task 0 reports.
            assert!(m.contains(
                "#EXT-X-STREAM-INF:BANDWIDTH=4328000,AVERAGE-BANDWIDTH=2928000,CODECS=\"avc1.640028,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"audio\"\n720p/index.m3u8\n"
            ), "{m}");
            assert_eq!(m.matches("AUDIO=\"audio\"").count(), 2);
            finish(&mut j, 0, 255, 3);
            let m = chunked_master_playlist(&j).unwrap();
            assert!(m.contains("CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360"), "task 0's own codecs: {m}");
            for (k, frames, segments) in [(1, 960, 8), (2, 960, 8), (3, 815, 7)] {
                finish(&mut j, k, frames, segments);
            }
            let r = &j.result.as_ref().unwrap().renditions[0];
            let m = chunked_master_playlist(&j).unwrap();
            assert!(m.contains(&format!(
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"audio\"\n720p/index.m3u8\n",
                r.bandwidth, r.average_bandwidth
            )), "{m}");
            assert_ne!(r.bandwidth, 4_328_000, "measured at done");
        }

        #[test]
        fn an_hdr_rung_s_range_is_in_the_planned_and_the_done_master() {
            let mut j = running();
            j.chunks.as_mut().unwrap().rungs[0].range = VideoRange::Hlg;
            let m = chunked_master_playlist(&j).unwrap();
            assert!(m.contains("RESOLUTION=1280x720,FRAME-RATE=30.000,VIDEO-RANGE=HLG,AUDIO=\"audio\"\n720p/"), "{m}");
            assert_eq!(m.matches("VIDEO-RANGE").count(), 1, "{m}");
            for (k, frames, segments) in [(0, 255, 3), (1, 960, 8), (2, 960, 8), (3, 815, 7)] {
                finish(&mut j, k, frames, segments);
            }
            let renditions = &j.result.as_ref().unwrap().renditions;
            assert_eq!((renditions[0].video_range, renditions[1].video_range), (VideoRange::Hlg, VideoRange::Sdr));
            let m = chunked_master_playlist(&j).unwrap();
            assert!(
                m.contains("VIDEO-RANGE=HLG,AUDIO=\"audio\"\n720p/") && m.matches("VIDEO-RANGE").count() == 1,
                "{m}"
            );
        }

        #[test]
        fn a_silent_source_has_no_audio_group() {
            let mut j = running();
            j.chunks.as_mut().unwrap().has_audio = false;
            let m = chunked_master_playlist(&j).unwrap();
            assert!(!m.contains("EXT-X-MEDIA") && !m.contains("AUDIO=") && !m.contains("mp4a"), "{m}");
            assert!(m.contains("BANDWIDTH=4200000,AVERAGE-BANDWIDTH=2800000,CODECS=\"avc1.640028\""), "{m}");
        }
    }
}
