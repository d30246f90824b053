// The transcoder binary against the real video service (workerd, through
// Miniflare on a loopback port) and a real Garage: a job is leased,
// heartbeated, published and completed; a job whose lease is taken away
// stops; SIGTERM takes an idle transcoder's long poll back (withdraw), hands
// a running job back (released: no attempt spent) and exits 0, a second one stops at once; a completion whose answer is lost or
// slow is retried under heartbeats; a lease that runs out without a
// heartbeat getting through stops the work; a source replaced after notify,
// or larger than the work disk, is refused; stale spools are removed; after
// a refused heartbeat no output lands in storage any more.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer, request as httpRequest } from 'node:http';
import { mkdtempSync, mkdirSync, rmSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGarage } from '../../devkit/garage.mjs';
import { freePort, waitFor } from '../../devkit/ports.mjs';
import { videoService, client, API_KEY } from '../workers/harness.mjs';
import { BIN, spawnTranscoder } from './stack.mjs';
import { startSentrySink } from '../../devkit/sentry-sink.mjs';
import { makeClip } from '../../devkit/client.mjs';
import { s3 } from '../../devkit/sigv4.mjs';

let garage, mf, api, base, scratch;
const transcoders = new Set();

before(async () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: cargo build -p transcoder first`);
  scratch = mkdtempSync(join(tmpdir(), 'runner-'));
  garage = await startGarage({ dir: join(scratch, 'garage') });
  const port = await freePort();
  mf = await videoService({ store: garage, backend: 's3', vars: { LEASE_TTL_MS: '3000', RETRY_BACKOFF_MS: '300' }, port });
  base = `http://127.0.0.1:${port}`;
  api = client(mf, base);
});

after(async () => {
  for (const t of transcoders) await t.stop();
  await mf?.dispose();
  await garage?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** Starts the transcoder binary (stack.mjs's `spawnTranscoder`), stopped after the tests. */
function startTranscoder(name, env = {}, wrap = []) {
  const t = spawnTranscoder({ base, garage, scratch, name, env, wrap });
  t.child.on('exit', () => transcoders.delete(t));
  transcoders.add(t);
  return t;
}

/** Makes a clip with ffmpeg's lavfi sources, uploads it with a presigned URL and notifies. */
/** Uploads a clip (`file`, or one made now) as `video` and notifies; the job is queued. */
async function submit(video, { size = '640x360', seconds = 4, file } = {}) {
  const body = readFileSync(file ?? makeClip(join(scratch, `${video}.mp4`), { size, seconds }));
  const presign = await api.post('/generate-upload-url', { app_id: 'runner', video_id: video, content_type: 'video/mp4', size: body.length }, { key: API_KEY, headers: ip() });
  assert.equal(presign.status, 200, presign.text);
  const put = await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body });
  assert.equal(put.status, 200);
  const notify = await api.post('/notify-upload-complete', { app_id: 'runner', video_id: video, raw_key: presign.json.raw_key, content_type: 'video/mp4' }, { key: API_KEY, headers: ip() });
  assert.equal(notify.status, 202, notify.text);
  return notify.json;
}
let n = 0;
const ip = () => ({ 'cf-connecting-ip': `10.9.0.${++n}` });
const status = async (video) => (await api.get(`/job-status?app_id=runner&video_id=${video}`)).json;

/** Polls until `pred(status)`, recording every status seen. */
async function until(video, pred, timeoutMs = 120000) {
  const seen = [];
  await waitFor(`${video} to reach the expected state`, async () => {
    const s = await status(video);
    seen.push(s);
    return pred(s);
  }, timeoutMs);
  return seen;
}

test('a job is leased, heartbeated, published as it goes and completed', async () => {
  const t = startTranscoder('main');
  await submit('clip1', { size: '1280x720', seconds: 8 });
  const seen = await until('clip1', (s) => s.status === 'done' || s.status === 'error');
  const done = seen.at(-1);
  assert.equal(done.status, 'done', JSON.stringify(done));
  const processing = seen.filter((s) => s.status === 'processing');
  assert.ok(processing.length > 0, 'seen processing on the way');
  assert.ok(processing.some((s) => s.progress > 0 && s.progress < 100 && s.heartbeat), JSON.stringify(processing.map((s) => [s.progress, s.stage])));
  assert.ok(seen.some((s) => s.status === 'processing' && s.playable), 'playable before done');
  assert.equal(done.progress, 100);
  assert.ok(Math.abs(done.duration_s - 8) < 0.1, `duration ${done.duration_s}`);
  assert.deepEqual(done.renditions.map((r) => `${r.name}:${r.width}x${r.height}`), ['720p:1280x720', '480p:852x480', '360p:640x360', '240p:426x240']);
  assert.equal(done.thumbnails.meta.count, 8);
  // Everything it advertises is served by the HLS route.
  const master = await fetch(done.playback_url);
  assert.equal(master.status, 200);
  const text = await master.text();
  for (const r of done.renditions) {
    assert.match(text, new RegExp(`RESOLUTION=${r.width}x${r.height}`));
    const playlist = await (await fetch(r.url)).text();
    assert.match(playlist, /#EXT-X-ENDLIST/);
    const seg = await fetch(new URL('00000.m4s', r.url));
    assert.equal(seg.status, 200);
    assert.equal(seg.headers.get('content-type'), 'video/iso.segment');
  }
  for (const url of [done.thumbnails.poster, done.thumbnails.sprite, done.thumbnails.vtt]) assert.equal((await fetch(url)).status, 200, url);
  const logs = t.logs();
  assert.match(logs, /"message":"job started"/);
  assert.match(logs, /"message":"playable"/);
  assert.match(logs, /"message":"job done"/);
  assert.match(logs, /"job_id":"job_/, 'logs carry the job span');
  await t.stop();
});

test('a transcoder whose lease is taken away stops working on the job', async () => {
  const t = startTranscoder('sleepy');
  await submit('stolen', { size: '1920x1080', seconds: 12 });
  await until('stolen', (s) => s.status === 'processing' && s.progress > 1, 60000);
  // Freeze it past its 3 s lease; the alarm re-queues the job and someone else takes it.
  t.child.kill('SIGSTOP');
  await until('stolen', (s) => s.status === 'queued' && s.attempts === 1, 20000);
  let thief = null;
  await waitFor('the re-queued job', async () => {
    const r = await api.internal('/internal/jobs/lease', { worker: 'thief', wait_ms: 1000 });
    thief = r.json.job;
    return thief?.video_id === 'stolen';
  }, 20000);
  assert.equal(thief.attempt, 2);
  t.child.kill('SIGCONT');
  await waitFor('the frozen transcoder to notice', async () => /lease lost/.test(t.logs()), 30000);
  // Keep the thief's lease alive for a while: the old transcoder must not complete or fail it.
  for (let i = 0; i < 6; i++) {
    const hb = await api.internal(`/internal/jobs/${thief.job_id}/heartbeat`, { lease_id: thief.lease_id, progress: 10 + i, stage: 'thief' });
    assert.equal(hb.status, 200, hb.text);
    await new Promise((r) => setTimeout(r, 500));
  }
  const s = await status('stolen');
  assert.equal(s.status, 'processing');
  assert.equal(s.stage, 'thief');
  assert.equal(s.attempts, 2);
  // It goes back to work on new jobs. The thief keeps its 3 s lease alive
  // meanwhile: on a slow machine this takes longer than the lease, and an
  // expired lease sent the job to the next test's transcoder, which then was
  // not idle.
  const keepAlive = setInterval(() => {
    api.internal(`/internal/jobs/${thief.job_id}/heartbeat`, { lease_id: thief.lease_id, progress: 20, stage: 'thief' }).catch(() => {});
  }, 500);
  try {
    await submit('after-steal');
    const after = (await until('after-steal', (x) => x.status === 'done' || x.status === 'error')).at(-1);
    assert.equal(after.status, 'done', JSON.stringify(after));
  } finally {
    clearInterval(keepAlive);
  }
  const failed = await api.internal(`/internal/jobs/${thief.job_id}/fail`, { lease_id: thief.lease_id, message: 'test over', retryable: false });
  assert.equal(failed.status, 200, `the stolen job ends here, not in the next test: ${failed.text}`);
  const exit = await t.stop();
  assert.equal(exit.code, 0);
});

test('SIGTERM hands a running job back and exits 0; idle, it exits at once', async () => {
  // The late job's clip is made first: making it (ffmpeg) inside the timed
  // stop took over 5 s on a loaded machine, which is not the transcoder's time.
  const lateClip = makeClip(join(scratch, 'late-arrival.mp4'), { seconds: 2 });
  // A long long-poll, so the stop surely lands while one is open.
  const idle = startTranscoder('idle', { LEASE_WAIT_MS: '20000' });
  await new Promise((r) => setTimeout(r, 1000));
  const started = Date.now();
  const stopping = idle.stop();
  // It takes its open long poll back (POST /internal/jobs/withdraw), so a
  // job arriving just after is not leased to a process that is gone: it
  // waits, queued, with no attempt spent.
  await new Promise((r) => setTimeout(r, 100));
  await submit('late-arrival', { file: lateClip });
  assert.deepEqual(await stopping, { code: 0, signal: null });
  assert.ok(Date.now() - started < 5000, 'an idle transcoder stops promptly');
  const late = await status('late-arrival');
  assert.equal(late.status, 'queued', JSON.stringify(late));
  assert.equal(late.attempts, 0, 'never leased: no attempt used');
  assert.match(idle.logs(), /took back the waiting lease request/);
  assert.doesNotMatch(idle.logs(), /job leased|job started/, 'nothing was leased to it after the signal');

  const t = startTranscoder('busy', { SHUTDOWN_GRACE_S: '1' });
  await submit('handed-back', { size: '1920x1080', seconds: 20 });
  await until('handed-back', (s) => s.status === 'processing' && s.progress > 1, 60000);
  const exit = await t.stop();
  assert.equal(exit.code, 0, t.logs().slice(-2000));
  const s = await status('handed-back');
  assert.equal(s.status, 'queued', JSON.stringify(s));
  assert.equal(s.attempts, 0, 'released, not failed: handing back costs no attempt');
  assert.match(t.logs(), /handing the job back/);
  assert.match(t.logs(), /gave the job back/);
  // Another transcoder picks it up and finishes it, on its first attempt.
  const next = startTranscoder('next');
  const done = (await until('handed-back', (x) => x.status === 'done' || x.status === 'error', 180000)).at(-1);
  assert.equal(done.status, 'done', JSON.stringify(done));
  assert.equal(done.attempts, 1);
  await next.stop();
});

test('a second SIGTERM stops at once', async () => {
  const t = startTranscoder('impatient', { SHUTDOWN_GRACE_S: '60' });
  await submit('second-signal', { size: '1920x1080', seconds: 20 });
  await until('second-signal', (s) => s.status === 'processing' && s.progress > 1, 60000);
  const exited = new Promise((resolve) => t.child.once('exit', (code, signal) => resolve({ code, signal })));
  t.child.kill('SIGTERM');
  await waitFor('the first signal to be taken', async () => /shutdown requested/.test(t.logs()), 5000);
  const started = Date.now();
  t.child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 130, signal: null });
  assert.ok(Date.now() - started < 3000, `stopped ${Date.now() - started} ms after the second signal`);
  assert.match(t.logs(), /second shutdown signal/);
  // Its lease runs out and another transcoder finishes the job.
  const next = startTranscoder('after-impatient');
  const done = (await until('second-signal', (x) => x.status === 'done' || x.status === 'error', 180000)).at(-1);
  assert.equal(done.status, 'done', JSON.stringify(done));
  await next.stop();
});

/** A proxy in front of the video service whose answers a test can spoil. */
async function startProxy(spoil) {
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    const forward = () => fetch(base + req.url, { method: req.method, headers: { 'content-type': req.headers['content-type'] ?? 'application/json', authorization: req.headers.authorization ?? '' }, body: req.method === 'GET' ? undefined : body });
    try {
      const r = await spoil(req, forward);
      const text = await r.text();
      res.writeHead(r.status, { 'content-type': 'application/json' });
      res.end(text);
    } catch {
      res.writeHead(502).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}
const spoiled = (status) => new Response(JSON.stringify({ error: { code: 'unavailable', message: 'spoiled by the test' } }), { status });

test('a completion that is slow or loses its answer is retried under heartbeats and counts once', async () => {
  let firstComplete = 0;
  const calls = { complete: 0, forwarded: 0, heartbeatsWhileCompleting: 0 };
  const proxy = await startProxy(async (req, forward) => {
    if (req.url.endsWith('/complete')) {
      calls.complete++;
      firstComplete ||= Date.now();
      // Unavailable for longer than the 3 s lease...
      if (Date.now() - firstComplete < 5000) return spoiled(503);
      calls.forwarded++;
      const r = await forward();
      // ...then the first one that gets through commits, but its answer is lost.
      return calls.forwarded === 1 ? spoiled(502) : r;
    }
    if (req.url.endsWith('/heartbeat') && firstComplete) calls.heartbeatsWhileCompleting++;
    return forward();
  });
  try {
    const t = startTranscoder('completer', { VIDEO_SERVICE_URL: proxy.url });
    await submit('slow-complete', { seconds: 3 });
    const done = (await until('slow-complete', (x) => x.status === 'done' || x.status === 'error', 120000)).at(-1);
    assert.equal(done.status, 'done', JSON.stringify(done));
    await waitFor('the transcoder to log the end', async () => /"message":"job (done|failed)"|lease lost/.test(t.logs()), 30000);
    assert.equal(done.attempts, 1, 'the lease held while the completion was retried');
    assert.ok(calls.forwarded >= 2, JSON.stringify(calls));
    assert.ok(calls.heartbeatsWhileCompleting >= 2, `heartbeats went on while completing: ${JSON.stringify(calls)}`);
    assert.match(t.logs(), /"message":"job done"/);
    assert.doesNotMatch(t.logs(), /lease lost/);
    await t.stop();
  } finally {
    await proxy.close();
  }
});

test('a lease that runs out before a heartbeat gets through stops the work', async () => {
  let blockHeartbeats = false;
  const proxy = await startProxy(async (req, forward) => (blockHeartbeats && req.url.endsWith('/heartbeat') ? spoiled(503) : forward()));
  try {
    const t = startTranscoder('cut-off', { VIDEO_SERVICE_URL: proxy.url });
    await submit('cut-off', { size: '1920x1080', seconds: 20 });
    await until('cut-off', (s) => s.status === 'processing' && s.progress > 1, 60000);
    blockHeartbeats = true;
    const cut = Date.now();
    await waitFor('the transcoder to stop on its own clock', async () => /the lease ran out before a heartbeat got through/.test(t.logs()), 15000);
    assert.ok(Date.now() - cut < 8000, `stopped ${Date.now() - cut} ms after heartbeats stopped getting through (lease 3 s)`);
    blockHeartbeats = false;
    await t.stop();
  } finally {
    await proxy.close();
  }
  await api.post('/cancel-job', { app_id: 'runner', video_id: 'cut-off' }, { key: API_KEY, headers: ip() });
});

test('a source replaced after notify is refused, never mixed; re-notified while queued, the new one is read', async () => {
  const body = readFileSync(makeClip(join(scratch, 'replaced-a.mp4'), { seconds: 2 }));
  const presign = await api.post('/generate-upload-url', { app_id: 'runner', video_id: 'replaced', content_type: 'video/mp4', size: body.length }, { key: API_KEY, headers: ip() });
  assert.equal((await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body })).status, 200);
  const notify = await api.post('/notify-upload-complete', { app_id: 'runner', video_id: 'replaced', raw_key: presign.json.raw_key, content_type: 'video/mp4' }, { key: API_KEY, headers: ip() });
  assert.equal(notify.status, 202, notify.text);
  // Another file of the same size under the same key, before any transcoder reads it.
  const other = Buffer.from(body);
  other.fill(0x41, other.length - 4096);
  assert.equal((await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body: other })).status, 200);
  // A corrected file uploaded and notified again while the job still waits:
  // the same job takes the new file (200, nothing re-queued).
  const fixedBody = readFileSync(makeClip(join(scratch, 'reuploaded.mp4'), { seconds: 3 }));
  const fixedUrl = await api.post('/generate-upload-url', { app_id: 'runner', video_id: 'reuploaded', content_type: 'video/mp4', size: body.length }, { key: API_KEY, headers: ip() });
  assert.equal((await fetch(fixedUrl.json.upload_url, { method: 'PUT', headers: fixedUrl.json.headers, body })).status, 200);
  const first = await api.post('/notify-upload-complete', { app_id: 'runner', video_id: 'reuploaded', raw_key: fixedUrl.json.raw_key, content_type: 'video/mp4' }, { key: API_KEY, headers: ip() });
  assert.equal(first.status, 202, first.text);
  const again = await api.post('/generate-upload-url', { app_id: 'runner', video_id: 'reuploaded', content_type: 'video/mp4', size: fixedBody.length }, { key: API_KEY, headers: ip() });
  assert.equal((await fetch(again.json.upload_url, { method: 'PUT', headers: again.json.headers, body: fixedBody })).status, 200);
  const second = await api.post('/notify-upload-complete', { app_id: 'runner', video_id: 'reuploaded', raw_key: again.json.raw_key, content_type: 'video/mp4' }, { key: API_KEY, headers: ip() });
  assert.equal(second.status, 200, second.text);
  assert.equal(second.json.job_id, first.json.job_id, 'the same job');

  const t = startTranscoder('replaced');
  const end = (await until('replaced', (x) => x.status === 'done' || x.status === 'error', 60000)).at(-1);
  assert.equal(end.status, 'error', JSON.stringify(end));
  assert.match(end.error, /replaced after it was notified/);
  const fixed = (await until('reuploaded', (x) => x.status === 'done' || x.status === 'error', 60000)).at(-1);
  assert.equal(fixed.status, 'done', JSON.stringify(fixed));
  assert.ok(Math.abs(fixed.duration_s - 3) < 0.1, `the re-uploaded 3 s file was transcoded, not the 2 s one: ${fixed.duration_s}`);
  await t.stop();
});

test('an upload deleted after notify fails the job for good, found by the first ranged read (no HEAD before it)', async () => {
  const body = readFileSync(makeClip(join(scratch, 'deleted.mp4'), { seconds: 2 }));
  const presign = await api.post('/generate-upload-url', { app_id: 'runner', video_id: 'deleted', content_type: 'video/mp4', size: body.length }, { key: API_KEY, headers: ip() });
  assert.equal((await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body })).status, 200);
  const notify = await api.post('/notify-upload-complete', { app_id: 'runner', video_id: 'deleted', raw_key: presign.json.raw_key, content_type: 'video/mp4' }, { key: API_KEY, headers: ip() });
  assert.equal(notify.status, 202, notify.text);
  assert.equal((await s3(garage, 'DELETE', presign.json.raw_key)).status, 204);
  const t = startTranscoder('deleted');
  const end = (await until('deleted', (x) => x.status === 'done' || x.status === 'error', 60000)).at(-1);
  await t.stop();
  assert.equal(end.status, 'error', JSON.stringify(end));
  assert.equal(end.attempts, 1, 'not retried: nothing would change');
  // The public text is the upload's generic one (a message naming storage is not shown).
  assert.match(end.error, /the upload could not be processed/);
  assert.match(t.logs(), /the upload is no longer in storage/);
  assert.doesNotMatch(t.logs(), /storage HEAD/);
});

test('the work disk: stale spools are removed at start, a source larger than the disk is retried elsewhere', async () => {
  const work = join(scratch, 'disk-work');
  mkdirSync(join(work, 'job_killed_earlier'), { recursive: true });
  writeFileSync(join(work, 'job_killed_earlier', 'source-42.spool'), Buffer.alloc(1 << 20));
  writeFileSync(join(work, 'keep-me.txt'), 'not a spool');
  const cleaner = startTranscoder('cleaner', { WORK_DIR: work });
  await waitFor('start-up', async () => /removed stale source spools/.test(cleaner.logs()), 10000);
  assert.ok(!existsSync(join(work, 'job_killed_earlier')), 'the stale spool and its folder are gone');
  assert.ok(existsSync(join(work, 'keep-me.txt')), 'nothing else is touched');
  await cleaner.stop();

  // A 2 MB work disk of its own (a tmpfs in a private mount namespace).
  const tiny = join(scratch, 'tiny-work');
  mkdirSync(tiny, { recursive: true });
  const t = startTranscoder('tiny-disk', { WORK_DIR: tiny }, ['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c', `mount -t tmpfs -o size=2m tmpfs ${tiny} && exec "$0" "$@"`]);
  await submit('too-big-for-disk', { seconds: 2 });
  await waitFor('the refusal', async () => /work disk \(WORK_DIR\) has \d+ MB free/.test(t.logs()), 60000);
  assert.match(t.logs(), /"retryable":true/);
  const s = await status('too-big-for-disk');
  assert.notEqual(s.status, 'error', 'our disk is not the upload\'s fault');
  await t.stop();
  const healthy = startTranscoder('roomy');
  const done = (await until('too-big-for-disk', (x) => x.status === 'done' || x.status === 'error', 120000)).at(-1);
  assert.equal(done.status, 'done', JSON.stringify(done));
  await healthy.stop();
});

test('a job past its wall-clock limit ends with a readable error', async () => {
  const t = startTranscoder('deadline', { JOB_TIME_LIMIT_S: '2' });
  await submit('too-slow', { size: '1920x1080', seconds: 20 });
  const end = (await until('too-slow', (x) => x.status === 'done' || x.status === 'error', 60000)).at(-1);
  assert.equal(end.status, 'error', JSON.stringify(end));
  assert.match(end.error, /time limit/);
  await t.stop();
});

test('storage trouble is retryable and reported to Sentry; a healthy transcoder then finishes the job', async () => {
  const sentry = await startSentrySink();
  try {
    const broken = startTranscoder('no-storage', { S3_ENDPOINT: 'http://127.0.0.1:1', TRANS_SENTRY_DSN: sentry.dsn });
    await submit('storage-down');
    await waitFor('the storage failure', async () => /storage GET raw\/runner\/storage-down\/source\.mp4/.test(broken.logs()), 60000);
    const s = (await until('storage-down', (x) => !!x.last_error, 30000)).at(-1);
    assert.equal(s.status, 'queued', 'retryable: queued again, not failed');
    // The detail (a storage key, the connection error) goes to logs and Sentry, not to the public.
    assert.equal(s.last_error, 'processing failed on our side; it will be retried');
    await waitFor('the Sentry event', () => sentry.received.length > 0, 10000);
    const event = sentry.received[0].event;
    assert.equal(event.tags.service, 'transcoder');
    assert.match(event.exception.values[0].value, /storage/);
    assert.match(event.request.url, /^job:job_/);
    assert.equal((await broken.stop()).code, 0);
    const healthy = startTranscoder('healthy');
    const done = (await until('storage-down', (x) => x.status === 'done' || x.status === 'error')).at(-1);
    assert.equal(done.status, 'done', JSON.stringify(done));
    assert.ok(done.attempts >= 2);
    await healthy.stop();
  } finally {
    await sentry.close();
  }
});

/** A proxy in front of Garage that can hold the transcoder's output uploads
 *  (PUTs under `hls/`): a held request is forwarded once released, unless
 *  the transcoder gave up on it (closed its connection) first. */
async function startStorageProxy(target) {
  const state = { hold: false, held: new Set(), forwardedAfter: [], since: Infinity, prefix: null };
  const forward = (req, res, body) => {
    // Only the stopped attempt's outputs count (the job may be leased again later, with a new output prefix).
    if (req.method === 'PUT' && Date.now() >= state.since && state.prefix && req.url.startsWith(state.prefix)) state.forwardedAfter.push(req.url);
    const url = new URL(req.url, target);
    const up = httpRequest(url, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    up.end(body);
  };
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    const output = req.method === 'PUT' && /\/hls\//.test(req.url);
    if (!(output && state.hold)) return forward(req, res, body);
    state.prefix ??= req.url.split('/').slice(0, 6).join('/');
    const held = { release: () => { state.held.delete(held); if (!res.destroyed && !res.writableEnded && !req.socket.destroyed) forward(req, res, body); } };
    state.held.add(held);
    req.socket.on('close', () => state.held.delete(held));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    state,
    release: () => { state.hold = false; for (const h of [...state.held]) h.release(); },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

test('after a refused heartbeat nothing more lands in storage: queued and in-flight uploads are dropped', async () => {
  let refuse = false;
  const service = await startProxy(async (req, forward) => (refuse && req.url.endsWith('/heartbeat')
    ? new Response(JSON.stringify({ error: { code: 'lease_lost', message: 'refused by the test' } }), { status: 409 })
    : forward()));
  const storage = await startStorageProxy(garage.endpoint);
  try {
    const t = startTranscoder('refused', { VIDEO_SERVICE_URL: service.url, S3_ENDPOINT: storage.url });
    await submit('refused', { size: '640x360', seconds: 30 });
    await until('refused', (s) => s.status === 'processing' && s.playable, 90000);
    // Outputs stop getting through: uploads hang in flight and the rest queue up behind them.
    storage.state.hold = true;
    await waitFor('uploads to be held in flight', async () => storage.state.held.size >= 4, 30000);
    await new Promise((r) => setTimeout(r, 1500));
    const inFlight = storage.state.held.size;
    refuse = true;
    await waitFor('the transcoder to see its lease lost', async () => /lease lost/.test(t.logs()), 15000);
    // From now on any output PUT reaching storage is a late write.
    storage.state.since = Date.now();
    await new Promise((r) => setTimeout(r, 500));
    const stillOpen = storage.state.held.size;
    storage.release();
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(stillOpen, 0, `${stillOpen} of ${inFlight} held uploads were still waiting after the lease was lost`);
    assert.deepEqual(storage.state.forwardedAfter, [], 'outputs reached storage after the refused heartbeat');
    refuse = false;
    await t.stop();
  } finally {
    await storage.close();
    await service.close();
  }
  await api.post('/cancel-job', { app_id: 'runner', video_id: 'refused' }, { key: API_KEY, headers: ip() });
});
