// The video service in workerd: every route, the auth matrix, validation
// errors, the job queue (lease, heartbeat, expiry by alarm, retries), the KV
// playback record, HLS serving and CORS. Runs once per storage backend: the
// R2 binding (Miniflare's R2) and the S3 adapter against a real Garage.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGarage } from '../../devkit/garage.mjs';
import { s3, listKeys } from '../../devkit/sigv4.mjs';
import { startSentrySink } from '../../devkit/sentry-sink.mjs';
import { waitFor } from '../../devkit/ports.mjs';
import { videoService, client, errorCode, freshIp, putStored, API_KEY, API_KEY_2, ROOT, freshWindow } from './harness.mjs';

let garage;
let garageDir;
before(async () => {
  garageDir = mkdtempSync(join(tmpdir(), 'garage-video-'));
  garage = await startGarage({ dir: garageDir });
});
after(async () => {
  await garage?.stop();
  rmSync(garageDir, { recursive: true, force: true });
});

for (const backend of ['r2', 's3']) {
  describe(`video service (${backend} backend)`, () => {
    let mf;
    let api;
    const app = `app_${backend}`;
    // Puts an object where the service reads it from.
    const put = (key, bytes, type) => putStored({ backend, mf, garage }, key, bytes, type);
    const keysIn = async (prefix) => (backend === 'r2'
      ? (await (await mf.getR2Bucket('MEDIA_BUCKET')).list({ prefix })).objects.map((o) => o.key)
      : listKeys(garage, prefix));
    const presign = (video, extra = {}) =>
      api.post('/generate-upload-url', { app_id: app, video_id: video, content_type: 'video/mp4', size: 1000, ...extra }, { key: API_KEY, headers: freshIp() });
    const notify = (video, rawKey, extra = {}) =>
      api.post('/notify-upload-complete', { app_id: app, video_id: video, raw_key: rawKey, content_type: 'video/mp4', ...extra }, { key: API_KEY, headers: freshIp() });
    const uploaded = async (video) => {
      const raw = `raw/${app}/${video}/source.mp4`;
      await put(raw, new Uint8Array(1000).fill(7), 'video/mp4');
      return raw;
    };
    const lease = async (waitMs = 0) => (await api.internal('/internal/jobs/lease', { worker: 'test', wait_ms: waitMs })).json.job;
    // Leases until it gets the job of `video` (earlier tests may leave queued jobs behind).
    const leaseJob = async (video) => {
      for (let i = 0; i < 20; i++) {
        const job = await lease(3000);
        assert.ok(job, `no job leased while looking for ${video}`);
        if (job.video_id === video) return job;
      }
      throw new Error(`never leased ${video}`);
    };
    const status = (video) => api.get(`/job-status?app_id=${app}&video_id=${video}`);

    before(async () => {
      mf = await videoService({ store: garage, backend, vars: { LEASE_TTL_MS: '1000', RETRY_BACKOFF_MS: '200' } });
      api = client(mf);
    });
    after(async () => mf?.dispose());

    test('health and OpenAPI document', async () => {
      assert.equal((await api.get('/health')).json.status, 'ok');
      const doc = await api.get('/openapi.json');
      assert.equal(doc.status, 200);
      assert.deepEqual(doc.json, JSON.parse(readFileSync(join(ROOT, 'openapi/video-service.json'), 'utf8')));
      for (const p of ['/generate-upload-url', '/notify-upload-complete', '/job-status', '/playback-url']) assert.ok(doc.json.paths[p], p);
    });

    test('API key matrix on both sensitive routes', async () => {
      for (const path of ['/generate-upload-url', '/notify-upload-complete']) {
        const body = { app_id: app, video_id: 'v', content_type: 'video/mp4', raw_key: `raw/${app}/v/source.mp4` };
        const cases = [
          [undefined, 401, 'unauthorized'],
          ['', 401, 'unauthorized'],
          ['wrong-key', 403, 'forbidden'],
          [API_KEY.toUpperCase(), 403, 'forbidden'],
          [`${API_KEY},${API_KEY_2}`, 403, 'forbidden'],
        ];
        for (const [key, want, code] of cases) {
          const r = await api.post(path, body, { key, headers: freshIp() });
          assert.equal(r.status, want, `${path} key=${key}`);
          assert.equal(errorCode(r), code);
        }
        // The key in another header does not count.
        const other = await api.post(path, body, { headers: { ...freshIp(), authorization: `Bearer ${API_KEY}` } });
        assert.equal(other.status, 401);
        // The second configured key works.
        const ok = await api.post(path, body, { key: API_KEY_2, headers: freshIp() });
        assert.notEqual(ok.status, 401);
        assert.notEqual(ok.status, 403);
      }
    });

    test('presign: fields, binding and validation errors', async () => {
      const r = await presign('vid1', { size: 12345 });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.raw_key, `raw/${app}/vid1/source.mp4`);
      assert.equal(r.json.method, 'PUT');
      assert.deepEqual(r.json.headers, { 'Content-Type': 'video/mp4', 'If-None-Match': '*' });
      const url = new URL(r.json.upload_url);
      assert.equal(url.origin, garage.endpoint);
      assert.equal(url.pathname, `/${garage.bucket}/raw/${app}/vid1/source.mp4`);
      assert.equal(url.searchParams.get('X-Amz-SignedHeaders'), 'content-length;content-type;host;if-none-match');
      assert.equal(url.searchParams.get('X-Amz-Expires'), '900');
      const expires = Date.parse(r.json.expires_at);
      assert.ok(expires > Date.now() + 800_000 && expires < Date.now() + 1_000_000, r.json.expires_at);
      assert.equal(r.headers.get('cache-control'), 'no-store');

      const bad = async (body, status, code, message) => {
        const res = await api.post('/generate-upload-url', body, { key: API_KEY, headers: freshIp() });
        assert.equal(res.status, status, `${JSON.stringify(body)} -> ${res.text}`);
        assert.equal(errorCode(res), code);
        if (message) assert.match(res.json.error.message, message);
      };
      await bad({ video_id: 'v', content_type: 'video/mp4' }, 400, 'invalid_field', /app_id is required/);
      await bad({ app_id: 'a/b', video_id: 'v', content_type: 'video/mp4' }, 400, 'invalid_field', /app_id contains '\/'/);
      await bad({ app_id: app, video_id: 'x'.repeat(65), content_type: 'video/mp4' }, 400, 'invalid_field', /limit is 64/);
      await bad({ app_id: app, video_id: 'v' }, 400, 'invalid_field', /content_type is required/);
      await bad({ app_id: app, video_id: 'v', content_type: 'video/avi', size: 10 }, 415, 'unsupported_media_type', /video\/mp4/);
      // Clients of the first API left size out: a 400 that says what to send.
      await bad({ app_id: app, video_id: 'v', content_type: 'video/mp4' }, 400, 'invalid_field', /^size is required: the file's length in bytes/);
      await bad({ app_id: app, video_id: 'v', content_type: 'video/mp4', size: null }, 400, 'invalid_field', /^size is required/);
      await bad({ app_id: app, video_id: 'v', content_type: 'video/mp4', size: 6e9 }, 413, 'payload_too_large', /limit/);
      await bad({ app_id: app, video_id: 'v', content_type: 'video/mp4', size: 0 }, 400, 'invalid_field', /empty/);
      await bad({ app_id: app, video_id: 'v', content_type: 'video/mp4', size: 'big' }, 400, 'invalid_field', /size must be a number/);
      await bad('{"app_id":', 400, 'invalid_json', /not valid JSON/);
      await bad('[]', 400, 'invalid_json', /JSON object/);
      const huge = await api.post('/generate-upload-url', 'x'.repeat(20000), { key: API_KEY, headers: freshIp() });
      assert.equal(huge.status, 413);
      for (const [type, ext] of [['video/quicktime', 'mov'], ['video/webm', 'webm'], ['video/x-matroska', 'mkv'], ['video/ogg', 'ogv']]) {
        const ok = await presign('vtypes', { content_type: type });
        assert.equal(ok.json.raw_key, `raw/${app}/vtypes/source.${ext}`);
      }
    });

    test('routes answer unknown paths and methods with JSON errors', async () => {
      const r = await api.get('/nope');
      assert.equal(r.status, 404);
      assert.equal(errorCode(r), 'not_found');
      const m = await api.get('/generate-upload-url');
      assert.equal(m.status, 405);
      assert.equal(errorCode(m), 'method_not_allowed');
      assert.equal(m.headers.get('allow'), 'POST, OPTIONS');
      const odd = await api.call('PROPFIND', '/job-status?app_id=a&video_id=b');
      assert.equal(odd.status, 405, 'a method the runtime cannot name is not taken for GET');
      const seg = await api.call('DELETE', '/hls/a/b/c/master.m3u8');
      assert.equal(seg.status, 405);
      assert.equal(seg.headers.get('allow'), 'GET, HEAD, OPTIONS');
    });

    test('notify: checks the upload, is idempotent, and status/playback follow', async () => {
      assert.equal((await status('vnotify')).status, 404);
      assert.equal(errorCode(await status('vnotify')), 'not_found');
      const missing = await notify('vnotify', `raw/${app}/vnotify/source.mp4`);
      assert.equal(missing.status, 409);
      assert.equal(errorCode(missing), 'upload_missing');
      const outside = await notify('vnotify', `raw/other/vnotify/source.mp4`);
      assert.equal(outside.status, 400);
      assert.match(outside.json.error.message, /another app_id or video_id/);
      const notKey = await notify('vnotify', '../../etc/passwd');
      assert.equal(notKey.status, 400);
      const mismatch = await notify('vnotify', `raw/${app}/vnotify/source.webm`);
      assert.equal(mismatch.status, 400);
      assert.match(mismatch.json.error.message, /does not match the raw_key/);

      const raw = await uploaded('vnotify');
      const first = await notify('vnotify', raw);
      assert.equal(first.status, 202, first.text);
      assert.equal(first.json.status, 'queued');
      assert.equal(first.json.attempts, 0);
      assert.match(first.json.job_id, /^job_[0-9a-z]{26}$/);
      const again = await notify('vnotify', raw);
      assert.equal(again.status, 200);
      assert.equal(again.json.job_id, first.json.job_id);

      const s = await status('vnotify');
      assert.equal(s.status, 200);
      for (const k of ['status', 'progress', 'stage', 'error', 'heartbeat', 'attempts', 'playable', 'created_at', 'updated_at', 'duration_s', 'renditions', 'thumbnails']) {
        assert.ok(k in s.json, `job-status lacks ${k}`);
      }
      assert.equal(s.json.heartbeat, null);
      const p = await api.get(`/playback-url?app_id=${app}&video_id=vnotify`);
      assert.equal(p.status, 409);
      assert.equal(p.json.status, 'queued');
      assert.match(p.json.error.message, /not playable yet/);
      assert.equal((await api.get(`/playback-url?app_id=${app}&video_id=unknown`)).status, 404);
      const badQ = await api.get(`/job-status?app_id=${app}`);
      assert.equal(badQ.status, 400);
      assert.equal(errorCode(badQ), 'invalid_query');
      assert.equal((await api.get(`/job-status?app_id=${app}&video_id=a%2Fb`)).status, 400);
    });

    test('concurrent duplicate notifies make one job', async () => {
      const raw = await uploaded('vdup');
      const all = await Promise.all(Array.from({ length: 8 }, () => notify('vdup', raw)));
      const ids = new Set(all.map((r) => r.json.job_id));
      assert.equal(ids.size, 1);
      assert.equal(all.filter((r) => r.status === 202).length, 1);
      assert.equal(all.filter((r) => r.status === 200).length, 7);
    });

    test('the internal API needs the transcoder token', async () => {
      const none = await api.internal('/internal/jobs/lease', { worker: 't' }, null);
      assert.equal(none.status, 401);
      const wrong = await api.internal('/internal/jobs/lease', { worker: 't' }, 'nope');
      assert.equal(wrong.status, 403);
      const hb = await api.internal('/internal/jobs/job_x/heartbeat', { lease_id: 'l', progress: 1 }, 'nope');
      assert.equal(hb.status, 403);
      const bad = await api.internal('/internal/jobs/lease', { nope: 1 });
      assert.equal(bad.status, 400);
      assert.equal(errorCode(bad), 'invalid_json');
    });

    test('a job runs: lease, heartbeats, playable, complete, KV record', async () => {
      const raw = await uploaded('vrun');
      const queued = await notify('vrun', raw);
      const job = await leaseJob('vrun');
      assert.equal(job.job_id, queued.json.job_id);
      assert.equal(job.source_key, raw);
      assert.equal(job.source_size, 1000);
      assert.equal(job.attempt, 1);
      assert.match(job.output_prefix, new RegExp(`^hls/${app}/vrun/[0-9a-z]{16}/$`));
      assert.ok(job.heartbeat_interval_ms > 0);
      assert.equal(job.ladder.segment_s, 4);

      const hb = await api.internal(`/internal/jobs/${job.job_id}/heartbeat`, { lease_id: job.lease_id, progress: 37, stage: 'encoding', playable: false });
      assert.equal(hb.status, 200, hb.text);
      assert.ok(Date.parse(hb.json.lease_expires_at) > Date.now());
      let s = await status('vrun');
      assert.equal(s.json.status, 'processing');
      assert.equal(s.json.progress, 37);
      assert.equal(s.json.stage, 'encoding');
      assert.ok(Date.now() - Date.parse(s.json.heartbeat) < 5000, s.json.heartbeat);
      assert.equal((await api.get(`/playback-url?app_id=${app}&video_id=vrun`)).status, 409);
      // A duplicate notify while it runs changes nothing.
      assert.equal((await notify('vrun', raw)).status, 200);

      await api.internal(`/internal/jobs/${job.job_id}/heartbeat`, { lease_id: job.lease_id, progress: 45, stage: 'encoding', playable: true });
      const early = await api.get(`/playback-url?app_id=${app}&video_id=vrun`);
      assert.equal(early.status, 200, early.text);
      assert.equal(early.json.url, `http://video.test/${job.output_prefix}master.m3u8`);
      assert.equal(early.json.status, 'processing');

      const result = {
        duration_s: 12.5,
        has_audio: true,
        renditions: [{ name: '720p', width: 1280, height: 720, bandwidth: 3000000, average_bandwidth: 2500000, codecs: 'avc1.64001f,mp4a.40.2', frame_rate: 30 }],
        thumbnails: { interval_s: 1, tile_w: 160, tile_h: 90, cols: 10, rows: 2, count: 13 },
      };
      const done = await api.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result });
      assert.equal(done.status, 200, done.text);
      s = await status('vrun');
      assert.equal(s.json.status, 'done');
      assert.equal(s.json.progress, 100);
      assert.equal(s.json.duration_s, 12.5);
      assert.equal(s.json.renditions[0].url, `http://video.test/${job.output_prefix}720p/index.m3u8`);
      assert.deepEqual(s.json.thumbnails.meta, result.thumbnails);
      assert.equal(s.json.thumbnails.vtt, `http://video.test/${job.output_prefix}thumbnails.vtt`);
      const kv = await mf.getKVNamespace('MEDIA_KV');
      const record = JSON.parse(await kv.get(`playback/${app}/vrun`));
      assert.equal(record.status, 'done');
      assert.equal(record.job_id, job.job_id);
      const p = await api.get(`/playback-url?app_id=${app}&video_id=vrun`);
      assert.equal(p.json.url, early.json.url);
      assert.equal(p.json.status, 'done');
      // Done is final: notifying again returns it as it is, and the old lease is gone.
      assert.equal((await notify('vrun', raw)).status, 200);
      const late = await api.internal(`/internal/jobs/${job.job_id}/heartbeat`, { lease_id: job.lease_id, progress: 50 });
      assert.equal(late.status, 409);
      assert.equal(errorCode(late), 'lease_lost');
    });

    test('cancel: stops queued and running jobs, the transcoder loses its lease, a notify restarts', async () => {
      const cancel = (video) => api.post('/cancel-job', { app_id: app, video_id: video }, { key: API_KEY, headers: freshIp() });
      assert.equal((await cancel('never-notified')).status, 404);
      assert.equal((await api.post('/cancel-job', { app_id: app, video_id: 'x' }, { headers: freshIp() })).status, 401);
      const raw = await uploaded('vcancel');
      await notify('vcancel', raw);
      const job = await leaseJob('vcancel');
      const r = await cancel('vcancel');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.canceled, true);
      assert.equal(r.json.status, 'error');
      assert.equal(r.json.error, 'canceled through the API');
      const hb = await api.internal(`/internal/jobs/${job.job_id}/heartbeat`, { lease_id: job.lease_id, progress: 50 });
      assert.equal(hb.status, 409, 'the transcoder is told to stop');
      assert.equal(errorCode(hb), 'lease_lost');
      assert.equal((await cancel('vcancel')).json.canceled, false, 'nothing left to cancel');
      const again = await notify('vcancel', raw);
      assert.equal(again.status, 202);
      assert.equal(again.json.status, 'queued');
      // Canceling a queued job works too.
      const q = await cancel('vcancel');
      assert.equal(q.json.canceled, true);
      assert.equal((await status('vcancel')).json.status, 'error');
    });

    test('release: a job just leased goes back to the queue without using an attempt', async () => {
      const raw = await uploaded('vrelease');
      await notify('vrelease', raw);
      const job = await leaseJob('vrelease');
      const r = await api.internal(`/internal/jobs/${job.job_id}/release`, { lease_id: job.lease_id });
      assert.equal(r.status, 200, r.text);
      const s = (await status('vrelease')).json;
      assert.equal(s.status, 'queued');
      assert.equal(s.attempts, 0);
      const twice = await api.internal(`/internal/jobs/${job.job_id}/release`, { lease_id: job.lease_id });
      assert.equal(twice.status, 409);
      const again = await leaseJob('vrelease');
      assert.equal(again.attempt, 1);
      await api.internal(`/internal/jobs/${again.job_id}/fail`, { lease_id: again.lease_id, message: 'test over', retryable: false });
    });

    test('a stale lease is refused; failures retry with backoff, then end in error', async () => {
      const raw = await uploaded('vfail');
      await notify('vfail', raw);
      const first = await leaseJob('vfail');
      const wrongLease = await api.internal(`/internal/jobs/${first.job_id}/heartbeat`, { lease_id: 'lease_other', progress: 5 });
      assert.equal(wrongLease.status, 409);
      assert.equal(errorCode(wrongLease), 'lease_lost');
      const unknownJob = await api.internal('/internal/jobs/job_nope/heartbeat', { lease_id: 'x', progress: 5 });
      assert.equal(unknownJob.status, 404);

      let r = await api.internal(`/internal/jobs/${first.job_id}/fail`, { lease_id: first.lease_id, message: 'storage timed out', retryable: true });
      assert.equal(r.status, 200, r.text);
      let s = await status('vfail');
      assert.equal(s.json.status, 'queued');
      // Our own faults are shown generically (the full text stays with the job, for the logs).
      assert.equal(s.json.last_error, 'processing failed on our side; it will be retried');
      const second = await leaseJob('vfail');
      assert.equal(second.attempt, 2);
      assert.notEqual(second.output_prefix, first.output_prefix, 'every attempt writes to a fresh folder');
      r = await api.internal(`/internal/jobs/${second.job_id}/fail`, { lease_id: second.lease_id, message: 'the upload is not a video', retryable: false });
      s = await status('vfail');
      assert.equal(s.json.status, 'error');
      assert.equal(s.json.error, 'the upload is not a video');
      assert.equal(s.json.attempts, 2);
      const p = await api.get(`/playback-url?app_id=${app}&video_id=vfail`);
      assert.equal(p.status, 409);
      assert.match(p.json.error.message, /failed to transcode: the upload is not a video/);
      // Notify retries a failed job with a fresh budget.
      const retry = await notify('vfail', raw);
      assert.equal(retry.status, 202);
      assert.equal(retry.json.status, 'queued');
      assert.equal(retry.json.attempts, 0);
    });

    test('the alarm re-queues an expired lease, and attempts are bounded', async () => {
      const raw = await uploaded('vexpire');
      await notify('vexpire', raw);
      for (let attempt = 1; attempt <= 3; attempt++) {
        const job = await leaseJob('vexpire');
        assert.equal(job.attempt, attempt);
        await put(`${job.output_prefix}720p/00000.m4s`, new Uint8Array(10), 'video/iso.segment');
        // Let the 1 s lease run out without heartbeats; the alarm acts on its own.
        await new Promise((r) => setTimeout(r, 2500));
        const s = (await status('vexpire')).json;
        const outputs = await keysIn(`hls/${app}/vexpire/`);
        if (attempt < 3) {
          assert.equal(s.status, 'queued', JSON.stringify(s));
          assert.equal(s.last_error, 'processing failed on our side; it will be retried');
          assert.equal(outputs.length, attempt, 'a job being retried keeps its attempts\' outputs until it ends');
        } else {
          assert.equal(s.status, 'error', JSON.stringify(s));
          assert.equal(s.error, 'processing failed on our side after 3 attempts; call /notify-upload-complete to try again');
          assert.deepEqual(outputs, [], 'once it fails for good, its outputs go');
          // Its silent transcoder may come back and write before a heartbeat
          // tells it to stop: swept again once its lease could not be used
          // (LEASE_TTL_MS 1 s + 5 s).
          await put(`${job.output_prefix}720p/00001.m4s`, new Uint8Array(10), 'video/iso.segment');
          let late = await keysIn(`hls/${app}/vexpire/`);
          for (let i = 0; i < 40 && late.length; i++) {
            await new Promise((r) => setTimeout(r, 250));
            late = await keysIn(`hls/${app}/vexpire/`);
          }
          assert.deepEqual(late, [], 'a late write is swept');
        }
      }
    });

    test('lease long-polls: empty after the wait, immediate when work arrives', async () => {
      // Drain anything queued by earlier tests, failing it for good so it does not come back.
      for (let job = await lease(0); job; job = await lease(0)) {
        await api.internal(`/internal/jobs/${job.job_id}/fail`, { lease_id: job.lease_id, message: 'drained by the test', retryable: false });
      }
      let t = Date.now();
      assert.equal(await lease(1500), null);
      const waited = Date.now() - t;
      assert.ok(waited >= 1400 && waited < 4000, `waited ${waited} ms`);
      const raw = await uploaded('vpoll');
      t = Date.now();
      const pending = lease(10000);
      await new Promise((r) => setTimeout(r, 300));
      await notify('vpoll', raw);
      const job = await pending;
      assert.equal(job?.video_id, 'vpoll');
      assert.ok(Date.now() - t < 3000, 'woken by the notify, not by the timeout');
    });

    test('HLS route: types, caching, ETag/304, Range, HEAD, and no way out', async () => {
      // Only the current output of a playable job is served.
      await notify('vhls', await uploaded('vhls'));
      const job = await leaseJob('vhls');
      // Done, so the short leases of these tests cannot take the output away mid-test.
      const result = { duration_s: 4, has_audio: false, renditions: [], thumbnails: null };
      assert.equal((await api.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result })).status, 200);
      const prefix = job.output_prefix.replace(/\/$/, '');
      const output = prefix.split('/').at(-1);
      const seg = new Uint8Array(5000).map((_, i) => i % 251);
      await put(`${prefix}/master.m3u8`, '#EXTM3U\n', 'application/vnd.apple.mpegurl');
      await put(`${prefix}/720p/00000.m4s`, seg, 'video/iso.segment');
      await put(`${prefix}/720p/init.mp4`, new Uint8Array(10), 'video/mp4');
      await put(`${prefix}/thumbnails.vtt`, 'WEBVTT\n', 'text/vtt');
      await put(`raw/${app}/vhls/source.mp4`, new Uint8Array(10), 'video/mp4');

      const master = await mf.dispatchFetch(`http://video.test/${prefix}/master.m3u8`, { headers: { origin: 'https://player.example' } });
      assert.equal(master.status, 200);
      assert.equal(master.headers.get('content-type'), 'application/vnd.apple.mpegurl');
      assert.equal(master.headers.get('cache-control'), 'public, max-age=2');
      assert.equal(master.headers.get('access-control-allow-origin'), '*');
      assert.equal(await master.text(), '#EXTM3U\n');

      const s = await mf.dispatchFetch(`http://video.test/${prefix}/720p/00000.m4s`);
      assert.equal(s.status, 200);
      assert.equal(s.headers.get('content-type'), 'video/iso.segment');
      // No cache purge configured: capped at EDGE_TTL_WITHOUT_PURGE_S (1 h); tests/workers/purge.test.mjs has the year.
      assert.equal(s.headers.get('cache-control'), 'public, max-age=3600, immutable');
      assert.equal(s.headers.get('x-content-type-options'), 'nosniff');
      assert.deepEqual(new Uint8Array(await s.arrayBuffer()), seg);
      const etag = s.headers.get('etag');
      assert.match(etag, /^"/);

      const notModified = await mf.dispatchFetch(`http://video.test/${prefix}/720p/00000.m4s`, { headers: { 'if-none-match': etag } });
      assert.equal(notModified.status, 304);
      const part = await mf.dispatchFetch(`http://video.test/${prefix}/720p/00000.m4s`, { headers: { range: 'bytes=100-199' } });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get('content-range'), 'bytes 100-199/5000');
      assert.deepEqual(new Uint8Array(await part.arrayBuffer()), seg.slice(100, 200));
      const tail = await mf.dispatchFetch(`http://video.test/${prefix}/720p/00000.m4s`, { headers: { range: 'bytes=-10' } });
      assert.deepEqual(new Uint8Array(await tail.arrayBuffer()), seg.slice(4990));
      const outside = await mf.dispatchFetch(`http://video.test/${prefix}/720p/00000.m4s`, { headers: { range: 'bytes=9000-' } });
      assert.equal(outside.status, 416);
      // R2 refuses a range past the end without saying the size: the header is then left out (one storage operation, not two).
      assert.ok((backend === 's3' ? ['bytes */5000'] : ['bytes */5000', null]).includes(outside.headers.get('content-range')), outside.headers.get('content-range'));
      const head = await mf.dispatchFetch(`http://video.test/${prefix}/720p/00000.m4s`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), '5000');
      assert.equal(await head.text(), '');
      const vtt = await mf.dispatchFetch(`http://video.test/${prefix}/thumbnails.vtt`);
      assert.equal(vtt.headers.get('content-type'), 'text/vtt; charset=utf-8');
      assert.equal((await mf.dispatchFetch(`http://video.test/${prefix}/720p/init.mp4`)).headers.get('content-type'), 'video/mp4');

      for (const path of [
        `${prefix}/720p/00001.m4s`,
        // Another output id: the last character changed (to one it is not, or `..` would lead back to this one).
        `${prefix}/../${output.slice(0, -1)}${output.endsWith('x') ? 'y' : 'x'}/master.m3u8`,
        `${prefix}/720p/..%2F..%2Fmaster.m3u8`,
        `${prefix}%2F720p%2F00000.m4s`,
        `hls/${app}/vhls/${output}/720p/0.m4s`,
        `hls/${app}/vhls/../../raw/${app}/vhls/source.mp4`,
        `hls/${app}/vhls/${output}/720p/%2e%2e/%2e%2e/%2e%2e/%2e%2e/raw/${app}/vhls/source.mp4`,
        `hls/${app}/vhls/${output}/secret.txt`,
        `hls//${app}/vhls/${output}/master.m3u8`,
      ]) {
        const r = await mf.dispatchFetch(`http://video.test/${path}`);
        assert.equal(r.status, 404, path);
        const body = await r.json();
        assert.equal(body.error.code, 'not_found', path);
      }
    });

    test('CORS: preflights answered on public routes, headers on responses; none on the API-key routes', async () => {
      const preflight = (path) => mf.dispatchFetch(`http://video.test${path}`, {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'content-type' },
      });
      for (const path of ['/job-status', '/playback-url', '/hls/a/b/c/master.m3u8']) {
        const r = await preflight(path);
        assert.equal(r.status, 204, path);
        assert.equal(r.headers.get('access-control-allow-origin'), '*');
        assert.match(r.headers.get('access-control-allow-methods'), /OPTIONS/);
        assert.match(r.headers.get('access-control-allow-headers'), /Content-Type/i);
      }
      // Browsers never call the API-key routes: their preflights grant nothing.
      for (const path of ['/generate-upload-url', '/notify-upload-complete', '/cancel-job']) {
        const r = await preflight(path);
        assert.equal(r.headers.get('access-control-allow-origin'), null, path);
        assert.equal(r.headers.get('access-control-allow-methods'), null, path);
      }
      const e = await mf.dispatchFetch(`http://video.test/job-status?app_id=${app}&video_id=nope`, { headers: { origin: 'https://app.example' } });
      assert.equal(e.status, 404);
      assert.equal(e.headers.get('access-control-allow-origin'), '*');
    });

    test('rate limits: missing or wrong keys 10 a minute per address, then 429 with Retry-After; a valid key from that address is not held to it', async () => {
      await freshWindow();
      const ip = { 'cf-connecting-ip': `192.0.2.${backend === 'r2' ? 1 : 2}` };
      const body = { app_id: app, video_id: 'rl', content_type: 'video/mp4', size: 10 };
      const codes = [];
      for (let i = 0; i < 12; i++) {
        const r = await api.post('/generate-upload-url', body, { key: i % 2 ? 'wrong-key' : undefined, headers: ip });
        codes.push(r.status);
        if (r.status === 429) {
          assert.equal(r.headers.get('retry-after'), '60');
          assert.equal(errorCode(r), 'rate_limited');
        }
      }
      assert.deepEqual(codes, [401, 403, 401, 403, 401, 403, 401, 403, 401, 403, 429, 429]);
      // The address is limited across the API-key routes.
      assert.equal((await api.post('/cancel-job', { app_id: app, video_id: 'rl' }, { key: 'wrong-key', headers: ip })).status, 429);
      // The valid key from the same address: counted per key (600 a minute), not per address.
      for (let i = 0; i < 12; i++) {
        assert.equal((await api.post('/generate-upload-url', body, { key: API_KEY, headers: ip })).status, 200, `valid key, call ${i + 1}`);
      }
      // Other clients are unaffected; public routes are not limited by it.
      assert.equal((await api.post('/generate-upload-url', body, { key: 'wrong-key', headers: freshIp() })).status, 403);
      assert.equal((await api.get('/health', { headers: ip })).status, 200);
    });

    if (backend === 's3') {
      test('Garage accepts the presigned PUT with the right type and refuses others', async () => {
        const body = new Uint8Array(2048).fill(1);
        const r = await presign('vgarage', { size: body.length });
        // Each with the issued headers but one thing changed.
        const h = r.json.headers;
        const wrongType = await fetch(r.json.upload_url, { method: 'PUT', headers: { ...h, 'Content-Type': 'video/webm' }, body });
        assert.equal(wrongType.status, 403, 'a different content type is refused');
        const wrongSize = await fetch(r.json.upload_url, { method: 'PUT', headers: h, body: body.slice(1) });
        assert.equal(wrongSize.status, 403, 'a different length is refused');
        const otherKey = r.json.upload_url.replace('/vgarage/', '/vother/');
        assert.equal((await fetch(otherKey, { method: 'PUT', headers: h, body })).status, 403, 'another key is refused');
        // If-None-Match: * is signed: leaving it out is refused (Garage: 400, a signed header missing).
        const unconditional = await fetch(r.json.upload_url, { method: 'PUT', headers: { 'Content-Type': 'video/mp4' }, body });
        assert.ok([400, 403].includes(unconditional.status), `a PUT without If-None-Match is refused: ${unconditional.status}`);
        const ok = await fetch(r.json.upload_url, { method: 'PUT', headers: r.json.headers, body });
        assert.equal(ok.status, 200, await ok.text());
        const head = await s3(garage, 'HEAD', `raw/${app}/vgarage/source.mp4`);
        assert.equal(head.headers.get('content-length'), '2048');
        assert.equal(head.headers.get('content-type'), 'video/mp4');
        // The service sees it.
        assert.equal((await notify('vgarage', r.json.raw_key)).status, 202);
      });
    }
  });
}

test('log lines carry the real time: a new isolate says so on its first request, not stamped 1970 at start', async () => {
  const logs = [];
  const mf = await videoService({ store: garage, backend: 'r2', logs });
  try {
    assert.equal((await mf.dispatchFetch('http://video.test/health')).status, 200);
    await mf.dispatchFetch('http://video.test/health');
    const lines = logs.map((l) => { try { return JSON.parse(l.message); } catch { return null; } }).filter(Boolean);
    const started = lines.filter((l) => l.fields?.message?.startsWith('isolate started'));
    assert.equal(started.length, 1, JSON.stringify(lines));
    assert.equal(started[0].fields.service, 'video-service');
    for (const l of lines) assert.ok(Date.parse(l.timestamp) > Date.parse('2020-01-01'), `stamped ${l.timestamp}: ${JSON.stringify(l)}`);
  } finally {
    await mf.dispose();
  }
});

test('our own faults: a generic 503 to the client, the detail to Sentry', async () => {
  const sentry = await startSentrySink();
  // Storage that does not answer (a closed port), with Sentry configured.
  const broken = { ...garage, endpoint: 'http://127.0.0.1:1' };
  const mf = await videoService({ store: broken, backend: 's3', vars: { IV_SENTRY_DSN: sentry.dsn } });
  try {
    const api = client(mf);
    const r = await api.post('/notify-upload-complete', { app_id: 'a', video_id: 'v', raw_key: 'raw/a/v/source.mp4', content_type: 'video/mp4' }, { key: API_KEY, headers: freshIp() });
    assert.equal(r.status, 503);
    assert.equal(errorCode(r), 'unavailable');
    assert.equal(r.headers.get('retry-after'), '5');
    assert.doesNotMatch(r.text, /127\.0\.0\.1|HEAD|storage:/, 'no internals in the answer');
    await waitFor('the Sentry event', () => sentry.received.length > 0, 10000);
    const got = sentry.received[0];
    assert.equal(got.path, '/api/42/envelope/');
    assert.match(got.auth, /^Sentry sentry_version=7, sentry_key=publickey/);
    assert.equal(got.item.type, 'event');
    assert.equal(got.event.level, 'error');
    assert.equal(got.event.tags.service, 'video-service');
    assert.match(got.event.exception.values[0].value, /storage: HEAD raw\/a\/v\/source\.mp4/);
    assert.equal(got.event.request.method, 'POST');
    // Client errors are not ours: nothing more is reported.
    const before = sentry.received.length;
    await api.post('/generate-upload-url', { app_id: 'a/b' }, { key: API_KEY, headers: freshIp() });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(sentry.received.length, before);
  } finally {
    await mf.dispose();
    await sentry.close();
  }
});

// A setting the job queue reads (the Durable Object, not the Worker's own
// settings) that cannot be parsed must stop the commands that use it, as a
// broken setting of the Worker does: 500 with the generic message, the
// detail in the logs. Before, the queue ran on its defaults and nobody
// noticed. Reads, which use no setting, go on answering.
test('an unusable queue setting fails the job routes that use it instead of running on defaults', async () => {
  const mf = await videoService({ store: garage, backend: 'r2', vars: { LEASE_TTL_MS: 'abc' } });
  try {
    const api = client(mf);
    const bucket = await mf.getR2Bucket('MEDIA_BUCKET');
    await bucket.put('raw/cfg/v1/source.mp4', new Uint8Array(1000).fill(7), { httpMetadata: { contentType: 'video/mp4' } });
    const refused = (r, what) => {
      assert.equal(r.status, 500, `${what}: ${r.status} ${r.text}`);
      assert.equal(errorCode(r), 'internal', what);
      assert.doesNotMatch(r.text, /LEASE_TTL_MS|abc|configuration/, `${what}: no internals in the answer`);
    };
    refused(await api.post('/notify-upload-complete', { app_id: 'cfg', video_id: 'v1', raw_key: 'raw/cfg/v1/source.mp4', content_type: 'video/mp4' }, { key: API_KEY, headers: freshIp() }), 'notify');
    refused(await api.internal('/internal/jobs/lease', { worker: 'test', wait_ms: 0 }), 'lease');
    // The Worker checks the objects' settings too, so even a read answers 500.
    refused(await api.get('/job-status?app_id=cfg&video_id=v1', { headers: freshIp() }), 'job-status');
  } finally {
    await mf.dispose();
  }
});

// The Worker reads every setting its objects use (`VideoSettings::load`),
// so one that cannot be used answers every route 500 at the Worker's
// entry, before any object is reached. Before, the Worker did not check
// them: a public read of an existing job went on answering from the object
// while every command of that object failed.
test('a broken object setting (SSE_MAX_PER_ADDRESS) answers 500 at the Worker, on public and API-key routes alike', async () => {
  const persist = mkdtempSync(join(tmpdir(), 'video-settings-'));
  const notify = (api) => api.post('/notify-upload-complete', { app_id: 'cfg2', video_id: 'v1', raw_key: 'raw/cfg2/v1/source.mp4', content_type: 'video/mp4' }, { key: API_KEY, headers: freshIp() });
  let mf = await videoService({ store: garage, backend: 'r2', persist });
  try {
    const bucket = await mf.getR2Bucket('MEDIA_BUCKET');
    await bucket.put('raw/cfg2/v1/source.mp4', new Uint8Array(1000).fill(7), { httpMetadata: { contentType: 'video/mp4' } });
    const first = await notify(client(mf));
    assert.equal(first.status, 202, first.text);
    await mf.dispose();
    // The same stored job, the Worker started again with the setting broken.
    const logs = [];
    mf = await videoService({ store: garage, backend: 'r2', persist, logs, vars: { SSE_MAX_PER_ADDRESS: 'lots' } });
    const api = client(mf);
    const answers = {
      'job-status (public)': await api.get('/job-status?app_id=cfg2&video_id=v1', { headers: freshIp() }),
      'playback-url (public)': await api.get('/playback-url?app_id=cfg2&video_id=v1', { headers: freshIp() }),
      'notify (API key)': await notify(api),
    };
    for (const [what, r] of Object.entries(answers)) {
      assert.equal(r.status, 500, `${what}: ${r.status} ${r.text}`);
      assert.equal(errorCode(r), 'internal', what);
      // The generic message: neither the variable's value nor any secret.
      assert.doesNotMatch(r.text, /lots|SSE_MAX|configuration|test-key|test-transcoder-token/, `${what}: no internals in the answer`);
    }
    const details = logs.map((l) => { try { return JSON.parse(l.message).fields?.detail; } catch { return undefined; } }).filter(Boolean);
    assert.ok(details.some((d) => d === 'configuration: SSE_MAX_PER_ADDRESS is "lots", which is not a number'), `the log names the variable: ${JSON.stringify(details)}`);
    assert.doesNotMatch(logs.map((l) => l.message).join('\n'), /test-key-one|test-transcoder-token/, 'no secret in the logs');
  } finally {
    await mf.dispose();
    rmSync(persist, { recursive: true, force: true });
  }
});
