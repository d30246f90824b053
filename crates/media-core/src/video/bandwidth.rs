//! What a rendition's published segments measure to: the HLS `BANDWIDTH`
//! and `AVERAGE-BANDWIDTH` of a variant, from its segments' sizes and
//! lengths. Below both the playlists (which print it) and the job (which
//! records it for a stitched ladder), so each uses one rule.

/// One published media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentEntry {
    pub uri: String,
    pub duration_s: f64,
    pub bytes: u64,
}

/// Peak and average bits per second over a rung's segments (the HLS
/// `BANDWIDTH` and `AVERAGE-BANDWIDTH`). The init segment's bytes count
/// towards the first segment, as a player fetches both.
pub fn measured_bandwidth(init_bytes: u64, segments: &[SegmentEntry]) -> (u64, u64) {
    let total_s: f64 = segments.iter().map(|s| s.duration_s).sum();
    let total_bytes: u64 = init_bytes + segments.iter().map(|s| s.bytes).sum::<u64>();
    if total_s <= 0.0 {
        return (0, 0);
    }
    // A very short last segment would overstate the peak: judge every
    // segment over at least one second (or the whole video, if shorter).
    let min_window = total_s.min(1.0);
    let peak = segments
        .iter()
        .enumerate()
        .map(|(i, seg)| (seg.bytes + if i == 0 { init_bytes } else { 0 }) as f64 * 8.0 / seg.duration_s.max(min_window))
        .fold(0.0, f64::max);
    let average = (total_bytes as f64 * 8.0 / total_s).ceil() as u64;
    // Judged over a longer window, short segments (the half-second first
    // one, a tail) can bring the peak under the average; the peak is never less.
    ((peak.ceil() as u64).max(average), average)
}
