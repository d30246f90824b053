// Direct uploads as objects (POST /uploads, Mux's model) in workerd against
// a real Garage: each trigger starts the video's job with no backend call
// (the browser's completion route, a resumable upload's complete, R2's event
// notification through the queue in Cloudflare's message shape, the legacy
// notify), duplicate triggers give one job, a timed-out upload leaves
// nothing behind, a cancelled upload refuses its token, another app's key
// sees nothing, and bad input is a clear 400. An ended upload's file (a
// wrong size, a PUT after its cancel) never blocks the video's next upload,
// a create that cannot make its credentials leaves no upload behind, and an
// upload's KV job marker expires unless its job starts.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGarage } from '../../devkit/garage.mjs';
import { listKeys, openUploads, putObject } from '../../devkit/sigv4.mjs';
import { openEvents } from '../../devkit/sse.mjs';
import { videoService, client, errorCode, freshIp } from './harness.mjs';

const KEY = 'uploads-key-a';
const KEY_OTHER = 'uploads-key-b';
const APP = 'up';
const BASE = 'http://video.test';

let garage;
let garageDir;
let mf;
let api;
/** The Worker's log lines: the queue consumer logs one per message it handled. */
const logs = [];
before(async () => {
  garageDir = mkdtempSync(join(tmpdir(), 'garage-upload-objects-'));
  garage = await startGarage({ dir: garageDir });
  mf = await videoService({
    store: garage,
    backend: 's3',
    // Timeouts of a second or two (60 s at least in production).
    vars: { IV_API_KEY: `${KEY}:${APP}, ${KEY_OTHER}:other`, UPLOAD_MIN_TIMEOUT_S: '1' },
    logs,
  });
  api = client(mf, BASE);
});
after(async () => {
  await mf?.dispose();
  await garage?.stop();
  rmSync(garageDir, { recursive: true, force: true });
});

const file = (size) => new Uint8Array(size).fill(7);
const create = (video, extra = {}, key = KEY) =>
  api.post('/uploads', { app_id: APP, video_id: video, content_type: 'video/mp4', size: 1000, ...extra }, { key, headers: freshIp() });
const get = (id, key = KEY) => api.get(`/uploads/${id}`, { key, headers: freshIp() });
const cancel = (id, key = KEY) => api.call('DELETE', `/uploads/${id}`, { key, headers: freshIp() });
/** The browser's completion call: the token, no key. */
const complete = (id, token) =>
  api.call('POST', `/uploads/${id}/complete`, { headers: { ...freshIp(), origin: 'https://app.example', ...(token ? { authorization: `Bearer ${token}` } : {}) } });
const notify = (video) =>
  api.post('/notify-upload-complete', { app_id: APP, video_id: video, raw_key: `raw/${APP}/${video}/source.mp4`, content_type: 'video/mp4' }, { key: KEY, headers: freshIp() });

/** PUTs the file to the upload's presigned URL, straight to Garage. */
async function put(upload, bytes) {
  const res = await fetch(upload.url, { method: 'PUT', headers: upload.headers, body: bytes });
  assert.equal(res.status, 200, `PUT: ${res.status} ${await res.text()}`);
}

/** R2's event notification for `key`, as Cloudflare documents it, into the Worker's queue. */
async function storageEvent(key, { action = 'PutObject', size = 1000 } = {}) {
  const queue = await mf.getQueueProducer('UPLOAD_EVENTS');
  await queue.send({
    account: '3f4b7e3dcab231cbfdaa90a6a28bd548',
    action,
    bucket: 'media',
    object: action === 'DeleteObject' ? { key } : { key, size, eTag: 'c846ff7a18f28c2e262116d6e8719ef0' },
    eventTime: new Date().toISOString(),
  });
}

/** How many queue messages the consumer has handled (acknowledged, refused or retried: one line each). */
const handledLines = () =>
  logs.filter((l) => /storage event (ignored|refused|not handled)|storage event: upload landed/.test(JSON.stringify(l))).length;

/** Runs `send`, which puts `n` messages on the queue, then waits until the consumer has handled all `n`. */
async function handled(n, send) {
  const before = handledLines();
  const out = await send();
  await until(`the consumer handling ${n} storage event(s)`, async () => handledLines() >= before + n);
  return out;
}

async function until(what, check, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const events = (video, opts = {}) =>
  openEvents((url, init) => mf.dispatchFetch(url, init), `${BASE}/job-events?app_id=${APP}&video_id=${video}`, { ...opts, headers: freshIp() });

/** Calls to a resumable upload's endpoint, as Uppy makes them (a browser: no key). */
async function multipart(endpoint, method, path, body) {
  const res = await mf.dispatchFetch(endpoint + path, { method, headers: { origin: 'https://app.example', ...(body ? { 'content-type': 'application/json' } : {}) }, body: body && JSON.stringify(body) });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text };
}

describe('direct uploads', () => {
  test('single PUT: created waiting and followable, then the completion route starts the job (no backend call)', async () => {
    // The app's backend sees the upload's events on its stream too (the catalogue, announced once).
    const app = await openEvents((url, init) => mf.dispatchFetch(url, init), `${BASE}/events?app_id=${APP}`, { headers: { ...freshIp(), 'x-api-key': KEY } });
    const before = Date.now();
    const c = await create('v-put');
    assert.equal(c.status, 201, c.text);
    const u = c.json;
    assert.match(u.id, /^upl_[0-9a-f]{16}\.up\.v-put$/);
    assert.deepEqual(
      { status: u.status, timeout_s: u.timeout_s, app_id: u.app_id, video_id: u.video_id, size: u.size, multipart: u.multipart },
      { status: 'waiting', timeout_s: 3600, app_id: APP, video_id: 'v-put', size: 1000, multipart: false },
    );
    const ttl = Date.parse(u.expires_at) - before;
    assert.ok(ttl > 3590_000 && ttl <= 3601_000, `expires in an hour by default (${ttl} ms)`);
    assert.match(u.token, /^up1\./);
    assert.equal(u.complete_url, `${BASE}/uploads/${u.id}/complete`);
    assert.equal(u.headers['If-None-Match'], '*');
    assert.equal(u.endpoint, undefined);

    // A page follows the upload before any job exists.
    const stream = await events('v-put');
    try {
      assert.equal(stream.status, 200);
      await stream.waitFor('upload.created', 5000);
      // Completing before the PUT: nothing there yet.
      const early = await complete(u.id, u.token);
      assert.equal(early.status, 409, early.text);
      assert.equal(errorCode(early), 'upload_missing');

      await put(u, file(1000));
      const done = await complete(u.id, u.token);
      assert.equal(done.status, 200, done.text);
      assert.equal(done.json.status, 'asset_created');
      assert.match(done.json.job_id, /^job_/);
      assert.equal(done.headers.get('access-control-allow-origin'), '*', 'browsers call it');
      assert.equal(done.json.token, undefined, 'credentials only in the creation');
      await stream.waitFor('upload.asset_created', 5000);
      await stream.waitFor('job:created', 5000);
      const got = await get(u.id);
      assert.equal(got.status, 200, got.text);
      assert.equal(got.json.status, 'asset_created');
      assert.equal(got.json.job_id, done.json.job_id);
      assert.equal(got.json.job_status_url, `${BASE}/job-status?app_id=${APP}&video_id=v-put`);
      const job = await api.get(`/job-status?app_id=${APP}&video_id=v-put`, { headers: freshIp() });
      assert.equal(job.json.job_id, done.json.job_id);
      assert.equal(job.json.status, 'queued');
      const announced = await app.waitFor((e) => e.event === 'upload.asset_created' && e.data?.data?.id === u.id, 5000);
      assert.equal(announced.data.data.job_id, done.json.job_id);
      assert.ok(app.events.some((e) => e.event === 'upload.created' && e.data?.data?.id === u.id), 'upload.created on /events');
    } finally {
      stream.close();
      app.close();
    }
    // Browsers may send the token: the preflight allows Authorization here.
    const pre = await mf.dispatchFetch(`${BASE}/uploads/${u.id}/complete`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' } });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get('access-control-allow-headers'), /Authorization/);
  });

  test('resumable: the complete call itself starts the job', async () => {
    const c = await create('v-multi', { multipart: true, size: 1000 });
    assert.equal(c.status, 201, c.text);
    const u = c.json;
    assert.equal(u.endpoint, `${BASE}/uploads/${u.token}`);
    assert.deepEqual([u.parts, u.url, u.complete_url], [1, undefined, undefined]);
    const { uploadId, key } = (await multipart(u.endpoint, 'POST', '/s3/multipart', { type: 'video/mp4' })).json;
    const q = `?key=${encodeURIComponent(key)}`;
    const signed = await multipart(u.endpoint, 'GET', `/s3/multipart/${encodeURIComponent(uploadId)}/1${q}`);
    const res = await fetch(signed.json.url, { method: 'PUT', body: file(1000) });
    assert.equal(res.status, 200);
    const etag = res.headers.get('etag');
    const done = await multipart(u.endpoint, 'POST', `/s3/multipart/${encodeURIComponent(uploadId)}/complete${q}`, { parts: [{ PartNumber: 1, ETag: etag }] });
    assert.equal(done.status, 200, done.text);
    const got = await get(u.id);
    assert.equal(got.json.status, 'asset_created', got.text);
    const job = await api.get(`/job-status?app_id=${APP}&video_id=v-multi`, { headers: freshIp() });
    assert.equal(job.json.job_id, got.json.job_id);
  });

  test("R2's event notification through the queue starts the job; other messages are acknowledged and ignored", async () => {
    const u = (await create('v-queue')).json;
    // Not ours: an output, an image, a delete, another video's source, junk.
    await handled(5, async () => {
      await storageEvent(`hls/${APP}/v-queue/o1/master.m3u8`);
      await storageEvent(`images/${APP}/img`);
      await storageEvent(`raw/${APP}/v-queue/source.mp4`, { action: 'DeleteObject' });
      await storageEvent(`raw/${APP}/nobody/source.mp4`);
      await (await mf.getQueueProducer('UPLOAD_EVENTS')).send('not an event');
    });
    assert.equal((await get(u.id)).json.status, 'waiting', 'nothing started by them');
    assert.equal((await api.get(`/job-status?app_id=${APP}&video_id=nobody`, { headers: freshIp() })).status, 404);

    await put(u, file(1000));
    await storageEvent(`raw/${APP}/v-queue/source.mp4`);
    const got = await until('asset_created', async () => {
      const r = await get(u.id);
      return r.json.status === 'asset_created' && r;
    });
    const job = await api.get(`/job-status?app_id=${APP}&video_id=v-queue`, { headers: freshIp() });
    assert.equal(job.json.job_id, got.json.job_id);
  });

  test('a storage event whose handling fails (storage unreachable) is retried, not acknowledged', async () => {
    const logs = [];
    const dead = await videoService({ store: { ...garage, endpoint: 'http://127.0.0.1:9' }, backend: 's3', vars: { IV_API_KEY: KEY }, logs });
    try {
      const queue = await dead.getQueueProducer('UPLOAD_EVENTS');
      await queue.send({ account: 'a', action: 'PutObject', bucket: 'media', object: { key: `raw/${APP}/v-dead/source.mp4`, size: 1000, eTag: 'e' }, eventTime: new Date().toISOString() });
      const line = (l) => JSON.stringify(l);
      await until('the retry', async () => logs.some((l) => line(l).includes('storage event not handled; retrying')));
      assert.ok(!logs.some((l) => line(l).includes('storage event ignored')), 'not acknowledged as not ours');
    } finally {
      await dead.dispose();
    }
  });

  test('the legacy /notify-upload-complete keeps working and moves a waiting upload on', async () => {
    const u = (await create('v-legacy')).json;
    await put(u, file(1000));
    const n = await notify('v-legacy');
    assert.equal(n.status, 202, n.text);
    const got = await get(u.id);
    assert.equal(got.json.status, 'asset_created');
    assert.equal(got.json.job_id, n.json.job_id);
  });

  test('duplicate triggers, all at once, give one job', async () => {
    const u = (await create('v-dup')).json;
    const stream = await events('v-dup');
    try {
      await put(u, file(1000));
      const [a, b, , n] = await handled(1, () => Promise.all([
        complete(u.id, u.token),
        complete(u.id, u.token),
        storageEvent(`raw/${APP}/v-dup/source.mp4`),
        notify('v-dup'),
      ]));
      assert.equal(a.status, 200, a.text);
      assert.equal(b.status, 200, b.text);
      assert.ok([200, 202].includes(n.status), n.text);
      assert.equal(a.json.job_id, b.json.job_id);
      assert.equal(a.json.job_id, n.json.job_id);
      await stream.waitFor('upload.asset_created', 5000);
      const names = stream.events.map((e) => e.event);
      assert.equal(names.filter((e) => e === 'upload.asset_created').length, 1, names.join(', '));
      assert.equal(names.filter((e) => e === 'job:created').length, 1, names.join(', '));
      assert.equal((await get(u.id)).json.job_id, a.json.job_id);
    } finally {
      stream.close();
    }
  });

  test('a timed-out upload leaves nothing behind: no raw objects, no multipart uploads, its token refused', async () => {
    const c = await create('v-late', { multipart: true, size: 17 * 1024 * 1024, timeout_s: 2 });
    assert.equal(c.status, 201, c.text);
    const u = c.json;
    const { uploadId, key } = (await multipart(u.endpoint, 'POST', '/s3/multipart', { type: 'video/mp4' })).json;
    const q = `?key=${encodeURIComponent(key)}`;
    const signed = await multipart(u.endpoint, 'GET', `/s3/multipart/${encodeURIComponent(uploadId)}/2${q}`);
    assert.equal((await fetch(signed.json.url, { method: 'PUT', body: file(1024 * 1024) })).status, 200);
    // A partial object under the video's raw/ prefix too.
    await putObject(garage, `raw/${APP}/v-late/source.mp4.part`, file(10), 'application/octet-stream');
    assert.equal((await openUploads(garage, `raw/${APP}/v-late/`)).length, 1);

    const got = await until('timed_out', async () => {
      const r = await get(u.id);
      return r.json.status === 'timed_out' && r;
    }, 15_000);
    assert.equal(got.status, 200);
    await until('the leftovers removed', async () =>
      (await listKeys(garage, `raw/${APP}/v-late/`)).length === 0 && (await openUploads(garage, `raw/${APP}/v-late/`)).length === 0);
    const refused = await multipart(u.endpoint, 'GET', `/s3/multipart/${encodeURIComponent(uploadId)}/1${q}`);
    assert.equal(refused.status, 403, refused.text);
    // Revoked, and expired with its upload.
    assert.match(refused.json.error.message, /revoked.*timed out|expired/);
    // A single PUT upload's token too.
    const s = (await create('v-late-put', { timeout_s: 1 })).json;
    await until('timed_out', async () => (await get(s.id)).json.status === 'timed_out', 15_000);
    const late = await complete(s.id, s.token);
    assert.equal(late.status, 403, late.text);
    assert.match(late.json.error.message, /timed out|expired/);
    assert.equal((await cancel(s.id)).status, 409);
  });

  test('a cancelled upload refuses its token, and its multipart upload is aborted', async () => {
    const s = (await create('v-cancel')).json;
    const c = await cancel(s.id);
    assert.equal(c.status, 200, c.text);
    assert.equal(c.json.status, 'cancelled');
    const refused = await complete(s.id, s.token);
    assert.equal(refused.status, 403, refused.text);
    assert.equal(errorCode(refused), 'forbidden');
    assert.match(refused.json.error.message, /revoked.*cancelled/);
    const again = await cancel(s.id);
    assert.equal(again.status, 409, again.text);
    assert.match(again.json.error.message, /is cancelled; only a waiting upload can be cancelled/);
    assert.equal((await get(s.id)).json.status, 'cancelled');

    const m = (await create('v-cancel-multi', { multipart: true, size: 17 * 1024 * 1024 })).json;
    const { uploadId, key } = (await multipart(m.endpoint, 'POST', '/s3/multipart', { type: 'video/mp4' })).json;
    assert.equal((await openUploads(garage, `raw/${APP}/v-cancel-multi/`)).length, 1);
    assert.equal((await cancel(m.id)).status, 200);
    await until('the multipart upload aborted', async () => (await openUploads(garage, `raw/${APP}/v-cancel-multi/`)).length === 0);
    const q = `?key=${encodeURIComponent(key)}`;
    for (const [method, path] of [['GET', `/s3/multipart/${encodeURIComponent(uploadId)}/1${q}`], ['POST', `/s3/multipart/${encodeURIComponent(uploadId)}/complete${q}`], ['POST', '/s3/multipart']]) {
      const r = await multipart(m.endpoint, method, path, method === 'POST' ? { parts: [] } : undefined);
      assert.equal(r.status, 403, `${method} ${path}: ${r.text}`);
      assert.match(r.json.error.message, /revoked.*cancelled/);
    }
    // An upload that started its job cannot be cancelled.
    const done = (await create('v-cancel-late')).json;
    await put(done, file(1000));
    assert.equal((await complete(done.id, done.token)).status, 200);
    const late = await cancel(done.id);
    assert.equal(late.status, 409);
    assert.match(late.json.error.message, /asset_created/);
  });

  test("tenancy: another app's key sees nothing; one upload waits per video; tokens are per upload", async () => {
    // API-key routes are for servers: no CORS, even asked from a browser.
    const fromBrowser = await api.post('/uploads', { app_id: APP, video_id: 'v-tenant', content_type: 'video/mp4', size: 1000 }, { key: KEY, headers: { ...freshIp(), origin: 'https://app.example' } });
    assert.equal(fromBrowser.status, 201, fromBrowser.text);
    assert.equal(fromBrowser.headers.get('access-control-allow-origin'), null);
    const u = fromBrowser.json;
    assert.equal((await get(u.id, KEY_OTHER)).status, 403);
    assert.equal((await cancel(u.id, KEY_OTHER)).status, 403);
    assert.equal((await create('v-tenant', {}, KEY_OTHER)).status, 403);
    assert.equal(errorCode(await get(u.id, 'wrong-key')), 'forbidden');
    assert.equal((await get(u.id)).json.status, 'waiting', 'untouched');
    // An id the video's object does not know.
    const unknown = u.id.replace(/^upl_[0-9a-f]{16}/, 'upl_0000000000000000');
    assert.equal((await get(unknown)).status, 404);
    const second = await create('v-tenant');
    assert.equal(second.status, 409, second.text);
    assert.match(second.json.error.message, /is waiting for this video/);
    // Another upload's token does not complete this one.
    const other = (await create('v-tenant-2')).json;
    assert.equal((await complete(u.id, other.token)).status, 403);
    assert.equal((await complete(u.id)).status, 401);
    assert.equal((await complete(u.id, 'up1.00.00')).status, 403);
  });

  test("an errored upload's wrong file is removed, so the video's next upload can PUT and starts its job on its own file", async () => {
    const u = (await create('v-wrong')).json;
    // A file of another size at the upload's key (a PUT the presign did not bind, or another writer).
    await putObject(garage, `raw/${APP}/v-wrong/source.mp4`, file(999), 'video/mp4');
    const done = await complete(u.id, u.token);
    assert.equal(done.status, 200, done.text);
    assert.equal(done.json.status, 'errored');
    assert.equal(done.json.job_id, undefined);
    assert.deepEqual(await listKeys(garage, `raw/${APP}/v-wrong/`), [], 'the wrong file is gone');
    // R2 would answer the next PUT (If-None-Match: *) 412 had it stayed.
    const next = await create('v-wrong');
    assert.equal(next.status, 201, next.text);
    await put(next.json, file(1000));
    const started = await complete(next.json.id, next.json.token);
    assert.equal(started.json.status, 'asset_created', started.text);
    const job = await api.get(`/job-status?app_id=${APP}&video_id=v-wrong`, { headers: freshIp() });
    assert.equal(job.json.job_id, started.json.job_id);
  });

  test("a file that lands after its upload's cancel is removed by its storage event; with no event, the next create removes it", async () => {
    const u = (await create('v-after')).json;
    assert.equal((await cancel(u.id)).status, 200);
    // The presigned URL outlives the cancel: the browser's PUT still lands.
    await put(u, file(1000));
    assert.equal((await listKeys(garage, `raw/${APP}/v-after/`)).length, 1);
    await handled(1, () => storageEvent(`raw/${APP}/v-after/source.mp4`));
    await until('the late file removed', async () => (await listKeys(garage, `raw/${APP}/v-after/`)).length === 0, 5000);
    assert.equal((await api.get(`/job-status?app_id=${APP}&video_id=v-after`, { headers: freshIp() })).status, 404, 'it started nothing');

    // No notification set up (or the event lost): the next create cleans first.
    const v = (await create('v-after-2')).json;
    assert.equal((await cancel(v.id)).status, 200);
    await put(v, file(1000));
    const next = await create('v-after-2');
    assert.equal(next.status, 201, next.text);
    assert.deepEqual(await listKeys(garage, `raw/${APP}/v-after-2/`), [], 'removed before the new upload waits');
    await put(next.json, file(1000));
    assert.equal((await complete(next.json.id, next.json.token)).json.status, 'asset_created');
  });

  test('a create whose credentials cannot be made answers 500 and leaves no upload blocking the video', async () => {
    // R2 bindings work, but no S3 keys to presign or sign tokens with.
    const broken = await videoService({ store: garage, backend: 'r2', vars: { IV_API_KEY: `${KEY}:${APP}`, S3_ACCESS_KEY_ID: '' } });
    try {
      const b = client(broken, BASE);
      const body = { app_id: APP, video_id: 'v-broken', content_type: 'video/mp4', size: 1000 };
      const r = await b.post('/uploads', body, { key: KEY, headers: freshIp() });
      assert.equal(r.status, 500, r.text);
      // Nothing was created: no upload on the video's stream, no marker in KV.
      const s = await broken.dispatchFetch(`${BASE}/job-events?app_id=${APP}&video_id=v-broken`, { headers: freshIp() });
      await s.body?.cancel();
      assert.equal(s.status, 404);
      const kv = await broken.getKVNamespace('MEDIA_KV');
      assert.deepEqual((await kv.list({ prefix: `jobs/${APP}/v-broken` })).keys, []);
    } finally {
      await broken.dispose();
    }
  });

  test("an upload's KV job marker expires unless its job starts, then the job's has none", async () => {
    const kv = await mf.getKVNamespace('MEDIA_KV');
    const name = `jobs/${APP}/v-marker`;
    const marker = async () => (await kv.list({ prefix: name })).keys.find((k) => k.name === name);
    const at = Date.now() / 1000;
    const u = (await create('v-marker', { timeout_s: 120 })).json;
    const m = await marker();
    assert.ok(m, 'written at create: /job-events finds the video');
    // The upload's timeout plus an hour's grace (its ended events stay readable that long).
    assert.ok(m.expiration >= at + 120 + 3600 - 5 && m.expiration <= at + 120 + 3600 + 5, JSON.stringify(m));
    await put(u, file(1000));
    assert.equal((await complete(u.id, u.token)).json.status, 'asset_created');
    await until("the job's marker, with no expiry", async () => {
      const k = await marker();
      return k && k.expiration === undefined;
    });
  });

  test('bad input is a clear 400 (415 for a type we do not take)', async () => {
    const cases = [
      [{ size: undefined }, 400, /size is required/],
      [{ timeout_s: 0 }, 400, /timeout_s is 0; it must be from 1 to 604800/],
      [{ timeout_s: 604801 }, 400, /timeout_s/],
      [{ timeout_s: 'soon' }, 400, /timeout_s must be a number/],
      [{ multipart: 'yes' }, 400, /multipart must be true or false/],
      [{ colour: 'red' }, 400, /unknown field "colour"/],
      [{ video_id: 'bad id' }, 400, /video_id/],
      [{ callback_url: 'http://10.0.0.1/hook' }, 400, /callback_url|https/],
      [{ content_type: 'image/png' }, 415, /.+/],
    ];
    for (const [extra, status, message] of cases) {
      const r = await create('v-bad', extra);
      assert.equal(r.status, status, `${JSON.stringify(extra)}: ${r.text}`);
      errorCode(r);
      assert.match(r.json.error.message, message, JSON.stringify(extra));
    }
    assert.equal((await get('nope')).status, 404);
    assert.equal((await get('upl_zz.up.v')).status, 404);
  });
});
