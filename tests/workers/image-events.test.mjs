// image.created, image.deleted and video.deleted reach the app's /events
// stream and its webhook endpoint (issue 25), in workerd. The image Worker
// runs in its own Miniflare, as in production it is its own Worker: its
// VIDEO_SERVICE service binding reaches the video Worker's /internal/events
// (with INTERNAL_EVENTS_TOKEN), which hands the event to the app's AppHub.
// Without the binding (wrangler dev's two processes) VIDEO_SERVICE_URL is
// used over HTTP: the last test runs that way.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGarage } from '../../devkit/garage.mjs';
import { freePort } from '../../devkit/ports.mjs';
import { openEvents } from '../../devkit/sse.mjs';
import { startReceiver } from '../../devkit/webhook-receiver.mjs';
import { verifyWebhook } from '../../devkit/webhook-verify.mjs';
import { videoService, imageService, client, freshIp, putStored, API_KEY } from './harness.mjs';

const APP = 'evimg';
const SECRET = 'whsec_test_0123456789abcdef';
const TOKEN = 'internal-events-token-for-tests';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let dir;
let garage;
let receiver;
let video;
let image;
let vapi;
let iapi;
let stream;
let png;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'image-events-'));
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=s=64x48', '-frames:v', '1', join(dir, 'shot.png')]);
  png = readFileSync(join(dir, 'shot.png'));
  garage = await startGarage({ dir: join(dir, 'garage') });
  receiver = await startReceiver();
  video = await videoService({ store: garage, backend: 's3', vars: {
    INTERNAL_EVENTS_TOKEN: TOKEN,
    IV_WEBHOOKS: JSON.stringify({ [APP]: { url: `${receiver.url}/hook`, secret: SECRET } }),
  } });
  image = await imageService({ store: garage, vars: { INTERNAL_EVENTS_TOKEN: TOKEN }, video });
  vapi = client(video);
  iapi = client(image, 'http://image.test');
  stream = await openEvents((url, init) => video.dispatchFetch(url, init), `http://video.test/events?app_id=${APP}`, { headers: { 'x-api-key': API_KEY, ...freshIp() } });
  await stream.waitFor('connected', 5000);
});
after(async () => {
  // A stream cut by its server's disposal ends with 'terminated': expected here.
  stream?.finished?.catch(() => {});
  stream?.close();
  await image?.dispose();
  await video?.dispose();
  await receiver?.stop();
  await garage?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The stream's `type` events about `id` (`image_id` or `video_id` in their data). */
const onStream = (type, id) => stream.events.filter((e) => e.event === type && (e.data.data?.image_id ?? e.data.data?.video_id) === id);
/** The webhook deliveries of `type` about `id`. */
const delivered = (type, id) => receiver.got.filter((r) => r.body?.type === type && (r.body.data.image_id ?? r.body.data.video_id) === id);

/** Waits until the stream and the webhook endpoint each have `type` about `id`; returns both. */
async function arrived(type, id) {
  const frame = await stream.waitFor((e) => e.event === type && (e.data.data?.image_id ?? e.data.data?.video_id) === id, 10_000);
  const deadline = Date.now() + 10_000;
  while (delivered(type, id).length === 0 && Date.now() < deadline) await sleep(100);
  const [hook] = delivered(type, id);
  assert.ok(hook, `${type} of ${id} reached the webhook endpoint`);
  assert.deepEqual(verifyWebhook(SECRET, hook.headers, hook.raw), hook.body, 'signed per Standard Webhooks');
  assert.equal(hook.body.id, frame.data.id, 'one event: the same id on the stream and in the webhook');
  return { frame, hook };
}

describe('image events reach the app through the video Worker', () => {
  test('a server upload is image.created; its delete is image.deleted', async () => {
    const up = await iapi.post(`/upload?app_id=${APP}&image_id=served`, png, { key: API_KEY, headers: { ...freshIp(), 'content-type': 'image/png' } });
    assert.equal(up.status, 201, up.text);
    const { hook } = await arrived('image.created', 'served');
    assert.equal(hook.body.data.app_id, APP);
    assert.deepEqual({ ...hook.body.data.meta, uploaded_at: undefined }, { content_type: 'image/png', size: png.length, width: 64, height: 48, uploaded_at: undefined, require_signed_urls: false });
    assert.ok(!JSON.stringify(hook.body).includes('images/'), 'no storage key in the event');

    const del = await iapi.call('DELETE', `/images?app_id=${APP}&image_id=served`, { key: API_KEY, headers: freshIp() });
    assert.equal(del.status, 200, del.text);
    const gone = await arrived('image.deleted', 'served');
    assert.deepEqual(gone.hook.body.data, { app_id: APP, image_id: 'served' });
    // A repeat removes nothing and announces nothing.
    assert.equal((await iapi.call('DELETE', `/images?app_id=${APP}&image_id=served`, { key: API_KEY, headers: freshIp() })).status, 200);
    await sleep(1000);
    assert.equal(onStream('image.deleted', 'served').length, 1);
    assert.equal(delivered('image.deleted', 'served').length, 1);
  });

  test('a presigned upload is image.created once, when its record is made', async () => {
    const presigned = await iapi.post('/generate-image-upload-url', { app_id: APP, image_id: 'direct', content_type: 'image/png', size: png.length }, { key: API_KEY, headers: freshIp() });
    assert.equal(presigned.status, 200, presigned.text);
    // The browser's PUT, as it lands in the bucket.
    await putStored({ backend: 'r2', mf: image, garage }, `images/${APP}/direct`, png, 'image/png');
    assert.equal(onStream('image.created', 'direct').length, 0, 'nothing before the record');
    // Two concurrent first reads both check it: still one event.
    const reads = await Promise.all([1, 2].map(() => iapi.get(`/images?app_id=${APP}&image_id=direct`, { key: API_KEY, headers: freshIp() })));
    for (const r of reads) assert.equal(r.status, 200, r.text);
    await arrived('image.created', 'direct');
    await sleep(1000);
    assert.equal(onStream('image.created', 'direct').length, 1);
    assert.equal(new Set(delivered('image.created', 'direct').map((d) => d.body.id)).size, 1);
  });

  test('the internal route takes only the Workers\' token and only image events', async () => {
    const body = { app_id: APP, type: 'image.created', data: { image_id: 'x' } };
    const post = (b, token) => vapi.call('POST', '/internal/events', { body: b, headers: { ...freshIp(), ...(token ? { authorization: `Bearer ${token}` } : {}) } });
    assert.equal((await post(body)).status, 401);
    assert.equal((await post(body, 'test-transcoder-token')).status, 403, 'not the transcoder\'s token');
    assert.equal((await post({ ...body, type: 'video.ready' }, TOKEN)).status, 400);
    const r = await post(body, TOKEN);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('access-control-allow-origin'), null, 'server-only');
  });
});

describe('video.deleted', () => {
  test('a deleted video is announced on the stream and to the webhook endpoint, once', async () => {
    const raw = `raw/${APP}/gone/source.mp4`;
    await putStored({ backend: 's3', mf: video, garage }, raw, new Uint8Array(1000).fill(7), 'video/mp4');
    const n = await vapi.post('/notify-upload-complete', { app_id: APP, video_id: 'gone', raw_key: raw, content_type: 'video/mp4' }, { key: API_KEY, headers: freshIp() });
    assert.equal(n.status, 202, n.text);
    const del = await vapi.call('DELETE', `/videos?app_id=${APP}&video_id=gone`, { key: API_KEY, headers: freshIp() });
    assert.equal(del.status, 200, del.text);
    const { hook } = await arrived('video.deleted', 'gone');
    assert.deepEqual(hook.body.data, { app_id: APP, video_id: 'gone' });
    assert.equal((await vapi.call('DELETE', `/videos?app_id=${APP}&video_id=gone`, { key: API_KEY, headers: freshIp() })).status, 200);
    await sleep(1000);
    assert.equal(onStream('video.deleted', 'gone').length, 1, 'a repeat that removed nothing is not announced');
  });
});

describe('without the service binding (wrangler dev): over VIDEO_SERVICE_URL', () => {
  test('an upload still reaches the app stream; a wrong token reaches nothing', async () => {
    const port = await freePort();
    const v = await videoService({ store: garage, backend: 's3', port, vars: { INTERNAL_EVENTS_TOKEN: TOKEN } });
    const url = `http://127.0.0.1:${port}`;
    const good = await imageService({ store: garage, vars: { INTERNAL_EVENTS_TOKEN: TOKEN, VIDEO_SERVICE_URL: url } });
    const bad = await imageService({ store: garage, vars: { INTERNAL_EVENTS_TOKEN: 'not-the-token', VIDEO_SERVICE_URL: url } });
    const s = await openEvents((u, init) => v.dispatchFetch(u, init), `http://video.test/events?app_id=${APP}`, { headers: { 'x-api-key': API_KEY, ...freshIp() } });
    try {
      await s.waitFor('connected', 5000);
      const upload = (mf, id) => client(mf, 'http://image.test').post(`/upload?app_id=${APP}&image_id=${id}`, png, { key: API_KEY, headers: { ...freshIp(), 'content-type': 'image/png' } });
      const refused = await upload(bad, 'overhttp_bad');
      assert.equal(refused.status, 201, 'an event that is not announced does not fail the upload');
      const up = await upload(good, 'overhttp');
      assert.equal(up.status, 201, up.text);
      await s.waitFor((e) => e.event === 'image.created' && e.data.data?.image_id === 'overhttp', 10_000);
      await sleep(500);
      assert.equal(s.events.filter((e) => e.data?.data?.image_id === 'overhttp_bad').length, 0);
    } finally {
      s.finished?.catch(() => {});
      s.close();
      await good.dispose();
      await bad.dispose();
      await v.dispose();
    }
  });
});
