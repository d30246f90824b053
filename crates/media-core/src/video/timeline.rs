//! The bounds of a source's timeline, so that a few bytes cannot ask for
//! days of work. A crafted file can stamp one frame 10^6 s after the one
//! before it: the constant-rate clock would then repeat the previous frame
//! for eleven days of output, and an audio stream that starts that late would
//! be padded with gigabytes of silence in one allocation. The transcoder
//! checks every decoded frame and the audio's start against these rules and
//! refuses the source, with a message the uploader can act on, as soon as
//! one is broken.
//!
//! | rule | bound | why |
//! |---|---|---|
//! | declared duration | [`MAX_SOURCE_DURATION_S`] (6 h, Cloudflare Stream's ceiling) | the longest video the platform takes |
//! | a jump between two frames | [`MAX_TIMESTAMP_GAP_S`] | real recordings do not pause for minutes inside one file |
//! | decoded time against the declared duration | `declared * 1.25 + 10 s` | containers round and estimate, but not by minutes |
//! | where the audio starts, against the video | [`MAX_TIMESTAMP_GAP_S`] | the silence padded before it is allocated at once |
//! | audio lagging the video while reading | [`MAX_AUDIO_LAG_S`] | encoded video waits in memory for audio to cover it |
//! | audio running ahead of the video while reading | [`MAX_AUDIO_LEAD_S`] | decoded audio waits in memory for the video to reach it |
//! | audio past the video's last frame | [`AUDIO_TAIL_S`], then cut | a few seconds of video must not carry hours of audio |
//! | wall-clock time of one job | [`job_time_limit_s`] | a backstop for whatever the rules above miss |

/// The longest source accepted, in seconds (6 h, as Cloudflare Stream).
pub const MAX_SOURCE_DURATION_S: f64 = 6.0 * 3600.0;

/// The largest forward jump between consecutive video frames, or between
/// the first audio sample and the first video frame, in seconds.
pub const MAX_TIMESTAMP_GAP_S: f64 = 60.0;

/// How far the audio may fall behind the video while reading before the
/// missing audio is filled with silence (a file whose audio comes late in
/// its interleaving, or never).
pub const MAX_AUDIO_LAG_S: f64 = 10.0;

/// How much audio is kept past the video's last frame, in seconds; the rest
/// of a longer audio track is cut (neither encoded nor packaged). A file
/// with 2 s of video and hours of audio plays 2 s.
pub const AUDIO_TAIL_S: f64 = 2.0;

/// How far the decoded audio may run ahead of the video while reading, in
/// seconds, before the source's audio is given up on (dropped unread, the
/// track filled with silence as the video goes on): what runs further ahead
/// would be held in memory waiting for video that may never come.
pub const MAX_AUDIO_LEAD_S: f64 = MAX_TIMESTAMP_GAP_S;

/// Decoded video may run this much longer than the container declares.
const DECLARED_SLACK_FACTOR: f64 = 1.25;
const DECLARED_SLACK_S: f64 = 10.0;

/// Why a source's timeline is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TimelineError {
    #[error("the video is {}; the longest accepted is {}", hms(*declared_s), hms(MAX_SOURCE_DURATION_S))]
    TooLong { declared_s: f64 },
    #[error(
        "the video's timestamps jump {} forward at {} (frame {frame}); the longest jump accepted is {} s, so the file is damaged or crafted",
        hms(*gap_s),
        hms(*at_s),
        MAX_TIMESTAMP_GAP_S
    )]
    Gap { frame: u64, at_s: f64, gap_s: f64 },
    #[error("the video's frames run on past {} although the file declares {}; the file is damaged or crafted", hms(*at_s), hms(*declared_s))]
    PastDeclared { at_s: f64, declared_s: f64 },
    #[error("the video runs past {} without declaring a duration; the longest accepted is {}", hms(*at_s), hms(MAX_SOURCE_DURATION_S))]
    PastMaximum { at_s: f64 },
    #[error(
        "the audio starts {} after the video; the largest offset accepted is {} s, so the file is damaged or crafted",
        hms(*offset_s),
        MAX_TIMESTAMP_GAP_S
    )]
    AudioOffset { offset_s: f64 },
}

/// Seconds as `1 h 02 min 03.4 s`-style text for messages.
fn hms(s: f64) -> String {
    if !s.is_finite() {
        return "an unreadable time".into();
    }
    let whole = s.abs();
    if whole < 60.0 {
        return format!("{s:.1} s");
    }
    let (h, m, sec) = ((whole / 3600.0).floor(), ((whole % 3600.0) / 60.0).floor(), whole % 60.0);
    let sign = if s < 0.0 { "-" } else { "" };
    if h >= 1.0 {
        format!("{sign}{h} h {m:02} min {sec:02.0} s")
    } else {
        format!("{sign}{m} min {sec:02.0} s")
    }
}

/// Checks a source's frames as they are decoded. Times are in seconds from
/// the first video frame.
#[derive(Debug, Clone)]
pub struct Timeline {
    declared_s: Option<f64>,
    last_s: Option<f64>,
    frames: u64,
}

impl Timeline {
    /// Starts checking a source that declares `declared_s` (the container's
    /// duration, when it has one); refuses one declared longer than the maximum.
    pub fn new(declared_s: Option<f64>) -> Result<Self, TimelineError> {
        let declared_s = declared_s.filter(|d| d.is_finite() && *d > 0.0);
        if let Some(d) = declared_s {
            if d > MAX_SOURCE_DURATION_S {
                return Err(TimelineError::TooLong { declared_s: d });
            }
        }
        Ok(Self { declared_s, last_s: None, frames: 0 })
    }

    /// The latest decoded time a frame may have.
    pub fn limit_s(&self) -> f64 {
        match self.declared_s {
            Some(d) => (d * DECLARED_SLACK_FACTOR + DECLARED_SLACK_S).min(MAX_SOURCE_DURATION_S + DECLARED_SLACK_S),
            None => MAX_SOURCE_DURATION_S,
        }
    }

    /// One decoded frame at `t_s`. Frames may arrive out of order or repeat
    /// a time (the constant-rate clock sorts that out); only a jump forward
    /// past the last frame counts as a gap.
    pub fn frame(&mut self, t_s: f64) -> Result<(), TimelineError> {
        let frame = self.frames;
        self.frames += 1;
        if let Some(last) = self.last_s {
            let gap = t_s - last;
            if gap > MAX_TIMESTAMP_GAP_S {
                return Err(TimelineError::Gap { frame, at_s: last, gap_s: gap });
            }
        }
        if t_s > self.limit_s() {
            return Err(match self.declared_s {
                Some(declared_s) => TimelineError::PastDeclared { at_s: t_s, declared_s },
                None => TimelineError::PastMaximum { at_s: t_s },
            });
        }
        self.last_s = Some(self.last_s.map_or(t_s, |l| l.max(t_s)));
        Ok(())
    }
}

/// Checks where the audio starts against the video (`offset_s` > 0: later).
/// Audio that starts earlier is trimmed, which costs nothing; audio that
/// starts later is preceded by silence, which is allocated.
pub fn check_audio_offset(offset_s: f64) -> Result<(), TimelineError> {
    if offset_s.is_finite() && offset_s <= MAX_TIMESTAMP_GAP_S {
        Ok(())
    } else {
        Err(TimelineError::AudioOffset { offset_s })
    }
}

/// The wall-clock time one job may take, in seconds: ten minutes, plus four
/// times the source's duration (the ladder encodes at about 0.6x real time
/// on two cores), or the maximum duration's worth when it is unknown.
pub fn job_time_limit_s(duration_s: Option<f64>) -> u64 {
    let d =
        duration_s.filter(|d| d.is_finite() && *d > 0.0).unwrap_or(MAX_SOURCE_DURATION_S).min(MAX_SOURCE_DURATION_S);
    600 + (4.0 * d).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_duration_is_bounded() {
        assert!(Timeline::new(Some(3600.0)).is_ok());
        assert!(Timeline::new(None).is_ok());
        assert!(Timeline::new(Some(f64::NAN)).is_ok(), "an unreadable duration counts as unknown");
        let e = Timeline::new(Some(1_000_002.0)).unwrap_err();
        assert_eq!(e, TimelineError::TooLong { declared_s: 1_000_002.0 });
        assert_eq!(e.to_string(), "the video is 277 h 46 min 42 s; the longest accepted is 6 h 00 min 00 s");
    }

    #[test]
    fn frames_are_checked_for_gaps_and_against_the_declared_duration() {
        // (declared, frame times, Ok or the index of the refused frame)
        let cases: &[(Option<f64>, &[f64], Option<usize>)] = &[
            (Some(2.0), &[0.0, 0.033, 0.066, 1.9], None),
            // Out of order and repeated times are the clock's business, not a gap.
            (Some(2.0), &[0.0, 0.1, 0.05, 0.1, 0.2], None),
            // The timestamp bomb: the 11th frame 10^6 s later.
            (Some(2.0), &[0.0, 0.1, 1_000_000.1], Some(2)),
            // A gap just inside the limit, but beyond what the file declares.
            (Some(2.0), &[0.0, 59.0], Some(1)),
            (Some(100.0), &[0.0, 59.0], None),
            (Some(100.0), &[0.0, 61.0], Some(1)),
            // Declared 2 s: up to 12.5 s is tolerated, not more.
            (Some(2.0), &[0.0, 6.0, 12.0], None),
            (Some(2.0), &[0.0, 6.0, 12.0, 13.0], Some(3)),
            // Without a declared duration, only the gap and the maximum apply.
            (None, &[0.0, 50.0, 100.0], None),
        ];
        for (declared, times, refused_at) in cases {
            let mut t = Timeline::new(*declared).unwrap();
            let got = times.iter().position(|s| t.frame(*s).is_err());
            assert_eq!(got, *refused_at, "{declared:?} {times:?}");
        }
    }

    #[test]
    fn messages_say_what_is_wrong_in_words() {
        let mut t = Timeline::new(Some(2.0)).unwrap();
        t.frame(0.0).unwrap();
        t.frame(0.3).unwrap();
        let e = t.frame(1_000_000.3).unwrap_err().to_string();
        assert_eq!(e, "the video's timestamps jump 277 h 46 min 40 s forward at 0.3 s (frame 2); the longest jump accepted is 60 s, so the file is damaged or crafted");
        let e = TimelineError::PastDeclared { at_s: 75.0, declared_s: 2.0 }.to_string();
        assert!(e.contains("past 1 min 15 s although the file declares 2.0 s"), "{e}");
    }

    #[test]
    fn audio_may_start_late_by_a_minute_at_most() {
        assert!(check_audio_offset(-5000.0).is_ok(), "early audio is trimmed");
        assert!(check_audio_offset(0.5).is_ok());
        assert!(check_audio_offset(60.0).is_ok());
        assert!(check_audio_offset(61.0).is_err());
        assert!(check_audio_offset(f64::INFINITY).is_err());
        assert!(check_audio_offset(1_000_000.0)
            .unwrap_err()
            .to_string()
            .starts_with("the audio starts 277 h 46 min 40 s after the video"));
    }

    #[test]
    fn the_job_time_limit_follows_the_duration() {
        assert_eq!(job_time_limit_s(Some(30.0)), 720);
        assert_eq!(job_time_limit_s(Some(3600.0)), 600 + 14_400);
        assert_eq!(job_time_limit_s(None), 600 + 86_400);
        assert_eq!(job_time_limit_s(Some(1e9)), 600 + 86_400);
    }
}
