// A delete reaches every location's edge cache (issue 25), in workerd,
// against a local stand-in of Cloudflare's zone purge API
// (devkit/purge-standin.mjs): every response the Workers keep at the edge
// carries the object's cache tag (never shown to clients), and a delete
// sends one purge by that tag with the zone's token. Without a token the
// edge TTL is capped at EDGE_TTL_WITHOUT_PURGE_S and nothing is sent; a
// failing purge API does not fail the delete.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGarage } from '../../devkit/garage.mjs';
import { startPurgeStandin } from '../../devkit/purge-standin.mjs';
import { startSentrySink } from '../../devkit/sentry-sink.mjs';
import { videoService, imageService, client, freshIp, putStored, API_KEY } from './harness.mjs';

const ZONE = 'zone0123456789abcdef';
const TOKEN = 'purge-token-for-tests';
const IMMUTABLE = 'public, max-age=31536000, immutable';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let dir;
let garage;
let standin;
let png;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'purge-'));
  garage = await startGarage({ dir: join(dir, 'garage') });
  standin = await startPurgeStandin();
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=s=640x480', '-frames:v', '1', join(dir, 'shot.png')]);
  png = readFileSync(join(dir, 'shot.png'));
});
after(async () => {
  await standin?.stop();
  await garage?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const purgeVars = { CF_ZONE_ID: ZONE, CF_PURGE_TOKEN: TOKEN };
/** The calls the stand-in got after `from`, once `n` of them have arrived. */
const callsAfter = async (from, n) => (await standin.waitForCalls(from + n)).slice(from);

/** Asserts the copy `mf` keeps in its edge cache under `url` carries `tag`
 *  (what a purge by tag finds it by), though clients never see it. */
async function keptWithTag(mf, url, tag) {
  const kept = await (await mf.getCaches()).default.match(url);
  assert.ok(kept, `${url} is in the edge cache`);
  assert.equal(kept.headers.get('cache-tag'), tag, `${url}: its kept copy is tagged`);
  await kept.arrayBuffer();
}

/** Asserts a served answer shows no cache tag, and returns its Cache-Control. */
function servedOk(res, what) {
  assert.equal(res.status, 200, `${what}: ${res.status}`);
  assert.equal(res.headers.get('cache-tag'), null, `${what}: the tag is never shown to clients`);
  return res.headers.get('cache-control');
}

describe('deleting an image purges it at every location', () => {
  const BASE = 'http://image.test';
  const get = (mf, path, headers = {}) => mf.dispatchFetch(BASE + path, { headers: { ...freshIp(), ...headers } });

  /** Uploads `id`, then serves its original and two variants twice each (miss, then edge hit). */
  async function uploadAndServe(mf, app, id) {
    const api = client(mf, BASE);
    const up = await api.post(`/upload?app_id=${app}&image_id=${id}`, png, { key: API_KEY, headers: { ...freshIp(), 'content-type': 'image/png' } });
    assert.equal(up.status, 201, up.text);
    const paths = [`/assets/images/${app}/${id}`, `/images/${app}/${id}/w=320`, `/images/${app}/${id}/w=160,f=auto`];
    const controls = [];
    for (const path of paths) {
      servedOk(await get(mf, path, { accept: 'image/webp' }), path);
      // The copy lands in the edge cache after the answer (wait_until).
      let hit;
      for (let i = 0; i < 40; i++) {
        hit = await get(mf, path, { accept: 'image/webp' });
        if ((hit.headers.get('server-timing') ?? '').includes('cache;desc="hit"')) break;
        await hit.arrayBuffer();
        await sleep(50);
      }
      assert.match(hit.headers.get('server-timing'), /cache;desc="hit"/, `${path} is kept at the edge`);
      controls.push(servedOk(hit, `${path} (edge)`));
      await hit.arrayBuffer();
    }
    return { api, controls };
  }

  test('one purge by the image tag, with the bearer token, to the zone; long TTLs kept', async () => {
    const mf = await imageService({ store: garage, vars: { ...purgeVars, CF_API_BASE: standin.apiBase } });
    try {
      const app = 'purge_img';
      const { api, controls } = await uploadAndServe(mf, app, 'pic');
      assert.deepEqual(controls, [IMMUTABLE, IMMUTABLE, IMMUTABLE], 'with a purge, the edge keeps them a year');
      // The kept copies carry the tag the purge names: the original and a variant (its cache key: cache_path).
      await keptWithTag(mf, `${BASE}/assets/images/${app}/pic`, `iv-img:${app}:pic`);
      await keptWithTag(mf, `${BASE}/images/${app}/pic/w=160,q=85,fit=scale-down,f=auto?accept=webp`, `iv-img:${app}:pic`);
      const from = standin.calls.length;
      const del = await api.call('DELETE', `/images?app_id=${app}&image_id=pic`, { key: API_KEY, headers: freshIp() });
      assert.equal(del.status, 200, del.text);
      const [call] = await callsAfter(from, 1);
      assert.deepEqual(call, { method: 'POST', path: `/client/v4/zones/${ZONE}/purge_cache`, authorization: `Bearer ${TOKEN}`, body: { tags: [`iv-img:${app}:pic`] }, status: 200 });
      await sleep(500);
      assert.equal(standin.calls.length, from + 1, 'one purge per delete');
      // This location dropped its copies at once.
      for (const path of [`/assets/images/${app}/pic`, `/images/${app}/pic/w=320`]) {
        assert.equal((await get(mf, path, { accept: 'image/webp' })).status, 404, path);
      }
    } finally {
      await mf.dispose();
    }
  });

  test('without a token: no purge is sent and the edge keeps answers no longer than EDGE_TTL_WITHOUT_PURGE_S', async () => {
    const mf = await imageService({ store: garage, vars: { CF_ZONE_ID: ZONE, CF_API_BASE: standin.apiBase, EDGE_TTL_WITHOUT_PURGE_S: '120' } });
    try {
      const app = 'purge_img_none';
      const { api, controls } = await uploadAndServe(mf, app, 'pic');
      for (const cc of controls) assert.equal(cc, 'public, max-age=120, immutable');
      const from = standin.calls.length;
      const del = await api.call('DELETE', `/images?app_id=${app}&image_id=pic`, { key: API_KEY, headers: freshIp() });
      assert.equal(del.status, 200, del.text);
      await sleep(1000);
      assert.equal(standin.calls.length, from, 'nothing sent');
    } finally {
      await mf.dispose();
    }
  });

  test('a failing purge API does not fail the delete; it is tried again, and a last failure goes to Sentry', async () => {
    const sentry = await startSentrySink();
    const mf = await imageService({ store: garage, vars: { ...purgeVars, CF_API_BASE: standin.apiBase, IV_SENTRY_DSN: sentry.dsn } });
    standin.answerWith(500);
    try {
      const app = 'purge_img_fail';
      const api = client(mf, BASE);
      const up = await api.post(`/upload?app_id=${app}&image_id=pic`, png, { key: API_KEY, headers: { ...freshIp(), 'content-type': 'image/png' } });
      assert.equal(up.status, 201, up.text);
      const from = standin.calls.length;
      const del = await api.call('DELETE', `/images?app_id=${app}&image_id=pic`, { key: API_KEY, headers: freshIp() });
      assert.equal(del.status, 200, del.text);
      assert.equal(del.json.deleted.objects, 1);
      const calls = await callsAfter(from, 3);
      assert.ok(calls.every((c) => c.status === 500 && c.body.tags[0] === `iv-img:${app}:pic`), JSON.stringify(calls));
      for (let i = 0; i < 100 && sentry.received.length === 0; i++) await sleep(100);
      const [got] = sentry.received;
      assert.ok(got, 'the last failure reached Sentry');
      assert.match(got.event.exception.values[0].value, new RegExp(`cache purge failed \\(status 500\\) for tags \\["iv-img:${app}:pic"\\]`));
      assert.equal(got.event.tags.service, 'image-service');
      assert.doesNotMatch(JSON.stringify(got), new RegExp(TOKEN), 'never the token');
    } finally {
      standin.answerWith(200);
      await mf.dispose();
      await sentry.close();
    }
  });
});

describe('deleting a video purges it at every location', () => {
  const result = { duration_s: 4, has_audio: false, renditions: [], thumbnails: null };

  /** A done video with a master, a rung playlist, a segment and a poster, each served twice (miss, then hit). */
  async function doneAndServed(mf, app, video) {
    const api = client(mf);
    const raw = `raw/${app}/${video}/source.mp4`;
    await putStored({ backend: 's3', mf, garage }, raw, new Uint8Array(1000).fill(7), 'video/mp4');
    const n = await api.post('/notify-upload-complete', { app_id: app, video_id: video, raw_key: raw, content_type: 'video/mp4' }, { key: API_KEY, headers: freshIp() });
    assert.equal(n.status, 202, n.text);
    let job;
    for (let i = 0; i < 20 && job?.video_id !== video; i++) job = (await api.internal('/internal/jobs/lease', { worker: 'test', wait_ms: 3000 })).json.job;
    assert.equal(job?.video_id, video);
    const files = [['master.m3u8', 'application/vnd.apple.mpegurl'], ['720p/index.m3u8', 'application/vnd.apple.mpegurl'], ['720p/00000.m4s', 'video/iso.segment'], ['poster.jpg', 'image/jpeg']];
    for (const [file, type] of files) await putStored({ backend: 's3', mf, garage }, `${job.output_prefix}${file}`, new Uint8Array(100), type);
    const done = await api.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result });
    assert.equal(done.status, 200, done.text);
    const controls = {};
    for (const [file] of files) {
      const path = `/${job.output_prefix}${file}`;
      servedOk(await mf.dispatchFetch(`http://video.test${path}`, { headers: freshIp() }), path);
      await sleep(100);
      const again = await mf.dispatchFetch(`http://video.test${path}`, { headers: freshIp() });
      controls[file] = servedOk(again, `${path} (again)`);
      await again.arrayBuffer();
    }
    return { api, controls, prefix: job.output_prefix };
  }

  test('one purge by the video tag after its master, a rung playlist, a segment and the poster were served', async () => {
    const mf = await videoService({ store: garage, backend: 's3', vars: { ...purgeVars, CF_API_BASE: standin.apiBase } });
    try {
      const app = 'purge_vid';
      const { api, controls, prefix } = await doneAndServed(mf, app, 'clip');
      assert.equal(controls['720p/00000.m4s'], IMMUTABLE, 'with a purge, segments stay a year');
      await keptWithTag(mf, `http://video.test/${prefix}720p/00000.m4s`, `iv-vid:${app}:clip`);
      const from = standin.calls.length;
      const del = await api.call('DELETE', `/videos?app_id=${app}&video_id=clip`, { key: API_KEY, headers: freshIp() });
      assert.equal(del.status, 200, del.text);
      const [call] = await callsAfter(from, 1);
      assert.deepEqual(call, { method: 'POST', path: `/client/v4/zones/${ZONE}/purge_cache`, authorization: `Bearer ${TOKEN}`, body: { tags: [`iv-vid:${app}:clip`] }, status: 200 });
      await sleep(500);
      assert.equal(standin.calls.length, from + 1, 'one purge per delete');
    } finally {
      await mf.dispose();
    }
  });

  test('without a token: no purge, and segments and the poster are kept no longer than EDGE_TTL_WITHOUT_PURGE_S', async () => {
    const mf = await videoService({ store: garage, backend: 's3', vars: { CF_API_BASE: standin.apiBase } });
    try {
      const app = 'purge_vid_none';
      const { api, controls } = await doneAndServed(mf, app, 'clip');
      assert.equal(controls['720p/00000.m4s'], 'public, max-age=3600, immutable', 'the default cap: 1 h');
      assert.equal(controls['poster.jpg'], 'public, max-age=3600, immutable');
      assert.equal(controls['master.m3u8'], 'public, max-age=2', 'shorter policies are kept');
      const from = standin.calls.length;
      const del = await api.call('DELETE', `/videos?app_id=${app}&video_id=clip`, { key: API_KEY, headers: freshIp() });
      assert.equal(del.status, 200, del.text);
      await sleep(1000);
      assert.equal(standin.calls.length, from, 'nothing sent');
    } finally {
      await mf.dispose();
    }
  });
});
