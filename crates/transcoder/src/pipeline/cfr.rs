//! Turning decoded frames with arbitrary timestamps (variable frame rate,
//! gaps, duplicates) into a constant-frame-rate sequence, so every rung has
//! the same frames at the same indices and GOPs line up by counting. Each
//! output slot `n` (at `n / fps` seconds) shows the latest input frame whose
//! time rounds to a slot at or before `n` — what ffmpeg's `fps` filter does
//! with `round=near`.

/// Slots frames of type `F` onto a constant-rate grid.
pub struct ConstantRate<F> {
    fps: f64,
    next: u64,
    pending: Option<F>,
}

impl<F: Clone> ConstantRate<F> {
    pub fn new(fps: f64) -> Self {
        Self::starting_at(fps, 0)
    }

    /// A clock whose first emitted slot is `slot`: frames pushed before it
    /// only decide what that slot shows (the latest one whose own slot is
    /// at or before it), exactly as they would have from slot 0. A chunk of
    /// a chunked job starts here, after decoding from an earlier keyframe.
    pub fn starting_at(fps: f64, slot: u64) -> Self {
        Self { fps, next: slot, pending: None }
    }

    /// Slots emitted so far.
    pub fn emitted(&self) -> u64 {
        self.next
    }

    /// A frame at `t` seconds (relative to the first frame). Returns the
    /// (slot, frame) pairs now final: the previous frame, repeated over every
    /// slot before this frame's own.
    pub fn push(&mut self, t: f64, frame: F) -> Vec<(u64, F)> {
        let slot = (t.max(0.0) * self.fps).round() as u64;
        let mut out = Vec::new();
        if let Some(prev) = self.pending.take() {
            while self.next < slot {
                out.push((self.next, prev.clone()));
                self.next += 1;
            }
        }
        self.pending = Some(frame);
        out
    }

    /// The stream ended at `end` seconds: the last frame fills the slots up
    /// to it (a video of one frame still gets one slot).
    pub fn finish(&mut self, end: f64) -> Vec<(u64, F)> {
        let mut last = (end.max(0.0) * self.fps).round() as u64;
        if self.next == 0 {
            last = last.max(1);
        }
        let mut out = Vec::new();
        if let Some(prev) = self.pending.take() {
            while self.next < last {
                out.push((self.next, prev.clone()));
                self.next += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(fps: f64, frames: &[f64], end: f64) -> Vec<(u64, usize)> {
        let mut c = ConstantRate::new(fps);
        let mut out = vec![];
        for (i, t) in frames.iter().enumerate() {
            out.extend(c.push(*t, i));
        }
        out.extend(c.finish(end));
        out
    }

    #[test]
    fn constant_input_passes_through() {
        let frames: Vec<f64> = (0..5).map(|i| f64::from(i) / 25.0).collect();
        assert_eq!(run(25.0, &frames, 0.2), vec![(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]);
    }

    #[test]
    fn gaps_repeat_the_last_frame_and_bursts_drop() {
        // 10 fps grid: frame 1 arrives late (a gap), frames 2 and 3 land in one slot.
        let out = run(10.0, &[0.0, 0.3, 0.41, 0.43, 0.5], 0.6);
        assert_eq!(out, vec![(0, 0), (1, 0), (2, 0), (3, 1), (4, 3), (5, 4)]);
    }

    #[test]
    fn variable_rate_phone_video_gets_every_slot_once() {
        // ~30 fps with jitter.
        let frames = [0.0, 0.034, 0.066, 0.101, 0.133, 0.166, 0.2];
        let out = run(30.0, &frames, 0.233);
        let slots: Vec<u64> = out.iter().map(|(s, _)| *s).collect();
        assert_eq!(slots, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn a_single_frame_fills_at_least_one_slot() {
        assert_eq!(run(30.0, &[0.0], 0.0), vec![(0, 0)]);
        assert_eq!(run(30.0, &[], 1.0), vec![]);
    }

    #[test]
    fn a_clock_started_later_emits_what_the_whole_run_emits_from_there() {
        // Jittery ~30 fps with a gap and a burst; every start slot gives the same tail.
        let frames = [0.0, 0.034, 0.066, 0.101, 0.2, 0.21, 0.22, 0.266, 0.3, 0.334];
        let whole = run(30.0, &frames, 0.366);
        for start in 0..whole.len() as u64 {
            // Decoding starts a few frames before the slot (from a keyframe).
            let first =
                frames.iter().position(|t| (t * 30.0_f64).round() as u64 >= start).unwrap_or(0).saturating_sub(2);
            let mut c = ConstantRate::starting_at(30.0, start);
            let mut out = vec![];
            for (i, t) in frames.iter().enumerate().skip(first) {
                out.extend(c.push(*t, i));
            }
            out.extend(c.finish(0.366));
            let tail: Vec<_> = whole.iter().filter(|(s, _)| *s >= start).cloned().collect();
            assert_eq!(out, tail, "from slot {start}");
        }
    }

    #[test]
    fn higher_input_rate_is_decimated() {
        // 60 fps in, 30 fps out: every other frame.
        let frames: Vec<f64> = (0..6).map(|i| f64::from(i) / 60.0).collect();
        let out = run(30.0, &frames, 0.1);
        assert_eq!(out.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![0, 1, 2]);
    }
}
