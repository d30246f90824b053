//! Split-and-stitch encoding: how a long source is cut into chunk tasks that
//! several transcoders encode at once, and what each reports back. Pure.
//!
//! - Chunks start and end on segment boundaries, so every chunk starts on a
//!   keyframe slot and the stitched ladder has the same segments (seq, length,
//!   keyframes, tfdt) as a single pass would.
//! - Chunk 0 is shorter (it is what makes the video playable, and its task
//!   also encodes the whole audio track); the last chunk runs to the end of
//!   the file, whatever the probe said its length was.
//! - Every transcoder derives the frame geometry from the same probe; a chunk
//!   task checks its own plan against [`ChunkGeometry`] and fails permanently
//!   on a mismatch rather than stitching misaligned segments.

use serde::{Deserialize, Serialize};

use crate::video::access::{Encryption, PlaybackOptions};
use crate::video::extras::{CoverMeta, PreviewMeta};
use crate::video::ladder::{LadderPlan, Rational, Rung};

/// The frame geometry every transcoder derives from the same probe
/// (`plan_ladder`); a chunk task checks its own plan against it and fails
/// permanently on a mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkGeometry {
    pub frame_rate: Rational,
    pub gop_frames: u32,
    /// Frames in segment 0 (shorter than the others, for time to playable).
    pub first_segment_frames: u32,
    /// Frames in every other segment (a whole number of GOPs).
    pub segment_frames: u32,
    /// Planned from the probed duration; the last chunk may end sooner or
    /// later (the end of the file decides).
    pub total_frames: u64,
}

impl ChunkGeometry {
    /// The geometry of a ladder plan, for a source of `total_frames` output frames.
    pub fn of_plan(plan: &LadderPlan, total_frames: u64) -> Self {
        ChunkGeometry {
            frame_rate: plan.frame_rate,
            gop_frames: plan.gop_frames,
            first_segment_frames: plan.first_frames(),
            segment_frames: plan.segment_frames(),
            total_frames,
        }
    }

    /// Frames of segment 0, as [`LadderPlan::first_frames`] reads them (0:
    /// one GOP; never more than one GOP).
    fn first_frames(&self) -> u64 {
        let gop = self.gop_frames.max(1);
        u64::from(if self.first_segment_frames == 0 { gop } else { self.first_segment_frames.min(gop) })
    }

    /// The (exclusive) frame at which segment `seq` ends.
    pub fn segment_end_frame(&self, seq: u32) -> u64 {
        self.first_frames() + u64::from(seq) * u64::from(self.segment_frames)
    }

    /// The frame at which segment `seq` starts.
    pub fn segment_start_frame(&self, seq: u32) -> u64 {
        if seq == 0 {
            0
        } else {
            self.segment_end_frame(seq - 1)
        }
    }

    /// How many segments `frames` frames from slot 0 make (the last may be short).
    pub fn segments_in(&self, frames: u64) -> u32 {
        let first = self.first_frames();
        if frames <= first || self.segment_frames == 0 {
            return 1;
        }
        let rest = frames - first;
        1 + u32::try_from(rest.div_ceil(u64::from(self.segment_frames))).unwrap_or(u32::MAX - 1)
    }

    /// Seconds per frame.
    pub fn frame_s(&self) -> f64 {
        let fps = self.frame_rate.as_f64();
        if fps > 0.0 {
            1.0 / fps
        } else {
            0.0
        }
    }

    /// The length of segment `seq` in seconds, when the video ends at frame
    /// `end_frame` (`None`: as planned, a full segment).
    pub fn segment_duration_s(&self, seq: u32, end_frame: Option<u64>) -> f64 {
        let start = self.segment_start_frame(seq);
        let end = match end_frame {
            Some(e) => self.segment_end_frame(seq).min(e.max(start)),
            None => self.segment_end_frame(seq),
        };
        (end - start) as f64 * self.frame_s()
    }

    /// The nominal (full) segment length in seconds.
    pub fn segment_s(&self) -> f64 {
        f64::from(self.segment_frames) * self.frame_s()
    }

    fn usable(&self) -> bool {
        self.frame_rate.as_f64() > 0.0 && self.segment_frames > 0 && self.gop_frames > 0
    }
}

/// One chunk task as the transcoder receives it, in `JobSpec.chunk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkSpec {
    /// 0 also encodes the whole audio track and writes the inits and the poster.
    pub index: u16,
    pub count: u16,
    /// Inclusive output slot; a segment start and a keyframe.
    pub start_frame: u64,
    /// Exclusive; `None`: the last chunk, to the end of the file.
    pub end_frame: Option<u64>,
    /// The global seq of the chunk's first segment.
    pub first_seq: u32,
    /// The source time of output slot 0, as the planner's probe saw it.
    pub t0_s: f64,
    pub geometry: ChunkGeometry,
    /// This task encodes the audio rendition (task 0 when the source has audio).
    pub audio: bool,
}

/// One chunk of the plan: which output frames and segments it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRange {
    pub index: u16,
    pub start_frame: u64,
    /// Exclusive; `None` for the last chunk (to the end of the file).
    pub end_frame: Option<u64>,
    pub first_seq: u32,
    /// Segments planned (the last chunk's count follows the probed length).
    pub segments: u32,
}

/// What a chunk task reports at complete (in `CompleteRequest.chunk`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChunkReport {
    /// Frames actually encoded (start..end, or to the end of the file).
    pub frames: u64,
    /// Segments actually written (per video rung).
    pub segments: u32,
    /// Per video rung, in ladder order.
    #[serde(default)]
    pub rungs: Vec<RungReport>,
    /// Task 0 of a source with audio: the `audio` rendition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<RungReport>,
    /// Task 0 wrote `poster.jpg`.
    #[serde(default)]
    pub poster: bool,
    /// Task 0 made the cover the job asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover: Option<CoverMeta>,
    /// Task 0 made the preview the job asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewMeta>,
}

/// One rendition's part of a chunk: its codec and the bytes it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RungReport {
    pub name: String,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
    /// RFC 6381, of this rendition's own stream (`avc1.640028`, `mp4a.40.2`).
    pub codecs: String,
    /// The init segment's size (counted once, from task 0).
    #[serde(default)]
    pub init_bytes: u64,
    /// Every segment the chunk wrote, from its `first_seq` on.
    #[serde(default)]
    pub segment_bytes: Vec<u64>,
}

/// What the first transcoder found in the source, sent to plan the chunks
/// (the body of `POST /internal/jobs/{job_id}/plan` besides the lease).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkSource {
    pub geometry: ChunkGeometry,
    /// The source time of output slot 0 (the first frame's timestamp).
    pub t0_s: f64,
    pub duration_s: f64,
    pub has_audio: bool,
    /// The video rungs the ladder plan made (every task encodes these), for
    /// the master playlist before any chunk has reported.
    #[serde(default)]
    pub rungs: Vec<Rung>,
}

/// The video service's chunking settings (`CHUNK_FROM_S`, `CHUNK_S`,
/// `FIRST_CHUNK_S`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkSettings {
    /// Chunk sources at least this long; 0 turns chunking off.
    pub from_s: f64,
    /// The length of every chunk but the first and the last.
    pub chunk_s: f64,
    /// The length of chunk 0 (whose task also encodes the audio).
    pub first_chunk_s: f64,
}

impl Default for ChunkSettings {
    fn default() -> Self {
        Self { from_s: 120.0, chunk_s: 30.0, first_chunk_s: 10.0 }
    }
}

impl ChunkSettings {
    /// `JobSpec.chunk_from_s` for a job with these playback options: `None`
    /// when chunking is off, or the job asks for encryption or a download
    /// (those stay single-pass).
    pub fn chunk_from_s(&self, playback: &PlaybackOptions) -> Option<f64> {
        let single_pass = playback.encryption != Encryption::None || playback.download.is_some();
        (self.from_s > 0.0 && self.from_s.is_finite() && !single_pass).then_some(self.from_s)
    }
}

/// The most chunks a run is cut into: longer chunks past that, so the
/// job's record (one task each, rewritten at every beat) stays bounded
/// (a 6-h source at 30-s chunks would be 720 tasks).
pub const MAX_CHUNKS: u32 = 200;

/// Cuts a source into chunks on segment boundaries: chunk 0 of about
/// `first_chunk_s`, then chunks of about `chunk_s` (both rounded to whole
/// segments, at least one), the last running to the end of the file. A
/// remainder shorter than half a chunk joins the chunk before it (unless
/// that is chunk 0). A source that fits in one chunk gets one range, which
/// the caller takes as "do not chunk".
pub fn plan_chunks(geometry: &ChunkGeometry, chunk_s: f64, first_chunk_s: f64) -> Vec<ChunkRange> {
    let total_segments = geometry.segments_in(geometry.total_frames);
    let whole = |segments| vec![ChunkRange { index: 0, start_frame: 0, end_frame: None, first_seq: 0, segments }];
    let positive = |s: f64| s.is_finite() && s > 0.0;
    if !geometry.usable() || !positive(chunk_s) || !positive(first_chunk_s) {
        return whole(total_segments);
    }
    let fps = geometry.frame_rate.as_f64();
    // Segments of chunk 0: the count whose end is nearest `first_chunk_s`.
    let target = first_chunk_s * fps;
    let mut first = 1u32;
    while first < total_segments
        && (geometry.segment_end_frame(first) as f64 - target).abs()
            < (geometry.segment_end_frame(first - 1) as f64 - target).abs()
    {
        first += 1;
    }
    let asked = ((chunk_s * fps / f64::from(geometry.segment_frames)).round() as u32).max(1);
    let per_chunk = asked.max((total_segments - first.min(total_segments)).div_ceil(MAX_CHUNKS - 1));
    // Segment counts per chunk.
    let mut counts = vec![first.min(total_segments)];
    let mut planned = counts[0];
    while planned < total_segments {
        let n = per_chunk.min(total_segments - planned);
        counts.push(n);
        planned += n;
    }
    if counts.len() > 2 && u64::from(*counts.last().expect("non-empty")) * 2 < u64::from(per_chunk) {
        let tail = counts.pop().expect("non-empty");
        *counts.last_mut().expect("non-empty") += tail;
    }
    let last = counts.len() - 1;
    let mut first_seq = 0u32;
    counts
        .iter()
        .enumerate()
        .map(|(i, &segments)| {
            let start_frame = geometry.segment_start_frame(first_seq);
            let end_seq = first_seq + segments;
            let range = ChunkRange {
                index: i as u16,
                start_frame,
                end_frame: (i < last).then(|| geometry.segment_end_frame(end_seq - 1)),
                first_seq,
                segments,
            };
            first_seq = end_seq;
            range
        })
        .collect()
}

impl ChunkRange {
    /// The spec a task of this range runs.
    pub fn spec(&self, count: u16, t0_s: f64, geometry: ChunkGeometry, audio: bool) -> ChunkSpec {
        ChunkSpec {
            index: self.index,
            count,
            start_frame: self.start_frame,
            end_frame: self.end_frame,
            first_seq: self.first_seq,
            t0_s,
            geometry,
            audio: audio && self.index == 0,
        }
    }

    /// The frames planned for this range (the last: to the planned total).
    pub fn planned_frames(&self, geometry: &ChunkGeometry) -> u64 {
        self.end_frame.unwrap_or(geometry.total_frames.max(self.start_frame)) - self.start_frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 fps, 2-s GOPs, a half-second first segment, 4-s segments.
    fn geometry(total_s: u64) -> ChunkGeometry {
        ChunkGeometry {
            frame_rate: Rational::new(30, 1),
            gop_frames: 60,
            first_segment_frames: 15,
            segment_frames: 120,
            total_frames: total_s * 30,
        }
    }

    #[test]
    fn segment_arithmetic_follows_the_short_first_segment() {
        let g = geometry(60);
        assert_eq!([0, 1, 2].map(|s| g.segment_end_frame(s)), [15, 135, 255]);
        assert_eq!([0, 1, 2].map(|s| g.segment_start_frame(s)), [0, 15, 135]);
        assert_eq!((g.segments_in(1), g.segments_in(15), g.segments_in(16), g.segments_in(135)), (1, 1, 2, 2));
        assert_eq!(g.segments_in(1800), 16, "15 + 15x120 = 1815 >= 1800");
        assert_eq!(g.segment_duration_s(0, None), 0.5);
        assert_eq!(g.segment_duration_s(1, None), 4.0);
        assert_eq!(
            g.segment_duration_s(15, Some(1800)),
            (1800.0 - 1695.0) / 30.0,
            "the tail, cut where the video ends"
        );
        // A plan from before the short first segment (0): the first is one GOP, as the ladder reads it.
        let plain = ChunkGeometry { first_segment_frames: 0, ..g };
        assert_eq!((plain.segment_end_frame(0), plain.segment_end_frame(1)), (60, 180));
    }

    #[test]
    fn the_geometry_is_the_ladder_plan_s() {
        let plan = LadderPlan {
            rungs: vec![],
            frame_rate: Rational::new(30, 1),
            gop_frames: 60,
            gops_per_segment: 2,
            first_segment_frames: 15,
        };
        let g = ChunkGeometry::of_plan(&plan, 9000);
        assert_eq!(g, geometry(300));
        for seq in 0..100 {
            assert_eq!(g.segment_end_frame(seq), plan.segment_end_frame(seq), "one rule for segment ends");
        }
        for r in plan_chunks(&g, 30.0, 10.0) {
            assert!(plan.is_keyframe(r.start_frame), "chunk {} starts on a keyframe", r.index);
        }
        let old = LadderPlan { first_segment_frames: 0, ..plan };
        assert_eq!(ChunkGeometry::of_plan(&old, 9000).segment_end_frame(0), old.segment_end_frame(0));
    }

    #[test]
    fn chunks_end_on_segment_ends_with_a_shorter_first_chunk() {
        let g = geometry(300);
        let plan = plan_chunks(&g, 30.0, 10.0);
        // Chunk 0: the segment end nearest 10 s (255 frames = 8.5 s, not 375 = 12.5 s).
        assert_eq!(plan[0], ChunkRange { index: 0, start_frame: 0, end_frame: Some(255), first_seq: 0, segments: 3 });
        // Then 8 segments (32 s, the whole number nearest 30 s) each.
        assert_eq!(
            plan[1],
            ChunkRange { index: 1, start_frame: 255, end_frame: Some(1215), first_seq: 3, segments: 8 }
        );
        for pair in plan.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert_eq!(a.end_frame, Some(b.start_frame), "contiguous");
            assert_eq!(a.first_seq + a.segments, b.first_seq, "seqs contiguous");
            assert_eq!(g.segment_start_frame(b.first_seq), b.start_frame, "starts on a segment start");
            assert_eq!((b.start_frame - 15) % 60, 0, "and so on a keyframe slot");
        }
        let last = plan.last().unwrap();
        assert_eq!(last.end_frame, None, "the last chunk runs to the end of the file");
        assert_eq!(last.first_seq + last.segments, g.segments_in(g.total_frames));
        assert_eq!(plan.iter().map(|r| r.index).collect::<Vec<_>>(), (0..plan.len() as u16).collect::<Vec<_>>());
        // 300 s = 76 segments: 3, then 8 x 9 = 72, leaving 1, which joins the chunk before it.
        assert_eq!(plan.len(), 10);
        assert_eq!(last.segments, 9);
    }

    #[test]
    fn a_very_long_source_is_cut_in_at_most_max_chunks() {
        // 6 h at 30-s chunks would be 720 chunks.
        let plan = plan_chunks(&geometry(6 * 3600), 30.0, 10.0);
        assert!(plan.len() <= MAX_CHUNKS as usize && plan.len() > 150, "{}", plan.len());
        assert_eq!(plan[0].segments, 3, "chunk 0 stays short");
        assert!(plan[1..plan.len() - 1].iter().all(|r| r.segments == plan[1].segments && r.segments > 8));
        assert_eq!(
            plan.last().unwrap().first_seq + plan.last().unwrap().segments,
            geometry(6 * 3600).segments_in(648_000)
        );
    }

    #[test]
    fn a_long_remainder_is_a_chunk_of_its_own() {
        // 3 + 8 + 8 = 19 segments end at 2175 frames; 100 s = 3000 frames leaves 7 segments (>= half of 8).
        let plan = plan_chunks(&geometry(100), 30.0, 10.0);
        assert_eq!(plan.iter().map(|r| r.segments).collect::<Vec<_>>(), [3, 8, 8, 7]);
        assert_eq!(plan[3].end_frame, None);
    }

    #[test]
    fn a_remainder_never_joins_chunk_zero() {
        // 14 s: chunk 0 takes 3 segments (8.5 s), one segment of 4 s is left.
        let plan = plan_chunks(&geometry(14), 30.0, 10.0);
        assert_eq!(plan.iter().map(|r| r.segments).collect::<Vec<_>>(), [3, 2]);
    }

    #[test]
    fn short_sources_make_one_chunk() {
        for g in [geometry(8), geometry(1), ChunkGeometry { total_frames: 0, ..geometry(1) }] {
            let plan = plan_chunks(&g, 30.0, 10.0);
            assert_eq!(plan.len(), 1, "{g:?}");
            assert_eq!((plan[0].start_frame, plan[0].end_frame, plan[0].first_seq), (0, None, 0));
        }
        // Unusable settings or geometry: one chunk, never a panic.
        assert_eq!(plan_chunks(&geometry(300), 0.0, 10.0).len(), 1);
        assert_eq!(plan_chunks(&geometry(300), f64::NAN, 10.0).len(), 1);
        assert_eq!(plan_chunks(&ChunkGeometry { segment_frames: 0, ..geometry(300) }, 30.0, 10.0).len(), 1);
        assert_eq!(
            plan_chunks(&ChunkGeometry { frame_rate: Rational::new(0, 1), ..geometry(300) }, 30.0, 10.0).len(),
            1
        );
        // Chunks shorter than a segment are a segment.
        assert!(plan_chunks(&geometry(20), 1.0, 0.1).iter().all(|r| r.segments >= 1));
    }

    #[test]
    fn a_range_becomes_its_task_spec() {
        let g = geometry(300);
        let plan = plan_chunks(&g, 30.0, 10.0);
        let s0 = plan[0].spec(plan.len() as u16, 0.033, g, true);
        assert_eq!((s0.index, s0.count, s0.audio, s0.end_frame, s0.t0_s), (0, 10, true, Some(255), 0.033));
        let s1 = plan[1].spec(plan.len() as u16, 0.033, g, true);
        assert!(!s1.audio, "only task 0 encodes the audio");
        assert_eq!((s1.start_frame, s1.first_seq), (255, 3));
        assert_eq!(plan[1].planned_frames(&g), 960);
        assert_eq!(plan[9].planned_frames(&g), 9000 - plan[9].start_frame);
    }

    #[test]
    fn encryption_and_downloads_stay_single_pass() {
        let settings = ChunkSettings::default();
        let plain = PlaybackOptions::default();
        assert_eq!(settings.chunk_from_s(&plain), Some(120.0));
        let encrypted = PlaybackOptions { encryption: Encryption::Aes128, ..plain.clone() };
        assert_eq!(settings.chunk_from_s(&encrypted), None);
        let download = PlaybackOptions { download: Some(Default::default()), ..plain.clone() };
        assert_eq!(settings.chunk_from_s(&download), None);
        assert_eq!(ChunkSettings { from_s: 0.0, ..settings }.chunk_from_s(&plain), None, "0 turns chunking off");
    }
}
