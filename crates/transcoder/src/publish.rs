//! Publishing an attempt's outputs while the pipeline is still encoding:
//! every init segment, media segment and image is uploaded as soon as it is
//! final (several at once, with back-pressure on the pipeline), each rung's
//! playlist is rewritten to list exactly the segments already uploaded, and
//! the video becomes `playable` once every rung has a segment, a playlist,
//! and the master playlist exists. At the end the playlists become VOD and
//! the master carries bandwidths measured from the segments.
//!
//! When the job is stopped (its lease lost, a time limit, a shutdown), the
//! publisher stops at once: uploads in flight are aborted and whatever the
//! pipeline had queued is dropped unpublished, so nothing lands after a
//! refused heartbeat (the video may be deleted and swept by then).
//!
//! An encrypted ladder ([`Publisher::encrypt_with`]) stores its key first,
//! before any other output, then encrypts each media segment in its upload
//! task (the pipeline's events stay clear); its rung playlists name the key.
//! With an MP4 download asked ([`Publisher::keep_download`]), the chosen
//! rung's init and segments are also written, clear, to the work disk as
//! they come ([`crate::download`]).
//!
//! A chunk task of a chunked job ([`Produced::Chunk`]) publishes its
//! segments only: no playlists and no master (the video service renders
//! them from the job), the inits and the poster only from task 0, and the
//! `audio` rendition from the task that encodes it. Its heartbeats carry how
//! many of its segments are stored ([`Published`]), task 0 raises `playable`
//! once every rung and the audio have their first segment, and at the end
//! it reports what it wrote ([`Publisher::finish_chunk`]).
//!
//! [`Stages`] logs when an attempt reaches each stage on the way to
//! `playable` (`stage=leased|source_open|probed|first_cut|all_cut|playable|playable_told`,
//! with `ms` since the lease was granted), so a benchmark can show where
//! the time to playable goes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

use bytes::Bytes;
use media_core::keys::{segment_file_name, CachePolicy, HlsFile, RungFile, RungName};
use media_core::video::chunks::{ChunkReport, ChunkSpec, RungReport};
use media_core::video::encryption::{encrypted_len, KEY_URI};
use media_core::video::job::{JobResult, Rendition, ThumbnailMeta};
use media_core::video::ladder::{LadderPlan, VideoRange, AUDIO};
use media_core::video::playlist::{
    master_playlist, measured_bandwidth, media_playlist, target_duration, thumbnails_vtt, SegmentEntry, Variant,
    AAC_LC_CODEC,
};
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinSet;

use crate::download::{DownloadRequest, DownloadSpool};
use crate::encrypt::SegmentCipher;
use crate::error::JobError;
use crate::pipeline::{ChunkDone, Control, Produced, Summary};
use crate::storage::Sink;

/// Uploads in flight at once; more waits (and so does the pipeline). The
/// uploads `playable` waits for (every init, every rung's first segment)
/// are not counted: they start at once, ahead of anything queued.
const MAX_IN_FLIGHT: usize = 8;

#[derive(Debug, Default, Clone)]
struct RungState {
    name: String,
    width: u32,
    height: u32,
    planned_peak: u64,
    planned_average: u64,
    video_codec: Option<String>,
    /// HLS `VIDEO-RANGE`: the plan's.
    video_range: VideoRange,
    init_bytes: Option<u64>,
    /// Segments by sequence number, `Some` once uploaded.
    segments: Vec<Option<SegmentEntry>>,
    /// How many leading segments the published playlist lists.
    listed: usize,
    /// Segment 0 as the pipeline produced it (listed before it is stored, see [`Publisher::list_first`]).
    first: Option<SegmentEntry>,
}

impl RungState {
    fn uploaded_prefix(&self) -> Vec<SegmentEntry> {
        self.segments.iter().map_while(Clone::clone).collect()
    }
}

/// Raised once the video can be played; wakes whoever reports it.
#[derive(Default)]
pub struct Playable {
    flag: AtomicBool,
    raised: Notify,
}

impl Playable {
    pub fn raise(&self) {
        if !self.flag.swap(true, Ordering::Relaxed) {
            self.raised.notify_waiters();
        }
    }

    pub fn is_raised(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Resolves when [`Playable::raise`] is called (at once if it was already).
    pub async fn raised(&self) {
        let wait = self.raised.notified();
        if !self.is_raised() {
            wait.await;
        }
    }
}

/// How many of a chunk task's segments are stored, for its heartbeats:
/// `None` until the task knows it is a chunk, then the contiguous count
/// from its first segment on every video rung, and the audio rendition's
/// (task 0 of a source with audio).
#[derive(Default)]
pub struct Published(Mutex<Option<(u32, Option<u32>)>>);

impl Published {
    /// `(published_segments, published_audio_segments)`.
    pub fn get(&self) -> Option<(u32, Option<u32>)> {
        *self.0.lock().expect("not poisoned")
    }

    fn set(&self, video: u32, audio: Option<u32>) {
        *self.0.lock().expect("not poisoned") = Some((video, audio));
    }

    #[cfg(test)]
    pub fn set_for_test(&self, video: u32, audio: Option<u32>) {
        self.set(video, audio);
    }
}

/// When one attempt reached each stage on its way to `playable`: each is
/// logged once, as `stage` and `ms` since the lease was granted. Clones
/// share one record.
#[derive(Clone)]
pub struct Stages {
    since: Instant,
    reached: Arc<Mutex<HashSet<&'static str>>>,
}

impl Default for Stages {
    /// Counted from now (the runner makes one as the lease arrives).
    fn default() -> Self {
        Self { since: Instant::now(), reached: Arc::default() }
    }
}

impl Stages {
    /// Logs `stage` as reached now, unless it was already.
    pub fn reach(&self, stage: &'static str) {
        self.reach_at(stage, Instant::now());
    }

    /// Logs `stage` as reached at `at`, unless it was already.
    pub fn reach_at(&self, stage: &'static str, at: Instant) {
        if self.reached.lock().expect("not poisoned").insert(stage) {
            let ms = at.saturating_duration_since(self.since).as_millis() as u64;
            tracing::info!(stage, ms, "stage");
        }
    }

    /// Milliseconds since the lease.
    pub fn elapsed_ms(&self) -> u64 {
        self.since.elapsed().as_millis() as u64
    }

    /// Whether `stage` was logged.
    pub fn reached(&self, stage: &str) -> bool {
        self.reached.lock().expect("not poisoned").contains(stage)
    }
}

/// What publishing has done so far.
pub struct Publisher {
    sink: Sink,
    prefix: String,
    playable: Arc<Playable>,
    rungs: Vec<RungState>,
    plan: Option<LadderPlan>,
    has_audio: bool,
    sprite: Option<ThumbnailMeta>,
    poster: bool,
    master_written: bool,
    /// The first playlists and the master are being stored ([`Publisher::list_first`]).
    listing: bool,
    /// Set for an encrypted ladder: its cipher and the key object's storage key.
    encryption: Option<(SegmentCipher, String)>,
    /// The MP4 download asked for, until the plan names the rung.
    download_request: Option<DownloadRequest>,
    /// The download rung's clear init and segments, kept as they come.
    download: Option<DownloadSpool>,
    /// Where the stages on the way to `playable` are logged (none: not logged).
    stages: Option<Stages>,
    /// Uploads in flight that `playable` waits for ([`MAX_IN_FLIGHT`] does not count them).
    first_in_flight: usize,
    /// Set when this attempt is a chunk task of a chunked job.
    chunk: Option<ChunkSpec>,
    /// The `audio` rendition of a chunked job (the task that encodes it).
    audio: Option<RungState>,
    /// A chunk task's stored segments, for its heartbeats.
    published: Arc<Published>,
}

/// A finished upload, fed back into the publisher's state.
enum Uploaded {
    Init {
        rung: usize,
        bytes: u64,
    },
    Segment {
        rung: usize,
        seq: u32,
        entry: SegmentEntry,
    },
    /// The `audio` rendition's init and segments (chunked jobs).
    AudioInit {
        bytes: u64,
    },
    AudioSegment {
        seq: u32,
        entry: SegmentEntry,
    },
    /// The first playlists and the master.
    Listed,
    Other,
}

impl Uploaded {
    /// Whether `playable` waits for it: an init, a first segment, the first playlists.
    fn first(&self) -> bool {
        matches!(
            self,
            Uploaded::Init { .. }
                | Uploaded::Segment { seq: 0, .. }
                | Uploaded::AudioInit { .. }
                | Uploaded::AudioSegment { seq: 0, .. }
                | Uploaded::Listed
        )
    }
}

/// Records `entry` as segment `index` of `r` (counted from its first).
fn stored(r: &mut RungState, index: usize, entry: SegmentEntry) {
    if r.segments.len() <= index {
        r.segments.resize(index + 1, None);
    }
    r.segments[index] = Some(entry);
}

impl Publisher {
    /// Publishes under `prefix` (`hls/{app}/{video}/{output}/`); sets
    /// `playable` when players can start.
    pub fn new(sink: Sink, prefix: String, playable: Arc<Playable>) -> Self {
        Self {
            sink,
            prefix,
            playable,
            rungs: Vec::new(),
            plan: None,
            has_audio: false,
            sprite: None,
            poster: false,
            master_written: false,
            listing: false,
            encryption: None,
            download_request: None,
            download: None,
            stages: None,
            first_in_flight: 0,
            chunk: None,
            audio: None,
            published: Arc::default(),
        }
    }

    /// Counts a chunk task's stored segments in `published` (its heartbeats read it).
    pub fn count_published(&mut self, published: Arc<Published>) {
        self.published = published;
    }

    /// The segment number of a chunk task's first segment (0 in one pass).
    fn first_seq(&self) -> u32 {
        self.chunk.as_ref().map_or(0, |c| c.first_seq)
    }

    /// Logs the stages it sees (the probe, the first segments, `playable`) in `stages`.
    pub fn log_stages(&mut self, stages: Stages) {
        self.stages = Some(stages);
    }

    fn reach(&self, stage: &'static str) {
        if let Some(stages) = &self.stages {
            stages.reach(stage);
        }
    }

    /// Keeps the clear init and segments of the rung `request` asks for on
    /// the work disk, for the MP4 download ([`crate::download`]).
    pub fn keep_download(&mut self, request: DownloadRequest) {
        self.download_request = Some(request);
    }

    /// The download's kept fragments, once the ladder is published.
    pub fn take_download(&mut self) -> Option<DownloadSpool> {
        self.download.take()
    }

    /// Encrypts the ladder's media segments with `cipher`, whose key is
    /// stored at `key_object` (a full storage key, outside the public
    /// prefix) before anything else is published.
    pub fn encrypt_with(&mut self, cipher: SegmentCipher, key_object: String) {
        self.encryption = Some((cipher, key_object));
    }

    fn key(&self, file: &HlsFile) -> String {
        format!("{}{}", self.prefix, file.relative_path())
    }

    fn rung_name(&self, rung: usize) -> RungName {
        RungName::parse(&self.rungs[rung].name).expect("rung names come from the plan")
    }

    fn upload(&mut self, set: &mut JoinSet<Result<Uploaded, JobError>>, file: HlsFile, bytes: Vec<u8>, done: Uploaded) {
        self.first_in_flight += usize::from(done.first());
        let (sink, key) = (self.sink.clone(), self.key(&file));
        set.spawn(async move {
            sink.put(&key, Bytes::from(bytes), file.content_type(), file.cache_policy().header_value()).await?;
            Ok(done)
        });
    }

    /// Uploads media segment `seq`, encrypted first when the ladder is.
    fn upload_segment(
        &mut self,
        set: &mut JoinSet<Result<Uploaded, JobError>>,
        file: HlsFile,
        seq: u32,
        bytes: Vec<u8>,
        done: Uploaded,
    ) {
        let Some((cipher, _)) = &self.encryption else {
            self.upload(set, file, bytes, done);
            return;
        };
        let (sink, key, cipher) = (self.sink.clone(), self.key(&file), cipher.clone());
        self.first_in_flight += usize::from(done.first());
        set.spawn(async move {
            // A few milliseconds of AES per segment, off the async workers.
            let encrypted = tokio::task::spawn_blocking(move || cipher.encrypt(seq, &bytes))
                .await
                .map_err(|e| JobError::retryable(format!("encrypting a segment failed: {e}")))?;
            sink.put(&key, Bytes::from(encrypted), file.content_type(), file.cache_policy().header_value()).await?;
            Ok(done)
        });
    }

    async fn put_all(&self, files: Vec<(HlsFile, String)>) -> Result<(), JobError> {
        put_all(&self.sink, &self.prefix, files).await
    }

    /// Consumes the pipeline's events until it finishes (the channel
    /// closes), or until `control` is stopped: then the queue is dropped,
    /// uploads in flight are aborted, and it returns `LeaseLost` (the
    /// stopper knows the real reason).
    pub async fn run(&mut self, events: Receiver<Produced>, control: &Control) -> Result<(), JobError> {
        tokio::select! {
            biased;
            () = control.stopped() => {
                tracing::info!(prefix = %self.prefix, "stopped: dropped the queued and in-flight uploads");
                Err(JobError::LeaseLost)
            }
            published = self.publish(events) => published,
        }
    }

    /// [`Publisher::run`] until the channel closes. Dropping it drops the
    /// queue and aborts every upload in flight (a `JoinSet` aborts its tasks).
    async fn publish(&mut self, mut events: Receiver<Produced>) -> Result<(), JobError> {
        if let Some((cipher, key_object)) = &self.encryption {
            // Before any segment: a player that reads one can always fetch its key.
            let key = Bytes::copy_from_slice(cipher.key());
            self.sink.put(key_object, key, "application/octet-stream", "private, no-store").await?;
        }
        let mut set: JoinSet<Result<Uploaded, JobError>> = JoinSet::new();
        let mut open = true;
        while open || !set.is_empty() {
            tokio::select! {
                biased;
                Some(done) = set.join_next(), if !set.is_empty() => {
                    let done = done.map_err(|e| JobError::retryable(format!("an upload task failed: {e}")))??;
                    if done.first() {
                        self.first_in_flight -= 1;
                    }
                    self.uploaded(done).await?;
                }
                event = events.recv(), if open && set.len() - self.first_in_flight < MAX_IN_FLIGHT => match event {
                    Some(e) => self.handle(e, &mut set),
                    None => open = false,
                },
            }
        }
        Ok(())
    }

    fn handle(&mut self, event: Produced, set: &mut JoinSet<Result<Uploaded, JobError>>) {
        match event {
            Produced::Chunk { spec } => {
                tracing::info!(
                    chunk = spec.index,
                    first_seq = spec.first_seq,
                    audio = spec.audio,
                    "publishing a chunk: segments only"
                );
                if spec.audio {
                    self.audio =
                        Some(RungState { name: RungName::audio().as_str().to_owned(), ..RungState::default() });
                }
                self.published.set(0, spec.audio.then_some(0));
                self.chunk = Some(spec);
            }
            Produced::AudioInit { bytes } => {
                let n = bytes.len() as u64;
                self.upload(
                    set,
                    HlsFile::Rung(RungName::audio(), RungFile::Init),
                    bytes,
                    Uploaded::AudioInit { bytes: n },
                );
            }
            Produced::AudioSegment { seq, duration_s, bytes } => {
                let entry = SegmentEntry { uri: segment_file_name(seq), duration_s, bytes: bytes.len() as u64 };
                let file = HlsFile::Rung(RungName::audio(), RungFile::Segment(seq));
                self.upload(set, file, bytes, Uploaded::AudioSegment { seq, entry });
            }
            Produced::Plan { plan, has_audio, .. } => {
                let audio = if has_audio { u64::from(AUDIO.bitrate) } else { 0 };
                self.rungs = plan
                    .rungs
                    .iter()
                    .map(|r| RungState {
                        name: r.name.as_str().to_owned(),
                        width: r.width,
                        height: r.height,
                        planned_peak: u64::from(r.max_bitrate) + audio,
                        planned_average: u64::from(r.bitrate) + audio,
                        video_range: r.range,
                        ..RungState::default()
                    })
                    .collect();
                self.has_audio = has_audio;
                if let Some(request) = &self.download_request {
                    let names: Vec<&str> = plan.rungs.iter().map(|r| r.name.as_str()).collect();
                    self.download = DownloadSpool::open(request, &names);
                }
                self.plan = Some(plan);
                self.reach("probed");
            }
            Produced::Init { rung, bytes, video_codec } => {
                if let Some(spool) = self.download.as_mut() {
                    spool.keep(rung, &bytes);
                }
                self.rungs[rung].video_codec = Some(video_codec);
                let n = bytes.len() as u64;
                if self.chunk.as_ref().is_some_and(|c| c.index != 0) {
                    // Every chunk makes the same init; task 0 stores it.
                    self.rungs[rung].init_bytes = Some(n);
                    return;
                }
                let file = HlsFile::Rung(self.rung_name(rung), RungFile::Init);
                self.upload(set, file, bytes, Uploaded::Init { rung, bytes: n });
            }
            Produced::Segment { rung, seq, duration_s, bytes } => {
                // The download is made of clear bytes: kept before anything else happens to them.
                if let Some(spool) = self.download.as_mut() {
                    spool.keep(rung, &bytes);
                }
                let file = HlsFile::Rung(self.rung_name(rung), RungFile::Segment(seq));
                // What players fetch (and the bandwidths count): an encrypted segment's size.
                let size = if self.encryption.is_some() { encrypted_len(bytes.len()) } else { bytes.len() };
                let entry = SegmentEntry { uri: segment_file_name(seq), duration_s, bytes: size as u64 };
                if seq == self.first_seq() {
                    self.rungs[rung].first = Some(entry.clone());
                    self.first_cut(set);
                }
                self.upload_segment(set, file, seq, bytes, Uploaded::Segment { rung, seq, entry });
            }
            Produced::Poster { bytes } => {
                self.poster = true;
                self.upload(set, HlsFile::Poster, bytes, Uploaded::Other);
            }
            Produced::Sprite { bytes, meta } => {
                self.sprite = Some(meta);
                self.upload(set, HlsFile::Sprite, bytes, Uploaded::Other);
            }
        }
    }

    async fn uploaded(&mut self, done: Uploaded) -> Result<(), JobError> {
        match done {
            Uploaded::Init { rung, bytes } => self.rungs[rung].init_bytes = Some(bytes),
            Uploaded::Segment { rung, seq, entry } => {
                let index = seq.checked_sub(self.first_seq()).ok_or_else(|| {
                    JobError::retryable(format!("internal error: segment {seq} comes before the chunk's first"))
                })?;
                stored(&mut self.rungs[rung], index as usize, entry);
            }
            Uploaded::AudioInit { bytes } => {
                if let Some(a) = self.audio.as_mut() {
                    a.init_bytes = Some(bytes);
                }
            }
            Uploaded::AudioSegment { seq, entry } => {
                if let Some(a) = self.audio.as_mut() {
                    stored(a, seq as usize, entry);
                }
            }
            Uploaded::Listed => {
                self.listing = false;
                self.master_written = true;
            }
            Uploaded::Other => return Ok(()),
        }
        if self.chunk.is_some() {
            self.chunk_uploaded();
            return Ok(());
        }
        if !self.master_written {
            // The first playlists go together ([`Publisher::list_first`]).
            return Ok(());
        }
        // Publish every rung whose listable segments grew (its init must be up too).
        let mut writes = Vec::new();
        for rung in 0..self.rungs.len() {
            let prefix = self.rungs[rung].uploaded_prefix();
            if self.rungs[rung].init_bytes.is_some() && prefix.len() > self.rungs[rung].listed {
                writes.push(self.playlist(rung, &prefix, false));
                self.rungs[rung].listed = prefix.len();
            }
        }
        self.put_all(writes).await?;
        let stored =
            self.rungs.iter().all(|r| r.init_bytes.is_some() && r.segments.first().is_some_and(Option::is_some));
        if !self.playable.is_raised() && stored {
            self.playable.raise();
            self.reach("playable");
            tracing::info!(prefix = %self.prefix, "playable");
        }
        Ok(())
    }

    /// A chunk task's upload landed: count what is stored for the
    /// heartbeats, and (task 0) raise `playable` once every rung and the
    /// audio have their init and first segment.
    fn chunk_uploaded(&mut self) {
        let video = self.rungs.iter().map(|r| r.uploaded_prefix().len()).min().unwrap_or(0) as u32;
        let audio = self.audio.as_ref().map(|a| a.uploaded_prefix().len() as u32);
        self.published.set(video, audio);
        let has_first = |r: &RungState| r.init_bytes.is_some() && r.segments.first().is_some_and(Option::is_some);
        let task0 = self.chunk.as_ref().is_some_and(|c| c.index == 0);
        if task0
            && !self.playable.is_raised()
            && !self.rungs.is_empty()
            && self.rungs.iter().all(has_first)
            && self.audio.as_ref().is_none_or(has_first)
        {
            self.playable.raise();
            self.reach("playable");
            tracing::info!(prefix = %self.prefix, "playable (chunk 0)");
        }
    }

    /// A rung's segment 0 was cut: once every rung has one, their
    /// playlists and the master are stored at once.
    fn first_cut(&mut self, set: &mut JoinSet<Result<Uploaded, JobError>>) {
        self.reach("first_cut");
        if self.rungs.iter().all(|r| r.first.is_some()) {
            self.reach("all_cut");
            if self.chunk.is_none() {
                self.list_first(set);
            }
        }
    }

    /// Stores every rung's playlist listing its segment 0, and the master,
    /// all at once and alongside the segments' own uploads, so `playable`
    /// waits for one round trip after the last first segment, not three
    /// (the segment, then its playlist, then the master). Listing a segment
    /// before it is stored is safe only here: nobody reads this attempt's
    /// output until it is `playable` (the service serves the output of
    /// the attempt that said so), and `playable` waits for the segments.
    /// Later playlists list only stored segments.
    fn list_first(&mut self, set: &mut JoinSet<Result<Uploaded, JobError>>) {
        if self.listing || self.master_written {
            return;
        }
        let mut writes = Vec::new();
        for rung in 0..self.rungs.len() {
            let first = self.rungs[rung].first.clone().expect("every rung has its first segment");
            writes.push(self.playlist(rung, &[first], false));
            self.rungs[rung].listed = 1;
        }
        writes.push((HlsFile::Master, self.master(false).0));
        self.listing = true;
        self.first_in_flight += 1;
        let (sink, prefix) = (self.sink.clone(), self.prefix.clone());
        set.spawn(async move {
            put_all(&sink, &prefix, writes).await?;
            Ok(Uploaded::Listed)
        });
    }

    fn target(&self) -> f64 {
        self.plan.as_ref().map_or(4.0, LadderPlan::segment_duration_s)
    }

    /// Rung `rung`'s playlist listing `segments`.
    fn playlist(&self, rung: usize, segments: &[SegmentEntry], finished: bool) -> (HlsFile, String) {
        let key_uri = self.encryption.as_ref().map(|_| KEY_URI);
        let text = media_playlist(target_duration(self.target(), segments), "init.mp4", key_uri, segments, finished);
        (HlsFile::Rung(self.rung_name(rung), RungFile::Playlist), text)
    }

    fn codecs(&self, r: &RungState) -> String {
        let video = r.video_codec.clone().unwrap_or_else(|| "avc1.640028".into());
        if self.has_audio {
            format!("{video},{AAC_LC_CODEC}")
        } else {
            video
        }
    }

    /// Bandwidths measured from the uploaded segments; while in progress, never
    /// below what the rung was planned to peak at.
    fn bandwidth(&self, r: &RungState, finished: bool) -> (u64, u64) {
        let segs = r.uploaded_prefix();
        let (peak, avg) = measured_bandwidth(r.init_bytes.unwrap_or(0), &segs);
        if finished {
            (peak.max(1), avg.max(1))
        } else {
            (peak.max(r.planned_peak), if segs.is_empty() { r.planned_average } else { avg })
        }
    }

    /// The master playlist, and the renditions it lists.
    fn master(&self, finished: bool) -> (String, Vec<Rendition>) {
        let fps = self.plan.as_ref().map_or(30.0, |p| p.frame_rate.as_f64());
        let mut renditions = Vec::new();
        let variants: Vec<Variant> = self
            .rungs
            .iter()
            .map(|r| {
                let (bandwidth, average_bandwidth) = self.bandwidth(r, finished);
                renditions.push(Rendition {
                    name: r.name.clone(),
                    width: r.width,
                    height: r.height,
                    bandwidth,
                    average_bandwidth,
                    codecs: self.codecs(r),
                    frame_rate: fps,
                    video_range: r.video_range,
                });
                Variant {
                    uri: format!("{}/index.m3u8", r.name),
                    bandwidth,
                    average_bandwidth,
                    codecs: self.codecs(r),
                    width: r.width,
                    height: r.height,
                    frame_rate: fps,
                    video_range: r.video_range,
                }
            })
            .collect();
        (master_playlist(&variants), renditions)
    }

    /// After a chunk task's pipeline succeeded: checks that every segment it
    /// made is stored and returns what the service assembles the job from.
    pub fn finish_chunk(&mut self, done: ChunkDone) -> Result<ChunkReport, JobError> {
        let report = |r: &RungState, expected: u32, codecs: String| -> Result<RungReport, JobError> {
            let segments = r.uploaded_prefix();
            if r.init_bytes.is_none() || segments.len() != r.segments.len() || segments.len() != expected as usize {
                return Err(JobError::retryable(format!(
                    "rendition {} of the chunk finished with segments missing from storage ({} of {expected} stored)",
                    r.name,
                    segments.len()
                )));
            }
            Ok(RungReport {
                name: r.name.clone(),
                width: r.width,
                height: r.height,
                codecs,
                init_bytes: r.init_bytes.unwrap_or(0),
                segment_bytes: segments.iter().map(|s| s.bytes).collect(),
            })
        };
        let rungs = self
            .rungs
            .iter()
            .map(|r| report(r, done.segments, r.video_codec.clone().unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()?;
        let audio = match &self.audio {
            Some(a) => Some(report(a, done.audio_segments.unwrap_or(0), AAC_LC_CODEC.to_owned())?),
            None => None,
        };
        if self.chunk.as_ref().is_some_and(|c| c.index == 0) {
            self.playable.raise();
        }
        Ok(ChunkReport {
            frames: done.frames,
            segments: done.segments,
            rungs,
            audio,
            poster: self.poster,
            ..Default::default()
        })
    }

    /// After the pipeline succeeded: VOD playlists, the measured master, the
    /// thumbnails track. Returns what the video service records.
    pub async fn finish(&mut self, summary: &Summary) -> Result<JobResult, JobError> {
        let mut writes = Vec::new();
        for rung in 0..self.rungs.len() {
            let r = &self.rungs[rung];
            let segments = r.uploaded_prefix();
            if r.init_bytes.is_none() || segments.len() != r.segments.len() || segments.is_empty() {
                return Err(JobError::retryable(format!(
                    "rung {} finished with segments missing from storage",
                    r.name
                )));
            }
            writes.push(self.playlist(rung, &segments, true));
        }
        let (master, renditions) = self.master(true);
        writes.push((HlsFile::Master, master));
        if let Some(meta) = &self.sprite {
            writes.push((HlsFile::ThumbnailsVtt, thumbnails_vtt(meta, summary.duration_s, "sprite.jpg")));
        }
        self.put_all(writes).await?;
        self.master_written = true;
        self.playable.raise();
        Ok(JobResult {
            duration_s: summary.duration_s,
            renditions,
            thumbnails: self.sprite.filter(|_| self.poster),
            has_audio: summary.has_audio,
            download: None,
            cover: None,
            preview: None,
        })
    }
}

/// Stores these playlists under `prefix` all at once (not one after
/// another), and returns once every one is stored; the first failure fails it.
async fn put_all(sink: &Sink, prefix: &str, files: Vec<(HlsFile, String)>) -> Result<(), JobError> {
    let mut set = JoinSet::new();
    for (file, text) in files {
        let (sink, key) = (sink.clone(), format!("{prefix}{}", file.relative_path()));
        set.spawn(async move {
            sink.put(&key, Bytes::from(text), file.content_type(), CachePolicy::Short.header_value()).await
        });
    }
    while let Some(put) = set.join_next().await {
        put.map_err(|e| JobError::retryable(format!("a playlist upload task failed: {e}")))??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use media_core::video::ladder::{plan_ladder, LadderOptions, Rational, SourceVideo};

    use super::*;

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    todo.push(e.path());
                } else {
                    found.push(e.path().strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        found
    }

    /// The default ladder of a 640x360 30 fps source.
    fn plan_640x360() -> LadderPlan {
        let source = SourceVideo {
            width: 640,
            height: 360,
            sample_aspect: Rational::new(1, 1),
            rotation: 0,
            frame_rate: Rational::new(30, 1),
        };
        plan_ladder(&source, &LadderOptions::default()).unwrap()
    }

    /// A refused heartbeat stops the job: the outputs the pipeline had
    /// queued are dropped, none is published, and the publisher returns at
    /// once although the pipeline has not hung up. (Before, it went on
    /// uploading the queue and waiting for more.)
    #[tokio::test]
    async fn a_stopped_job_publishes_nothing_more_from_its_queue() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_640x360();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tx.send(Produced::Plan { plan, has_audio: false, duration_s: Some(60.0) }).await.unwrap();
        tx.send(Produced::Init { rung: 0, bytes: vec![1; 100], video_codec: "avc1.64001e".into() }).await.unwrap();
        for seq in 0..14 {
            tx.send(Produced::Segment { rung: 0, seq, duration_s: 4.0, bytes: vec![2; 1000] }).await.unwrap();
        }
        let control = Control::default();
        // The heartbeat was refused: the runner stops the job.
        control.stop();
        let mut publisher = Publisher::new(Sink::Dir(dir.path().into()), String::new(), Arc::default());
        let ran = tokio::time::timeout(Duration::from_secs(5), publisher.run(rx, &control)).await;
        assert_eq!(ran, Ok(Err(JobError::LeaseLost)), "the publisher stops at once");
        assert_eq!(files(dir.path()), Vec::<String>::new(), "nothing was published after the stop");
        assert!(tx.is_closed(), "the queue was dropped, so the pipeline's next send fails");
    }

    /// Stopped while uploading: nothing queued behind the uploads in flight
    /// starts, and the pipeline's next send fails.
    #[tokio::test]
    async fn a_stop_during_uploads_ends_them_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_640x360();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let control = Arc::new(Control::default());
        let feeder = {
            let (control, dir) = (Arc::clone(&control), dir.path().to_path_buf());
            tokio::spawn(async move {
                tx.send(Produced::Plan { plan, has_audio: false, duration_s: Some(800.0) }).await.unwrap();
                tx.send(Produced::Init { rung: 0, bytes: vec![1; 100], video_codec: "avc1.64001e".into() })
                    .await
                    .unwrap();
                let mut sent = 0u32;
                for seq in 0..200 {
                    // Stop once the first segments are published, as a refused heartbeat would.
                    if seq == 20 {
                        while !dir.join("360p/00000.m4s").exists() {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        control.stop();
                    }
                    let segment = Produced::Segment { rung: 0, seq, duration_s: 4.0, bytes: vec![2; 100_000] };
                    if tx.send(segment).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
                sent
            })
        };
        let mut publisher = Publisher::new(Sink::Dir(dir.path().into()), String::new(), Arc::default());
        let ran = tokio::time::timeout(Duration::from_secs(10), publisher.run(rx, &control)).await;
        assert_eq!(ran, Ok(Err(JobError::LeaseLost)));
        let sent = feeder.await.unwrap();
        assert!(sent < 20 + 16 + 2, "the pipeline's sends failed once the queue was dropped ({sent} sent)");
        // A local folder's writes run on blocking threads, which an abort
        // cannot stop: those in flight at the stop may still land (an S3
        // request is dropped with its connection). Nothing queued does.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let landed = files(dir.path());
        let segments = landed.iter().filter(|f| f.ends_with(".m4s")).count();
        assert!(segments <= 20 + MAX_IN_FLIGHT, "{segments} segments published: {landed:?}");
    }

    /// The events of a one-rung ladder with two media segments, already sent.
    async fn two_segments() -> Receiver<Produced> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let mut plan = plan_640x360();
        plan.rungs.truncate(1);
        tx.send(Produced::Plan { plan, has_audio: false, duration_s: Some(6.0) }).await.unwrap();
        tx.send(Produced::Init { rung: 0, bytes: vec![1; 100], video_codec: "avc1.64001e".into() }).await.unwrap();
        for seq in 0..2 {
            tx.send(Produced::Segment { rung: 0, seq, duration_s: 3.0, bytes: vec![seq as u8 + 2; 1000] })
                .await
                .unwrap();
        }
        rx
    }

    /// The publisher marks the stages it sees: the probe (the plan), the
    /// first cut, every rung cut, and `playable`.
    #[tokio::test]
    async fn the_stages_to_playable_are_marked() {
        let dir = tempfile::tempdir().unwrap();
        let stages = Stages::default();
        let mut publisher = Publisher::new(Sink::Dir(dir.path().into()), String::new(), Arc::default());
        publisher.log_stages(stages.clone());
        let plan = plan_640x360();
        let rungs = plan.rungs.len();
        assert!(rungs > 1);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tx.send(Produced::Plan { plan, has_audio: false, duration_s: Some(8.0) }).await.unwrap();
        for rung in 0..rungs {
            tx.send(Produced::Init { rung, bytes: vec![1; 100], video_codec: "avc1.64001e".into() }).await.unwrap();
        }
        tx.send(Produced::Segment { rung: 0, seq: 0, duration_s: 4.0, bytes: vec![2; 1000] }).await.unwrap();
        let control = Control::default();
        let running = tokio::spawn(async move {
            publisher.run(rx, &control).await.unwrap();
            publisher
        });
        let mut waited = 0;
        while !stages.reached("first_cut") && waited < 500 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert!(stages.reached("probed") && stages.reached("first_cut"));
        assert!(!stages.reached("all_cut") && !stages.reached("playable"), "one rung of {rungs} has a segment");
        for rung in 1..rungs {
            tx.send(Produced::Segment { rung, seq: 0, duration_s: 4.0, bytes: vec![2; 1000] }).await.unwrap();
        }
        drop(tx);
        running.await.unwrap();
        for stage in ["probed", "first_cut", "all_cut", "playable"] {
            assert!(stages.reached(stage), "{stage}");
        }
        assert!(!stages.reached("leased"), "the runner's own stages are its to mark");
    }

    /// A FIFO where the folder sink writes `key` before renaming it: the
    /// upload of `key` blocks until [`release`] reads it.
    fn hold(dir: &std::path::Path, key: &str) -> std::path::PathBuf {
        let path = dir.join(key).with_extension("partial");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        path
    }

    fn release(fifo: std::path::PathBuf) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    }

    /// The uploads `playable` waits for are not held back by others in
    /// flight: with the inits, the poster, rung 0's first segment and four
    /// more of its segments all still uploading (8 in flight, the limit),
    /// the next rung's first segment is still taken and stored. (Before, it
    /// waited for a slot.)
    #[tokio::test(flavor = "multi_thread")]
    async fn first_segments_start_although_the_uploads_in_flight_are_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = plan_640x360();
        plan.rungs.truncate(2);
        assert_eq!(plan.rungs.len(), 2);
        let names: Vec<String> = plan.rungs.iter().map(|r| r.name.as_str().to_owned()).collect();
        let mut held = vec![hold(dir.path(), "poster.jpg")];
        for name in &names {
            held.push(hold(dir.path(), &format!("{name}/init.mp4")));
        }
        for seq in 0..5 {
            held.push(hold(dir.path(), &format!("{}/{}", names[0], segment_file_name(seq))));
        }
        assert_eq!(held.len(), MAX_IN_FLIGHT);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tx.send(Produced::Plan { plan, has_audio: false, duration_s: Some(30.0) }).await.unwrap();
        for rung in 0..2 {
            tx.send(Produced::Init { rung, bytes: vec![1; 100], video_codec: "avc1.64001e".into() }).await.unwrap();
        }
        tx.send(Produced::Poster { bytes: vec![9; 10] }).await.unwrap();
        for seq in 0..5 {
            tx.send(Produced::Segment { rung: 0, seq, duration_s: 4.0, bytes: vec![2; 1000] }).await.unwrap();
        }
        tx.send(Produced::Segment { rung: 1, seq: 0, duration_s: 4.0, bytes: vec![3; 1000] }).await.unwrap();
        drop(tx);
        let mut publisher = Publisher::new(Sink::Dir(dir.path().into()), String::new(), Arc::default());
        let running = tokio::spawn(async move { publisher.run(rx, &Control::default()).await });
        let first = dir.path().join(&names[1]).join(segment_file_name(0));
        for _ in 0..500 {
            if first.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (landed, seen) = (first.exists(), files(dir.path()));
        for fifo in held {
            release(fifo).join().unwrap();
        }
        running.await.unwrap().unwrap();
        assert!(landed, "rung 1's first segment is stored while 8 uploads are held: {seen:?}");
    }

    /// Every rung's first playlist and the master are stored alongside the
    /// first segments, not after them: while the last rung's segment 0 is
    /// still uploading they are already there, and `playable` comes once it
    /// lands. (Before, each playlist waited for its segment, and the master
    /// for the playlists, one after another.)
    #[tokio::test(flavor = "multi_thread")]
    async fn the_first_playlists_and_the_master_go_with_the_first_segments() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_640x360();
        let rungs = plan.rungs.len();
        let names: Vec<String> = plan.rungs.iter().map(|r| r.name.as_str().to_owned()).collect();
        let last = format!("{}/{}", names[rungs - 1], segment_file_name(0));
        let held = hold(dir.path(), &last);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tx.send(Produced::Plan { plan, has_audio: false, duration_s: Some(8.0) }).await.unwrap();
        for rung in 0..rungs {
            tx.send(Produced::Init { rung, bytes: vec![1; 100], video_codec: "avc1.64001e".into() }).await.unwrap();
        }
        for rung in 0..rungs {
            tx.send(Produced::Segment { rung, seq: 0, duration_s: 4.0, bytes: vec![2; 1000] }).await.unwrap();
        }
        drop(tx);
        let playable = Arc::new(Playable::default());
        let mut publisher = Publisher::new(Sink::Dir(dir.path().into()), String::new(), Arc::clone(&playable));
        let running = tokio::spawn(async move { publisher.run(rx, &Control::default()).await });
        let listed = |name: &str| dir.path().join(name).join("index.m3u8").exists();
        for _ in 0..500 {
            if dir.path().join("master.m3u8").exists() && names.iter().all(|n| listed(n)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(dir.path().join("master.m3u8").exists(), "the master is stored: {:?}", files(dir.path()));
        assert!(names.iter().all(|n| listed(n)), "every rung's playlist is stored: {:?}", files(dir.path()));
        let first = std::fs::read_to_string(dir.path().join(&names[rungs - 1]).join("index.m3u8")).unwrap();
        assert!(first.contains(&segment_file_name(0)), "{first}");
        assert!(!playable.is_raised(), "not playable while a first segment is still uploading");
        assert_eq!(release(held).join().unwrap(), vec![2; 1000]);
        running.await.unwrap().unwrap();
        assert!(playable.is_raised());
    }

    fn chunk_spec(plan: &LadderPlan, index: u16, first_seq: u32, audio: bool) -> ChunkSpec {
        let geometry = media_core::video::chunks::ChunkGeometry::of_plan(plan, 3000);
        let start_frame = if first_seq == 0 { 0 } else { geometry.segment_start_frame(first_seq) };
        ChunkSpec { index, count: 3, start_frame, end_frame: None, first_seq, t0_s: 0.0, geometry, audio }
    }

    /// Task 0 of a chunked job with audio: its inits, segments, audio
    /// rendition and poster are stored, no playlist and no master; it is
    /// playable once every rung and the audio have a first segment; its
    /// heartbeats count the stored segments; it reports every byte.
    #[tokio::test]
    async fn chunk_zero_publishes_segments_inits_audio_and_poster_but_no_playlists() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_640x360();
        let rungs = plan.rungs.len();
        let names: Vec<String> = plan.rungs.iter().map(|r| r.name.as_str().to_owned()).collect();
        let spec = chunk_spec(&plan, 0, 0, true);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tx.send(Produced::Plan { plan, has_audio: true, duration_s: Some(100.0) }).await.unwrap();
        tx.send(Produced::Chunk { spec }).await.unwrap();
        for rung in 0..rungs {
            tx.send(Produced::Init { rung, bytes: vec![1; 100], video_codec: "avc1.64001e".into() }).await.unwrap();
        }
        tx.send(Produced::AudioInit { bytes: vec![3; 50] }).await.unwrap();
        for seq in 0..2 {
            for rung in 0..rungs {
                tx.send(Produced::Segment { rung, seq, duration_s: 4.0, bytes: vec![2; 1000 + seq as usize] })
                    .await
                    .unwrap();
            }
        }
        tx.send(Produced::Poster { bytes: vec![9; 10] }).await.unwrap();
        drop(tx);
        let playable = Arc::new(Playable::default());
        let published = Arc::new(Published::default());
        let mut publisher = Publisher::new(Sink::Dir(dir.path().into()), String::new(), Arc::clone(&playable));
        publisher.count_published(Arc::clone(&published));
        publisher.run(rx, &Control::default()).await.unwrap();
        assert!(!playable.is_raised(), "not playable before the audio has a segment");
        assert_eq!(published.get(), Some((2, Some(0))));
        // The audio goes on past the chunk's video (task 0 encodes it to the end).
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        for seq in 0..3 {
            tx.send(Produced::AudioSegment { seq, duration_s: 4.0, bytes: vec![4; 200] }).await.unwrap();
        }
        drop(tx);
        publisher.run(rx, &Control::default()).await.unwrap();
        assert!(playable.is_raised());
        assert_eq!(published.get(), Some((2, Some(3))));
        let mut stored = files(dir.path());
        stored.sort();
        let mut expected =
            vec!["audio/00000.m4s", "audio/00001.m4s", "audio/00002.m4s", "audio/init.mp4", "poster.jpg"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
        for n in &names {
            expected.extend([format!("{n}/00000.m4s"), format!("{n}/00001.m4s"), format!("{n}/init.mp4")]);
        }
        expected.sort();
        assert_eq!(stored, expected, "segments, inits, audio and poster; no playlist, no master");
        let report = publisher.finish_chunk(ChunkDone { frames: 240, segments: 2, audio_segments: Some(3) }).unwrap();
        assert_eq!((report.frames, report.segments, report.poster), (240, 2, true));
        assert_eq!(report.rungs.len(), rungs);
        assert_eq!(report.rungs[0].segment_bytes, vec![1000, 1001]);
        assert_eq!((report.rungs[0].init_bytes, report.rungs[0].codecs.as_str()), (100, "avc1.64001e"));
        let audio = report.audio.unwrap();
        assert_eq!((audio.name.as_str(), audio.codecs.as_str(), audio.init_bytes), ("audio", "mp4a.40.2", 50));
        assert_eq!(audio.segment_bytes, vec![200; 3]);
        assert!(
            publisher.finish_chunk(ChunkDone { frames: 240, segments: 3, audio_segments: Some(3) }).is_err(),
            "a segment the pipeline made but storage lacks fails the chunk"
        );
    }

    /// A later chunk stores only its segments, under their global numbers:
    /// no init (task 0 stores the same one), never `playable`; its
    /// heartbeats count from its first segment.
    #[tokio::test]
    async fn a_later_chunk_stores_only_its_segments_under_global_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = plan_640x360();
        plan.rungs.truncate(1);
        let name = plan.rungs[0].name.as_str().to_owned();
        let spec = chunk_spec(&plan, 1, 7, false);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tx.send(Produced::Plan { plan, has_audio: false, duration_s: Some(100.0) }).await.unwrap();
        tx.send(Produced::Chunk { spec }).await.unwrap();
        tx.send(Produced::Init { rung: 0, bytes: vec![1; 100], video_codec: "avc1.64001e".into() }).await.unwrap();
        for seq in 7..10 {
            tx.send(Produced::Segment { rung: 0, seq, duration_s: 4.0, bytes: vec![2; 500] }).await.unwrap();
        }
        drop(tx);
        let playable = Arc::new(Playable::default());
        let published = Arc::new(Published::default());
        let mut publisher = Publisher::new(Sink::Dir(dir.path().into()), String::new(), Arc::clone(&playable));
        publisher.count_published(Arc::clone(&published));
        publisher.run(rx, &Control::default()).await.unwrap();
        let mut stored = files(dir.path());
        stored.sort();
        assert_eq!(stored, [format!("{name}/00007.m4s"), format!("{name}/00008.m4s"), format!("{name}/00009.m4s")]);
        assert_eq!(published.get(), Some((3, None)));
        let report = publisher.finish_chunk(ChunkDone { frames: 360, segments: 3, audio_segments: None }).unwrap();
        assert!(!playable.is_raised(), "only task 0 makes the video playable");
        assert_eq!((report.rungs[0].init_bytes, report.rungs[0].segment_bytes.len(), report.audio), (100, 3, None));
    }

    /// An encrypted ladder stores its key before anything else: a key that
    /// cannot be stored fails the publisher with nothing published, so no
    /// player ever meets a segment whose key is missing. Stored, the key is
    /// there and every published segment opens with it (init stays clear).
    #[tokio::test]
    async fn an_encrypted_ladder_publishes_nothing_before_its_key() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the key's folder would go: storing the key fails.
        std::fs::write(dir.path().join("keys"), b"in the way").unwrap();
        let mut publisher = Publisher::new(Sink::Dir(dir.path().into()), String::new(), Arc::default());
        publisher.encrypt_with(SegmentCipher::from_key([7; 16]), "keys/aes128.key".into());
        let control = Control::default();
        let ran = tokio::time::timeout(Duration::from_secs(5), publisher.run(two_segments().await, &control)).await;
        assert!(ran.unwrap().is_err(), "a key that cannot be stored fails the attempt");
        assert_eq!(files(dir.path()), ["keys"], "nothing was published before the key");

        let dir = tempfile::tempdir().unwrap();
        let mut publisher = Publisher::new(Sink::Dir(dir.path().into()), String::new(), Arc::default());
        let cipher = SegmentCipher::from_key([7; 16]);
        publisher.encrypt_with(cipher.clone(), "keys/aes128.key".into());
        publisher.run(two_segments().await, &Control::default()).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("keys/aes128.key")).unwrap(), [7; 16]);
        assert_eq!(std::fs::read(dir.path().join("360p/init.mp4")).unwrap(), [1; 100], "init stays clear");
        for seq in 0..2u32 {
            let sealed = std::fs::read(dir.path().join(format!("360p/{}", segment_file_name(seq)))).unwrap();
            assert_eq!(sealed.len(), encrypted_len(1000));
            assert_eq!(cipher.decrypt(seq, &sealed), Some(vec![seq as u8 + 2; 1000]));
        }
        let playlist = std::fs::read_to_string(dir.path().join("360p/index.m3u8")).unwrap();
        assert!(
            playlist.contains("#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"../key\"\n"),
            "{playlist}"
        );
    }
}
