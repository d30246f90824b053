//! The transcoder binary: its command line (clap; `transcoder --help`).
//!
//! ```text
//! transcoder [run]                          lease and run jobs until SIGTERM/SIGINT (configured by the environment)
//! transcoder transcode <input> <out-dir>    transcode a local file into <out-dir> (benchmarks, debugging)
//!            [--max-rung 1080] [--max-rungs 4] [--preset veryfast]
//!            [--x264-threads-top N] [--x264-threads N] [--decoder-threads N] [--frame-queue N]
//!            [--x264-rung RUNG=key=value[:key=value…]]…   extra x264 options for one rung (720p) or all (*)
//!            [--download [RUNG]]   also the MP4 download of a rung (default the top), in <out-dir>/download.mp4
//!            [--encrypt]           AES-128 encrypted segments, the key in <out-dir>/key
//! transcoder probe <input>                  print what the transcoder sees in a file
//! transcoder plan <input> [--max-rung N] [--max-rungs N]   print the ladder it would encode, as JSON
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use media_core::video::ladder::LadderOptions;
use tokio::sync::watch;
use transcoder::config::Config;
use transcoder::pipeline::{Machine, Tuning};
use transcoder::runner::Runner;

/// Leases transcoding jobs from the video service and publishes HLS ladders
/// to R2 (configured by the environment; see
/// docs/operating.md#running-the-transcoder), or works on a local file.
#[derive(Parser, Debug)]
#[command(name = "transcoder", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Lease and run jobs until SIGTERM/SIGINT (the default).
    Run,
    /// Transcode a local file into a folder (benchmarks, debugging); prints a JSON report.
    Transcode {
        input: PathBuf,
        out_dir: PathBuf,
        #[command(flatten)]
        ladder: LadderArgs,
        #[command(flatten)]
        tuning: TuningArgs,
        /// Also make the MP4 download (`<out-dir>/download.mp4`) of this rung
        /// (`720p`: the tallest not above it), or of the top rung without a value.
        #[arg(long, value_name = "RUNG", num_args = 0..=1, default_missing_value = "top")]
        download: Option<String>,
        /// Encrypt the media segments with AES-128 (RFC 8216); the key goes
        /// to `<out-dir>/key`, where the rung playlists point.
        #[arg(long)]
        encrypt: bool,
    },
    /// Make a local file's cover and animated preview into a folder
    /// (`cover.jpg`, `cover.webp`, `preview.webp|gif`), as a job does after
    /// its ladder; prints a JSON report with what was made and how long it took.
    Extras {
        input: PathBuf,
        out_dir: PathBuf,
        /// `cover` and `preview` as the notify takes them, e.g.
        /// `'{"cover": {"time_s": 2}, "preview": {"duration_s": 3, "format": "gif"}}'`.
        #[arg(long, value_name = "JSON")]
        extras: String,
    },
    /// Print what the transcoder sees in a file.
    Probe { input: PathBuf },
    /// Print the ladder it would encode for a file, as JSON.
    Plan {
        input: PathBuf,
        #[command(flatten)]
        ladder: LadderArgs,
    },
}

/// The ladder's shape.
#[derive(Args, Debug)]
struct LadderArgs {
    /// The largest rung, by its short side (240-2160).
    #[arg(long)]
    max_rung: Option<u32>,
    /// How many rungs at most.
    #[arg(long)]
    max_rungs: Option<u32>,
    /// The x264 preset.
    #[arg(long)]
    preset: Option<String>,
    /// The ladder's codecs, as the notify's `codecs` takes them: `h264`
    /// (the default), `hevc`, `av1`, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_codec)]
    codecs: Vec<media_core::video::ladder::VideoCodec>,
}

fn parse_codec(s: &str) -> Result<media_core::video::ladder::VideoCodec, String> {
    media_core::video::ladder::VideoCodec::parse(s).ok_or_else(|| format!("{s:?} is not h264, hevc or av1"))
}

impl LadderArgs {
    fn options(&self) -> LadderOptions {
        let d = LadderOptions::default();
        LadderOptions {
            max_rung: self.max_rung.unwrap_or(d.max_rung),
            max_rungs: self.max_rungs.unwrap_or(d.max_rungs),
            preset: self.preset.clone().unwrap_or(d.preset.clone()),
            codecs: self.codecs.clone(),
            ..d
        }
    }
}

/// Knobs that do not change the output's format (see `pipeline::Tuning`);
/// by default they follow the machine.
#[derive(Args, Debug)]
struct TuningArgs {
    /// Cores the job may use (default: the process's, quota included); the
    /// x264 threads of each rung follow from them.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    cores: Option<u16>,
    /// x264 threads of the top rung, instead of its share of the cores (0: x264 decides).
    #[arg(long)]
    x264_threads_top: Option<usize>,
    /// x264 threads of the other rungs, instead of their shares.
    #[arg(long)]
    x264_threads: Option<usize>,
    /// Decoder threads (0: libav decides).
    #[arg(long)]
    decoder_threads: Option<usize>,
    /// Frames queued before each rung.
    #[arg(long)]
    frame_queue: Option<usize>,
    /// No tuned per-rung x264 options: every rung uses the preset alone, as
    /// the ffmpeg CLI does (for comparisons; `--x264-rung` options still apply).
    #[arg(long)]
    x264_preset_only: bool,
    /// Extra x264 options for one rung or all, e.g. `720p=subme=1:me=dia` or
    /// `*=rc-lookahead=5` (repeatable; appended after the fixed GOP settings,
    /// which they may not change, and after the tuned options).
    #[arg(long, value_name = "RUNG=key=value[:key=value…]", value_parser = transcoder::pipeline::parse_x264_rung)]
    x264_rung: Vec<(String, String)>,
    /// One x264 encoder per rung for every segment, instead of one of its
    /// own for the first segment (which cuts it sooner; for comparisons).
    #[arg(long)]
    no_first_segment_encoder: bool,
    /// libx265's preset for HEVC rungs, instead of `ultrafast` (to compare;
    /// jobs from the service always use the default, so that every chunk
    /// of a job is encoded alike).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(transcoder::pipeline::tuning::HEVC_PRESETS))]
    hevc_preset: Option<String>,
    /// SVT-AV1's preset for AV1 rungs, 0 (slowest) to 13, instead of 10 (to compare, as `--hevc-preset`).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=13))]
    av1_preset: Option<u8>,
}

impl TuningArgs {
    fn tuning(&self) -> Tuning {
        let mut machine = Machine::detect(1);
        if let Some(cores) = self.cores {
            machine.cores = usize::from(cores);
        }
        let d = Tuning::for_machine(&machine);
        Tuning {
            x264_threads_top: self.x264_threads_top.or(d.x264_threads_top),
            x264_threads: self.x264_threads.or(d.x264_threads),
            decoder_threads: self.decoder_threads.unwrap_or(d.decoder_threads),
            frame_queue: self.frame_queue.unwrap_or(d.frame_queue),
            x264_tuned: !self.x264_preset_only,
            x264_rung_params: self.x264_rung.clone(),
            first_segment_encoder: !self.no_first_segment_encoder,
            hevc_preset: self.hevc_preset.clone().unwrap_or(d.hevc_preset.clone()),
            av1_preset: self.av1_preset.unwrap_or(d.av1_preset),
            ..d
        }
    }
}

/// Caps glibc's malloc arenas at two before any thread starts. The encoder
/// threads each grow an arena of their own otherwise; measured on the 60 s
/// 1080p benchmark: peak RSS 536-541 MB by default, 516-532 MB with two, same speed.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    quiet_svt_av1();
    // clap prints usage and exits 2 on a misspelled flag or command, 0 for --help.
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the tokio runtime starts");
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => rt.block_on(run()),
        Command::Transcode { input, out_dir, ladder, tuning, download, encrypt } => {
            let download = download
                .map(|rung| media_core::video::access::DownloadOption { rung: Some(rung).filter(|r| r != "top") });
            let encryption = if encrypt {
                media_core::video::access::Encryption::Aes128
            } else {
                media_core::video::access::Encryption::None
            };
            let playback = media_core::video::access::PlaybackOptions { download, encryption, ..Default::default() };
            rt.block_on(transcode_local(&input, &out_dir, &ladder.options(), &tuning.tuning(), &playback))
        }
        Command::Extras { input, out_dir, extras } => extras_local(&input, &out_dir, &extras),
        Command::Probe { input } => probe(&input),
        Command::Plan { input, ladder } => plan(&input, &ladder.options()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("transcoder: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = Config::from_env().context("configuration")?;
    let _telemetry = transcoder::telemetry::init(config.log_json, config.sentry_dsn.as_deref());
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        let mut int =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutdown requested: no new jobs will be leased; a running job finishes or is given back (signal again to stop at once)");
        let _ = tx.send(true);
        // A second SIGTERM or Ctrl-C means now: a running job's lease expires and it is retried.
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second shutdown signal: stopping at once");
        std::process::exit(130);
    });
    Runner::new(config).run(rx).await;
    Ok(())
}

/// Opens and inspects a local file as the pipeline would.
fn probe_file(input: &std::path::Path) -> anyhow::Result<transcoder::pipeline::probe::Probe> {
    ffmpeg_next::init()?;
    let file = std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let opened = transcoder::pipeline::probe::open(file, || false).map_err(|e| anyhow::anyhow!("{e}"))?;
    transcoder::pipeline::probe::inspect(&opened).map_err(|e| anyhow::anyhow!("{e}"))
}

fn plan(input: &std::path::Path, options: &LadderOptions) -> anyhow::Result<()> {
    let probe = probe_file(input)?;
    let plan = media_core::video::ladder::plan_ladder(&probe.source_video(), options)?;
    println!("{}", serde_json::to_string_pretty(&plan)?);
    Ok(())
}

async fn transcode_local(
    input: &std::path::Path,
    out: &std::path::Path,
    options: &LadderOptions,
    tuning: &Tuning,
    playback: &media_core::video::access::PlaybackOptions,
) -> anyhow::Result<()> {
    transcoder::telemetry::init_logging(false);
    let r = transcoder::local::transcode_to_dir_with(input, out, options, tuning, playback)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (summary, result) = (&r.summary, &r.result);
    let report = serde_json::json!({
        "input": input.display().to_string(),
        "wall_s": r.wall_s,
        "playable_after_s": r.playable_after_s,
        "download_s": r.download_s,
        "duration_s": summary.duration_s,
        "frame_rate": summary.frame_rate,
        "has_audio": summary.has_audio,
        "rungs": summary.rungs.iter().map(|r| serde_json::json!({"name": r.name, "width": r.width, "height": r.height, "frames": r.frames, "segments": r.segments})).collect::<Vec<_>>(),
        "result": result,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn extras_local(input: &std::path::Path, out: &std::path::Path, asked: &str) -> anyhow::Result<()> {
    use media_core::video::extras::Extras;
    let fields: serde_json::Value = serde_json::from_str(asked).context("--extras is not JSON")?;
    let extras =
        Extras::from_fields(None, fields.get("cover"), fields.get("preview")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let file = std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let started = std::time::Instant::now();
    let made = transcoder::pipeline::extras::make_extras(file, &extras, Default::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let wall_s = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(out)?;
    let mut written = serde_json::Map::new();
    for (file, bytes) in made.files() {
        let name = file.relative_path();
        std::fs::write(out.join(&name), bytes)?;
        written.insert(name, bytes.len().into());
    }
    let report = serde_json::json!({
        "input": input.display().to_string(),
        "wall_s": wall_s,
        "cover": made.cover.as_ref().map(|c| c.meta),
        "preview": made.preview.as_ref().map(|p| p.meta),
        "bytes": written,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// SVT-AV1 prints a banner and its settings to stderr for every encoder it
/// opens, outside libav's logging; warnings and errors are kept
/// (`SVT_LOG=2`) unless the operator set `SVT_LOG` themselves.
fn quiet_svt_av1() {
    if std::env::var_os("SVT_LOG").is_none() {
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { std::env::set_var("SVT_LOG", "2") };
    }
}

fn probe(input: &std::path::Path) -> anyhow::Result<()> {
    println!("{:#?}", probe_file(input)?);
    Ok(())
}
