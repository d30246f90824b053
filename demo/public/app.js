// The browser side of the demo: presigned uploads straight to storage, job
// polling on the public route, HLS playback with hls.js, the poster and the
// thumbnail sprite. `window.demo` exposes state for the browser test.
const $ = (id) => document.getElementById(id);
const demo = (window.demo = { job: null, hls: null, playbackUrl: null, events: [] });

async function backend(method, path, body) {
  const r = await fetch(path, { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  const json = await r.json();
  if (!r.ok) throw new Error(json.error?.message ?? `${path}: ${r.status}`);
  return json;
}

/** PUT with upload progress (fetch cannot report it). */
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

async function uploadVideo(file) {
  const type = file.type || 'video/mp4';
  $('video-state').textContent = 'asking for an upload URL…';
  const slot = await backend('POST', '/api/videos', { content_type: type, size: file.size });
  await put(slot.upload_url, slot.headers, file, (f) => {
    $('video-upload-bar').style.width = `${Math.round(f * 100)}%`;
    $('video-state').textContent = `uploading to storage: ${Math.round(f * 100)}%`;
  });
  $('video-state').textContent = 'uploaded; starting the job…';
  let job = await backend('POST', '/api/videos/start', { video_id: slot.video_id, raw_key: slot.raw_key, content_type: type });
  const statusUrl = `${slot.video_service}/job-status?app_id=${slot.app_id}&video_id=${slot.video_id}`;
  let started = false;
  for (;;) {
    demo.job = job;
    demo.events.push({ t: Date.now(), status: job.status, progress: job.progress, playable: job.playable });
    $('video-state').textContent = `${job.status} ${job.progress}%${job.stage ? ` (${job.stage})` : ''}${job.playable ? ' · playable' : ''}${job.error ? ` · ${job.error}` : ''}`;
    if (job.playable && !started) {
      started = true;
      play(job);
    }
    if (job.status === 'done') return finished(job);
    if (job.status === 'error') throw new Error(job.error);
    await sleep(1000);
    job = await (await fetch(statusUrl)).json();
  }
}

function play(job) {
  const video = $('player');
  if (job.poster_url) video.poster = job.poster_url;
  demo.playbackUrl = job.playback_url;
  if (window.Hls?.isSupported()) {
    const hls = (demo.hls = new Hls({ startPosition: 0 }));
    hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => demo.events.push({ t: Date.now(), levels: data.levels.length }));
    hls.on(Hls.Events.ERROR, (_, data) => demo.events.push({ t: Date.now(), error: data.details, fatal: data.fatal }));
    hls.loadSource(job.playback_url);
    hls.attachMedia(video);
  } else {
    video.src = job.playback_url; // Safari plays HLS natively
  }
  video.play().catch(() => {});
}

function finished(job) {
  const rows = job.renditions.map((r) => `<tr><td>${r.name}</td><td>${r.width}×${r.height}</td><td>${(r.bandwidth / 1e6).toFixed(2)} Mb/s</td><td>${(r.average_bandwidth / 1e6).toFixed(2)} Mb/s</td><td>${r.codecs}</td></tr>`);
  $('renditions').querySelector('tbody').innerHTML = rows.join('');
  $('renditions').hidden = false;
  if (job.thumbnails) sprite(job.thumbnails, job.duration_s);
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

async function uploadImage(file) {
  $('image-state').textContent = 'asking for an upload URL…';
  const slot = await backend('POST', '/api/images', { content_type: file.type, size: file.size });
  await put(slot.upload_url, slot.headers, file, (f) => ($('image-state').textContent = `uploading: ${Math.round(f * 100)}%`));
  $('image-state').textContent = `stored as ${slot.key}`;
  $('image-original').src = slot.asset_url;
  $('image-transformed').src = slot.transform_url;
  demo.image = slot;
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
