// End to end: the whole platform on free loopback ports (Garage, both
// Workers in wrangler dev sharing one persist directory, the transcoder,
// the demo), the original README's flows run exactly as it shows them, and
// the demo page in headless Chromium playing the ladder with hls.js, after
// a plain upload and after a resumable one cut off the network mid-way; a
// private, encrypted video played only with a signed token; a video encoded
// as chunks played with its audio group across the chunk boundaries; a
// video with AV1 rungs and a caption track, whose AV1 rung hls.js picks
// when asked to prefer AV1, showing the track's cues.
// Everything started here is stopped here, even when a test fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { startPlatform, ROOT } from '../../devkit/platform.mjs';
import { makeClip, pollJob, postJson, uploadVideo } from '../../devkit/client.mjs';
import { openEvents } from '../../devkit/sse.mjs';
import { avifSize } from '../../devkit/images.mjs';

const ARTIFACTS = join(ROOT, 'tests', 'artifacts');
let p;
let scratch;
let ports = [];

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'e2e-'));
  const bin = process.env.TRANSCODER_BIN ?? join(ROOT, 'target', 'debug', 'transcoder');
  assert.ok(existsSync(bin), `${bin} is missing: build the transcoder first`);
  // Keys imported for playback tokens are kept 1 s, so a revoked key stops at once wherever it is checked.
  // Sources of 20 s and more are chunked (the chunked video's test); every other clip here is shorter.
  const chunks = { CHUNK_FROM_S: '20', CHUNK_S: '6', FIRST_CHUNK_S: '3' };
  p = await startPlatform({ dir: join(scratch, 'platform'), transcoderBin: bin, videoVars: { SIGNING_KEY_CACHE_S: '1', ...chunks }, log: (m) => console.log(`# platform: ${m}`) });
  ports = [p.image, p.video, p.garage.endpoint, p.demo].map((u) => Number(new URL(u).port));
});

after(async () => {
  const pids = p ? p.pids() : [];
  await p?.stop();
  // Nothing left behind: every process gone, every port closed.
  for (const pid of pids) {
    let alive = true;
    try { process.kill(pid, 0); } catch { alive = false; }
    assert.equal(alive, false, `process ${pid} is still running`);
  }
  for (const port of ports) {
    const open = await new Promise((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.on('connect', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    assert.equal(open, false, `port ${port} is still open`);
  }
  rmSync(scratch, { recursive: true, force: true });
});

const clip = (name, { size = '640x360', seconds = 6 } = {}) => makeClip(join(scratch, name), { size, seconds });

/**
 * A short clip made `bytes` long by a trailing `free` box (ISO BMFF readers
 * skip it): big enough for several upload parts, yet cheap to transcode.
 */
function paddedClip(name, bytes, opts) {
  const file = clip(name, opts);
  const video = readFileSync(file);
  const box = Buffer.alloc(bytes - video.length);
  box.writeUInt32BE(box.length, 0);
  box.write('free', 4, 'latin1');
  writeFileSync(file, Buffer.concat([video, box]));
  return file;
}

const launchChromium = async () => (await import('playwright-core')).chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
});

// The README's steps (presign, PUT, notify) and its pollJobStatus loop (every
// 5 s there; every 0.5 s here to keep the test short), from devkit/client.mjs.
async function pollJobStatus(app_id, video_id) {
  const seen = await pollJob(p, app_id, video_id, { timeoutMs: 240000 });
  return { status: seen.at(-1), seen };
}

/** `promise`, or a failure saying `what` after `ms`. */
async function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms); });
  try { return await Promise.race([promise, late]); } finally { clearTimeout(timer); }
}

test('image: presign, browser-style PUT with a CORS preflight, GET the same bytes through /assets/', async () => {
  const png = join(scratch, 'cat.png');
  execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x240', '-frames:v', '1', png]);
  const file = readFileSync(png);
  // `size` is required: the URL is bound to that length and to If-None-Match: *.
  const unsized = await postJson(`${p.image}/generate-image-upload-url`, { app_id: 'yourAppId', image_id: 'yourImageId', content_type: 'image/png' }, p.apiKey);
  assert.equal(unsized.status, 400);
  assert.match(unsized.json.error.message, /^size is required/);
  const res = await postJson(`${p.image}/generate-image-upload-url`, { app_id: 'yourAppId', image_id: 'yourImageId', content_type: 'image/png', size: file.length }, p.apiKey);
  assert.equal(res.status, 200);
  const { upload_url, key, asset_url, transform_url, headers } = res.json;
  assert.equal(key, 'images/yourAppId/yourImageId');
  assert.deepEqual(headers, { 'Content-Type': 'image/png', 'If-None-Match': '*' });
  // What a browser sends first for a cross-origin PUT with these headers.
  const preflight = await fetch(upload_url, {
    method: 'OPTIONS',
    headers: { Origin: 'http://app.example', 'Access-Control-Request-Method': 'PUT', 'Access-Control-Request-Headers': 'content-type,if-none-match' },
  });
  assert.ok(preflight.status === 200 || preflight.status === 204, `preflight ${preflight.status}`);
  assert.ok(['*', 'http://app.example'].includes(preflight.headers.get('access-control-allow-origin')));
  assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /PUT/);
  const put = await fetch(upload_url, { method: 'PUT', headers: { ...headers, Origin: 'http://app.example' }, body: file });
  assert.equal(put.status, 200);
  const got = await fetch(asset_url);
  assert.equal(got.status, 200);
  assert.equal(got.headers.get('content-type'), 'image/png');
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), file);
  // The transform URL answers a variant the service makes (through the Images binding; sharp locally).
  assert.equal((await fetch(transform_url)).status, 200);
});

test('image: server-to-server /upload', async () => {
  const jpg = join(scratch, 'dog.jpg');
  execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=200x100', '-frames:v', '1', jpg]);
  const form = new FormData();
  form.set('app_id', 'yourAppId');
  form.set('file', new Blob([readFileSync(jpg)], { type: 'image/jpeg' }), 'dog.jpg');
  const res = await fetch(`${p.image}/upload`, { method: 'POST', headers: { 'x-api-key': p.apiKey }, body: form });
  assert.equal(res.status, 201);
  const body = await res.json();
  assert.equal(body.width, 200);
  const got = await fetch(body.asset_url);
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), readFileSync(jpg));
});

test('video: presign, PUT, notify, poll until done, play every rung through the playback route', async () => {
  const source = clip('yourVideo.mp4', { size: '1280x720', seconds: 10 });
  const notify = await uploadVideo(p, 'yourAppId', 'yourVideoId', source);
  assert.equal(notify.status, 202);
  // The job's live events (public, like /job-status), followed from right after notify.
  const eventsUrl = `${p.video}/job-events?app_id=yourAppId&video_id=yourVideoId`;
  const live = await openEvents(fetch, eventsUrl);
  try {
    assert.equal(live.status, 200, live.text);
    assert.match(live.headers.get('content-type') ?? '', /^text\/event-stream/);
    // Notifying twice gives one job.
    const again = await uploadVideo(p, 'yourAppId', 'yourVideoId', source);
    assert.equal(again.status, 200);
    assert.equal(again.json.job_id, notify.json.job_id);

    const { status, seen } = await pollJobStatus('yourAppId', 'yourVideoId');
    assert.equal(status.status, 'done', JSON.stringify(status));
    assert.ok(seen.some((s) => s.status === 'processing' && s.progress > 0 && s.progress < 100), `progress seen: ${seen.map((s) => `${s.status}:${s.progress}`).join(' ')}`);

    // The stream tells the job's whole life in order, then ends by itself.
    await within(live.finished, 60000, 'the /job-events stream did not end after job:completed');
    // The job:* story; the catalogue events (issue 25) each follow the job event they announce.
    const announced = live.events.filter((e) => e.event.startsWith('video.')).map((e) => e.event);
    assert.deepEqual(announced, ['video.created', 'video.playable', 'video.ready']);
    const evs = live.events.filter((e) => e.event !== 'heartbeat' && !e.event.startsWith('video.'));
    const names = evs.map((e) => e.event);
    const story = names.join(' ');
    assert.deepEqual(names.slice(0, 4), ['connected', 'job:created', 'job:started', 'job:progress'], story);
    assert.equal(names.at(-1), 'job:completed', story);
    assert.ok(names.slice(3, -1).every((n) => n === 'job:progress' || n === 'job:playable'), story);
    assert.equal(names.filter((n) => n === 'job:playable').length, 1, story);
    assert.ok(evs.every((e) => /^\d+$/.test(e.id ?? '')), `ids: ${evs.map((e) => e.id).join(' ')}`);
    assert.ok(evs.every((e, i) => i === 0 || Number(e.id) > Number(evs[i - 1].id)), `ids: ${evs.map((e) => e.id).join(' ')}`);
    assert.ok(evs.slice(1).every((e) => e.data.jobId === notify.json.job_id), 'every job event names the job');
    assert.ok(evs.filter((e) => e.event === 'job:progress').every((e) => e.data.progress >= 0 && e.data.progress <= 100));
    const completed = evs.at(-1).data;
    assert.equal(completed.job.status, 'done');
    assert.equal(completed.job.playback_url, status.playback_url);
    assert.equal(evs.find((e) => e.event === 'job:playable').data.playbackUrl, status.playback_url);

    // Resuming after job:started replays exactly what came after it, then ends.
    const started = evs.find((e) => e.event === 'job:started');
    const replay = await openEvents(fetch, eventsUrl, { lastEventId: started.id });
    try {
      assert.equal(replay.status, 200, replay.text);
      await within(replay.finished, 30000, 'the replayed /job-events stream did not end');
    } finally {
      replay.close();
    }
    const strip = ({ id, event, data }) => ({ id, event, data });
    const replayed = replay.events.filter((e) => e.event !== 'heartbeat' && !e.event.startsWith('video.'));
    assert.equal(replayed[0]?.event, 'connected');
    assert.deepEqual(replayed.slice(1).map(strip), evs.slice(evs.indexOf(started) + 1).map(strip));
    // Resuming from the last event of an ended job: 204, nothing more (an EventSource stops).
    const end = await fetch(eventsUrl, { headers: { 'last-event-id': live.events.filter((e) => e.event !== 'heartbeat').at(-1).id } });
    assert.equal(end.status, 204);
  } finally {
    live.close();
  }

  const res = await fetch(`${p.video}/playback-url?app_id=yourAppId&video_id=yourVideoId`);
  const { url } = await res.json();
  const master = await (await fetch(url)).text();
  const rungs = master.split('\n').filter((l) => l && !l.startsWith('#'));
  assert.deepEqual([...rungs].sort(), ['240p/index.m3u8', '360p/index.m3u8', '480p/index.m3u8', '720p/index.m3u8']);
  const local = join(scratch, 'fetched');
  for (const rung of rungs) {
    const rungUrl = new URL(rung, url);
    const playlist = await (await fetch(rungUrl)).text();
    const dir = join(local, rung.split('/')[0]);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'index.m3u8'), playlist);
    const files = ['init.mp4', ...playlist.split('\n').filter((l) => l && !l.startsWith('#'))];
    for (const f of files) {
      const r = await fetch(new URL(f, rungUrl));
      assert.equal(r.status, 200, f);
      writeFileSync(join(dir, f), Buffer.from(await r.arrayBuffer()));
    }
    // Every rung decodes, and lasts as long as the source.
    execFileSync('ffmpeg', ['-v', 'error', '-xerror', '-i', join(dir, 'index.m3u8'), '-f', 'null', '-']);
    const d = Number(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', join(dir, 'index.m3u8')]).toString());
    assert.ok(Math.abs(d - 10) < 0.2, `${rung}: ${d} s`);
  }
});

test('a corrupt upload fails its own job with a readable message, and the next job succeeds', async () => {
  const notify = await uploadVideo(p, 'yourAppId', 'broken', randomBytes(200_000));
  assert.equal(notify.status, 202);
  const { status } = await pollJobStatus('yourAppId', 'broken');
  assert.equal(status.status, 'error');
  assert.match(status.error, /not a video file/);
  const pb = await fetch(`${p.video}/playback-url?app_id=yourAppId&video_id=broken`);
  assert.equal(pb.status, 409);
  const next = await uploadVideo(p, 'yourAppId', 'after-broken', clip('after.mp4', { seconds: 3 }));
  assert.equal(next.status, 202);
  assert.equal((await pollJobStatus('yourAppId', 'after-broken')).status.status, 'done');
});

/** A new demo-sized page, with its uncaught errors and console errors collected. */
async function watchedPage(browser) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  const consoleErrors = [];
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(`${m.text()} (${m.location().url})`));
  return { page, problems, consoleErrors };
}

test('browser: the demo page uploads a clip, follows its events, plays the ladder with hls.js, and shows the poster, the cover and the animated preview', async () => {
  const browser = await launchChromium();
  try {
    const { page, problems, consoleErrors } = await watchedPage(browser);
    await page.goto(p.demo);
    // The operator view is live first (its stream shows events from its connection on), then the upload.
    await page.waitForFunction(() => window.demo.operator.connected, null, { timeout: 30000 });
    await page.setInputFiles('#video-file', clip('browser.mp4', { size: '1280x720', seconds: 12 }));
    // Playback starts while the ladder is still encoding; currentTime must advance.
    await page.waitForFunction(() => window.demo.hls && document.getElementById('player').currentTime > 1.5, null, { timeout: 180000 });
    const state = await page.evaluate(() => ({ levels: window.demo.hls.levels.map((l) => `${l.width}x${l.height}`), time: document.getElementById('player').currentTime, events: window.demo.events }));
    assert.deepEqual([...state.levels].sort(), ['1280x720', '426x240', '640x360', '852x480'].sort(), JSON.stringify(state));
    const t1 = state.time;
    await page.waitForTimeout(1500);
    const t2 = await page.evaluate(() => document.getElementById('player').currentTime);
    assert.ok(t2 > t1, `currentTime did not advance (${t1} -> ${t2})`);
    await page.waitForFunction(() => window.demo.job?.status === 'done', null, { timeout: 180000 });
    assert.ok(await page.evaluate(() => document.getElementById('player').poster.endsWith('poster.jpg')));
    assert.equal(await page.evaluate(() => document.getElementById('renditions').hidden), false);
    // The cover and the animated preview the page asks for by default, decoded by Chromium (WebP both).
    await page.waitForFunction(() => document.getElementById('cover').naturalWidth === 1280 && document.getElementById('preview').naturalWidth === 320, null, { timeout: 30000 });
    const extras = await page.evaluate(() => ({ cover: window.demo.job.cover, preview: window.demo.job.preview, shown: !document.getElementById('extras').hidden }));
    assert.deepEqual([extras.shown, extras.cover.time_s, extras.preview.format, extras.preview.frames, extras.preview.height], [true, 1, 'webp', 30, 180], JSON.stringify(extras));
    // The page followed the job on its event stream, not by polling.
    const followed = await page.evaluate(() => ({ transport: window.demo.transport, names: window.demo.events.map((e) => e.event).filter(Boolean) }));
    assert.equal(followed.transport, 'sse', JSON.stringify(followed));
    assert.ok(followed.names.includes('job:playable') && followed.names.includes('job:completed'), followed.names.join(' '));
    // The operator view (the app's stream through the demo backend) shows the job done.
    await page.waitForFunction(() => window.demo.operator.rows[window.demo.videoId]?.status === 'done', null, { timeout: 30000 });
    assert.equal(await page.evaluate(() => window.demo.operator.connected), true);
    // The upload object the backend created (POST /uploads) went waiting -> asset_created, as its upload.*
    // events and GET /uploads/{id} showed it; the app's live feed (the page's own EventSource on /events,
    // with a stream token the backend minted) carried the video's catalogue events.
    assert.deepEqual(await page.evaluate(() => window.demo.uploadObject.seen), ['waiting', 'asset_created']);
    await page.waitForFunction(() => window.demo.operator.feed.some((e) => e.type === 'video.ready' && e.subject === window.demo.videoId), null, { timeout: 30000 });
    const feed = await page.evaluate(() => window.demo.operator.feed.filter((e) => e.subject === window.demo.videoId).map((e) => e.type));
    for (const type of ['upload.created', 'upload.asset_created', 'video.created', 'video.playable', 'video.ready']) assert.ok(feed.includes(type), `${type} not in the feed: ${feed}`);
    assert.ok(await page.evaluate(() => window.demo.operator.tokens >= 1));
    // The image half of the page: straight to storage, then shown from /assets/ and the transform URL.
    const png = join(scratch, 'page.png');
    execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=480x270', '-frames:v', '1', png]);
    await page.setInputFiles('#image-file', png);
    await page.waitForFunction(() => ['image-original', 'image-transformed'].every((id) => document.getElementById(id).naturalWidth === 480), null, { timeout: 30000 });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'demo-playing.png'), fullPage: true });
    // A clip of 5 MiB or less goes in one presigned PUT (Uppy's XHR uploader), then plays like any other.
    const first = await page.evaluate(() => window.demo.videoId);
    await page.setInputFiles('#video-file', clip('small.mp4', { size: '320x180', seconds: 2 }));
    await page.waitForFunction((before) => window.demo.videoId !== before && window.demo.job?.status === 'done', first, { timeout: 120000 });
    const small = await page.evaluate(() => ({ mode: window.demo.upload.mode, attempts: window.demo.upload.attempts.length, sent: window.demo.upload.bytesSent, size: window.demo.upload.size }));
    assert.deepEqual([small.mode, small.attempts, small.sent], ['single', 1, small.size], JSON.stringify(small));
    assert.deepEqual(problems, []);
    assert.deepEqual(consoleErrors, [], `the page's stream events: ${await page.evaluate(() => window.demo.events.filter((e) => e.event).map((e) => `${e.id}:${e.event}`).join(' '))}`);
  } finally {
    await browser.close();
  }
});

test('browser: the demo page uploads an image and shows transform_url and two variants the service made, each made once', async (t) => {
  const jpg = join(scratch, 'photo.jpg');
  execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=1600x1200', '-frames:v', '1', '-q:v', '3', jpg]);
  const browser = await launchChromium();
  try {
    const { page, problems, consoleErrors } = await watchedPage(browser);
    // What Chromium asked the image service for its variants, and how each was answered.
    const isVariant = (url) => /^\/images\/[^/]+\/[^/]+\/[^/]+$/.test(new URL(url).pathname);
    const asked = [];
    page.on('request', async (r) => {
      if (!isVariant(r.url())) return;
      const entry = { url: r.url(), type: r.resourceType() };
      asked.push(entry);
      entry.accept = (await r.allHeaders()).accept; // as sent: Chromium sets an <img>'s Accept in its network layer
    });
    const answered = [];
    page.on('response', (r) => isVariant(r.url()) && answered.push({ url: r.url(), status: r.status(), source: r.headers()['x-image-variant'] ?? null }));
    const t0 = Date.now();
    await page.goto(p.demo);
    await page.setInputFiles('#image-file', jpg);
    await page.waitForFunction(() => window.demo.image?.ready || window.demo.error, null, { timeout: 15000 });
    const { image, error } = await page.evaluate(() => ({ image: window.demo.image, error: window.demo.error }));
    assert.equal(error, undefined);
    assert.deepEqual([image.meta.content_type, image.meta.width, image.meta.height, image.meta.size], ['image/jpeg', 1600, 1200, readFileSync(jpg).length]);
    const v = image.views;
    const seen = (id) => [v[id].type, v[id].width, v[id].height];
    assert.deepEqual([...seen('image-original'), v['image-original'].bytes], ['image/jpeg', 1600, 1200, readFileSync(jpg).length]);
    // transform_url is w=1280,q=85,f=auto: 1280 px is over AVIF's 1200 px side, so WebP for Chromium.
    assert.match(v['image-transformed'].url, /\/w=1280,q=85,f=auto$/);
    assert.deepEqual(seen('image-transformed'), ['image/webp', 1280, 960]);
    assert.deepEqual(seen('image-w320'), ['image/avif', 320, 240]);
    assert.deepEqual(seen('image-w640'), ['image/webp', 640, 480]);
    for (const id of ['image-transformed', 'image-w320', 'image-w640']) assert.ok(v[id].bytes > 0 && v[id].bytes < v['image-original'].bytes, `${id}: ${v[id].bytes} B`);
    // The shown sizes are on the page.
    assert.match(await page.textContent('#image-w320-info'), /^AVIF · [\d.]+ KiB · 320×240 px$/);

    // The same URLs fetched with the Accept Chromium sent for the <img>: the same bytes' format and
    // size, checked with ffprobe, and answered without a transform (edge cache or stored object).
    const imgAccept = asked.find((a) => a.type === 'image')?.accept;
    assert.match(imgAccept ?? '', /image\/avif/, JSON.stringify(asked));
    const expected = { 'image-transformed': ['webp', 1280, 960], 'image-w320': ['av1', 320, 240], 'image-w640': ['webp', 640, 480] };
    for (const [id, [codec, width, height]] of Object.entries(expected)) {
      const r = await fetch(v[id].url, { headers: { accept: imgAccept } });
      assert.equal(r.status, 200, id);
      assert.ok(['edge', 'stored'].includes(r.headers.get('x-image-variant')), `${id}: x-image-variant ${r.headers.get('x-image-variant')}`);
      assert.equal(r.headers.get('content-type'), v[id].type);
      const bytes = Buffer.from(await r.arrayBuffer());
      assert.equal(bytes.length, v[id].bytes, `${id}: the bytes the page was served`);
      const file = join(scratch, `${id}.${codec === 'av1' ? 'avif' : 'webp'}`);
      writeFileSync(file, bytes);
      // (stderr ignored: ffprobe 5.1 warns about AVIF's item boxes it does not read.)
      const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,height', '-of', 'json', file], { stdio: ['ignore', 'pipe', 'ignore'] }).toString()).streams[0];
      assert.equal(probe.codec_name, codec, `${id}: ${JSON.stringify(probe)}`);
      const size = codec === 'av1' ? avifSize(bytes) : probe;
      assert.deepEqual([size.width, size.height], [width, height], `${id}: ${JSON.stringify(probe)}`);
    }
    // Each variant was made once: one `created` answer per URL, every other one from the edge cache or storage.
    const story = answered.map((a) => `${a.url.split('/').pop()}:${a.status}:${a.source}`).join(' ');
    for (const id of Object.keys(expected)) {
      const mine = answered.filter((a) => a.url === v[id].url);
      assert.ok(mine.every((a) => a.status === 200 || a.status === 304), story);
      assert.equal(mine.filter((a) => a.source === 'created').length, 1, story);
      assert.ok(mine.every((a) => ['created', 'edge', 'stored'].includes(a.source)), story);
    }
    assert.deepEqual(problems, []);
    assert.deepEqual(consoleErrors, []);
    const took = Date.now() - t0;
    t.diagnostic(`page to checks done: ${took} ms; bytes: ${Object.entries(v).map(([id, x]) => `${id} ${x.type} ${x.width}x${x.height} ${x.bytes} B`).join(', ')}; answers: ${story}`);
    assert.ok(took < 20000, `${took} ms`);
  } finally {
    await browser.close();
  }
});

test('browser: a resumable upload cut off the network mid-way resumes without re-sending the stored parts, then plays', async (t) => {
  const MIB = 1024 * 1024;
  const PART = 16 * MIB; // the service's default part size (the session says; checked below)
  const source = paddedClip('resumable.mp4', 3 * PART + 4 * MIB, { size: '640x360', seconds: 8 });
  const size = readFileSync(source).length;
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 1000 } });
    const page = await context.newPage();
    // Loopback moves a 16 MiB part in milliseconds: slow uploads to 8 MiB/s so the cut lands inside a part,
    // with parts still to send. The conditions this session sets are the ones the page's requests get, so
    // the cut takes it offline too (with setOffline, which also turns navigator.onLine false).
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const conditions = (offline, uploadThroughput = -1) => cdp.send('Network.emulateNetworkConditions', { offline, latency: 0, downloadThroughput: -1, uploadThroughput });
    await conditions(false, 8 * MIB);
    const problems = [];
    page.on('pageerror', (e) => problems.push(e.message));
    // Every PUT of a part to storage, seen from outside the page.
    const puts = [];
    const byRequest = new Map();
    let cutAt = null;
    let listings = 0;
    page.on('request', (r) => {
      // Uppy resuming after a failure asks which parts storage has: GET .../s3/multipart/{uploadId}?key=
      if (r.method() === 'GET' && /\/s3\/multipart\/[^/]+\?key=/.test(r.url())) listings++;
      const part = r.method() === 'PUT' && new URL(r.url()).searchParams.get('partNumber');
      if (!part) return;
      const put = { part: Number(part), afterCut: cutAt !== null, status: null, failure: null };
      puts.push(put);
      byRequest.set(r, put);
    });
    page.on('response', (res) => byRequest.has(res.request()) && (byRequest.get(res.request()).status = res.status()));
    page.on('requestfailed', (r) => byRequest.has(r) && (byRequest.get(r).failure = r.failure()?.errorText ?? 'failed'));

    await page.goto(p.demo);
    await page.setInputFiles('#video-file', source);
    // Uppy sends a file's parts one after the other: part 1 is stored once part 2 is under way. Cut then.
    // (Chromium's emulated offline refuses new requests but lets one under way finish: part 2 completes,
    // the next call fails, and back online Uppy lists the parts storage has and sends only the rest.)
    await page.waitForFunction(() => (window.demo.upload?.sent[2] ?? 0) >= 4 * 1048576, null, { timeout: 60000, polling: 50 });
    await Promise.all([context.setOffline(true), conditions(true)]);
    cutAt = Date.now();
    const sentAtCut = await page.evaluate(() => ({ ...window.demo.upload.sent }));
    const storedAtCut = puts.filter((x) => x.status === 200).map((x) => x.part);
    await page.waitForFunction(() => window.demo.upload?.state === 'paused', null, { timeout: 10000 });
    const pausedText = await page.textContent('#video-state');
    assert.match(pausedText, /paused: offline, will resume/);
    await page.waitForTimeout(2000);
    await Promise.all([context.setOffline(false), conditions(false)]);
    await page.waitForFunction(() => window.demo.upload?.done, null, { timeout: 120000 });
    const u = await page.evaluate(() => window.demo.upload);

    assert.equal(u.mode, 'multipart');
    assert.equal(u.size, size);
    assert.equal(u.partSize, PART, 'the session plans 16 MiB parts');
    assert.ok(u.parts >= 3, `${u.parts} parts`);
    assert.ok(storedAtCut.length >= 1 && storedAtCut.length < u.parts, `parts stored at the cut: ${storedAtCut} of ${u.parts}`);
    assert.equal(u.resumed, true);
    assert.ok(u.pauses >= 1);
    // Every part stored exactly once; the ones stored before the cut were never PUT again.
    const story = puts.map((x) => `${x.part}:${x.status ?? x.failure}${x.afterCut ? '(after cut)' : ''}`).join(' ');
    for (let n = 1; n <= u.parts; n++) {
      assert.equal(puts.filter((x) => x.part === n && x.status === 200).length, 1, `part ${n}: ${story}`);
    }
    for (const n of storedAtCut) assert.equal(puts.filter((x) => x.part === n).length, 1, `part ${n} was sent again: ${story}`);
    assert.ok(puts.some((x) => x.afterCut && x.status === 200), `nothing was sent after the cut: ${story}`);
    // What the page pushed in all, and so what the cut cost: at most the part in flight.
    const resent = u.bytesSent - u.size;
    t.diagnostic(`${u.parts} parts of ${u.partSize} B (${size} B); stored at the cut: ${storedAtCut.join(',')}; sent at the cut: ${JSON.stringify(sentAtCut)}; PUTs: ${story}`);
    t.diagnostic(`bytes re-sent after the cut: ${resent} (${(resent / MIB).toFixed(2)} MiB); sent per part: ${JSON.stringify(u.sent)}; retries ${u.retries}, pauses ${u.pauses}, listings of stored parts ${listings}; errors seen: ${JSON.stringify(u.errors)}`);
    assert.ok(resent >= 0 && resent <= u.partSize, `re-sent ${resent} bytes`);
    for (const n of storedAtCut) assert.equal(u.sent[n], n < u.parts ? u.partSize : u.size - u.partSize * (u.parts - 1), `part ${n} sent once`);

    // Then the job runs as after any upload, and plays.
    await page.waitForFunction(() => window.demo.hls && document.getElementById('player').currentTime > 1.5, null, { timeout: 180000 });
    const t1 = await page.evaluate(() => document.getElementById('player').currentTime);
    await page.waitForTimeout(1500);
    const t2 = await page.evaluate(() => document.getElementById('player').currentTime);
    assert.ok(t2 > t1, `currentTime did not advance (${t1} -> ${t2})`);
    await page.waitForFunction(() => window.demo.job?.status === 'done', null, { timeout: 180000 });
    assert.equal(await page.evaluate(() => window.demo.job.duration_s > 7.5), true);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('browser: a dashboard on another origin reads the app stream with a stream token its backend minted, never the key', async () => {
  const browser = await launchChromium();
  try {
    const { page, problems, consoleErrors } = await watchedPage(browser);
    const requests = [];
    const answers = [];
    page.on('request', (r) => new URL(r.url()).pathname === '/events' && requests.push({ url: r.url(), headers: r.headers() }));
    page.on('response', (r) => new URL(r.url()).pathname === '/events' && answers.push({ status: r.status(), cors: r.headers()['access-control-allow-origin'] }));
    // A bare document served by the demo's backend (its origin, not the video service's; only the
    // backend holds the key). Served for real: Chromium lets only a page it loaded from a loopback
    // address reach the loopback services (Local Network Access), not a page the test fulfils itself.
    await page.goto(`${p.demo}/api/config`);
    const token = await page.evaluate(async () => {
      const minted = await (await fetch('/api/events/token', { method: 'POST', body: '{}' })).json();
      const dash = (window.dash = { events: [], errors: 0 });
      const es = new EventSource(minted.events_url);
      es.onerror = () => dash.errors++;
      const names = ['connected', 'reset', 'job:created', 'job:started', 'job:progress', 'job:playable', 'job:completed', 'video.created', 'video.playable', 'video.ready'];
      for (const name of names) es.addEventListener(name, (e) => dash.events.push({ event: name, id: e.lastEventId, data: JSON.parse(e.data) }));
      return minted;
    });
    assert.match(token.token ?? '', /^st1\./, `the demo backend's answer: ${JSON.stringify(token)}`);
    assert.notEqual(new URL(token.events_url).origin, new URL(p.demo).origin, 'a cross-origin stream');
    await page.waitForFunction(() => window.dash.errors > 0 || window.dash.events.some((e) => e.event === 'connected'), null, { timeout: 30000 });
    const opened = await page.evaluate(() => ({ errors: window.dash.errors, names: window.dash.events.map((e) => e.event) }));
    assert.deepEqual(opened, { errors: 0, names: ['connected'] }, JSON.stringify({ token, requests, answers, problems, consoleErrors }));
    // A real upload of the demo's app (presign, PUT, notify), transcoded by the transcoder.
    const videoId = `dash-${randomBytes(3).toString('hex')}`;
    assert.equal((await uploadVideo(p, 'demo', videoId, clip('dash.mp4', { seconds: 3 }))).status, 202);
    await page.waitForFunction((v) => window.dash.events.some((e) => e.event === 'job:completed' && e.data.videoId === v), videoId, { timeout: 180000 });
    const seen = await page.evaluate((v) => window.dash.events.filter((e) => e.data.videoId === v).map((e) => e.event), videoId);
    for (const name of ['job:created', 'job:started', 'job:playable', 'job:completed', 'video.ready']) assert.ok(seen.includes(name), `${name} in ${seen.join(' ')}`);
    const dash = await page.evaluate(() => ({ errors: window.dash.errors, ids: window.dash.events.filter((e) => e.event !== 'connected').map((e) => Number(e.id)) }));
    assert.equal(dash.errors, 0, 'one stream, never dropped');
    assert.ok(dash.ids.every((id, i) => i === 0 || id > dash.ids[i - 1]), `ids rise: ${dash.ids}`);
    // The stream was opened with the token, never the key, and the browser could read it (CORS).
    assert.equal(requests.length, 1, JSON.stringify(requests));
    assert.ok(requests[0].url.includes(`stream_token=${token.token}`), requests[0].url);
    assert.equal(requests[0].headers['x-api-key'], undefined);
    assert.deepEqual(answers, [{ status: 200, cors: '*' }]);
    assert.deepEqual(problems, []);
    // (The bare document has no icon: Chromium's own favicon request is the one 404.)
    assert.deepEqual(consoleErrors.filter((m) => !m.includes('/favicon.ico')), []);
  } finally {
    await browser.close();
  }
});

/** The master playlist at `url` played by hls.js in `page` (a bare document of the demo's origin):
 * `{ played: true, time }` once currentTime passes 1 s, or `{ played: false, status, details }` on a
 * fatal error. */
async function playWithHls(page, url) {
  return page.evaluate(async (src) => {
    const video = document.createElement('video');
    video.muted = true;
    document.body.append(video);
    const hls = new window.Hls({ manifestLoadingMaxRetry: 0, levelLoadingMaxRetry: 0, fragLoadingMaxRetry: 0, keyLoadingMaxRetry: 0 });
    try {
      return await new Promise((resolve) => {
        hls.on(window.Hls.Events.ERROR, (_, d) => {
          if (d.fatal) resolve({ played: false, status: d.response?.code ?? d.networkDetails?.status, details: d.details });
        });
        video.addEventListener('timeupdate', () => { if (video.currentTime > 1) resolve({ played: true, time: video.currentTime }); });
        hls.loadSource(src);
        hls.attachMedia(video);
        hls.on(window.Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
      });
    } finally {
      hls.destroy();
      video.remove();
    }
  }, url);
}

test('browser: a private, encrypted video plays only with a signed token; expiry and a revoked key stop new plays; its MP4 download opens in ffprobe', async () => {
  const { SignJWT, importPKCS8 } = await import('jose');
  const app_id = 'demo';
  const video_id = `private-${randomBytes(3).toString('hex')}`;
  const key = await postJson(`${p.video}/signing-keys`, { app_id, alg: 'RS256' }, p.apiKey);
  assert.equal(key.status, 201, key.text);
  // Uploaded with the playback options: signed URLs, AES-128 segments, an MP4 download.
  const file = clip('private.mp4', { seconds: 6 });
  const bytes = readFileSync(file);
  const presign = await postJson(`${p.video}/generate-upload-url`, { app_id, video_id, content_type: 'video/mp4', size: bytes.length }, p.apiKey);
  assert.equal((await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body: bytes })).status, 200);
  const notify = await postJson(`${p.video}/notify-upload-complete`, {
    app_id, video_id, raw_key: presign.json.raw_key, content_type: 'video/mp4',
    require_signed_urls: true, encryption: 'aes-128', download: true,
  }, p.apiKey);
  assert.equal(notify.status, 202, notify.text);
  const { status } = await pollJobStatus(app_id, video_id);
  assert.equal(status.status, 'done', JSON.stringify(status));
  const privateKey = await importPKCS8(key.json.pem, 'RS256');
  const sign = (claims, expSeconds) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: key.json.id, typ: 'JWT' })
    .setSubject(video_id).setExpirationTime(Math.floor(Date.now() / 1000) + expSeconds).sign(privateKey);
  const signedMaster = (token) => `${p.video}/hls/t/${token}/master.m3u8`;
  // Its public route and /playback-url refuse it, saying how to get a token.
  const pub = await fetch(`${p.video}/hls/${app_id}/${video_id}/${status.output_id}/master.m3u8`);
  assert.equal(pub.status, 403);
  assert.equal((await pub.json()).error.code, 'signed_url_required');
  const playback = await fetch(`${p.video}/playback-url?app_id=${app_id}&video_id=${video_id}`);
  assert.equal(playback.status, 403);

  const browser = await launchChromium();
  try {
    const { page, problems } = await watchedPage(browser);
    const keyAnswers = [];
    page.on('response', (r) => new URL(r.url()).pathname.endsWith('/key') && keyAnswers.push({ status: r.status(), cacheControl: r.headers()['cache-control'] }));
    await page.goto(`${p.demo}/api/config`);
    await page.addScriptTag({ url: `${p.demo}/vendor/hls.min.js` });
    // Without a token: refused.
    const refused = await playWithHls(page, `${p.video}/hls/${app_id}/${video_id}/${status.output_id}/master.m3u8`);
    assert.deepEqual([refused.played, refused.status], [false, 403], JSON.stringify(refused));
    // With one: plays, decrypting every segment with the key the key route gave (never cached).
    const played = await playWithHls(page, signedMaster(await sign({}, 120)));
    assert.equal(played.played, true, JSON.stringify(played));
    assert.ok(keyAnswers.length >= 1 && keyAnswers.every((k) => k.status === 200 && k.cacheControl === 'no-store'), JSON.stringify(keyAnswers));
    // A token past its exp: refused.
    const shortLived = await sign({}, 2);
    await new Promise((r) => setTimeout(r, 3500));
    const expired = await playWithHls(page, signedMaster(shortLived));
    assert.deepEqual([expired.played, expired.status], [false, 401], JSON.stringify(expired));
    // The MP4 download, with a downloadable token: a progressive file with audio and video.
    const mp4 = await fetch(`${p.video}/download?token=${await sign({ downloadable: true }, 120)}`);
    assert.equal(mp4.status, 200);
    assert.match(mp4.headers.get('content-disposition') ?? '', /attachment/);
    const saved = join(scratch, 'download.mp4');
    writeFileSync(saved, Buffer.from(await mp4.arrayBuffer()));
    const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', saved], { encoding: 'utf8' }));
    assert.deepEqual(probe.streams.map((s) => s.codec_type).sort(), ['audio', 'video']);
    // Revoking the key stops new plays (within SIGNING_KEY_CACHE_S, set to 1 s for this platform).
    const revoked = await fetch(`${p.video}/signing-keys/${key.json.id}?app_id=${app_id}`, { method: 'DELETE', headers: { 'x-api-key': p.apiKey } });
    assert.equal(revoked.status, 200, await revoked.text());
    await new Promise((r) => setTimeout(r, 1500));
    const afterRevoke = await playWithHls(page, signedMaster(await sign({}, 120)));
    assert.deepEqual([afterRevoke.played, afterRevoke.status], [false, 401], JSON.stringify(afterRevoke));
    assert.deepEqual(problems.filter((m) => !/ 40[13] /.test(m)), []);
  } finally {
    await browser.close();
  }
});

test('browser: the demo page uploads a private video and plays it through a token its backend minted, with a download link', async () => {
  const browser = await launchChromium();
  try {
    const { page, problems } = await watchedPage(browser);
    const hlsUrls = [];
    page.on('request', (r) => new URL(r.url()).pathname.startsWith('/hls/') && hlsUrls.push(new URL(r.url()).pathname));
    await page.goto(p.demo);
    await page.check('#private-video');
    await page.setInputFiles('#video-file', clip('private-demo.mp4', { seconds: 4 }));
    await page.waitForFunction(() => window.demo.hls && document.getElementById('player').currentTime > 1, null, { timeout: 180000 });
    await page.waitForFunction(() => window.demo.job?.status === 'done' && !document.getElementById('download').hidden, null, { timeout: 180000 });
    // Every HLS file the page asked for went through the token route; none through the public one.
    assert.ok(hlsUrls.length > 0 && hlsUrls.every((u) => u.startsWith('/hls/t/')), hlsUrls.join(' '));
    assert.ok(hlsUrls.some((u) => u.endsWith('/key')), 'the AES-128 key was fetched');
    const link = await page.evaluate(() => document.getElementById('download').href);
    assert.match(link, /\/download\?token=/);
    const mp4 = await fetch(link);
    assert.equal(mp4.status, 200);
    assert.match(mp4.headers.get('content-disposition') ?? '', /attachment/);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('browser: a video encoded as chunks plays in hls.js with its audio group, from the start and from a seek into its last chunk', async () => {
  const app_id = 'demo';
  const video_id = `chunked-${randomBytes(3).toString('hex')}`;
  const seconds = 24; // over the platform's CHUNK_FROM_S: planned as chunks of 3, 6, 6, 6, 3 s
  const file = clip('chunked.mp4', { seconds });
  await uploadVideo(p, app_id, video_id, file);
  const { status } = await pollJobStatus(app_id, video_id);
  assert.equal(status.status, 'done', JSON.stringify(status));
  const master = await (await fetch(status.playback_url)).text();
  assert.match(master, /#EXT-X-MEDIA:TYPE=AUDIO,[^\n]*URI="audio\//, master);
  assert.match(master, /AUDIO="[^"]+"/, master);

  const browser = await launchChromium();
  try {
    const { page, problems } = await watchedPage(browser);
    await page.goto(`${p.demo}/api/config`);
    await page.addScriptTag({ url: `${p.demo}/vendor/hls.min.js` });
    const played = await page.evaluate(async ({ src, seekTo }) => {
      const video = document.createElement('video');
      video.muted = true;
      document.body.append(video);
      const hls = new window.Hls({ manifestLoadingMaxRetry: 0, levelLoadingMaxRetry: 0, fragLoadingMaxRetry: 0 });
      const until = (check) => new Promise((resolve, reject) => {
        hls.on(window.Hls.Events.ERROR, (_, d) => d.fatal && reject(new Error(`${d.type} ${d.details} ${d.response?.code ?? ''}`)));
        const tick = () => (check() ? resolve() : setTimeout(tick, 50));
        tick();
      });
      try {
        hls.loadSource(src);
        hls.attachMedia(video);
        hls.on(window.Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
        // From the start past the first chunk boundary (3 s).
        await until(() => video.currentTime > 4);
        const fromStart = video.currentTime;
        // Then from a seek into the last chunk, to within a second of the end.
        video.currentTime = seekTo;
        await until(() => video.currentTime > seekTo + 1.5);
        return { fromStart, afterSeek: video.currentTime, duration: video.duration, audioTracks: hls.audioTracks.length, audioBytes: video.webkitAudioDecodedByteCount };
      } finally {
        hls.destroy();
        video.remove();
      }
    }, { src: status.playback_url, seekTo: seconds - 3 });
    assert.ok(played.fromStart > 4 && played.afterSeek > seconds - 1.5, JSON.stringify(played));
    assert.ok(Math.abs(played.duration - seconds) < 0.5, `duration ${played.duration}`);
    assert.ok(played.audioTracks >= 1 && played.audioBytes > 0, `audio: ${JSON.stringify(played)}`);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('browser: the demo page asks for an AV1 rung and plays it, then adds an SRT caption track that shows (a faulty file refused by its line); hls.js falls back to H.264 where AV1 is not decoded', async () => {
  const browser = await launchChromium();
  try {
    const { page, problems, consoleErrors } = await watchedPage(browser);
    await page.goto(p.demo);
    await page.check('#av1-video');
    await page.uncheck('#extras-video');
    await page.setInputFiles('#video-file', clip('av1.mp4', { seconds: 12 }));
    await page.waitForFunction(() => window.demo.job?.status === 'done' && !document.getElementById('captions').hidden, null, { timeout: 240000 });
    // The page's player prefers AV1 (videoPreference) and says which rung plays.
    await page.waitForFunction(() => /^av01\./.test(window.demo.playing?.codec ?? '') && document.getElementById('player').currentTime > 1, null, { timeout: 60000 });
    const playing = await page.evaluate(() => ({ ...window.demo.playing, line: document.getElementById('playing').textContent, levels: window.demo.hls.levels.map((l) => l.videoCodec) }));
    assert.match(playing.rung, /-av1$/, JSON.stringify(playing));
    assert.match(playing.line, /^playing \d+p-av1 \(av01\./, JSON.stringify(playing));
    assert.ok(playing.levels.some((c) => c.startsWith('avc1.')), `H.264 rungs are listed too: ${playing.levels}`);
    // A faulty file: refused with its line, nothing added.
    const bad = join(scratch, 'bad.vtt');
    writeFileSync(bad, 'WEBVTT\n\n00:00:03.000 --> 00:00:02.000\nbackwards\n');
    await page.setInputFiles('#caption-file', bad);
    await page.waitForFunction(() => document.getElementById('caption-state').textContent.startsWith('refused:'), null, { timeout: 30000 });
    assert.match(await page.evaluate(() => document.getElementById('caption-state').textContent), /line 3: the cue ends \(00:00:02\.000\) before it starts \(00:00:03\.000\)/);
    // An SRT file: converted, added to the master, shown by the reloaded player.
    const srt = join(scratch, 'captions.srt');
    writeFileSync(srt, '1\n00:00:00,000 --> 00:00:11,500\nCaptions from the <b>platform</b>\n');
    await page.setInputFiles('#caption-file', srt);
    await page.waitForFunction(() => document.getElementById('caption-state').textContent.startsWith('track en (English): 1 cues'), null, { timeout: 30000 });
    const showing = () => [...document.getElementById('player').textTracks].find((t) => t.language === 'en' && t.mode === 'showing');
    await page.waitForFunction(`(${showing})()?.activeCues?.length > 0`, null, { timeout: 60000 });
    const shown = await page.evaluate(`(() => { const t = (${showing})(); return { cue: t.activeCues[0].text, tracks: window.demo.hls.subtitleTracks.map((s) => s.lang + ':' + s.name), codec: window.demo.playing.codec }; })()`);
    assert.deepEqual(shown.tracks, ['en:English']);
    assert.equal(shown.cue, 'Captions from the <b>platform</b>');
    assert.match(shown.codec, /^av01\./, 'still the AV1 rung after the reload');
    // The same master where the browser reports no AV1 decoder: hls.js plays an H.264 rung.
    const src = await page.evaluate(() => window.demo.job.playback_url);
    const fallback = await browser.newPage();
    await fallback.addInitScript(() => {
      const supported = MediaSource.isTypeSupported.bind(MediaSource);
      MediaSource.isTypeSupported = (type) => !/av01/.test(type) && supported(type);
    });
    await fallback.goto(`${p.demo}/api/config`);
    await fallback.addScriptTag({ url: `${p.demo}/vendor/hls.min.js` });
    const fell = await fallback.evaluate(async (url) => {
      const video = document.createElement('video');
      video.muted = true;
      document.body.append(video);
      const hls = new window.Hls({ videoPreference: { videoCodec: 'av01' } });
      hls.loadSource(url);
      hls.attachMedia(video);
      hls.on(window.Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
      const limit = Date.now() + 60000;
      while (video.currentTime <= 1 && Date.now() < limit) await new Promise((r) => setTimeout(r, 50));
      const codecs = hls.levels.map((l) => l.videoCodec);
      return { time: video.currentTime, codec: hls.levels[hls.currentLevel]?.videoCodec, codecs };
    }, src);
    assert.ok(fell.time > 1, JSON.stringify(fell));
    assert.match(fell.codec, /^avc1\./, JSON.stringify(fell));
    assert.ok(fell.codecs.every((c) => !c.startsWith('av01')), `hls.js dropped the AV1 rungs: ${fell.codecs}`);
    assert.deepEqual(problems, []);
    assert.deepEqual(consoleErrors.filter((m) => !/status of 400/.test(m)), []);
  } finally {
    await browser.close();
  }
});
