// End to end: the whole platform on free loopback ports (Garage, both
// Workers in wrangler dev sharing one persist directory, the transcoder,
// the demo), the original README's flows run exactly as it shows them, and
// the demo page in headless Chromium playing the ladder with hls.js.
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

const ARTIFACTS = join(ROOT, 'tests', 'artifacts');
let p;
let scratch;
let ports = [];

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'e2e-'));
  const bin = process.env.TRANSCODER_BIN ?? join(ROOT, 'target', 'debug', 'transcoder');
  assert.ok(existsSync(bin), `${bin} is missing: build the transcoder first`);
  p = await startPlatform({ dir: join(scratch, 'platform'), transcoderBin: bin, log: (m) => console.log(`# platform: ${m}`) });
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
  const res = await postJson(`${p.image}/generate-image-upload-url`, { app_id: 'yourAppId', image_id: 'yourImageId', content_type: 'image/png' }, p.apiKey);
  assert.equal(res.status, 200);
  const { upload_url, key, asset_url, transform_url } = res.json;
  assert.equal(key, 'images/yourAppId/yourImageId');
  // What a browser sends first for a cross-origin PUT with a Content-Type.
  const preflight = await fetch(upload_url, {
    method: 'OPTIONS',
    headers: { Origin: 'http://app.example', 'Access-Control-Request-Method': 'PUT', 'Access-Control-Request-Headers': 'content-type' },
  });
  assert.ok(preflight.status === 200 || preflight.status === 204, `preflight ${preflight.status}`);
  assert.ok(['*', 'http://app.example'].includes(preflight.headers.get('access-control-allow-origin')));
  assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /PUT/);
  const put = await fetch(upload_url, { method: 'PUT', headers: { 'Content-Type': 'image/png', Origin: 'http://app.example' }, body: file });
  assert.equal(put.status, 200);
  const got = await fetch(asset_url);
  assert.equal(got.status, 200);
  assert.equal(got.headers.get('content-type'), 'image/png');
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), file);
  // Locally the transform URL serves the original (production resizes at the edge).
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
    const evs = live.events.filter((e) => e.event !== 'heartbeat');
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
    const replayed = replay.events.filter((e) => e.event !== 'heartbeat');
    assert.equal(replayed[0]?.event, 'connected');
    assert.deepEqual(replayed.slice(1).map(strip), evs.slice(evs.indexOf(started) + 1).map(strip));
    // Resuming from the last event of an ended job: 204, nothing more (an EventSource stops).
    const end = await fetch(eventsUrl, { headers: { 'last-event-id': evs.at(-1).id } });
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

test('browser: the demo page uploads a clip, follows its events, plays the ladder with hls.js, and shows the poster', async () => {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
    const problems = [];
    page.on('pageerror', (e) => problems.push(e.message));
    const consoleErrors = [];
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(`${m.text()} (${m.location().url})`));
    await page.goto(p.demo);
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
    // The page followed the job on its event stream, not by polling.
    const followed = await page.evaluate(() => ({ transport: window.demo.transport, names: window.demo.events.map((e) => e.event).filter(Boolean) }));
    assert.equal(followed.transport, 'sse', JSON.stringify(followed));
    assert.ok(followed.names.includes('job:playable') && followed.names.includes('job:completed'), followed.names.join(' '));
    // The operator view (the app's stream through the demo backend) shows the job done.
    await page.waitForFunction(() => window.demo.operator.rows[window.demo.videoId]?.status === 'done', null, { timeout: 30000 });
    assert.equal(await page.evaluate(() => window.demo.operator.connected), true);
    // The image half of the page: straight to storage, then shown from /assets/ and the transform URL.
    const png = join(scratch, 'page.png');
    execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=480x270', '-frames:v', '1', png]);
    await page.setInputFiles('#image-file', png);
    await page.waitForFunction(() => ['image-original', 'image-transformed'].every((id) => document.getElementById(id).naturalWidth === 480), null, { timeout: 30000 });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'demo-playing.png'), fullPage: true });
    assert.deepEqual(problems, []);
    assert.deepEqual(consoleErrors, [], `the page's stream events: ${await page.evaluate(() => window.demo.events.filter((e) => e.event).map((e) => `${e.id}:${e.event}`).join(' '))}`);
  } finally {
    await browser.close();
  }
});
