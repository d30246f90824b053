// MP4 downloads (issue 26) in workerd: GET /download of a video notified
// with `download`, as the transcoder reports it through /complete
// (result.download), once per storage backend (Miniflare's R2 binding and
// the S3 adapter against a real Garage): /job-status's download field
// (preparing, ready, errored), the file with Content-Disposition, length,
// Range 206, If-None-Match 304, HEAD, its edge copy tagged with the video's
// cache tag, 404 without the option, 409 before it is ready, and a delete
// that takes the file with the video. A video that requires signed URLs:
// 403 without a token, 403 with a token that lacks downloadable, 401 for a
// bad token, the file with a downloadable one.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startGarage } from '../../devkit/garage.mjs';
import { listKeys } from '../../devkit/sigv4.mjs';
import { videoService, client, errorCode, freshIp, putStored, API_KEY } from './harness.mjs';

let garage;
let garageDir;
before(async () => {
  garageDir = mkdtempSync(join(tmpdir(), 'garage-downloads-'));
  garage = await startGarage({ dir: garageDir });
});
after(async () => {
  await garage?.stop();
  rmSync(garageDir, { recursive: true, force: true });
});

const BASE = 'http://video.test';

for (const backend of ['r2', 's3']) {
  describe(`downloads (${backend} backend)`, () => {
    let mf;
    let api;
    const app = `dl_${backend}`;
    const put = (key, bytes, type) => putStored({ backend, mf, garage }, key, bytes, type);
    const keysIn = async (prefix) => (backend === 'r2'
      ? (await (await mf.getR2Bucket('MEDIA_BUCKET')).list({ prefix })).objects.map((o) => o.key)
      : listKeys(garage, prefix));
    const get = (path, headers = {}) => api.get(path, { headers: { ...freshIp(), ...headers } });
    const fetchBytes = async (url, init = {}) => {
      const res = await mf.dispatchFetch(url, { ...init, headers: { ...freshIp(), ...(init.headers ?? {}) } });
      return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
    };
    const status = async (video) => (await get(`/job-status?app_id=${app}&video_id=${video}`)).json;

    /** Notifies `video` with `options`, leases its job and makes it playable. */
    async function running(video, options) {
      const raw = `raw/${app}/${video}/source.mp4`;
      await put(raw, new Uint8Array(1000).fill(7), 'video/mp4');
      const notified = await api.post('/notify-upload-complete', { app_id: app, video_id: video, raw_key: raw, content_type: 'video/mp4', ...options }, { key: API_KEY, headers: freshIp() });
      assert.equal(notified.status, 202, notified.text);
      let job;
      for (let i = 0; i < 20 && job?.video_id !== video; i++) job = (await api.internal('/internal/jobs/lease', { worker: 'test', wait_ms: 3000 })).json.job;
      assert.equal(job?.video_id, video, 'leased');
      const hb = await api.internal(`/internal/jobs/${job.job_id}/heartbeat`, { lease_id: job.lease_id, progress: 50, stage: 'encoding', playable: true });
      assert.equal(hb.status, 200, hb.text);
      return job;
    }

    /** Completes `job` with `download` in its result (as the transcoder reports it). */
    async function complete(job, download) {
      const result = { duration_s: 4, has_audio: true, renditions: [], thumbnails: null, ...(download ? { download } : {}) };
      const done = await api.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result });
      assert.equal(done.status, 200, done.text);
    }

    /** A done video whose transcoder published a download of `bytes`. */
    async function downloadable(video, options = { download: { rung: '480p' } }) {
      const job = await running(video, options);
      const bytes = randomBytes(300_000);
      const key = `downloads/${app}/${video}/${job.output_id}/${video}.mp4`;
      await put(key, bytes, 'video/mp4');
      await complete(job, { status: 'ready', rung: '480p', size: bytes.length });
      return { job, bytes, key };
    }

    before(async () => {
      mf = await videoService({ store: garage, backend, vars: { LEASE_TTL_MS: '60000' } });
      api = client(mf);
    });
    after(async () => { await mf?.dispose(); });

    test('the lease carries the option; /job-status says preparing and /download 409 until the job is done', async () => {
      const job = await running('prep', { download: { rung: '720p' } });
      assert.deepEqual(job.playback, { download: { rung: '720p' } });
      const s = await status('prep');
      assert.deepEqual(s.download, { status: 'preparing', rung: null, size: null, url: null });
      const early = await get(`/download?app_id=${app}&video_id=prep`);
      assert.equal(early.status, 409, early.text);
      assert.equal(errorCode(early), 'conflict');
      assert.match(early.json.error.message, /being prepared/);
      await complete(job, { status: 'ready', rung: '720p', size: 10 });
    });

    test('a ready download: /job-status shows it, GET serves it as an attachment with its length', async () => {
      const { bytes } = await downloadable('ready');
      const s = await status('ready');
      const url = `${BASE}/download?app_id=${app}&video_id=ready`;
      assert.deepEqual(s.download, { status: 'ready', rung: '480p', size: bytes.length, url });
      const res = await fetchBytes(url);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-disposition'), 'attachment; filename="ready.mp4"');
      assert.equal(res.headers.get('content-type'), 'video/mp4');
      assert.equal(res.headers.get('content-length'), String(bytes.length));
      assert.equal(res.headers.get('accept-ranges'), 'bytes');
      assert.equal(res.headers.get('cache-control'), 'public, max-age=300');
      assert.ok(res.headers.get('etag'));
      assert.ok(res.body.equals(bytes), 'the stored bytes');
      // HEAD: the headers, no body.
      const head = await fetchBytes(url, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(bytes.length));
      assert.equal(head.headers.get('content-disposition'), 'attachment; filename="ready.mp4"');
      assert.equal(head.body.length, 0);
    });

    test('Range answers 206 with its bytes, If-None-Match 304, from storage and from the edge copy', async () => {
      const { bytes, key } = await downloadable('ranges');
      const url = `${BASE}/download?app_id=${app}&video_id=ranges`;
      const first = await fetchBytes(url);
      assert.match(first.headers.get('server-timing'), /cache;desc="miss"/);
      const etag = first.headers.get('etag');
      // The full answer is kept at the edge under the object's key, tagged for the delete's purge.
      let kept;
      for (let i = 0; i < 50 && !kept; i++) {
        kept = await (await mf.getCaches()).default.match(`${BASE}/${key}`);
        if (!kept) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(kept, 'kept at the edge');
      assert.equal(kept.headers.get('cache-tag'), `iv-vid:${app}:ranges`);
      await kept.arrayBuffer();
      for (const round of ['edge', 'edge again']) {
        const part = await fetchBytes(url, { headers: { range: 'bytes=100-1099' } });
        assert.equal(part.status, 206, round);
        assert.equal(part.headers.get('content-range'), `bytes 100-1099/${bytes.length}`, round);
        assert.equal(part.headers.get('content-length'), '1000', round);
        assert.equal(part.headers.get('content-disposition'), 'attachment; filename="ranges.mp4"', round);
        assert.ok(part.body.equals(bytes.subarray(100, 1100)), round);
        assert.equal(part.headers.get('cache-tag'), null, 'the tag is never shown to clients');
        const same = await fetchBytes(url, { headers: { 'if-none-match': etag } });
        assert.equal(same.status, 304, round);
        assert.equal(same.body.length, 0, round);
      }
      const hit = await fetchBytes(url);
      assert.match(hit.headers.get('server-timing'), /cache;desc="hit"/);
      assert.ok(hit.body.equals(bytes));
      assert.equal(hit.headers.get('content-disposition'), 'attachment; filename="ranges.mp4"');
      const past = await fetchBytes(url, { headers: { range: `bytes=${bytes.length}-` } });
      assert.equal(past.status, 416);
    });

    test('a video without the option: 404 and no download field; unknown ids 404; bad queries 400', async () => {
      const job = await running('plain', {});
      assert.equal(job.playback, undefined);
      await complete(job, null);
      assert.equal((await status('plain')).download, undefined);
      const none = await get(`/download?app_id=${app}&video_id=plain`);
      assert.equal(none.status, 404);
      assert.equal(errorCode(none), 'not_found');
      assert.match(none.json.error.message, /no MP4 download/);
      const unknown = await get(`/download?app_id=${app}&video_id=nobody`);
      assert.equal(unknown.status, 404);
      for (const q of ['', `?app_id=${app}`, `?app_id=${app}&video_id=a/b`, `?token=x.y.z&app_id=${app}&video_id=plain`]) {
        const bad = await get(`/download${q}`);
        assert.equal(bad.status, 400, `${q}: ${bad.text}`);
        assert.equal(errorCode(bad), 'invalid_query');
      }
      assert.equal((await api.call('POST', `/download?app_id=${app}&video_id=plain`)).status, 405);
    });

    test('a download that could not be made, or a job without a report: errored and 409', async () => {
      const failed = await running('broken', { download: true });
      await complete(failed, { status: 'errored', rung: '1080p', message: 'storage PUT downloads/...: 500' });
      const s = await status('broken');
      assert.deepEqual(s.download, { status: 'errored', rung: '1080p', size: null, url: null });
      assert.ok(!JSON.stringify(s).includes('storage PUT'), 'the internal message is never shown');
      const res = await get(`/download?app_id=${app}&video_id=broken`);
      assert.equal(res.status, 409);
      assert.match(res.json.error.message, /could not be made/);
      const silent = await running('silent', { download: true });
      await complete(silent, null);
      assert.equal((await status('silent')).download.status, 'errored');
    });

    test('deleting the video deletes its download', async () => {
      const { key } = await downloadable('gone');
      assert.deepEqual(await keysIn(`downloads/${app}/gone/`), [key]);
      const del = await api.call('DELETE', `/videos?app_id=${app}&video_id=gone`, { key: API_KEY, headers: freshIp() });
      assert.equal(del.status, 200, del.text);
      assert.deepEqual(await keysIn(`downloads/${app}/gone/`), []);
      assert.equal((await get(`/download?app_id=${app}&video_id=gone`)).status, 404);
    });
  });
}

describe('downloads of a video that requires signed URLs', () => {
  let mf;
  let api;
  const app = 'dl_signed';
  before(async () => {
    mf = await videoService({ store: garage, backend: 'r2', vars: { LEASE_TTL_MS: '60000' } });
    api = client(mf);
  });
  after(async () => { await mf?.dispose(); });
  const get = (path) => api.get(path, { headers: freshIp() });
  const mint = async (video, body = {}) => {
    const r = await api.post('/playback-tokens', { app_id: app, video_id: video, ...body }, { key: API_KEY, headers: freshIp() });
    assert.equal(r.status, 200, r.text);
    return r.json;
  };

  test('no token 403 signed_url_required; a token without downloadable 403; a bad one 401; downloadable: the file', async () => {
    const bucket = await mf.getR2Bucket('MEDIA_BUCKET');
    const raw = `raw/${app}/secret/source.mp4`;
    await bucket.put(raw, new Uint8Array(1000).fill(7), { httpMetadata: { contentType: 'video/mp4' } });
    const notified = await api.post('/notify-upload-complete', { app_id: app, video_id: 'secret', raw_key: raw, content_type: 'video/mp4', require_signed_urls: true, download: true }, { key: API_KEY, headers: freshIp() });
    assert.equal(notified.status, 202, notified.text);
    let job;
    for (let i = 0; i < 20 && job?.video_id !== 'secret'; i++) job = (await api.internal('/internal/jobs/lease', { worker: 'test', wait_ms: 3000 })).json.job;
    const bytes = randomBytes(50_000);
    await bucket.put(`downloads/${app}/secret/${job.output_id}/secret.mp4`, bytes, { httpMetadata: { contentType: 'video/mp4' } });
    await api.internal(`/internal/jobs/${job.job_id}/heartbeat`, { lease_id: job.lease_id, progress: 50, playable: true });
    const done = await api.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result: { duration_s: 4, has_audio: true, renditions: [], thumbnails: null, download: { status: 'ready', rung: '1080p', size: bytes.length } } });
    assert.equal(done.status, 200, done.text);

    const s = (await get(`/job-status?app_id=${app}&video_id=secret`)).json;
    assert.equal(s.download.status, 'ready');
    assert.equal(s.download.url, null, 'no public URL for a signed video');
    assert.match(s.download.note, /downloadable/);

    const bare = await get(`/download?app_id=${app}&video_id=secret`);
    assert.equal(bare.status, 403);
    assert.equal(errorCode(bare), 'signed_url_required');
    assert.match(bare.json.error.message, /token/);

    const plain = await mint('secret');
    const refused = await get(`/download?token=${plain.token}`);
    assert.equal(refused.status, 403, refused.text);
    assert.equal(errorCode(refused), 'forbidden');
    assert.match(refused.json.error.message, /downloadable/);

    for (const bad of ['garbage', `${plain.token}x`, 'a.b.c']) {
      const r = await get(`/download?token=${encodeURIComponent(bad)}`);
      assert.equal(r.status, 401, `${bad}: ${r.text}`);
      assert.equal(errorCode(r), 'invalid_token');
    }

    const minted = await mint('secret', { downloadable: true });
    assert.ok(minted.download_url?.includes(`/download?token=${minted.token}`), JSON.stringify(minted));
    const res = await mf.dispatchFetch(`http://video.test/download?token=${minted.token}`, { headers: freshIp() });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-disposition'), 'attachment; filename="secret.mp4"');
    assert.match(res.headers.get('cache-control'), /^private, max-age=\d+$/);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(bytes));
    const part = await mf.dispatchFetch(`http://video.test/download?token=${minted.token}`, { headers: { ...freshIp(), range: 'bytes=0-9' } });
    assert.equal(part.status, 206);
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(0, 10)));
  });
});
