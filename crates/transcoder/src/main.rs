//! The transcoder binary.
//!
//! ```text
//! transcoder [run]                          lease and run jobs until SIGTERM/SIGINT (configured by the environment)
//! transcoder transcode <input> <out-dir>    transcode a local file into <out-dir> (benchmarks, debugging)
//!            [--max-rung 1080] [--max-rungs 4] [--preset veryfast]
//!            [--x264-threads-top N] [--x264-threads N] [--decoder-threads N] [--frame-queue N]
//! transcoder probe <input>                  print what the transcoder sees in a file
//! transcoder plan <input> [--max-rung N] [--max-rungs N]   print the ladder it would encode, as JSON
//! ```

use std::process::ExitCode;
use anyhow::{bail, Context as _};
use media_core::ladder::LadderOptions;
use tokio::sync::watch;
use transcoder::config::Config;
use transcoder::pipeline::Tuning;
use transcoder::runner::Runner;

/// The usage text: the `text` block of this file's module doc.
fn usage() -> String {
    include_str!("main.rs").lines().skip(3).take_while(|l| !l.starts_with("//! ```")).map(|l| l.trim_start_matches("//! ")).collect::<Vec<_>>().join("\n")
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the tokio runtime starts");
    let result = match args.first().map(String::as_str) {
        None | Some("run") => rt.block_on(run()),
        Some("transcode") => rt.block_on(transcode_local(&args[1..])),
        Some("probe") => probe(&args[1..]),
        Some("plan") => plan(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{}", usage());
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?}; try `transcoder --help`")),
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
    transcoder::telemetry::init_logging(config.log_json);
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).expect("SIGINT handler");
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

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// The number after `name`, or `default` without the flag.
fn number_flag<T>(args: &[String], name: &str, default: T) -> anyhow::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(flag(args, name).map(str::parse).transpose().with_context(|| name.to_owned())?.unwrap_or(default))
}

/// Ladder options from `--max-rung`, `--max-rungs`, `--preset`.
fn ladder_options(args: &[String]) -> anyhow::Result<LadderOptions> {
    let d = LadderOptions::default();
    Ok(LadderOptions {
        max_rung: number_flag(args, "--max-rung", d.max_rung)?,
        max_rungs: number_flag(args, "--max-rungs", d.max_rungs)?,
        preset: flag(args, "--preset").map_or(d.preset.clone(), str::to_owned),
        ..d
    })
}

/// Opens and inspects a local file as the pipeline would.
fn probe_file(input: &str) -> anyhow::Result<transcoder::pipeline::probe::Probe> {
    ffmpeg_next::init()?;
    let file = std::fs::File::open(input).with_context(|| format!("opening {input}"))?;
    let opened = transcoder::pipeline::probe::open(file, || false).map_err(|e| anyhow::anyhow!("{e}"))?;
    transcoder::pipeline::probe::inspect(&opened).map_err(|e| anyhow::anyhow!("{e}"))
}

fn plan(args: &[String]) -> anyhow::Result<()> {
    let Some(input) = args.first() else { bail!("usage: transcoder plan <input> [--max-rung N] [--max-rungs N]") };
    let probe = probe_file(input)?;
    let plan = media_core::ladder::plan_ladder(&probe.source_video(), &ladder_options(args)?)?;
    println!("{}", serde_json::to_string_pretty(&plan)?);
    Ok(())
}

async fn transcode_local(args: &[String]) -> anyhow::Result<()> {
    transcoder::telemetry::init_logging(false);
    let (Some(input), Some(out)) = (args.first(), args.get(1)) else {
        bail!("usage: transcoder transcode <input> <out-dir> [--max-rung N] [--max-rungs N] [--preset P] [--x264-threads-top N] [--x264-threads N] [--decoder-threads N] [--frame-queue N]");
    };
    let options = ladder_options(args)?;
    let d = Tuning::default();
    let tuning = Tuning {
        x264_threads_top: number_flag(args, "--x264-threads-top", d.x264_threads_top)?,
        x264_threads: number_flag(args, "--x264-threads", d.x264_threads)?,
        decoder_threads: number_flag(args, "--decoder-threads", d.decoder_threads)?,
        frame_queue: number_flag(args, "--frame-queue", d.frame_queue)?,
    };
    let r = transcoder::local::transcode_to_dir(input.as_ref(), out.as_ref(), &options, &tuning).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let (summary, result) = (&r.summary, &r.result);
    let report = serde_json::json!({
        "input": input,
        "wall_s": r.wall_s,
        "playable_after_s": r.playable_after_s,
        "duration_s": summary.duration_s,
        "frame_rate": summary.frame_rate,
        "has_audio": summary.has_audio,
        "rungs": summary.rungs.iter().map(|r| serde_json::json!({"name": r.name, "width": r.width, "height": r.height, "frames": r.frames, "segments": r.segments})).collect::<Vec<_>>(),
        "result": result,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn probe(args: &[String]) -> anyhow::Result<()> {
    let Some(input) = args.first() else { bail!("usage: transcoder probe <input>") };
    println!("{:#?}", probe_file(input)?);
    Ok(())
}
