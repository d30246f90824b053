//! The MP4 download (opt-in per video): while the ladder is published, the
//! chosen rung's init segment and media segments are appended, in the
//! clear, to one fragmented MP4 on the work disk ([`DownloadSpool`]); once
//! the ladder is done, libav remuxes that file (stream copy, no second
//! encode) into a progressive MP4 with its `moov` first
//! (`movflags=+faststart`) holding the rung's video and the audio its
//! segments carry ([`remux`]); the file is uploaded to the output's
//! `downloads/` key and both local files are deleted ([`publish`]).
//!
//! The bytes are taken as the pipeline hands them to the publisher, before
//! anything else happens to them, so an encrypted ladder still yields a
//! clear MP4. Which rung: `media_core::video::download::choose_rung`.
//! A failure of the download alone (the remux, the disk, its upload) does
//! not fail the job: the ladder is published, and the job's result says
//! `errored` for the download.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ffmpeg_next as ff;
use media_core::video::download::{choose_rung, DownloadReport};

use crate::error::JobError;
use crate::pipeline::Control;
use crate::storage::{Sink, DOWNLOAD_SPOOL_PREFIX as SPOOL_PREFIX};

/// What the publisher is asked to keep for a download.
#[derive(Debug, Clone)]
pub struct DownloadRequest {
    /// The rung asked for (`720p`), `None` for the top rung.
    pub rung: Option<String>,
    /// The folder the spool and the remux are written to.
    pub dir: PathBuf,
}

/// The chosen rung's clear fMP4, appended to as its parts are produced.
pub struct DownloadSpool {
    /// Index of the rung in the plan.
    pub rung: usize,
    /// Its name (`720p`).
    pub name: String,
    path: PathBuf,
    file: Option<File>,
    bytes: u64,
    /// Why keeping failed (the disk), if it did: the download is then errored.
    failed: Option<String>,
}

impl DownloadSpool {
    /// Picks the rung `request` asks for among `rungs` (names, as planned)
    /// and opens its spool file; `None` for an empty ladder.
    pub fn open(request: &DownloadRequest, rungs: &[&str]) -> Option<Self> {
        let rung = choose_rung(rungs, request.rung.as_deref())?;
        let path = request.dir.join(format!("{SPOOL_PREFIX}{}.fmp4", unique()));
        let (file, failed) = match std::fs::create_dir_all(&request.dir).and_then(|()| File::create(&path)) {
            Ok(f) => (Some(f), None),
            Err(e) => (None, Some(format!("opening the download spool: {e}"))),
        };
        Some(Self { rung, name: rungs[rung].to_owned(), path, file, bytes: 0, failed })
    }

    /// Appends `bytes` when they are the chosen rung's. Called with every
    /// init segment and media segment as it is produced: one rung's come in
    /// order (init, then segments by sequence number). A small blocking
    /// write on the local disk, like the pipeline's own spool.
    pub fn keep(&mut self, rung: usize, bytes: &[u8]) {
        if rung != self.rung || self.failed.is_some() {
            return;
        }
        let Some(file) = self.file.as_mut() else { return };
        match file.write_all(bytes) {
            Ok(()) => self.bytes += bytes.len() as u64,
            Err(e) => {
                self.failed = Some(format!("keeping the {} segments for the download: {e}", self.name));
                self.file = None;
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }

    /// Bytes kept so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for DownloadSpool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn unique() -> u64 {
    let mut b = [0u8; 4];
    getrandom::getrandom(&mut b).unwrap_or_default();
    u64::from(std::process::id()) * 1_000_000_000 + u64::from(u32::from_le_bytes(b))
}

/// What a remux made.
#[derive(Debug, Clone)]
pub struct Remuxed {
    /// The MP4's bytes.
    pub bytes: u64,
    /// Packets copied.
    pub packets: u64,
    pub seconds: f64,
}

fn err(e: ff::Error, what: &str) -> JobError {
    JobError::retryable(format!("remuxing the download ({what}): {e}"))
}

/// Remuxes the fragmented MP4 at `input` into a progressive MP4 at
/// `output` with `moov` before `mdat`: every video and audio stream,
/// packets copied as they are. Stops with [`JobError::LeaseLost`] when
/// `cancel` is set. Blocking: run it on a blocking thread.
pub fn remux(input: &Path, output: &Path, cancel: &AtomicBool) -> Result<Remuxed, JobError> {
    let started = Instant::now();
    ff::init().map_err(|e| err(e, "initialising libav"))?;
    let mut ictx = ff::format::input(&input).map_err(|e| err(e, "opening the segments"))?;
    let mut octx = ff::format::output_as(&output, "mp4").map_err(|e| err(e, "opening the MP4"))?;
    // Input stream index -> output stream index and time bases.
    let mut map: Vec<Option<usize>> = vec![None; ictx.nb_streams() as usize];
    let mut from_tb = Vec::new();
    for ist in ictx.streams() {
        let medium = ist.parameters().medium();
        if medium != ff::media::Type::Video && medium != ff::media::Type::Audio {
            continue;
        }
        let mut ost = octx.add_stream(ff::encoder::find(ff::codec::Id::None)).map_err(|e| err(e, "adding a stream"))?;
        ost.set_parameters(ist.parameters());
        ost.set_time_base(ist.time_base());
        // SAFETY: a plain field of the stream's parameters, which the output context owns:
        // the tag is chosen again by the mp4 muxer for the codec.
        unsafe { (*(*ost.as_mut_ptr()).codecpar).codec_tag = 0 };
        map[ist.index()] = Some(ost.index());
        from_tb.push((ist.index(), ist.time_base()));
    }
    if map.iter().all(Option::is_none) {
        return Err(JobError::retryable("remuxing the download: the segments hold no stream"));
    }
    let mut opts = ff::Dictionary::new();
    opts.set("movflags", "+faststart");
    octx.write_header_with(opts).map_err(|e| err(e, "header"))?;
    let to_tb: Vec<ff::Rational> =
        (0..octx.nb_streams() as usize).map(|i| octx.stream(i).map_or(ff::Rational(1, 1), |s| s.time_base())).collect();
    let mut packets = 0u64;
    for (ist, mut packet) in ictx.packets() {
        if cancel.load(Ordering::Relaxed) {
            return Err(JobError::LeaseLost);
        }
        let Some(out_index) = map[ist.index()] else { continue };
        packet.rescale_ts(ist.time_base(), to_tb[out_index]);
        packet.set_position(-1);
        packet.set_stream(out_index);
        packet.write_interleaved(&mut octx).map_err(|e| err(e, "packet"))?;
        packets += 1;
    }
    // Moves the moov in front of the mdat (the faststart pass reads the file back).
    octx.write_trailer().map_err(|e| err(e, "trailer"))?;
    drop(octx);
    let bytes = std::fs::metadata(output)?.len();
    Ok(Remuxed { bytes, packets, seconds: started.elapsed().as_secs_f64() })
}

/// Bytes left free on the work disk beside a remux (logs, libav's temporaries).
const DISK_MARGIN_BYTES: u64 = 64 * 1024 * 1024;

/// Remuxes the spool and uploads the MP4 to `key` of `sink`, then deletes
/// both local files. Every failure becomes an errored report (logged and
/// sent to Sentry as ours), except a stop (lease lost, shutdown): that
/// returns [`JobError::LeaseLost`] so the job ends as any stopped job.
pub async fn publish(
    spool: DownloadSpool,
    sink: &Sink,
    key: &str,
    control: &Control,
) -> Result<DownloadReport, JobError> {
    let rung = spool.name.clone();
    let errored = |message: String| {
        tracing::error!(rung = %rung, error = %message, "the MP4 download could not be made; the ladder is published");
        DownloadReport::Errored { rung: Some(rung.clone()), message }
    };
    if let Some(why) = spool.failed.clone() {
        return Ok(errored(why));
    }
    let input = spool.path.clone();
    let output = input.with_extension("mp4");
    let kept = spool.bytes;
    // The remux writes about as many bytes as the spool holds.
    if let Ok(free) = crate::storage::free_bytes(input.parent().unwrap_or(Path::new("."))) {
        if free < kept + DISK_MARGIN_BYTES {
            return Ok(errored(format!(
                "the work disk has {} MB free; the {} MB download needs {} MB",
                free / 1_000_000,
                kept.div_ceil(1_000_000),
                (kept + DISK_MARGIN_BYTES).div_ceil(1_000_000)
            )));
        }
    }
    let cancel = std::sync::Arc::new(AtomicBool::new(false));
    let remuxing = {
        let (input, output, cancel) = (input.clone(), output.clone(), std::sync::Arc::clone(&cancel));
        tokio::task::spawn_blocking(move || remux(&input, &output, &cancel))
    };
    let remuxed = tokio::select! {
        biased;
        () = control.stopped() => {
            cancel.store(true, Ordering::Relaxed);
            Err(JobError::LeaseLost)
        }
        r = remuxing => r.unwrap_or_else(|e| Err(JobError::retryable(format!("the remux task failed: {e}")))),
    };
    drop(spool); // the fragments are no longer needed
    let remuxed = match remuxed {
        Ok(r) => r,
        Err(JobError::LeaseLost) => {
            let _ = std::fs::remove_file(&output);
            return Err(JobError::LeaseLost);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&output);
            return Ok(errored(e.to_string()));
        }
    };
    tracing::info!(rung = %rung, bytes = remuxed.bytes, fragments_bytes = kept, packets = remuxed.packets, seconds = remuxed.seconds, "download remuxed");
    let uploaded = tokio::select! {
        biased;
        () = control.stopped() => Err(JobError::LeaseLost),
        r = sink.put_file(key, &output, "video/mp4", media_core::keys::CachePolicy::Immutable.header_value()) => r,
    };
    let _ = std::fs::remove_file(&output);
    match uploaded {
        Ok(()) => Ok(DownloadReport::Ready { rung, size: remuxed.bytes }),
        Err(JobError::LeaseLost) => Err(JobError::LeaseLost),
        Err(e) => Ok(errored(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        found
    }

    fn spool(dir: &Path) -> DownloadSpool {
        let request = DownloadRequest { rung: Some("480p".into()), dir: dir.join("work") };
        let mut spool = DownloadSpool::open(&request, &["720p", "480p", "360p"]).unwrap();
        assert_eq!((spool.rung, spool.name.as_str()), (1, "480p"));
        spool.keep(0, b"another rung's segment");
        assert_eq!(spool.bytes(), 0, "only the chosen rung's bytes are kept");
        spool.keep(1, b"not an mp4 at all");
        assert_eq!(spool.bytes(), 17);
        spool
    }

    /// A remux that fails errors the download (with the rung, for the
    /// logs), uploads nothing and leaves no file on the work disk.
    #[tokio::test]
    async fn a_failed_remux_errors_the_download_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::Dir(dir.path().join("out"));
        let report = publish(spool(dir.path()), &sink, "v.mp4", &Control::default()).await.unwrap();
        match report {
            DownloadReport::Errored { rung, message } => {
                assert_eq!(rung.as_deref(), Some("480p"));
                assert!(message.contains("remuxing the download"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(files(&dir.path().join("work")), Vec::<String>::new());
        assert!(!dir.path().join("out").exists(), "nothing uploaded");
    }

    /// A job stopped (lease lost, shutdown) ends its download as a lost
    /// lease, not as an errored download, and leaves no file.
    #[tokio::test]
    async fn a_stopped_job_ends_the_download_as_a_lost_lease() {
        let dir = tempfile::tempdir().unwrap();
        let control = Control::default();
        control.stop();
        let sink = Sink::Dir(dir.path().join("out"));
        assert_eq!(publish(spool(dir.path()), &sink, "v.mp4", &control).await, Err(JobError::LeaseLost));
        assert_eq!(files(&dir.path().join("work")), Vec::<String>::new());
        assert!(!dir.path().join("out").exists());
    }
}
