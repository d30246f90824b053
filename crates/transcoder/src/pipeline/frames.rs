//! Making every decoded frame fit the plan before it is timed and scaled:
//! the same size and pixel format as the first frame ([`Conformer`]: a
//! later SPS can change both mid-stream), then upright ([`Rotator`], the
//! rotation metadata applied as ffmpeg's autorotate does), and an HDR
//! stream (PQ or HLG) tone-mapped to SDR BT.709 ([`ToneMapper`]).

use ff::format::Pixel;
use ffmpeg_next as ff;
use media_core::video::ladder::{MAX_SOURCE_PIXELS, MAX_SOURCE_SIDE};

use crate::error::JobError;

/// Scales frames whose size or pixel format differs from the first one's
/// back into it, so the plan, the rotation filter and the thumbnails made
/// for the first size hold for the whole stream. A frame beyond the largest
/// accepted size is refused: the plan was checked against the first size
/// only, and scaling such a frame costs what the limit is there to prevent.
pub struct Conformer {
    shape: Option<(Pixel, u32, u32)>,
    scaler: Option<(ff::software::scaling::Context, (Pixel, u32, u32))>,
    /// Frames that had to be scaled, for the log.
    pub conformed: u64,
}

impl Conformer {
    pub fn new() -> Self {
        Self { shape: None, scaler: None, conformed: 0 }
    }

    /// The frame unchanged when it has the first frame's shape; otherwise scaled into it.
    pub fn apply(&mut self, frame: ff::frame::Video) -> Result<ff::frame::Video, JobError> {
        let got = (frame.format(), frame.width(), frame.height());
        let (w, h) = (got.1, got.2);
        if w == 0
            || h == 0
            || w > MAX_SOURCE_SIDE
            || h > MAX_SOURCE_SIDE
            || u64::from(w) * u64::from(h) > MAX_SOURCE_PIXELS
        {
            return Err(JobError::permanent(format!(
                "a frame of the video is {w}x{h}; the largest accepted is {MAX_SOURCE_SIDE} pixels on a side and {} megapixels",
                MAX_SOURCE_PIXELS / 1_000_000
            )));
        }
        let want = *self.shape.get_or_insert(got);
        if got == want {
            return Ok(frame);
        }
        if self.scaler.as_ref().is_none_or(|(_, k)| *k != got) {
            let ctx = ff::software::scaling::Context::get(
                got.0,
                w,
                h,
                want.0,
                want.1,
                want.2,
                ff::software::scaling::Flags::BICUBIC,
            )
            .map_err(|e| {
                JobError::permanent(format!(
                    "the video changes to {w}x{h} ({:?}) mid-stream, which cannot be converted: {e}",
                    got.0
                ))
            })?;
            if self.conformed == 0 {
                tracing::warn!(from = ?want, to = ?got, "the video changes its frame size or format mid-stream; scaling it back");
            }
            self.scaler = Some((ctx, got));
        }
        let mut out = ff::frame::Video::new(want.0, want.1, want.2);
        self.scaler
            .as_mut()
            .expect("set above")
            .0
            .run(&frame, &mut out)
            .map_err(|e| JobError::retryable(format!("scaling a frame: {e}")))?;
        out.set_pts(frame.pts());
        // SAFETY: copying plain timing and aspect fields between two valid frames.
        unsafe {
            (*out.as_mut_ptr()).best_effort_timestamp = (*frame.as_ptr()).best_effort_timestamp;
            (*out.as_mut_ptr()).sample_aspect_ratio = (*frame.as_ptr()).sample_aspect_ratio;
        }
        self.conformed += 1;
        Ok(out)
    }
}

impl Default for Conformer {
    fn default() -> Self {
        Self::new()
    }
}

/// One libavfilter chain between a buffer source shaped like the stream's
/// first frame and a buffer sink: frames in, filtered frames out. The
/// rotation, the tone map and the extras' GIF palette are each one of these.
pub(super) struct FrameGraph {
    graph: ff::filter::Graph,
    /// What the chain does, for its errors ("rotating the video").
    doing: &'static str,
}

impl FrameGraph {
    pub(super) fn new(
        frame: &ff::frame::Video,
        time_base: ff::Rational,
        spec: &str,
        threads: i32,
        doing: &'static str,
    ) -> Result<Self, JobError> {
        let fail = |e: ff::Error| JobError::retryable(format!("{doing}: {e}"));
        let mut graph = ff::filter::Graph::new();
        if threads > 0 {
            // SAFETY: a plain field of the graph we own, set before any filter is added.
            unsafe { (*graph.as_mut_ptr()).nb_threads = threads };
        }
        let sar = frame.aspect_ratio();
        let (sn, sd) =
            if sar.numerator() > 0 && sar.denominator() > 0 { (sar.numerator(), sar.denominator()) } else { (1, 1) };
        let args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={sn}/{sd}",
            frame.width(),
            frame.height(),
            ff::ffi::AVPixelFormat::from(frame.format()) as i32,
            time_base.numerator(),
            time_base.denominator().max(1)
        );
        graph.add(&ff::filter::find("buffer").expect("libavfilter has buffer"), "in", &args).map_err(fail)?;
        graph.add(&ff::filter::find("buffersink").expect("libavfilter has buffersink"), "out", "").map_err(fail)?;
        graph.output("in", 0).and_then(|p| p.input("out", 0)).and_then(|p| p.parse(spec)).map_err(fail)?;
        graph.validate().map_err(fail)?;
        Ok(Self { graph, doing })
    }

    /// Feeds one frame; the frames the chain gives back so far.
    pub(super) fn apply(&mut self, frame: &ff::frame::Video) -> Result<Vec<ff::frame::Video>, JobError> {
        let doing = self.doing;
        let fail = |e: ff::Error| JobError::retryable(format!("{doing}: {e}"));
        self.graph.get("in").expect("added").source().add(frame).map_err(fail)?;
        Ok(self.drain())
    }

    /// Ends the input; the frames the chain still held (a chain that needs
    /// every frame first, as `palettegen`, gives them all here).
    pub(super) fn finish(&mut self) -> Result<Vec<ff::frame::Video>, JobError> {
        let doing = self.doing;
        self.graph
            .get("in")
            .expect("added")
            .source()
            .flush()
            .map_err(|e| JobError::retryable(format!("{doing}: {e}")))?;
        Ok(self.drain())
    }

    fn drain(&mut self) -> Vec<ff::frame::Video> {
        let mut out = Vec::new();
        loop {
            let mut f = ff::frame::Video::empty();
            if self.graph.get("out").expect("added").sink().frame(&mut f).is_err() {
                break;
            }
            out.push(f);
        }
        out
    }
}

/// Rotates frames upright with libavfilter (`transpose`, `hflip,vflip`).
pub struct Rotator(FrameGraph);

impl Rotator {
    pub fn new(rotation: i32, frame: &ff::frame::Video, time_base: ff::Rational) -> Result<Self, JobError> {
        let spec = match rotation {
            90 => "transpose=clock",
            180 => "hflip,vflip",
            _ => "transpose=cclock",
        };
        Ok(Self(FrameGraph::new(frame, time_base, spec, 0, "rotating the video")?))
    }

    pub fn apply(&mut self, frame: &ff::frame::Video) -> Result<Vec<ff::frame::Video>, JobError> {
        self.0.apply(frame)
    }
}

/// Tone-maps an HDR stream (PQ or HLG, BT.2020) to SDR BT.709 8-bit with
/// libavfilter: `zscale` to linear light (1.0 = 100 nits), BT.709
/// primaries, `tonemap=mobius` (linear up to its knee, highlights rolled
/// off: of the curves that keep highlights, hable, reinhard and mobius, it
/// kept a test scene's luma spread and mean closest to its SDR render;
/// `clip` keeps the spread but cuts everything above SDR white), then
/// BT.709's transfer and matrix at limited range. About 30 ms a 1080p frame
/// on one core (Intel Xeon, the ffmpeg CLI), 16 ms with two slice threads.
pub struct ToneMapper(FrameGraph);

/// Slice threads of the tone-mapping graph.
const TONE_MAP_THREADS: i32 = 2;

impl ToneMapper {
    /// The graph for frames like `frame`, of a stream with these color tags.
    pub fn new(
        frame: &ff::frame::Video,
        time_base: ff::Rational,
        color: &super::probe::ColorTags,
    ) -> Result<Self, JobError> {
        let transfer = color.hdr_transfer().unwrap_or("smpte2084");
        // Unknown matrix or primaries on an HDR stream: BT.2020, as HDR is mastered.
        let matrix = match color.space {
            ff::color::Space::BT2020CL => "bt2020c",
            ff::color::Space::BT709 => "709",
            _ => "2020_ncl",
        };
        let primaries = match color.primaries {
            ff::color::Primaries::BT709 => "709",
            _ => "2020",
        };
        let spec = format!(
            "zscale=tin={transfer}:min={matrix}:pin={primaries}:rin=tv:t=linear:npl=100,format=gbrpf32le,\
             zscale=p=709,tonemap=tonemap=mobius:desat=0,zscale=t=709:m=709:r=tv,format=yuv420p"
        );
        Ok(Self(FrameGraph::new(frame, time_base, &spec, TONE_MAP_THREADS, "tone-mapping the HDR video")?))
    }

    /// The SDR frames of one HDR frame (one each).
    pub fn apply(&mut self, frame: &ff::frame::Video) -> Result<Vec<ff::frame::Video>, JobError> {
        self.0.apply(frame)
    }
}
