// The browser side of the demo: a direct upload (the backend creates it;
// its token is the page's only credential) sent straight to storage with
// Uppy (a resumable multipart upload with @uppy/aws-s3 against the upload's
// own Companion-shaped endpoint, or one presigned PUT for a small file,
// then the upload's completion call), which starts the job with no backend
// call; the upload and then its job followed on the video's public event
// stream from the moment the upload exists (polling the public status
// route when that fails), HLS playback with hls.js, the poster and the
// thumbnail sprite; an operator view of the app's recent jobs and a live
// feed of its events (the app's `/events`, opened by the page itself with a
// short-lived stream token the backend mints); and an image with variants
// the image service makes (sizes, formats, bytes). A video marked private
// plays through a token the backend mints (its public URLs answer 403),
// encrypted, with a link to its MP4 download. A video may ask for an AV1
// rung at every size, which the player prefers where the browser decodes
// AV1 (the line under the player says which rung plays), and once done
// take caption tracks from a WebVTT or SRT file (the backend posts it),
// which the player then shows. `window.demo` exposes state for the browser test.
import { Uppy, AwsS3, XHRUpload } from '/vendor/uppy.min.mjs';

const $ = (id) => document.getElementById(id);
const demo = (window.demo = { job: null, hls: null, playbackUrl: null, publicPlaybackUrl: null, private: false, signed: null, events: [], transport: null, upload: null, uploadObject: null, operator: { connected: false, rows: {}, feed: [], tokens: 0 } });

/**
 * Files above this go in parts, each its own presigned PUT, so a network cut
 * costs at most the part in flight: the stored parts are listed and skipped
 * on resume. It is Uppy's own floor (and R2's smallest part, 5 MiB): Uppy
 * sends a file this small in one request whatever we ask, and a retry of
 * one small PUT costs little.
 */
const MULTIPART_ABOVE = 5 * 1024 * 1024;
/** Failed attempts in a row, while online, before the upload gives up. */
const MAX_FAILURES = 5;

async function backend(method, path, body) {
  const r = await fetch(path, { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  const json = await r.json();
  if (!r.ok) throw new Error(json.error?.message ?? `${path}: ${r.status}`);
  return json;
}

/** PUT with upload progress (fetch cannot report it); the image upload's. */
function put(url, headers, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => (xhr.status < 300 ? resolve() : reject(new Error(`upload refused: ${xhr.status} ${xhr.responseText.slice(0, 200)}`)));
    xhr.onerror = () => reject(new Error('upload failed (network or CORS)'));
    xhr.send(file);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;

/**
 * What each PUT of the video upload sent, attempt by attempt (Uppy reports
 * only a file's total): `demo.upload.attempts`, `sent` per part and
 * `bytesSent` in all, from the requests' upload progress (events come every
 * 50 ms or so, so a cut attempt may have sent a little more than counted).
 */
const xhrOpen = XMLHttpRequest.prototype.open;
XMLHttpRequest.prototype.open = function (method, url, ...rest) {
  const u = demo.upload;
  if (u && !u.done && String(method).toUpperCase() === 'PUT') {
    const part = Number(new URL(url, location.href).searchParams.get('partNumber') ?? 1);
    const attempt = { part, sent: 0, status: null, at: Date.now() };
    u.attempts.push(attempt);
    this.upload.addEventListener('progress', (e) => {
      const more = e.loaded >= attempt.sent ? e.loaded - attempt.sent : e.loaded; // less: the body was sent again from the start
      attempt.sent = e.loaded;
      u.sent[part] = (u.sent[part] ?? 0) + more;
      u.bytesSent += more;
    });
    this.addEventListener('loadend', () => (attempt.status = this.status));
  }
  return xhrOpen.call(this, method, url, ...rest);
};

/** The upload object's state on the page: from its `upload.*` events, and from the backend's `GET /uploads/{id}`. */
function uploadState(status, note = '') {
  const o = demo.uploadObject;
  if (!o || !status) return;
  if (o.seen.at(-1) !== status) o.seen.push(status);
  o.status = status;
  $('video-upload-object').textContent = `upload ${o.id}: ${o.seen.join(' → ')}${note ? ` (${note})` : ''}`;
}

async function uploadVideo(file) {
  const type = file.type || 'video/mp4';
  demo.stream?.close(); // a second upload on the same page
  demo.job = null;
  $('video-state').textContent = 'creating an upload…';
  demo.private = $('private-video').checked;
  demo.av1 = $('av1-video').checked;
  demo.captions = [];
  $('captions').hidden = true;
  $('playing').textContent = '';
  demo.signed = null;
  $('download').hidden = true;
  const slot = await backend('POST', '/api/videos', { content_type: type, size: file.size, multipart: file.size > MULTIPART_ABOVE, private: demo.private, extras: $('extras-video').checked, av1: demo.av1 });
  demo.videoId = slot.video_id;
  demo.uploadObject = { id: slot.id, status: null, seen: [], jobId: null };
  uploadState(slot.status);
  // The video's stream opens now, before the file is sent: upload.created, upload.asset_created, then the job.
  const q = `app_id=${encodeURIComponent(slot.app_id)}&video_id=${encodeURIComponent(slot.video_id)}`;
  const stream = (demo.stream = follow(`${slot.video_service}/job-events?${q}`));
  try {
    await send(file, type, slot);
    if (!slot.multipart) await complete(slot); // a resumable upload's own complete call started the job
  } catch (e) {
    stream.close();
    throw e;
  }
  // The backend's view of the upload object (GET /uploads/{id}): asset_created, with its job.
  const state = await backend('POST', '/api/uploads/state', { id: slot.id });
  demo.uploadObject.jobId = state.job_id ?? null;
  uploadState(state.status, state.job_id ? `job ${state.job_id}` : '');
  const done = (await stream) ?? (await poll(`${slot.video_service}/job-status?${q}`));
  await finished(done);
}

/** A single PUT's last step: the browser tells the service the file is in (the upload's token); the job starts. */
async function complete(slot) {
  $('video-state').textContent = 'uploaded; completing the upload…';
  const r = await fetch(slot.complete_url, { method: 'POST', headers: { authorization: `Bearer ${slot.token}` } });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error?.message ?? `completing the upload: ${r.status}`);
  uploadState(body.status);
  return body;
}

/**
 * Sends `file` to storage with Uppy: in parts through the session's
 * `endpoint` (its token is the only credential; every part but the last is
 * exactly `part_size` bytes, as the service signs each part for its size),
 * or in one PUT to `upload_url`. Offline, the upload pauses; back online it
 * resumes: Uppy lists the parts storage already has and sends only the
 * others. Other failures are retried a few times, then reported.
 */
function send(file, type, slot) {
  const multipart = Boolean(slot.multipart);
  // For the page and the browser test: `sent`/`bytesSent`/`attempts` are what went out (see the
  // XMLHttpRequest watch above; more than `size` is what a cut cost), `stored` the parts storage
  // confirmed, `pauses` the times the network went away, `retries` the new attempts after a failure,
  // `resumed` whether the upload went on after a pause.
  const u = (demo.upload = {
    mode: multipart ? 'multipart' : 'single', size: file.size, partSize: multipart ? slot.part_size : file.size, parts: multipart ? slot.parts : 1,
    state: 'uploading', bytesUploaded: 0, bytesSent: 0, sent: {}, attempts: [], stored: [],
    offline: false, pauses: 0, retries: 0, resumed: false, errors: [], log: [], done: false,
  });
  const uppy = new Uppy({
    id: `video-${slot.video_id}`,
    autoProceed: false,
    // Uppy's default logger prints every failed attempt as a console error; the page shows its own state.
    logger: { debug: () => {}, warn: () => {}, error: (...a) => u.log.push(a.map(String).join(' ')) },
  });
  if (multipart) {
    uppy.use(AwsS3, { companionEndpoint: slot.endpoint, shouldUseMultipart: true, getChunkSize: () => slot.part_size, limit: 1 });
  } else {
    uppy.use(XHRUpload, { endpoint: slot.url, method: 'PUT', formData: false, headers: slot.headers, limit: 1, getResponseData: () => ({}) });
  }
  const id = uppy.addFile({ name: file.name || 'video', type, data: file, source: 'demo' });
  const say = (text) => ($('video-state').textContent = text);
  const pct = () => Math.floor((u.bytesUploaded / u.size) * 100);
  const partNote = () => (multipart ? ` · part ${Math.min(u.parts, u.stored.length + 1)} of ${u.parts} (${mib(u.partSize)} each)` : '');
  const listeners = new AbortController();
  let failures = 0;
  let failed = false;
  let timer;

  return new Promise((resolve, reject) => {
    const bar = $('video-upload-bar').parentElement;
    const end = (settle, value) => {
      clearTimeout(timer);
      listeners.abort();
      bar.classList.remove('paused');
      setTimeout(() => uppy.destroy()); // once Uppy has finished its own bookkeeping for this upload
      settle(value);
    };
    const pause = () => {
      if (u.done || u.offline) return;
      Object.assign(u, { offline: true, state: 'paused' });
      u.pauses++;
      bar.classList.add('paused');
      say(`paused: offline, will resume (${multipart ? `${u.stored.length} of ${u.parts} parts stored` : `${pct()}% sent; this PUT starts over`})`);
    };
    // Continue after a failure (a new attempt; stored parts are listed, not re-sent).
    const retry = () => {
      clearTimeout(timer);
      if (u.done || !failed || !navigator.onLine) return;
      failed = false;
      u.retries++;
      u.state = 'uploading';
      uppy.retryUpload(id).catch(() => {}); // failures arrive as upload-error
    };
    addEventListener('offline', pause, { signal: listeners.signal });
    addEventListener('online', () => {
      if (u.done || !u.offline) return;
      Object.assign(u, { offline: false, state: 'uploading', resumed: true });
      bar.classList.remove('paused');
      say(`back online: resuming at ${pct()}%${partNote()}`);
      retry(); // when Uppy was only waiting for the network, it goes on by itself
    }, { signal: listeners.signal });

    uppy.on('upload-progress', (_, p) => {
      u.bytesUploaded = p.bytesUploaded;
      $('video-upload-bar').style.width = `${pct()}%`;
      if (!u.offline) say(`uploading to storage: ${pct()}%${partNote()}`);
    });
    uppy.on('s3-multipart:part-uploaded', (_, part) => {
      failures = 0;
      if (!u.stored.includes(part.PartNumber)) u.stored.push(part.PartNumber);
    });
    uppy.on('upload-success', () => {
      Object.assign(u, { done: true, state: 'done', bytesUploaded: u.size, offline: false });
      $('video-upload-bar').style.width = '100%';
      end(resolve);
    });
    uppy.on('upload-error', (_, err) => {
      failed = true;
      u.errors.push(err?.message ?? String(err));
      if (!navigator.onLine) return pause(); // the 'online' event resumes
      if (++failures > MAX_FAILURES) {
        u.state = 'error';
        return end(reject, new Error(`upload failed ${failures} times in a row: ${err?.message ?? err}`));
      }
      say(`upload interrupted (${err?.message ?? err}); retrying…`);
      timer = setTimeout(retry, 500 * 2 ** (failures - 1));
    });
    uppy.upload().catch(() => {});
  });
}

/** Shows a job (a JobView, or one patched from events) and starts playback once it is playable. */
function show(job, note = job.error ?? '') {
  demo.job = job;
  $('video-state').textContent = `${job.status} ${job.progress}%${job.stage && job.stage !== job.status ? ` (${job.stage})` : ''}${job.playable ? ' · playable' : ''}${note ? ` · ${note}` : ''}`;
  $('video-job-bar').style.width = `${job.progress}%`;
  $('video-job-bar').parentElement.setAttribute('aria-valuenow', job.progress);
  if (job.playable && job.playback_url && job.playback_url !== demo.publicPlaybackUrl) {
    demo.publicPlaybackUrl = job.playback_url;
    withToken(job).then(play, (e) => ($('video-state').textContent = `no playback token: ${e.message}`));
  }
}

/**
 * A private video's job with its URLs moved onto a playback token the backend minted
 * (`/hls/t/{token}/…`): its public URLs answer 403. A public video's job as it is.
 */
async function withToken(job) {
  if (!demo.private) return job;
  if (demo.signed?.videoId !== demo.videoId) {
    demo.signed = { videoId: demo.videoId, ...(await backend('POST', '/api/videos/token', { video_id: demo.videoId })) };
  }
  const base = (u) => u.slice(0, u.lastIndexOf('/') + 1);
  const [from, to] = [base(job.playback_url), base(demo.signed.playback_url)];
  const sign = (u) => (typeof u === 'string' && u.startsWith(from) ? to + u.slice(from.length) : u);
  const thumbnails = job.thumbnails && { ...job.thumbnails, poster: sign(job.thumbnails.poster), sprite: sign(job.thumbnails.sprite), vtt: sign(job.thumbnails.vtt) };
  const cover = job.cover && { ...job.cover, jpg: sign(job.cover.jpg), webp: sign(job.cover.webp) };
  const preview = job.preview && { ...job.preview, url: sign(job.preview.url) };
  return { ...job, playback_url: sign(job.playback_url), poster_url: sign(job.poster_url), thumbnails, cover, preview };
}

/**
 * Follows the upload and then its job on the video's public event stream.
 * Resolves with the done JobView, rejects on a final error, a cancel or an
 * upload that ended without a job, or resolves null to poll instead: no
 * EventSource, an error before `connected` (no stream, a buffering proxy), the
 * browser giving up, or 20 s without any event (heartbeats come every 15 s).
 * `close()` on the promise stops following (resolving null).
 */
function follow(url) {
  if (typeof EventSource !== 'function') return Object.assign(Promise.resolve(null), { close() {} });
  demo.transport = 'sse';
  let close;
  const following = new Promise((resolve, reject) => {
    const es = new EventSource(url);
    let connected = false;
    let timer;
    const stop = (settle, value) => { clearTimeout(timer); es.close(); settle(value); };
    close = () => stop(resolve, null);
    const watchdog = () => { clearTimeout(timer); timer = setTimeout(() => stop(resolve, null), 20000); };
    watchdog();
    // After `connected` a dropped stream is reconnected by the EventSource itself, with Last-Event-ID.
    es.onerror = () => (!connected || es.readyState === EventSource.CLOSED) && stop(resolve, null);
    const on = (name, fn) => es.addEventListener(name, (e) => {
      watchdog();
      const data = JSON.parse(e.data);
      demo.events.push({ t: Date.now(), event: name, id: e.lastEventId, data });
      fn(data);
    });
    const patch = (change, note) => show({ ...demo.job, ...change }, note);
    on('connected', (d) => { connected = true; if (d.job) show(d.job); });
    on('heartbeat', () => {});
    on('job:created', () => patch({ status: 'queued', progress: 0, stage: null, error: null }));
    on('job:started', (d) => patch({ status: 'processing' }, d.attempt > 1 ? `attempt ${d.attempt}` : ''));
    on('job:progress', (d) => patch({ status: 'processing', progress: d.progress, stage: d.stage }));
    on('job:playable', (d) => patch({ playable: true, playback_url: d.playbackUrl, poster_url: d.posterUrl }));
    on('job:completed', (d) => { show(d.job); stop(resolve, d.job); });
    on('job:error', (d) => {
      if (!d.final) return patch({ status: 'queued', last_error: d.error }, `retrying… (${d.error})`);
      patch({ status: 'error', error: d.error });
      stop(reject, new Error(d.error));
    });
    on('job:canceled', () => { patch({ status: 'canceled' }); stop(reject, new Error('the job was canceled')); });
    // The upload object's own events (the catalogue's upload.*): its state, and its end when no job comes of it.
    on('upload.created', () => uploadState('waiting'));
    on('upload.asset_created', (d) => uploadState('asset_created', d.data?.job_id ? `job ${d.data.job_id}` : ''));
    for (const [name, status] of [['upload.errored', 'errored'], ['upload.cancelled', 'cancelled'], ['upload.timed_out', 'timed_out']]) {
      on(name, (d) => { uploadState(status, d.data?.error?.message ?? ''); stop(reject, new Error(`the upload ${status.replace('_', ' ')}`)); });
    }
  });
  return Object.assign(following, { close });
}

/** Polls the public status route every second until the job ends. */
async function poll(url) {
  demo.transport = 'poll';
  for (;;) {
    const r = await fetch(url);
    if (r.ok) {
      const job = await r.json();
      demo.events.push({ t: Date.now(), status: job.status, progress: job.progress, playable: job.playable });
      show(job);
      if (job.status === 'done') return job;
      if (job.status === 'error') throw new Error(job.error);
    }
    await sleep(1000);
  }
}

function play(job) {
  const video = $('player');
  if (job.poster_url) video.poster = job.poster_url;
  demo.playbackUrl = job.playback_url;
  if (window.Hls?.isSupported()) {
    demo.hls?.destroy(); // a second upload on the same page
    // With AV1 rungs, prefer them; hls.js keeps to the rungs the browser can decode either way.
    const hls = (demo.hls = new Hls({ startPosition: 0, subtitleDisplay: true, ...(demo.av1 ? { videoPreference: { videoCodec: 'av01' } } : {}) }));
    hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => demo.events.push({ t: Date.now(), levels: data.levels.length }));
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, { level }) => {
      const l = hls.levels[level];
      const rung = l?.url?.[0]?.split('/').at(-2) ?? `${l?.height}p`;
      demo.playing = { rung, codec: l?.videoCodec ?? '' };
      $('playing').textContent = `playing ${rung} (${demo.playing.codec}${l?.videoRange && l.videoRange !== 'SDR' ? `, ${l.videoRange}` : ''})`;
    });
    // The newest caption track the page added, or the first listed (a track is only listed, not shown, until chosen).
    hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, (_, { subtitleTracks }) => {
      if (subtitleTracks.length === 0) return;
      const wanted = subtitleTracks.findIndex((t) => t.lang === demo.captions.at(-1)?.language);
      hls.subtitleTrack = Math.max(wanted, 0);
    });
    hls.on(Hls.Events.ERROR, (_, data) => demo.events.push({ t: Date.now(), error: data.details, fatal: data.fatal }));
    hls.loadSource(job.playback_url);
    hls.attachMedia(video);
  } else {
    video.src = job.playback_url; // Safari plays HLS natively
  }
  video.play().catch(() => {});
}

async function finished(public_job) {
  const job = await withToken(public_job);
  if (demo.private && demo.signed?.download_url) {
    $('download').href = demo.signed.download_url;
    $('download').hidden = false;
  }
  const rows = job.renditions.map((r) => `<tr><td>${r.name}</td><td>${r.width}×${r.height}</td><td>${(r.bandwidth / 1e6).toFixed(2)} Mb/s</td><td>${(r.average_bandwidth / 1e6).toFixed(2)} Mb/s</td><td>${r.codecs}</td></tr>`);
  $('renditions').querySelector('tbody').innerHTML = rows.join('');
  $('renditions').hidden = false;
  if (job.thumbnails) sprite(job.thumbnails, job.duration_s);
  // The cover and the animated preview the upload asked for, as a video card would show them.
  if (job.cover && job.preview) {
    $('cover').src = job.cover.webp;
    $('cover-info').textContent = `${job.cover.width}×${job.cover.height}, the frame at ${job.cover.time_s} s`;
    $('preview').src = job.preview.url;
    $('preview-info').textContent = `${job.preview.format}, ${job.preview.width}×${job.preview.height}, ${job.preview.frames} frames at ${job.preview.fps} fps from ${job.preview.start_s} s`;
    $('extras').hidden = false;
  }
  $('captions').hidden = false;
}

/**
 * A caption file chosen for the done video: the backend posts it with the
 * key; the service checks it (a fault answers with its line) and adds the
 * track to the master, so the player reloads it and shows the new track.
 */
async function addCaptions(file) {
  const language = $('caption-language').value.trim();
  const label = $('caption-label').value.trim();
  const format = /\.srt$/i.test(file.name) || file.type === 'application/x-subrip' ? 'srt' : 'vtt';
  $('caption-state').textContent = `sending ${file.name}…`;
  try {
    const track = await backend('POST', '/api/videos/captions', { video_id: demo.videoId, language, label, format, text: await file.text() });
    demo.captions.push(track);
    $('caption-state').textContent = `track ${track.language}${track.label ? ` (${track.label})` : ''}: ${track.cues} cues, converted from ${track.source_format}`;
    // The master now lists the track; a new query skips the copy the browser kept (2 s).
    const url = new URL(demo.playbackUrl);
    url.searchParams.set('captions', String(demo.captions.length));
    play({ ...demo.job, playback_url: url.href, poster_url: null });
  } catch (e) {
    $('caption-state').textContent = `refused: ${e.message}`;
  }
}

/** Hovering the bar under the player shows the thumbnail of that moment from the sprite. */
function sprite(t, duration) {
  const bar = $('scrubber');
  const preview = $('scrub-preview');
  const m = t.meta;
  bar.hidden = false;
  Object.assign(preview.style, { width: `${m.tile_w}px`, height: `${m.tile_h}px`, backgroundImage: `url(${t.sprite})` });
  bar.onmousemove = (e) => {
    const rect = bar.getBoundingClientRect();
    const at = Math.max(0, Math.min(1, (e.clientX - rect.left) / rect.width)) * duration;
    const i = Math.min(m.count - 1, Math.floor(at / m.interval_s));
    preview.style.backgroundPosition = `-${(i % m.cols) * m.tile_w}px -${Math.floor(i / m.cols) * m.tile_h}px`;
    preview.style.left = `${Math.max(0, Math.min(rect.width - m.tile_w, e.clientX - rect.left - m.tile_w / 2))}px`;
    preview.style.display = 'block';
  };
  bar.onmouseleave = () => (preview.style.display = 'none');
  bar.onclick = (e) => {
    const rect = bar.getBoundingClientRect();
    $('player').currentTime = ((e.clientX - rect.left) / rect.width) * duration;
  };
}

/**
 * What Chromium sends for an `<img>`. The page's own fetch of each image
 * sends it too, so `f=auto` answers that fetch with the format the `<img>`
 * got (a plain fetch accepts anything: that is JPEG or PNG).
 */
const IMAGE_ACCEPT = 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8';
/** The variants shown next to the original and `transform_url`: `<img>` id → options. */
const VARIANTS = { 'image-w320': 'w=320,f=auto', 'image-w640': 'w=640,f=webp' };
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;

/**
 * Shows `url` in `<img id>`, then what it is: its format and bytes (a fetch
 * of the same URL once the image is in, past the browser's cache: the
 * service answers it from its edge cache, not with a second transform) and
 * its pixel size as decoded.
 */
async function showImage(id, url) {
  const img = $(id);
  const loaded = new Promise((resolve, reject) => {
    img.onload = resolve;
    img.onerror = () => reject(new Error(`${url} did not load`));
  });
  img.src = url;
  await loaded;
  const r = await fetch(url, { headers: { accept: IMAGE_ACCEPT }, cache: 'no-store' });
  const bytes = (await r.arrayBuffer()).byteLength;
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  const view = { url, type: r.headers.get('content-type'), bytes, width: img.naturalWidth, height: img.naturalHeight };
  $(`${id}-info`).textContent = `${(view.type ?? '?').replace('image/', '').toUpperCase()} · ${kib(bytes)} · ${view.width}×${view.height} px`;
  return view;
}

async function uploadImage(file) {
  const say = (text) => ($('image-state').textContent = text);
  say('asking for an upload URL…');
  const slot = await backend('POST', '/api/images', { content_type: file.type, size: file.size });
  await put(slot.upload_url, slot.headers, file, (f) => say(`uploading: ${Math.round(f * 100)}%`));
  say('uploaded; checking it…');
  // The backend asks for the image's record: the service checks the upload there (type, size, pixels).
  const meta = await backend('POST', '/api/images/check', { image_id: slot.image_id });
  demo.image = { ...slot, meta, views: {}, ready: false };
  say(`stored as ${slot.key}: ${meta.content_type}, ${meta.width}×${meta.height} px, ${kib(meta.size)}; making the variants…`);
  // A variant's URL is transform_url with other options (its last path segment).
  const variantUrl = (options) => slot.transform_url.replace(/[^/]*$/, options);
  $('image-transformed-options').textContent = slot.transform_url.split('/').pop();
  const shown = { 'image-original': slot.asset_url, 'image-transformed': slot.transform_url };
  for (const [id, options] of Object.entries(VARIANTS)) shown[id] = variantUrl(options);
  for (const id of Object.keys(shown)) $(`${id}-info`).textContent = '…';
  const views = await Promise.all(Object.entries(shown).map(async ([id, url]) => [id, await showImage(id, url)]));
  demo.image.views = Object.fromEntries(views);
  demo.image.ready = true;
  say(`stored as ${slot.key}: ${meta.content_type}, ${meta.width}×${meta.height} px, ${kib(meta.size)}`);
}

/**
 * Operator view: the app's recent jobs from `connected.recent`, kept current by the app's job
 * events, and a feed of the app's catalogue events (uploads, videos, images), newest first.
 */
async function operatorView() {
  const op = demo.operator;
  const tbody = $('operator-jobs').querySelector('tbody');
  const say = (text) => ($('operator-state').textContent = text);
  const trs = new Map();
  const upsert = (videoId, change) => {
    let tr = trs.get(videoId);
    if (!tr) {
      tr = document.createElement('tr');
      tr.innerHTML = '<td></td><td></td><td><div class="bar small"><div></div></div></td><td></td><td></td>';
      tr.cells[0].textContent = videoId;
      tbody.prepend(tr); // new videos on top
      trs.set(videoId, tr);
      op.rows[videoId] = { status: 'queued', progress: 0, stage: null, updatedAt: null };
    }
    const row = Object.assign(op.rows[videoId], change);
    row.updatedAt = change.updatedAt ?? new Date().toISOString();
    tr.cells[1].textContent = row.status;
    tr.cells[1].className = `status-${row.status}`;
    tr.cells[2].firstChild.firstChild.style.width = `${row.progress}%`;
    tr.cells[2].title = `${row.progress}%`;
    tr.cells[3].textContent = row.stage ?? '';
    const at = new Date(row.updatedAt);
    tr.cells[4].textContent = isNaN(at) ? String(row.updatedAt) : at.toLocaleTimeString();
  };
  // What each job event means for a row (the same words as `recent`).
  const changes = {
    'job:created': () => ({ status: 'queued', progress: 0, stage: null }),
    'job:started': () => ({ status: 'processing' }),
    'job:progress': (d) => ({ status: 'processing', progress: d.progress, stage: d.stage }),
    'job:playable': () => ({}),
    'job:completed': () => ({ status: 'done', progress: 100, stage: null }),
    'job:error': (d) => (d.final ? { status: 'error', stage: d.error } : { status: 'queued', stage: `retrying: ${d.error}` }),
    'job:canceled': () => ({ status: 'canceled' }),
  };
  if (typeof EventSource !== 'function') return say('operator view unavailable: this browser has no EventSource');
  // The app's catalogue (media_core::catalogue::EventType): each arrives as its own named SSE event.
  const CATALOGUE = ['upload.created', 'upload.asset_created', 'upload.errored', 'upload.cancelled', 'upload.timed_out',
    'video.created', 'video.playable', 'video.ready', 'video.errored', 'video.canceled', 'video.deleted', 'image.created', 'image.deleted'];
  const feed = $('operator-feed');
  const logEvent = (name, d) => {
    const subject = d.videoId ?? d.data?.video_id ?? d.data?.image_id ?? '';
    op.feed.unshift({ type: name, id: d.id, subject, at: d.created_at ?? new Date().toISOString() });
    op.feed.length = Math.min(op.feed.length, 50);
    const li = document.createElement('li');
    li.innerHTML = '<time></time> <code></code> <span></span>';
    li.children[0].textContent = new Date(d.created_at ?? Date.now()).toLocaleTimeString();
    li.children[1].textContent = name;
    li.children[2].textContent = subject;
    feed.prepend(li);
    while (feed.children.length > 20) feed.lastChild.remove();
  };
  /** Rows from a list of the app's jobs, newest first (`connected.recent`, `reset.jobs`). */
  const rebuild = (jobs) => {
    tbody.replaceChildren();
    trs.clear();
    op.rows = {};
    for (const r of [...jobs].reverse()) upsert(r.videoId, { status: r.status, progress: r.progress ?? 0, stage: r.stage ?? null, updatedAt: r.updatedAt });
  };
  // The page opens the app's /events itself with a stream token from the backend (an EventSource
  // cannot send the API key, and the key never comes here). A token is checked when a stream opens:
  // when the browser's own reconnect is refused (the token expired), ask for a new one and resume
  // from the last event seen.
  let lastId = null;
  let failures = 0;
  const open = async () => {
    let token;
    try {
      token = await backend('POST', '/api/events/token', {});
      op.tokens++;
    } catch (e) {
      say(`operator view unavailable: ${e.message}; retrying…`);
      return setTimeout(open, Math.min(30000, 1000 * 2 ** failures++));
    }
    const url = new URL(token.events_url, config.video_service);
    if (lastId !== null) url.searchParams.set('last_event_id', lastId);
    const es = new EventSource(url);
    const seen = (e) => { if (e.lastEventId) lastId = e.lastEventId; };
    es.onerror = () => {
      op.connected = false;
      if (es.readyState !== EventSource.CLOSED) return say('reconnecting…');
      es.close();
      say('reconnecting with a new stream token…');
      setTimeout(open, Math.min(30000, 1000 * 2 ** failures++));
    };
    es.addEventListener('connected', (e) => {
      seen(e);
      failures = 0;
      // A (re)connect brings the whole list again: start over from it.
      rebuild(JSON.parse(e.data).recent ?? []);
      op.connected = true;
      say('live');
    });
    // Resuming from an id the app no longer keeps: what was missed is gone; `jobs` is the list as it is now.
    es.addEventListener('reset', (e) => {
      seen(e);
      const { jobs = [] } = JSON.parse(e.data);
      op.resets = (op.resets ?? 0) + 1;
      rebuild(jobs);
      logEvent('reset', { created_at: new Date().toISOString(), data: {} });
    });
    for (const [name, change] of Object.entries(changes)) {
      es.addEventListener(name, (e) => {
        seen(e);
        const d = JSON.parse(e.data);
        if (d.videoId) upsert(d.videoId, change(d));
      });
    }
    for (const name of CATALOGUE) {
      es.addEventListener(name, (e) => {
        seen(e);
        logEvent(name, JSON.parse(e.data));
      });
    }
  };
  const config = await backend('GET', '/api/config');
  open();
}

const guard = (el, fn) => async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    await fn(file);
  } catch (err) {
    $(el).textContent = `error: ${err.message}`;
    demo.error = err.message;
  }
};
$('video-file').addEventListener('change', guard('video-state', uploadVideo));
$('image-file').addEventListener('change', guard('image-state', uploadImage));
$('caption-file').addEventListener('change', (e) => {
  const file = e.target.files[0];
  e.target.value = ''; // the same file can be chosen again
  if (file && $('captions').reportValidity()) addCaptions(file);
});
$('captions').addEventListener('submit', (e) => e.preventDefault());
operatorView();
