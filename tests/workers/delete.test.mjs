// Deleting media for good (DELETE /videos, DELETE /images) and the
// retention of a video's earlier attempts, in workerd. Runs once per
// storage backend: the R2 binding (Miniflare's R2) and the S3 adapter
// against a real Garage; objects are counted through the bucket itself.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGarage } from '../../devkit/garage.mjs';
import { listKeys } from '../../devkit/sigv4.mjs';
import { openEvents } from '../../devkit/sse.mjs';
import { videoService, imageService, client, errorCode, freshIp, putStored, objectFiles, storedTables, API_KEY } from './harness.mjs';

// A key that may act only for `other_app`.
const OTHER_KEY = 'test-key-other-app';
const IV_API_KEY = `${API_KEY}, ${OTHER_KEY}:other_app`;
// A 1x1 PNG.
const PNG = Uint8Array.from(Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64'));

let garage;
let garageDir;
before(async () => {
  garageDir = mkdtempSync(join(tmpdir(), 'garage-delete-'));
  garage = await startGarage({ dir: garageDir });
});
after(async () => {
  await garage?.stop();
  rmSync(garageDir, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

for (const backend of ['r2', 's3']) {
  /** The keys under `prefix`, as the bucket lists them. */
  const keysIn = async (mf, prefix) => {
    if (backend === 'r2') {
      const listed = await (await mf.getR2Bucket('MEDIA_BUCKET')).list({ prefix });
      return listed.objects.map((o) => o.key);
    }
    return listKeys(garage, prefix);
  };

  describe(`deleting videos (${backend} backend)`, () => {
    let mf;
    let api;
    const app = `del_${backend}`;
    const put = (key, bytes, type) => putStored({ backend, mf, garage }, key, bytes, type);
    const uploaded = async (video) => {
      const raw = `raw/${app}/${video}/source.mp4`;
      await put(raw, new Uint8Array(1000).fill(7), 'video/mp4');
      return raw;
    };
    const notify = async (video) => api.post('/notify-upload-complete', { app_id: app, video_id: video, raw_key: await uploaded(video), content_type: 'video/mp4' }, { key: API_KEY, headers: freshIp() });
    const leaseJob = async (video) => {
      for (let i = 0; i < 20; i++) {
        const job = (await api.internal('/internal/jobs/lease', { worker: 'test', wait_ms: 3000 })).json.job;
        assert.ok(job, `no job leased while looking for ${video}`);
        if (job.video_id === video) return job;
      }
      throw new Error(`never leased ${video}`);
    };
    const del = (video, { key = API_KEY, appId = app } = {}) =>
      api.call('DELETE', `/videos?app_id=${appId}&video_id=${video}`, { key, headers: freshIp() });
    const count = async (video) => (await keysIn(mf, `raw/${app}/${video}/`)).length + (await keysIn(mf, `hls/${app}/${video}/`)).length;
    const result = { duration_s: 4, has_audio: false, renditions: [], thumbnails: null };

    let persist;
    before(async () => {
      persist = mkdtempSync(join(tmpdir(), `delete-objects-${backend}-`));
      mf = await videoService({ store: garage, backend, persist, vars: { IV_API_KEY, LEASE_TTL_MS: '1000', RETRY_BACKOFF_MS: '200' } });
      api = client(mf);
    });
    after(async () => {
      await mf?.dispose();
      rmSync(persist, { recursive: true, force: true });
    });

    test('a deleted video leaves no Durable Object once swept, and reading it afterwards creates none', async () => {
      const start = objectFiles(persist, 'VideoJob');
      assert.equal((await notify('vgone')).status, 202);
      const [file] = objectFiles(persist, 'VideoJob').filter((f) => !start.includes(f));
      assert.ok(file, 'the job has its object');
      assert.ok((await storedTables(file)).includes('job'));
      const kv = await mf.getKVNamespace('MEDIA_KV');
      assert.equal(await kv.get(`jobs/${app}/vgone`), '1', 'the job marker public reads check');
      const r = await del('vgone');
      assert.equal(r.status, 200, r.text);
      assert.ok(r.json.final_sweep_at, 'a queued job: the tombstone stands for the lease time');
      assert.equal(await kv.get(`jobs/${app}/vgone`), null, 'the marker goes with the delete');
      // workerd keeps an object's file open while it runs; deleteAll() leaves it with nothing stored.
      const deadline = Date.parse(r.json.final_sweep_at) + 8000;
      while (Date.now() < deadline && (await storedTables(file)).length > 0) await sleep(300);
      assert.deepEqual(await storedTables(file), [], 'swept: deleteAll() left nothing stored');
      for (const path of [`/job-status?app_id=${app}&video_id=vgone`, `/job-events?app_id=${app}&video_id=vgone`, `/playback-url?app_id=${app}&video_id=vgone`]) {
        assert.equal((await api.get(path, { headers: freshIp() })).status, 404, path);
      }
      // The transcoder's calls for the deleted job reach the empty object: refused, nothing created.
      const inspect = await api.internal('/internal/jobs/inspect', { app_id: app, video_id: 'vgone' });
      assert.equal(inspect.status, 404, inspect.text);
      await sleep(300);
      assert.deepEqual(await storedTables(file), [], 'reads of the deleted video stored nothing');
      assert.equal(objectFiles(persist, 'VideoJob').length, start.length + 1, 'and asked no other object');
    });

    test('a done video: every object, the record and the job go; reads answer 404; a repeat answers zeros', async () => {
      assert.equal((await notify('vdone')).status, 202);
      const job = await leaseJob('vdone');
      const prefix = job.output_prefix;
      for (const [file, type] of [['master.m3u8', 'application/vnd.apple.mpegurl'], ['720p/index.m3u8', 'application/vnd.apple.mpegurl'], ['720p/00000.m4s', 'video/iso.segment'], ['poster.jpg', 'image/jpeg'], ['thumbnails.vtt', 'text/vtt']]) {
        await put(`${prefix}${file}`, new Uint8Array(100), type);
      }
      assert.equal((await api.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result })).status, 200);
      const kv = await mf.getKVNamespace('MEDIA_KV');
      assert.ok(await kv.get(`playback/${app}/vdone`), 'the playback record is published');
      assert.equal(await count('vdone'), 6);
      // Reads before, so that the caches hold them.
      assert.equal((await api.get(`/job-status?app_id=${app}&video_id=vdone`)).status, 200);
      assert.equal((await api.get(`/${prefix}720p/00000.m4s`)).status, 200);

      const r = await del('vdone');
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { app_id: app, video_id: 'vdone', deleted: { objects: 6, job: true, playback_record: true }, final_sweep_at: null });
      assert.equal(r.headers.get('access-control-allow-origin'), null, 'server-only: no CORS');
      assert.equal(await count('vdone'), 0);
      assert.equal(await kv.get(`playback/${app}/vdone`), null);
      for (const path of [`/job-status?app_id=${app}&video_id=vdone`, `/playback-url?app_id=${app}&video_id=vdone`, `/job-events?app_id=${app}&video_id=vdone`, `/${prefix}720p/00000.m4s`, `/${prefix}master.m3u8`]) {
        const res = await api.get(path, { headers: freshIp() });
        assert.equal(res.status, 404, `${path}: ${res.text}`);
        assert.equal(errorCode(res), 'not_found');
      }
      // The app's stream no longer lists the video, and its kept events lost their data.
      const stream = await openEvents((url, init) => mf.dispatchFetch(url, init), `http://video.test/events?app_id=${app}`, { lastEventId: 0, headers: { 'x-api-key': API_KEY, ...freshIp() } });
      try {
        const connected = await stream.waitFor('connected', 5000);
        assert.equal(connected.data.recent.some((j) => j.videoId === 'vdone'), false, JSON.stringify(connected.data.recent));
        await sleep(200);
        // The delete itself is announced after, with ids only (issue 25).
        const ofVideo = stream.events.filter((e) => e.data?.videoId === 'vdone' && e.event !== 'video.deleted');
        assert.ok(ofVideo.length >= 3, `the video's events keep their ids: ${ofVideo.length}`);
        for (const e of ofVideo) assert.deepEqual(e.data, { videoId: 'vdone', deleted: true }, e.event);
        const deleted = stream.events.filter((e) => e.event === 'video.deleted' && e.data.videoId === 'vdone');
        assert.deepEqual(deleted.map((e) => e.data.data), [{ app_id: app, video_id: 'vdone' }]);
      } finally {
        stream.close();
      }
      const again = await del('vdone');
      assert.equal(again.status, 200, again.text);
      assert.deepEqual(again.json.deleted, { objects: 0, job: false, playback_record: false });
      assert.equal(again.json.final_sweep_at, null);
    });

    test('a running job: its transcoder is refused at once, and what it writes late is swept after the lease', async () => {
      assert.equal((await notify('vrun')).status, 202);
      const job = await leaseJob('vrun');
      const hb = await api.internal(`/internal/jobs/${job.job_id}/heartbeat`, { lease_id: job.lease_id, progress: 20, stage: 'encoding' });
      assert.equal(hb.status, 200, hb.text);
      await put(`${job.output_prefix}720p/00000.m4s`, new Uint8Array(100), 'video/iso.segment');

      const r = await del('vrun');
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.deleted, { objects: 2, job: true, playback_record: false });
      const sweepAt = Date.parse(r.json.final_sweep_at);
      assert.ok(sweepAt > Date.now() && sweepAt < Date.now() + 10_000, r.json.final_sweep_at);
      assert.equal(await count('vrun'), 0);

      // The transcoder's next calls: the lease is lost, so it stops.
      for (const call of ['heartbeat', 'complete', 'fail']) {
        const body = { lease_id: job.lease_id, progress: 30, result, message: 'x', retryable: true };
        const res = await api.internal(`/internal/jobs/${job.job_id}/${call}`, body);
        assert.equal(res.status, 409, `${call}: ${res.text}`);
        assert.equal(errorCode(res), 'lease_lost');
      }
      assert.equal((await api.get(`/job-status?app_id=${app}&video_id=vrun`)).status, 404);
      // A notify waits for the sweep.
      const early = await notify('vrun');
      assert.equal(early.status, 409, early.text);
      assert.match(early.json.error.message, /being deleted/);
      // A segment written late (before the transcoder saw its heartbeat refused), and the notify's upload.
      await put(`${job.output_prefix}720p/00001.m4s`, new Uint8Array(100), 'video/iso.segment');
      assert.equal(await count('vrun'), 2);
      // A repeat meanwhile: zeros for the job, the same sweep.
      const again = await del('vrun');
      assert.equal(again.json.final_sweep_at, r.json.final_sweep_at);
      assert.equal(again.json.deleted.job, false);
      assert.equal(await count('vrun'), 0);
      await put(`${job.output_prefix}720p/00002.m4s`, new Uint8Array(100), 'video/iso.segment');

      const deadline = sweepAt + 8000;
      while (Date.now() < deadline && (await count('vrun')) > 0) await sleep(300);
      assert.equal(await count('vrun'), 0, 'the final sweep removed the late segment');
      // The tombstone is gone with it: the same video can start again.
      let renotified;
      for (let i = 0; i < 20; i++) {
        renotified = await notify('vrun');
        if (renotified.status !== 409) break;
        await sleep(250);
      }
      assert.equal(renotified.status, 202, renotified.text);
      assert.notEqual(renotified.json.job_id, job.job_id);
      assert.equal((await del('vrun')).status, 200);
    });

    test("another app's key is 403 and deletes nothing; bad ids are 400; other methods 405", async () => {
      assert.equal((await notify('vkeep')).status, 202);
      const refused = await del('vkeep', { key: OTHER_KEY });
      assert.equal(refused.status, 403, refused.text);
      assert.equal(errorCode(refused), 'app_not_allowed');
      assert.equal(await count('vkeep'), 1);
      assert.equal((await api.get(`/job-status?app_id=${app}&video_id=vkeep`)).json.status, 'queued');
      const keyless = await api.call('DELETE', `/videos?app_id=${app}&video_id=vkeep`, { headers: freshIp() });
      assert.equal(keyless.status, 401);

      for (const [query, message] of [[`app_id=a%2Fb&video_id=v`, /app_id/], [`app_id=${app}`, /video_id is required/], [`app_id=${app}&video_id=${'x'.repeat(65)}`, /limit is 64/]]) {
        const res = await api.call('DELETE', `/videos?${query}`, { key: API_KEY, headers: freshIp() });
        assert.equal(res.status, 400, `${query}: ${res.text}`);
        assert.match(res.json.error.message, message);
      }
      const get = await api.get(`/videos?app_id=${app}&video_id=vkeep`, { key: API_KEY, headers: freshIp() });
      assert.equal(get.status, 405);
      assert.match(get.headers.get('allow'), /DELETE/);
      assert.equal(await count('vkeep'), 1);
      assert.equal((await del('vkeep')).json.deleted.job, true);
    });

    test('retention: a completed job removes the outputs of its failed attempt and keeps its own and the source', async () => {
      assert.equal((await notify('vret')).status, 202);
      const first = await leaseJob('vret');
      await put(`${first.output_prefix}720p/00000.m4s`, new Uint8Array(100), 'video/iso.segment');
      const failed = await api.internal(`/internal/jobs/${first.job_id}/fail`, { lease_id: first.lease_id, message: 'storage timed out', retryable: true });
      assert.equal(failed.status, 200, failed.text);
      const second = await leaseJob('vret');
      assert.notEqual(second.output_prefix, first.output_prefix);
      await put(`${second.output_prefix}master.m3u8`, '#EXTM3U\n', 'application/vnd.apple.mpegurl');
      await put(`${second.output_prefix}720p/00000.m4s`, new Uint8Array(100), 'video/iso.segment');
      assert.equal((await api.internal(`/internal/jobs/${second.job_id}/complete`, { lease_id: second.lease_id, result })).status, 200);
      assert.deepEqual(await keysIn(mf, first.output_prefix), []);
      assert.deepEqual((await keysIn(mf, second.output_prefix)).sort(), [`${second.output_prefix}720p/00000.m4s`, `${second.output_prefix}master.m3u8`]);
      assert.deepEqual(await keysIn(mf, `raw/${app}/vret/`), [`raw/${app}/vret/source.mp4`], 'KEEP_SOURCE defaults to true');
    });

    test('retention: a job that fails for good, or is canceled, leaves no outputs and keeps its source', async () => {
      const outputs = async (job) => {
        await put(`${job.output_prefix}master.m3u8`, '#EXTM3U\n', 'application/vnd.apple.mpegurl');
        await put(`${job.output_prefix}720p/00000.m4s`, new Uint8Array(100), 'video/iso.segment');
        assert.equal((await keysIn(mf, `hls/${app}/${job.video_id}/`)).length, 2);
      };
      assert.equal((await notify('vfailed')).status, 202);
      const job = await leaseJob('vfailed');
      await outputs(job);
      const failed = await api.internal(`/internal/jobs/${job.job_id}/fail`, { lease_id: job.lease_id, message: 'the upload is not a video', retryable: false });
      assert.equal(failed.status, 200, failed.text);
      assert.equal(failed.json.status, 'error');
      assert.deepEqual(await keysIn(mf, `hls/${app}/vfailed/`), [], 'nothing serves a failed job\'s outputs');
      assert.deepEqual(await keysIn(mf, `raw/${app}/vfailed/`), [`raw/${app}/vfailed/source.mp4`], 'the source stays for a retry');

      assert.equal((await notify('vcanceled')).status, 202);
      const running = await leaseJob('vcanceled');
      await outputs(running);
      const canceled = await api.post('/cancel-job', { app_id: app, video_id: 'vcanceled' }, { key: API_KEY, headers: freshIp() });
      assert.equal(canceled.status, 200, canceled.text);
      assert.deepEqual(await keysIn(mf, `hls/${app}/vcanceled/`), []);
      assert.deepEqual(await keysIn(mf, `raw/${app}/vcanceled/`), [`raw/${app}/vcanceled/source.mp4`]);
      // Its transcoder writes once more before a heartbeat tells it to stop:
      // swept again once its lease could not be used (LEASE_TTL_MS 1 s + 5 s).
      await put(`${running.output_prefix}720p/00001.m4s`, new Uint8Array(100), 'video/iso.segment');
      let late = await keysIn(mf, `hls/${app}/vcanceled/`);
      for (let i = 0; i < 40 && late.length; i++) {
        await sleep(250);
        late = await keysIn(mf, `hls/${app}/vcanceled/`);
      }
      assert.deepEqual(late, [], 'a late write is swept');
    });

    test('retention: KEEP_SOURCE=false removes the source once the job is done', async () => {
      const other = await videoService({ store: garage, backend, vars: { IV_API_KEY, KEEP_SOURCE: 'false' } });
      try {
        const o = client(other);
        const raw = `raw/${app}/vnosrc/source.mp4`;
        await putStored({ backend, mf: other, garage }, raw, new Uint8Array(1000).fill(7), 'video/mp4');
        assert.equal((await o.post('/notify-upload-complete', { app_id: app, video_id: 'vnosrc', raw_key: raw, content_type: 'video/mp4' }, { key: API_KEY, headers: freshIp() })).status, 202);
        let job;
        for (let i = 0; i < 20 && job?.video_id !== 'vnosrc'; i++) job = (await o.internal('/internal/jobs/lease', { worker: 'test', wait_ms: 3000 })).json.job;
        assert.equal(job?.video_id, 'vnosrc');
        assert.equal((await o.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result })).status, 200);
        assert.deepEqual(await keysIn(other, `raw/${app}/vnosrc/`), []);
      } finally {
        await other.dispose();
      }
    });
  });

  describe(`deleting images (${backend} backend)`, () => {
    let mf;
    let api;
    const app = `delimg_${backend}`;
    const del = (image, { key = API_KEY } = {}) => api.call('DELETE', `/images?app_id=${app}&image_id=${image}`, { key, headers: freshIp() });

    before(async () => {
      mf = await imageService({ store: garage, backend, vars: { IV_API_KEY } });
      api = client(mf, 'http://images.test');
    });
    after(async () => mf?.dispose());

    test('the original and its record go, /assets answers 404 (this location\'s cache too), a repeat answers zeros', async () => {
      const up = await api.post(`/upload?app_id=${app}&image_id=img1`, PNG, { key: API_KEY, headers: { ...freshIp(), 'content-type': 'image/png' } });
      assert.equal(up.status, 201, up.text);
      const asset = `/assets/images/${app}/img1`;
      assert.equal((await api.get(asset)).status, 200);
      assert.equal((await api.get(asset)).status, 200, 'served again, from the edge cache');
      const kv = await mf.getKVNamespace('MEDIA_KV');
      assert.ok(await kv.get(`image/${app}/img1`));
      await putStored({ backend, mf, garage }, `images/${app}/img10`, PNG, 'image/png');

      const refused = await del('img1', { key: OTHER_KEY });
      assert.equal(refused.status, 403);
      assert.equal(errorCode(refused), 'app_not_allowed');
      assert.deepEqual(await keysIn(mf, `images/${app}/img1`), [`images/${app}/img1`, `images/${app}/img10`]);

      const r = await del('img1');
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { app_id: app, image_id: 'img1', deleted: { objects: 1, record: true } });
      assert.equal(r.headers.get('access-control-allow-origin'), null);
      assert.deepEqual(await keysIn(mf, `images/${app}/img1`), [`images/${app}/img10`], 'only that image');
      assert.equal(await kv.get(`image/${app}/img1`), null);
      const gone = await api.get(asset, { headers: freshIp() });
      assert.equal(gone.status, 404, gone.text);
      const again = await del('img1');
      assert.deepEqual(again.json.deleted, { objects: 0, record: false });

      for (const query of ['app_id=a%2Fb&image_id=x', `app_id=${app}`]) {
        const bad = await api.call('DELETE', `/images?${query}`, { key: API_KEY, headers: freshIp() });
        assert.equal(bad.status, 400, `${query}: ${bad.text}`);
        assert.equal(errorCode(bad), 'invalid_query');
      }
    });
  });
}
