//! Transcoding a local file into a local folder, with the same pipeline and
//! publisher as jobs: for the CLI's `transcode` command, the tests and the
//! benchmarks.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use media_core::video::access::{Encryption, PlaybackOptions};
use media_core::video::job::JobResult;
use media_core::video::ladder::LadderOptions;
use tokio::sync::mpsc;

use crate::download::{self, DownloadRequest};
use crate::encrypt::SegmentCipher;
use crate::error::{panics_fail_the_job, JobError};
use crate::pipeline::{transcode, Control, Summary, Tuning};
use crate::publish::{Playable, Publisher, Stages};
use crate::storage::Sink;

/// What a local transcode produced, and when it became playable.
#[derive(Debug, Clone)]
pub struct LocalReport {
    pub summary: Summary,
    pub result: JobResult,
    pub wall_s: f64,
    /// Seconds from the start until every rung had a segment and the master existed.
    pub playable_after_s: f64,
    /// Seconds the MP4 download took once the ladder was done (remux and
    /// copy into the folder), when one was asked for.
    pub download_s: Option<f64>,
}

/// Where a local transcode puts the MP4 download, in its folder.
pub const LOCAL_DOWNLOAD: &str = "download.mp4";

/// Transcodes `input` into `out` (which gets `master.m3u8`, one folder per rung, images).
pub async fn transcode_to_dir(
    input: &Path,
    out: &Path,
    options: &LadderOptions,
    tuning: &Tuning,
) -> Result<LocalReport, JobError> {
    transcode_to_dir_with(input, out, options, tuning, &PlaybackOptions::default()).await
}

/// [`transcode_to_dir`] with a video's playback options. An encrypted
/// ladder's key goes to `out/key`, where its rung playlists' `../key`
/// points, so the folder plays as it is.
pub async fn transcode_to_dir_with(
    input: &Path,
    out: &Path,
    options: &LadderOptions,
    tuning: &Tuning,
    playback: &PlaybackOptions,
) -> Result<LocalReport, JobError> {
    let file =
        std::fs::File::open(input).map_err(|e| JobError::permanent(format!("cannot open {}: {e}", input.display())))?;
    let started = Instant::now();
    let control = Arc::new(Control::default());
    let playable = Arc::new(Playable::default());
    let (tx, rx) = mpsc::channel(16);
    let (options, tuning, pipeline_control) = (options.clone(), tuning.clone(), Arc::clone(&control));
    let pipeline = tokio::task::spawn_blocking(move || {
        panics_fail_the_job(|| transcode(file, Default::default(), &options, &tuning, tx, pipeline_control))
    });
    let mut publisher = Publisher::new(Sink::Dir(out.to_path_buf()), String::new(), Arc::clone(&playable));
    // The same `stage` lines as a leased job, counted from the start here.
    publisher.log_stages(Stages::default());
    if playback.encryption == Encryption::Aes128 {
        publisher.encrypt_with(SegmentCipher::random()?, "key".into());
    }
    // The download's fragments and remux are kept beside the outputs, and removed.
    let download_dir = out.join(".download-work");
    if let Some(download) = &playback.download {
        publisher.keep_download(DownloadRequest { rung: download.rung.clone(), dir: download_dir.clone() });
    }
    let watch = {
        let playable = Arc::clone(&playable);
        tokio::spawn(async move {
            playable.raised().await;
            started.elapsed().as_secs_f64()
        })
    };
    let published = publisher.run(rx, &control).await;
    if published.is_err() {
        control.stop();
    }
    let summary = pipeline.await.map_err(|e| JobError::retryable(format!("the encoding task failed: {e}")))?;
    published?;
    let summary = summary?;
    let mut result = publisher.finish(&summary).await?;
    let playable_after_s = watch.await.unwrap_or(f64::NAN);
    let mut download_s = None;
    if let Some(spool) = publisher.take_download() {
        let began = Instant::now();
        let sink = Sink::Dir(out.to_path_buf());
        let published = download::publish(spool, &sink, LOCAL_DOWNLOAD, &control).await;
        let _ = std::fs::remove_dir_all(&download_dir);
        result.download = Some(published?);
        download_s = Some(began.elapsed().as_secs_f64());
    }
    Ok(LocalReport { summary, result, wall_s: started.elapsed().as_secs_f64(), playable_after_s, download_s })
}
