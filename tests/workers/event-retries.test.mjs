// Events the Workers announce themselves (image.created, image.deleted,
// video.deleted) survive a hub that refuses once, and arrive once: each try
// carries the same event id, which the hub takes once. The hub's test var
// FAULT_HUB_REFUSES_FIRST makes it answer 503 to the first announcement of
// each listed type. And an image deleted and uploaded again with the same
// bytes under the same id is a second image.created, not a duplicate the
// hub drops (issue 25 review).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGarage } from '../../devkit/garage.mjs';
import { openEvents } from '../../devkit/sse.mjs';
import { videoService, imageService, client, freshIp, putStored, API_KEY } from './harness.mjs';

const APP = 'evretry';
const TOKEN = 'internal-events-token-for-tests';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let dir; let garage; let video; let image; let vapi; let iapi; let stream; let png;
const vlogs = [];
const ilogs = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'event-retries-'));
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=s=64x48', '-frames:v', '1', join(dir, 'shot.png')]);
  png = readFileSync(join(dir, 'shot.png'));
  garage = await startGarage({ dir: join(dir, 'garage') });
  video = await videoService({ store: garage, backend: 's3', logs: vlogs, vars: {
    INTERNAL_EVENTS_TOKEN: TOKEN,
    FAULT_HUB_REFUSES_FIRST: 'image.created,image.deleted,video.deleted',
  } });
  image = await imageService({ store: garage, logs: ilogs, vars: { INTERNAL_EVENTS_TOKEN: TOKEN }, video });
  vapi = client(video);
  iapi = client(image, 'http://image.test');
  stream = await openEvents((url, init) => video.dispatchFetch(url, init), `http://video.test/events?app_id=${APP}`, { headers: { 'x-api-key': API_KEY, ...freshIp() } });
  await stream.waitFor('connected', 5000);
});
after(async () => {
  stream?.finished?.catch(() => {});
  stream?.close();
  await image?.dispose();
  await video?.dispose();
  await garage?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const about = (type, id) => (e) => e.event === type && (e.data.data?.image_id ?? e.data.data?.video_id) === id;
const onStream = (type, id) => stream.events.filter(about(type, id));
const retried = (logs, type) => logs.some((l) => JSON.stringify(l).includes('trying again') && JSON.stringify(l).includes(type));
const upload = (id) => iapi.post(`/upload?app_id=${APP}&image_id=${id}`, png, { key: API_KEY, headers: { ...freshIp(), 'content-type': 'image/png' } });
const deleteImage = (id) => iapi.call('DELETE', `/images?app_id=${APP}&image_id=${id}`, { key: API_KEY, headers: freshIp() });

describe('a hub that refuses once loses no event and doubles none', () => {
  test('image.created and image.deleted: refused, tried again, on the stream once', async () => {
    const up = await upload('flaky');
    assert.equal(up.status, 201, up.text);
    await stream.waitFor(about('image.created', 'flaky'), 15_000);
    assert.ok(retried(ilogs, 'image.created'), 'the first try was refused and tried again');
    const del = await deleteImage('flaky');
    assert.equal(del.status, 200, del.text);
    await stream.waitFor(about('image.deleted', 'flaky'), 15_000);
    assert.ok(retried(ilogs, 'image.deleted'), 'the first try was refused and tried again');
    await sleep(1000);
    assert.equal(onStream('image.created', 'flaky').length, 1);
    assert.equal(onStream('image.deleted', 'flaky').length, 1);
  });

  test('video.deleted: refused, tried again after the answer, on the stream once', async () => {
    const raw = `raw/${APP}/flakyvid/source.mp4`;
    await putStored({ backend: 's3', mf: video, garage }, raw, new Uint8Array(1000).fill(7), 'video/mp4');
    const n = await vapi.post('/notify-upload-complete', { app_id: APP, video_id: 'flakyvid', raw_key: raw, content_type: 'video/mp4' }, { key: API_KEY, headers: freshIp() });
    assert.equal(n.status, 202, n.text);
    const del = await vapi.call('DELETE', `/videos?app_id=${APP}&video_id=flakyvid`, { key: API_KEY, headers: freshIp() });
    assert.equal(del.status, 200, del.text);
    const frame = await stream.waitFor(about('video.deleted', 'flakyvid'), 15_000);
    assert.deepEqual(frame.data.data, { app_id: APP, video_id: 'flakyvid' });
    assert.ok(retried(vlogs, 'video.deleted'), 'the first try was refused and tried again');
    await sleep(1000);
    assert.equal(onStream('video.deleted', 'flakyvid').length, 1);
  });
});

describe('the same bytes uploaded again under a deleted id', () => {
  test('is a second image.created', async () => {
    assert.equal((await upload('again')).status, 201);
    await stream.waitFor(about('image.created', 'again'), 15_000);
    assert.equal((await deleteImage('again')).status, 200);
    await stream.waitFor(about('image.deleted', 'again'), 15_000);
    const re = await upload('again');
    assert.equal(re.status, 201, re.text);
    const deadline = Date.now() + 15_000;
    while (onStream('image.created', 'again').length < 2 && Date.now() < deadline) await sleep(100);
    const created = onStream('image.created', 'again');
    assert.equal(created.length, 2, 'the re-upload is announced');
    assert.notEqual(created[0].data.id, created[1].data.id);
  });

  test('a presigned upload of the same bytes after a delete is a second image.created too', async () => {
    const presign = () => iapi.post('/generate-image-upload-url', { app_id: APP, image_id: 'direct', content_type: 'image/png', size: png.length }, { key: API_KEY, headers: freshIp() });
    const land = async () => {
      assert.equal((await presign()).status, 200);
      await putStored({ backend: 'r2', mf: image, garage }, `images/${APP}/direct`, png, 'image/png');
      const r = await iapi.get(`/images?app_id=${APP}&image_id=direct`, { key: API_KEY, headers: freshIp() });
      assert.equal(r.status, 200, r.text);
    };
    await land();
    await stream.waitFor(about('image.created', 'direct'), 15_000);
    assert.equal((await deleteImage('direct')).status, 200);
    await stream.waitFor(about('image.deleted', 'direct'), 15_000);
    await land();
    const deadline = Date.now() + 15_000;
    while (onStream('image.created', 'direct').length < 2 && Date.now() < deadline) await sleep(100);
    assert.equal(onStream('image.created', 'direct').length, 2, 'the re-upload is announced');
  });
});
