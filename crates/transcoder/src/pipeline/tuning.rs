//! How a job uses the machine, and how much work x264 does per rung: the
//! knobs that never change the output's format (sizes, bitrates, GOPs,
//! segments), their defaults, the machine they are picked for, and the
//! per-rung x264 options an operator may add ([`parse_x264_rung`], with the
//! keys no rung may change: [`X264_FIXED_KEYS`]).
//!
//! - **x264 options per rung** ([`TUNED_X264`]): with the `veryfast`
//!   preset, rungs below 1080p search motion more cheaply
//!   (`subme=1:me=dia`). Screened rung by rung against the ffmpeg CLI on two
//!   kinds of content with `bench/tune.mjs`; the figures are in
//!   docs/benchmarks.md. The 1080p rung keeps the preset: the same options there
//!   lost 0.0024 SSIM on the busier content.
//! - **threads** ([`Tuning::x264_threads_for`]): each rung gets x264 frame
//!   threads in proportion to its share of the ladder's pixels, out of the
//!   cores one job may use, the top rung at least 2. That is the layout
//!   measured on 2 cores (2,1,1,1); on other core counts the rule is an
//!   extrapolation (only 1 and 2 cores were measured: `bench/threads.mjs`).
//!
//! Vector extensions are detected and logged ([`Machine`]) but not
//! overridden: x264 and libav pick their own code paths. Limiting x264 to
//! AVX2 on an AVX-512 Xeon saved 8% of x264's CPU rung by rung on the noisy
//! content but under 1% on the busier one and in the full CLI ladder, and
//! it changes the bits, so it is not applied.

use media_core::video::ladder::{LadderPlan, Rung};

/// The cores and CPU a job runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Cores one job may use: the process's (affinity mask and cgroup quota
    /// included) divided by the jobs run at once, rounded down, at least 1.
    pub cores: usize,
    /// `model name` from /proc/cpuinfo ("" when unknown).
    pub model: String,
    /// The vector extensions the CPU has, of those x264 and libav use.
    pub simd: Vec<&'static str>,
}

impl Machine {
    /// A machine known only by its cores (the defaults' 2-core machine, tests).
    pub fn with_cores(cores: usize) -> Self {
        Self { cores, model: String::new(), simd: Vec::new() }
    }

    /// The machine this process runs on, shared by `jobs_at_once` jobs.
    pub fn detect(jobs_at_once: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default();
        Self { cores: (cores / jobs_at_once.max(1)).max(1), model, simd: simd_extensions() }
    }
}

#[cfg(target_arch = "x86_64")]
fn simd_extensions() -> Vec<&'static str> {
    let mut found = Vec::new();
    macro_rules! check {
        ($($f:tt),*) => { $( if std::arch::is_x86_feature_detected!($f) { found.push($f); } )* };
    }
    check!("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl");
    found
}

#[cfg(target_arch = "aarch64")]
fn simd_extensions() -> Vec<&'static str> {
    let mut found = Vec::new();
    if std::arch::is_aarch64_feature_detected!("neon") {
        found.push("neon");
    }
    if std::arch::is_aarch64_feature_detected!("sve") {
        found.push("sve");
    }
    found
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn simd_extensions() -> Vec<&'static str> {
    Vec::new()
}

/// x264 options measured to spend less CPU than `preset` alone at the same
/// pictures, for rungs whose short side is below `below_short_side`.
pub struct TunedX264 {
    pub preset: &'static str,
    pub below_short_side: u32,
    pub params: &'static str,
}

/// The tuned options (see the module doc). They apply only with the preset
/// they were measured against: a slower preset chosen for quality is left
/// as it is.
pub const TUNED_X264: &[TunedX264] =
    &[TunedX264 { preset: "veryfast", below_short_side: 1080, params: "subme=1:me=dia" }];

/// Knobs that do not change the output's format.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Cores one job may use; the x264 threads of each rung follow from it.
    pub cores: usize,
    /// x264 threads of the top rung, instead of its share of `cores` (0: x264 decides).
    pub x264_threads_top: Option<usize>,
    /// x264 threads of every other rung, instead of their shares.
    pub x264_threads: Option<usize>,
    /// Decoder threads (0: libav decides).
    pub decoder_threads: usize,
    /// Frames queued before each rung.
    pub frame_queue: usize,
    /// Whether [`TUNED_X264`] applies (false: the preset alone, as in the
    /// ffmpeg CLI; `x264_rung_params` still apply).
    pub x264_tuned: bool,
    /// Extra x264 options (`key=value:key=value`, as `x264-params` takes
    /// them) for the rungs of one name (`"720p"`), or for every rung (`"*"`),
    /// in order, after the tuned ones. They must not change the fixed GOP
    /// settings nor anything the rungs must share ([`X264_FIXED_KEYS`]).
    pub x264_rung_params: Vec<(String, String)>,
    /// Whether the first segment has an x264 encoder of its own, ended after
    /// its last frame, so it is cut without waiting for x264's lookahead
    /// (see `rung::first_segment_encoder`); false: one encoder for every
    /// segment (for comparisons).
    pub first_segment_encoder: bool,
    /// libx265's preset ([`HEVC_PRESET`] unless a local run asks for another, to compare).
    pub hevc_preset: String,
    /// SVT-AV1's preset, 0 (slowest) to 13 ([`AV1_PRESET`] unless a local run asks for another).
    pub av1_preset: u8,
}

/// libx265's preset: the cheapest. Why, against `superfast`: `super::encoders`' module doc.
pub const HEVC_PRESET: &str = "ultrafast";
/// SVT-AV1's preset. Why, against 11-13: `super::encoders`' module doc.
pub const AV1_PRESET: u8 = 10;
/// libx265's presets, fastest first.
pub const HEVC_PRESETS: [&str; 10] =
    ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"];

/// The defaults of a 2-core machine, where they were measured (`bench/`).
/// Tests use it so that they do not depend on the machine they run on.
impl Default for Tuning {
    fn default() -> Self {
        Self::for_machine(&Machine::with_cores(2))
    }
}

/// x264 frame threads per core of a rung's share: a little over one, so a
/// rung waiting on its input or on the muxer does not leave a core idle.
const X264_THREADS_PER_CORE: f64 = 1.25;

impl Tuning {
    /// The defaults for `machine`: x264 threads follow its cores; the decoder
    /// gets a second thread from 4 cores on (not measured: on 2 cores a
    /// second decoder thread was within the runs' spread).
    pub fn for_machine(machine: &Machine) -> Self {
        Self {
            cores: machine.cores.max(1),
            x264_threads_top: None,
            x264_threads: None,
            decoder_threads: if machine.cores >= 4 { 2 } else { 1 },
            frame_queue: 4,
            x264_tuned: true,
            x264_rung_params: Vec::new(),
            first_segment_encoder: true,
            hevc_preset: HEVC_PRESET.to_owned(),
            av1_preset: AV1_PRESET,
        }
    }

    /// x264 threads for rung `index` of `plan`: the override, or the rung's
    /// share of the ladder's pixels times the cores, at least 1, and at least
    /// 2 for the top rung (as before this rule, on every machine). On 2 cores
    /// with a 1080p ladder: 2 for 1080p (57% of the pixels), 1 for the others.
    pub fn x264_threads_for(&self, index: usize, plan: &LadderPlan) -> usize {
        let overridden = if index == 0 { self.x264_threads_top } else { self.x264_threads };
        if let Some(n) = overridden {
            return n;
        }
        let pixels = |r: &Rung| f64::from(r.width) * f64::from(r.height);
        let total: f64 = plan.rungs.iter().map(pixels).sum();
        let Some(rung) = plan.rungs.get(index).filter(|_| total > 0.0) else { return 1 };
        let share = pixels(rung) / total;
        let least = if index == 0 { 2 } else { 1 };
        ((share * self.cores as f64 * X264_THREADS_PER_CORE).ceil() as usize).clamp(least, 16)
    }

    /// The `x264-params` of `rung`: the fixed GOP settings, then the tuned
    /// options that apply, then the extra options meant for every rung or for
    /// this one, in order (later ones win).
    pub fn x264_params(&self, gop: u32, preset: &str, rung: &Rung) -> String {
        let mut params = format!("keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0");
        let short_side = rung.width.min(rung.height);
        let tuned =
            TUNED_X264.iter().filter(|t| self.x264_tuned && t.preset == preset && short_side < t.below_short_side);
        let extra = self.x264_rung_params.iter().filter(|(r, _)| r == "*" || r == rung.name.as_str());
        for p in tuned.map(|t| t.params).chain(extra.map(|(_, p)| p.as_str())) {
            params.push(':');
            params.push_str(p);
        }
        params
    }
}

/// x264 options that per-rung params may not set: the fixed, closed GOPs
/// every rung shares (aligned keyframes), the reordering that must be equal
/// on every rung (one delay for all timelines), and the threading that
/// `Tuning` sets itself.
pub const X264_FIXED_KEYS: [&str; 12] = [
    "keyint",
    "min-keyint",
    "keyint-min",
    "scenecut",
    "open-gop",
    "bframes",
    "b-pyramid",
    "intra-refresh",
    "threads",
    "sliced-threads",
    "lookahead-threads",
    "pulldown",
];

/// Checks one `--x264-rung` entry, `RUNG=key=value:key=value` (RUNG is a
/// rung name like `720p`, or `*` for every rung).
pub fn parse_x264_rung(s: &str) -> Result<(String, String), String> {
    let (rung, params) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected RUNG=key=value[:key=value…]"))?;
    if rung != "*" && media_core::keys::RungName::parse(rung).is_none() {
        return Err(format!("{rung:?} is not a rung name like \"720p\" or \"*\""));
    }
    if params.is_empty() {
        return Err(format!("{s:?}: no x264 options"));
    }
    for kv in params.split(':') {
        let (key, value) = kv.split_once('=').ok_or_else(|| format!("{kv:?}: expected key=value"))?;
        if key.is_empty() || value.is_empty() {
            return Err(format!("{kv:?}: expected key=value"));
        }
        if X264_FIXED_KEYS.contains(&key) {
            return Err(format!("{key} is fixed for every rung and cannot be set per rung"));
        }
    }
    Ok((rung.to_owned(), params.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_core::video::ladder::{plan_ladder, LadderOptions, Rational, SourceVideo};

    fn plan(width: u32, height: u32) -> LadderPlan {
        let opts = LadderOptions { max_rung: 1080, max_rungs: 4, ..LadderOptions::default() };
        let source = SourceVideo {
            width,
            height,
            sample_aspect: Rational { num: 1, den: 1 },
            rotation: 0,
            frame_rate: Rational { num: 30, den: 1 },
        };
        plan_ladder(&source, &opts).expect("plannable")
    }

    const GOP: &str = "keyint=60:min-keyint=60:scenecut=0:open-gop=0";

    #[test]
    fn tuned_options_apply_below_1080p_with_the_preset_they_were_measured_with() {
        let p = plan(1920, 1080);
        let t = Tuning::default();
        let names: Vec<_> = p.rungs.iter().map(|r| t.x264_params(60, "veryfast", r)).collect();
        assert_eq!(names[0], GOP);
        for tuned in &names[1..] {
            assert_eq!(tuned, &format!("{GOP}:subme=1:me=dia"));
        }
        // A preset chosen for quality, or the preset alone, is left as it is.
        assert_eq!(t.x264_params(60, "medium", &p.rungs[1]), GOP);
        assert_eq!(Tuning { x264_tuned: false, ..t.clone() }.x264_params(60, "veryfast", &p.rungs[1]), GOP);
        // Portrait: the short side decides.
        let portrait = plan(1080, 1920);
        assert_eq!(t.x264_params(60, "veryfast", &portrait.rungs[0]), GOP);
        assert!(t.x264_params(60, "veryfast", &portrait.rungs[1]).ends_with("subme=1:me=dia"));
    }

    #[test]
    fn extra_options_come_after_the_tuned_ones_for_their_rung_only() {
        let p = plan(1920, 1080);
        let t = Tuning {
            x264_rung_params: vec![
                ("*".to_owned(), "rc-lookahead=5".to_owned()),
                ("480p".to_owned(), "me=hex".to_owned()),
                ("720p".to_owned(), "subme=2".to_owned()),
            ],
            ..Tuning::default()
        };
        let by_name = |name: &str| p.rungs.iter().find(|r| r.name.as_str() == name).expect("rung");
        assert_eq!(t.x264_params(60, "veryfast", by_name("1080p")), format!("{GOP}:rc-lookahead=5"));
        assert_eq!(
            t.x264_params(60, "veryfast", by_name("480p")),
            format!("{GOP}:subme=1:me=dia:rc-lookahead=5:me=hex")
        );
    }

    #[test]
    fn x264_threads_follow_each_rungs_share_of_the_cores() {
        let p = plan(1920, 1080);
        let threads = |cores| {
            let t = Tuning::for_machine(&Machine::with_cores(cores));
            (0..p.rungs.len()).map(|i| t.x264_threads_for(i, &p)).collect::<Vec<_>>()
        };
        assert_eq!(threads(1), [2, 1, 1, 1], "the top rung keeps 2, as before");
        assert_eq!(threads(2), [2, 1, 1, 1], "the layout measured on 2 cores");
        assert_eq!(threads(8), [6, 3, 2, 1]);
        assert_eq!(threads(64), [16, 16, 10, 6], "capped at 16");
        let fixed = Tuning { x264_threads_top: Some(3), x264_threads: Some(0), ..Tuning::default() };
        assert_eq!((0..4).map(|i| fixed.x264_threads_for(i, &p)).collect::<Vec<_>>(), [3, 0, 0, 0]);
        assert_eq!(Tuning::for_machine(&Machine::with_cores(8)).decoder_threads, 2);
        assert_eq!(Tuning::default().decoder_threads, 1);
    }

    #[test]
    fn jobs_at_once_share_the_cores() {
        let all = Machine::detect(1);
        assert!(all.cores >= 1);
        assert_eq!(Machine::detect(all.cores * 4).cores, 1);
    }

    #[test]
    fn per_rung_x264_options_cannot_touch_what_the_rungs_share() {
        assert_eq!(parse_x264_rung("720p=subme=1:me=dia"), Ok(("720p".into(), "subme=1:me=dia".into())));
        assert_eq!(parse_x264_rung("*=partitions=i8x8"), Ok(("*".into(), "partitions=i8x8".into())));
        for bad in [
            "720=subme=1",
            "720p",
            "720p=",
            "720p=subme",
            "720p=keyint=30",
            "*=bframes=2",
            "360p=subme=1:open-gop=1",
            "1080p=threads=4",
        ] {
            assert!(parse_x264_rung(bad).is_err(), "{bad} accepted");
        }
    }
}
