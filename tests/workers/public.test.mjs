// The public routes under load and abuse (issue 11, items 5, 7, 10-13), in
// workerd against both storage backends (Miniflare's R2 and a real Garage):
// the source ETag handed to the transcoder, an idempotent complete, cached
// and rate-limited job reads that show no internals, serving in one storage
// operation (none from the edge cache), HLS only from a video's current
// output, and presigned images checked before their first serve.
//
// Storage operations are read from the `Server-Timing` header every served
// answer carries (`storage;desc="ops=N"`), job-store reads from
// `jobstore;desc="video"`.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGarage } from '../../devkit/garage.mjs';
import { s3 } from '../../devkit/sigv4.mjs';
import { videoService, imageService, client, errorCode, freshIp, putStored, objectFiles, storedTables, API_KEY, freshWindow } from './harness.mjs';

let garage;
let garageDir;
before(async () => {
  garageDir = mkdtempSync(join(tmpdir(), 'garage-public-'));
  garage = await startGarage({ dir: garageDir });
});
after(async () => {
  await garage?.stop();
  rmSync(garageDir, { recursive: true, force: true });
});

/** Storage operations an answer reports, or NaN without the header. */
const opsOf = (res) => Number(/storage;desc="ops=(\d+)"/.exec(res.headers.get('server-timing') ?? '')?.[1] ?? NaN);
/** Where a job read came from: cache, kv or video. */
const jobSourceOf = (res) => /jobstore;desc="(\w+)"/.exec(res.headers.get('server-timing') ?? '')?.[1];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A PNG as far as any sniffer looks (signature and IHDR of 640x480), `pad` bytes of filler after. */
function png(pad = 100, fill = 1) {
  const head = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 2, 0x80, 0, 0, 1, 0xe0, 8, 2, 0, 0, 0];
  return new Uint8Array([...head, ...new Array(pad).fill(fill)]);
}

const RESULT = {
  duration_s: 4,
  has_audio: false,
  renditions: [{ name: '240p', width: 426, height: 240, bandwidth: 400000, average_bandwidth: 300000, codecs: 'avc1.64000d', frame_rate: 30 }],
  thumbnails: null,
};

for (const backend of ['r2', 's3']) {
  describe(`public routes (${backend} backend)`, () => {
    let video;
    let image;
    let vapi;
    let iapi;
    const app = `pub_${backend}`;
    const put = (mf, key, bytes, type) => putStored({ backend, mf, garage }, key, bytes, type);
    const notify = (v, raw) =>
      vapi.post('/notify-upload-complete', { app_id: app, video_id: v, raw_key: raw, content_type: 'video/mp4' }, { key: API_KEY, headers: freshIp() });
    const uploaded = async (v, fill = 7) => {
      const raw = `raw/${app}/${v}/source.mp4`;
      await put(video, raw, new Uint8Array(1000).fill(fill), 'video/mp4');
      return raw;
    };
    const leaseJob = async (v) => {
      for (let i = 0; i < 20; i++) {
        const r = await vapi.internal('/internal/jobs/lease', { worker: 'test', wait_ms: 3000 });
        const job = r.json?.job;
        assert.ok(job, `no job leased while looking for ${v}`);
        if (job.video_id === v) return job;
        await vapi.internal(`/internal/jobs/${job.job_id}/fail`, { lease_id: job.lease_id, message: 'not this test', retryable: false });
      }
      throw new Error(`never leased ${v}`);
    };
    const heartbeat = (job, playable = true) => vapi.internal(`/internal/jobs/${job.job_id}/heartbeat`, { lease_id: job.lease_id, progress: 10, stage: 'encoding', playable });
    const fetchV = (path, headers = {}, method = 'GET') => video.dispatchFetch(`http://video.test/${path}`, { method, headers });
    const fetchI = (path, headers = {}, method = 'GET', host = 'image.test') => image.dispatchFetch(`http://${host}/${path}`, { method, headers });
    const storedEtag = async (key) => {
      if (backend === 'r2') return (await (await video.getR2Bucket('MEDIA_BUCKET')).head(key)).httpEtag;
      return (await s3(garage, 'HEAD', key)).headers.get('etag');
    };

    before(async () => {
      video = await videoService({ store: garage, backend, vars: { LEASE_TTL_MS: '60000', RETRY_BACKOFF_MS: '100' } });
      image = await imageService({ store: garage, backend, vars: { MAX_IMAGE_BYTES: '100000' } });
      vapi = client(video);
      iapi = client(image, 'http://image.test');
    });
    after(async () => {
      await video?.dispose();
      await image?.dispose();
    });

    test('item 5: notify records the source ETag and the lease hands it to the transcoder', async () => {
      const raw = await uploaded('vetag');
      assert.equal((await notify('vetag', raw)).status, 202);
      const job = await leaseJob('vetag');
      const etag = await storedEtag(raw);
      assert.match(etag, /^"/);
      assert.equal(job.source_etag, etag, 'the If-Match tag the transcoder must read the source with');
      await vapi.internal(`/internal/jobs/${job.job_id}/fail`, { lease_id: job.lease_id, message: 'test over', retryable: false });
    });

    test('item 7: a complete repeated by the same lease answers 200 with the same body and changes nothing', async () => {
      const raw = await uploaded('vtwice');
      await notify('vtwice', raw);
      const job = await leaseJob('vtwice');
      const first = await vapi.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result: RESULT });
      assert.equal(first.status, 200, first.text);
      const inspect = async () => (await vapi.internal('/internal/jobs/inspect', { app_id: app, video_id: 'vtwice' })).json;
      const stored = await inspect();
      const second = await vapi.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result: { ...RESULT, duration_s: 99 } });
      assert.equal(second.status, 200, `a retried complete is not "lease lost": ${second.text}`);
      assert.equal(second.text, first.text, 'the same answer');
      assert.deepEqual(await inspect(), stored, 'the repeat changed nothing');
      const other = await vapi.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: 'lease_someone_else', result: RESULT });
      assert.equal(other.status, 409);
      assert.equal(errorCode(other), 'lease_lost');
    });

    test('item 10: hammered /job-status reaches the job store about once a second and shows no internals', async () => {
      const raw = await uploaded('vhammer');
      await notify('vhammer', raw);
      const job = await leaseJob('vhammer');
      const detail = `storage GET ${raw}: status 503; internal error: the transcoder crashed: thread 'rung-720p' panicked at src/pipeline/mod.rs:120: index out of bounds`;
      await vapi.internal(`/internal/jobs/${job.job_id}/fail`, { lease_id: job.lease_id, message: detail, retryable: true });
      const sources = {};
      const started = Date.now();
      let leaks = 0;
      for (let i = 0; i < 200; i++) {
        const r = await vapi.get(`/job-status?app_id=${app}&video_id=vhammer`, { headers: { 'cf-connecting-ip': '198.51.100.7' } });
        assert.equal(r.status, 200, r.text);
        sources[jobSourceOf(r)] = (sources[jobSourceOf(r)] ?? 0) + 1;
        if (/raw\/|panicked|src\/|index out of bounds/.test(r.text)) leaks++;
      }
      const seconds = (Date.now() - started) / 1000;
      console.log(`# ${backend}: 200 /job-status in ${seconds.toFixed(1)} s: ${JSON.stringify(sources)}`);
      assert.equal(leaks, 0, 'no answer carries a storage key or panic text');
      assert.ok((sources.video ?? 0) <= Math.ceil(seconds) + 2, `reached the job store ${sources.video} times in ${seconds} s`);
      assert.ok(sources.cache >= 150, JSON.stringify(sources));
      const s = await vapi.get(`/job-status?app_id=${app}&video_id=vhammer`);
      assert.equal(s.json.last_error, 'processing failed on our side; it will be retried');
      // The full text stays with the job, for the logs and operators.
      const full = await vapi.internal('/internal/jobs/inspect', { app_id: app, video_id: 'vhammer' });
      assert.equal(full.json.last_error, detail);
      // A permanent failure whose text carries internals is shown generically, on both routes.
      const again = await leaseJob('vhammer');
      await vapi.internal(`/internal/jobs/${again.job_id}/fail`, { lease_id: again.lease_id, message: `cannot open ${raw}: panicked`, retryable: false });
      const ended = await vapi.get(`/job-status?app_id=${app}&video_id=vhammer`);
      assert.equal(ended.json.status, 'error', 'the write dropped the cached read');
      assert.equal(ended.json.error, 'the upload could not be processed; upload a video file in a supported format');
      const p = await vapi.get(`/playback-url?app_id=${app}&video_id=vhammer`);
      assert.equal(p.status, 409);
      assert.doesNotMatch(p.text, /raw\/|panicked/);
      // A message written for uploaders passes as it is.
      await notify('vhammer', raw);
      const third = await leaseJob('vhammer');
      await vapi.internal(`/internal/jobs/${third.job_id}/fail`, { lease_id: third.lease_id, message: 'the upload is not a video file', retryable: false });
      assert.equal((await vapi.get(`/job-status?app_id=${app}&video_id=vhammer`)).json.error, 'the upload is not a video file');
    });

    test('item 10: done jobs are read from KV or the cache, never the job store', async () => {
      const raw = await uploaded('vdoneread');
      await notify('vdoneread', raw);
      const job = await leaseJob('vdoneread');
      await vapi.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result: RESULT });
      const seen = [];
      for (let i = 0; i < 20; i++) seen.push(jobSourceOf(await vapi.get(`/playback-url?app_id=${app}&video_id=vdoneread`)));
      assert.ok(!seen.includes('video'), seen.join(','));
    });

    test('item 10: public reads have a per-IP limit', async () => {
      await freshWindow();
      const limited = await videoService({ store: garage, backend, limits: { PUBLIC_RATE_LIMITER: 5 } });
      try {
        const api = client(limited);
        const ip = { 'cf-connecting-ip': '203.0.113.9' };
        const codes = [];
        for (let i = 0; i < 7; i++) codes.push((await api.get(`/job-status?app_id=${app}&video_id=nope`, { headers: ip })).status);
        assert.deepEqual(codes, [404, 404, 404, 404, 404, 429, 429]);
        const r = await api.get(`/playback-url?app_id=${app}&video_id=nope`, { headers: ip });
        assert.equal(r.status, 429);
        assert.equal(errorCode(r), 'rate_limited');
        assert.ok(r.headers.get('retry-after'));
        assert.equal((await api.get(`/job-status?app_id=${app}&video_id=nope`, { headers: { 'cf-connecting-ip': '203.0.113.10' } })).status, 404, 'other addresses are unaffected');
        // HLS paths of unknown videos miss the edge cache (KV answers them): counted the same way.
        const hls = [];
        const other = { 'cf-connecting-ip': '203.0.113.11' };
        for (let i = 0; i < 7; i++) hls.push((await api.get(`/hls/${app}/nope${i}/zzzzzzzzzzzzzzzz/master.m3u8`, { headers: other })).status);
        assert.deepEqual(hls, [404, 404, 404, 404, 404, 429, 429]);
      } finally {
        await limited.dispose();
      }
    });

    test('item 11 and 12: HLS is served in one storage operation, from the edge cache after, and only from the current output', async () => {
      const raw = await uploaded('vhls');
      await notify('vhls', raw);
      const first = await leaseJob('vhls');
      const seg = new Uint8Array(5000).map((_, i) => i % 251);
      const files = async (prefix) => {
        await put(video, `${prefix}master.m3u8`, '#EXTM3U\n', 'application/vnd.apple.mpegurl');
        await put(video, `${prefix}240p/00000.m4s`, seg, 'video/iso.segment');
      };
      await files(first.output_prefix);
      const path = `${first.output_prefix}240p/00000.m4s`;
      assert.equal((await fetchV(path)).status, 404, 'not playable yet: nothing is served');
      await heartbeat(first);

      const full = await fetchV(path, { 'cf-connecting-ip': '198.51.100.8' });
      assert.equal(full.status, 200);
      assert.equal(opsOf(full), 1, full.headers.get('server-timing'));
      assert.deepEqual(new Uint8Array(await full.arrayBuffer()), seg);
      const etag = full.headers.get('etag');
      await sleep(300); // the copy is stored after the answer (wait_until)
      const again = await fetchV(path);
      assert.equal(again.status, 200);
      assert.equal(opsOf(again), 0, `a repeated segment comes from the edge cache: ${again.headers.get('server-timing')}`);
      assert.deepEqual(new Uint8Array(await again.arrayBuffer()), seg);
      const cachedPart = await fetchV(path, { range: 'bytes=10-19' });
      assert.equal(cachedPart.status, 206);
      assert.equal(opsOf(cachedPart), 0);
      assert.deepEqual(new Uint8Array(await cachedPart.arrayBuffer()), seg.slice(10, 20));
      for (const range of [';', 'bytes=5-1', 'items=0-1']) {
        const ignored = await fetchV(path, { range });
        assert.equal(ignored.status, 200, `Range ${range} is ignored, from the edge cache as from storage`);
        assert.equal(opsOf(ignored), 0);
        assert.equal((await ignored.arrayBuffer()).byteLength, seg.length);
      }
      const cached304 = await fetchV(path, { 'if-none-match': etag });
      assert.equal(cached304.status, 304);
      assert.equal(opsOf(cached304), 0);

      // Uncached: the playlist's first read, and every kind of answer, each at most one operation.
      const m = `${first.output_prefix}master.m3u8`;
      const cases = [
        [{}, 'GET', 200],
        [{ range: 'bytes=0-3' }, 'GET', 206],
        [{ range: 'bytes=100-' }, 'GET', 416],
        [{}, 'HEAD', 200],
      ];
      for (const [headers, method, want] of cases) {
        await sleep(2100); // past the playlist's 2 s at the edge
        const r = await fetchV(m, headers, method);
        assert.equal(r.status, want, `${method} ${JSON.stringify(headers)}`);
        assert.ok(opsOf(r) <= 1, `${method} ${JSON.stringify(headers)}: ${r.headers.get('server-timing')}`);
        // R2 refuses a range past the end without saying the size: the header is left out rather than asked for.
        if (want === 416) assert.ok((backend === 's3' ? ['bytes */8'] : ['bytes */8', null]).includes(r.headers.get('content-range')));
        if (want === 206) assert.equal(await r.text(), '#EXT');
        if (want === 200 && method === 'GET') assert.equal(r.headers.get('cache-control'), 'public, max-age=2');
      }
      await sleep(2100);
      const masterTag = (await fetchV(m, {}, 'HEAD')).headers.get('etag');
      await sleep(2100);
      const notModified = await fetchV(m, { 'if-none-match': masterTag });
      assert.equal(notModified.status, 304);
      assert.equal(opsOf(notModified), 1);
      const missing = await fetchV(`${first.output_prefix}240p/00001.m4s`);
      assert.equal(missing.status, 404);

      // Item 12: a failed attempt's output is gone from playback; the next attempt's is served.
      await vapi.internal(`/internal/jobs/${first.job_id}/fail`, { lease_id: first.lease_id, message: 'storage timed out', retryable: true });
      assert.equal((await fetchV(path)).status, 404, 'the failed attempt\'s segment, though cached at the edge');
      assert.equal((await fetchV(m)).status, 404);
      await sleep(200);
      const second = await leaseJob('vhls');
      assert.notEqual(second.output_prefix, first.output_prefix);
      await files(second.output_prefix);
      await heartbeat(second);
      assert.equal((await fetchV(`${second.output_prefix}240p/00000.m4s`)).status, 200);
      const old = await fetchV(path);
      assert.equal(old.status, 404);
      assert.equal(errorCode({ json: await old.json() }), 'not_found');
      // A canceled job serves nothing.
      const cancel = await vapi.post('/cancel-job', { app_id: app, video_id: 'vhls' }, { key: API_KEY, headers: freshIp() });
      assert.equal(cancel.json.canceled, true);
      assert.equal((await fetchV(`${second.output_prefix}240p/00000.m4s`)).status, 404);
      // An output id that never existed, on a video that has one.
      await notify('vhls', raw);
      const third = await leaseJob('vhls');
      await heartbeat(third);
      assert.equal((await fetchV(`hls/${app}/vhls/zzzzzzzzzzzzzzzz/master.m3u8`)).status, 404);
    });

    test('item 11: images are served in one storage operation, then from the edge cache', async () => {
      const key = `images/${app}/served`;
      const body = png(3000);
      const up = await iapi.post(`/upload?app_id=${app}&image_id=served`, body, { key: API_KEY, headers: { ...freshIp(), 'content-type': 'image/png' } });
      assert.equal(up.status, 201, up.text);
      const path = `assets/${key}`;
      const cases = [
        [{}, 'GET', 200],
        [{ range: 'bytes=0-7' }, 'GET', 206],
        [{ range: 'bytes=99999-' }, 'GET', 416],
        [{}, 'HEAD', 200],
      ];
      for (const [headers, method, want] of cases) {
        // A host of its own per request: nothing comes from the edge cache.
        const r = await fetchI(path, headers, method, `img${Math.random().toString(36).slice(2)}.test`);
        assert.equal(r.status, want, `${method} ${JSON.stringify(headers)}: ${await r.clone().text()}`);
        assert.equal(opsOf(r), 1, `${method} ${JSON.stringify(headers)}: ${r.headers.get('server-timing')}`);
        if (want === 416) assert.equal(r.headers.get('content-range'), `bytes */${body.length}`);
      }
      const first = await fetchI(path, {}, 'GET', 'img-once.test');
      const etag = first.headers.get('etag');
      await first.arrayBuffer();
      const cold304 = await fetchI(path, { 'if-none-match': etag }, 'GET', 'img-cold.test');
      assert.equal(cold304.status, 304);
      assert.equal(opsOf(cold304), 1);
      await sleep(300);
      const hit = await fetchI(path, {}, 'GET', 'img-once.test');
      assert.equal(hit.status, 200);
      assert.equal(opsOf(hit), 0, hit.headers.get('server-timing'));
      assert.equal(hit.headers.get('cross-origin-resource-policy'), 'cross-origin');
      assert.deepEqual(new Uint8Array(await hit.arrayBuffer()), body);
      const hit304 = await fetchI(path, { 'if-none-match': etag }, 'GET', 'img-once.test');
      assert.equal(hit304.status, 304);
      assert.equal(opsOf(hit304), 0);
    });

    test('images past the edge cache count against a per-IP limit; edge hits do not', async () => {
      await freshWindow();
      const limited = await imageService({ store: garage, backend, limits: { PUBLIC_RATE_LIMITER: 5 } });
      try {
        const up = await client(limited, 'http://image.test').post(`/upload?app_id=${app}&image_id=limited`, png(500),
          { key: API_KEY, headers: { ...freshIp(), 'content-type': 'image/png' } });
        assert.equal(up.status, 201, up.text);
        const asset = `assets/images/${app}/limited`;
        const ip = '203.0.113.20';
        // A host of its own per request misses the edge cache, unless named.
        const get = (path, from, host = `img${Math.random().toString(36).slice(2)}.test`) =>
          limited.dispatchFetch(`http://${host}/${path}`, { headers: { 'cf-connecting-ip': from } });
        const first = await get(asset, ip, 'img-limited.test');
        assert.equal(first.status, 200);
        await first.arrayBuffer();
        await sleep(300);
        const codes = [];
        for (let i = 0; i < 3; i++) codes.push((await get(asset, ip)).status);
        codes.push((await get(`images/${app}/none/w=640`, ip)).status);
        const over = await get(asset, ip);
        codes.push(over.status);
        assert.deepEqual(codes, [200, 200, 200, 404, 429], 'five misses (the first included) pass, the sixth is refused');
        assert.equal((await over.json()).error.code, 'rate_limited');
        assert.ok(over.headers.get('retry-after'));
        assert.equal((await get(`images/${app}/none/w=640`, ip)).status, 429, 'variants count the same way');
        assert.equal((await get(`cdn-cgi/image/w=640/assets/images/${app}/none`, ip)).status, 429, 'and the /cdn-cgi/image/ form');
        const hit = await get(asset, ip, 'img-limited.test');
        assert.equal(hit.status, 200, 'an edge hit is served over the limit: it costs nothing');
        assert.equal(opsOf(hit), 0, hit.headers.get('server-timing'));
        assert.equal((await get(`images/${app}/none/w=640`, '203.0.113.21')).status, 404, 'other addresses are unaffected');
        assert.equal((await get(`images/${app}/limited/w=999`, ip)).status, 400, 'options are checked before counting');
      } finally {
        await limited.dispose();
      }
    });

    test('item 13: an image uploaded straight to storage is checked before its first serve', async () => {
      // What a presigned PUT leaves: an object with no record (the service never saw it).
      const good = `images/${app}/direct-good`;
      await put(image, good, png(500), 'image/png');
      const r = await fetchI(`assets/${good}`);
      assert.equal(r.status, 200, await r.clone().text());
      assert.match(r.headers.get('server-timing'), /vet;desc="ops=1"/);
      const kv = await image.getKVNamespace('MEDIA_KV');
      const record = JSON.parse(await kv.get(`image/${app}/direct-good`));
      assert.equal(record.content_type, 'image/png');
      assert.equal(record.width, 640);
      assert.ok(record.etag, 'the version checked is recorded');
      // Served from then on with the record: one operation, no check.
      const next = await fetchI(`assets/${good}`, {}, 'GET', 'img-next.test');
      assert.equal(opsOf(next), 1);
      assert.doesNotMatch(next.headers.get('server-timing'), /vet/);

      // Random bytes with an HTML tail, stored as image/png: refused and removed.
      const junkKey = `images/${app}/direct-junk`;
      const junk = new Uint8Array(3000).map(() => Math.floor(Math.random() * 256));
      const tail = new TextEncoder().encode('<html><script>alert(document.domain)</script></html>');
      await put(image, junkKey, new Uint8Array([...junk.filter((b) => b !== 0x89), ...tail]), 'image/png');
      const refused = await fetchI(`assets/${junkKey}`);
      assert.equal(refused.status, 404);
      assert.equal(errorCode({ json: await refused.json() }), 'not_found');
      assert.equal(await kv.get(`image/${app}/direct-junk`), null);
      const gone = backend === 'r2' ? await (await image.getR2Bucket('MEDIA_BUCKET')).head(junkKey) : (await s3(garage, 'HEAD', junkKey)).status === 200 ? 'there' : null;
      assert.equal(gone, null, 'the refused object was removed');
      // Too large (MAX_IMAGE_BYTES is 100000 here), even with an image's bytes.
      const big = `images/${app}/direct-big`;
      await put(image, big, png(150000), 'image/png');
      assert.equal((await fetchI(`assets/${big}`)).status, 404);
      // Another stored type (an SVG can carry script).
      const svg = `images/${app}/direct-svg`;
      await put(image, svg, new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'), 'image/svg+xml');
      assert.equal((await fetchI(`assets/${svg}`)).status, 404);
      // Transform URLs go through the same check: the checked image gets
      // past it (to the transformer, which cannot decode these header-only
      // test bytes: 422), a refused one is 404 there too.
      const viaTransform = await fetchI(`images/${app}/direct-good/w=160`, {}, 'GET', 'img-t.test');
      assert.equal(viaTransform.status, 422);
      assert.equal(errorCode({ json: await viaTransform.json() }), 'image_unprocessable');
      const refusedTransform = await fetchI(`cdn-cgi/image/width=160/assets/${svg}`, {}, 'GET', 'img-t2.test');
      assert.equal(refusedTransform.status, 404);
    });

    test('item 13: an image replaced after its check is never served', async () => {
      const key = `images/${app}/replaced`;
      await put(image, key, png(200, 1), 'image/png');
      const first = await fetchI(`assets/${key}`, {}, 'GET', 'img-r1.test');
      assert.equal(first.status, 200);
      await first.arrayBuffer();
      await put(image, key, png(200, 2), 'image/png');
      const replaced = await fetchI(`assets/${key}`, {}, 'GET', 'img-r2.test');
      assert.equal(replaced.status, 404, 'the checked version is gone: nothing is served');
      assert.equal((await fetchI(`assets/${key}`, {}, 'HEAD', 'img-r3.test')).status, 404);
      await sleep(300);
      const cached = await fetchI(`assets/${key}`, {}, 'GET', 'img-r1.test');
      assert.equal(cached.status, 200, 'where the checked version is at the edge, it stays');
      assert.deepEqual(new Uint8Array(await cached.arrayBuffer()), png(200, 1));
    });

    test('item 13, issue 23: presign without size is refused (400 saying what to send); with size, length and If-None-Match are bound', async () => {
      const unsized = await iapi.post('/generate-image-upload-url', { app_id: app, image_id: 'p-unsized', content_type: 'image/png' }, { key: API_KEY, headers: freshIp() });
      assert.equal(unsized.status, 400, unsized.text);
      assert.match(unsized.json.error.message, /^size is required: the file's length in bytes, at most 100000/);
      const sized = await iapi.post('/generate-image-upload-url', { app_id: app, image_id: 'p-sized', content_type: 'image/png', size: 300 }, { key: API_KEY, headers: freshIp() });
      assert.equal(sized.status, 200, sized.text);
      assert.deepEqual(sized.json.headers, { 'Content-Type': 'image/png', 'If-None-Match': '*' });
      assert.equal(new URL(sized.json.upload_url).searchParams.get('X-Amz-SignedHeaders'), 'content-length;content-type;host;if-none-match');
      if (backend !== 's3') return; // presigned URLs point at the S3 endpoint (Garage here): the rest runs once
      const body = png(300 - 29);
      const wrongLength = await fetch(sized.json.upload_url, { method: 'PUT', headers: sized.json.headers, body: png(400) });
      assert.equal(wrongLength.status, 403, 'the length is bound');
      const noCondition = await fetch(sized.json.upload_url, { method: 'PUT', headers: { 'Content-Type': 'image/png' }, body });
      // Garage answers 400 for a signed header left out, S3 and R2 403.
      assert.ok([400, 403].includes(noCondition.status), `If-None-Match is a signed header: leaving it out is refused (${noCondition.status})`);
      const ok = await fetch(sized.json.upload_url, { method: 'PUT', headers: sized.json.headers, body });
      assert.equal(ok.status, 200, await ok.text());
      const second = await fetch(sized.json.upload_url, { method: 'PUT', headers: sized.json.headers, body: png(300 - 29, 9) });
      const stored = new Uint8Array(await (await s3(garage, 'GET', `images/${app}/p-sized`)).arrayBuffer());
      console.log(`# Garage: a second PUT with If-None-Match: * answered ${second.status}; the stored bytes are ${stored[40] === 9 ? 'the second upload' : 'the first upload'}`);
      globalThis.garageIfNoneMatch = { status: second.status, overwritten: stored[40] === 9 };
      // Whatever the store did, /assets/ serves the first upload it checked, or nothing.
      const served = await fetchI(`assets/images/${app}/p-sized`, {}, 'GET', 'img-p.test');
      if (served.status === 200) assert.equal(new Uint8Array(await served.arrayBuffer())[40], stored[40]);
      // (What lands is checked when it lands, read or not: image.test.mjs.)
    });
  });
}

describe('public reads create no state (r2 backend)', () => {
  let mf;
  let api;
  let persist;
  const app = 'nostate';
  const rand = () => Math.random().toString(36).slice(2, 12);
  const notify = async (v) => {
    const raw = `raw/${app}/${v}/source.mp4`;
    await putStored({ backend: 'r2', mf, garage }, raw, new Uint8Array(1000).fill(3), 'video/mp4');
    return api.post('/notify-upload-complete', { app_id: app, video_id: v, raw_key: raw, content_type: 'video/mp4' }, { key: API_KEY, headers: freshIp() });
  };
  const leaseJob = async (v) => {
    for (let i = 0; i < 20; i++) {
      const job = (await api.internal('/internal/jobs/lease', { worker: 'test', wait_ms: 2000 })).json?.job;
      assert.ok(job, `no job leased while looking for ${v}`);
      if (job.video_id === v) return job;
    }
    throw new Error(`never leased ${v}`);
  };

  before(async () => {
    persist = mkdtempSync(join(tmpdir(), 'public-objects-'));
    mf = await videoService({ store: garage, backend: 'r2', persist, vars: { LEASE_TTL_MS: '60000', RETRY_BACKOFF_MS: '100' } });
    api = client(mf);
  });
  after(async () => {
    await mf?.dispose();
    rmSync(persist, { recursive: true, force: true });
  });

  test('1,000 anonymous reads of random ids (job-status, playback-url, job-events, hls) answer 404 and create no Durable Object', async () => {
    assert.equal((await notify('real')).status, 202);
    const start = objectFiles(persist, 'VideoJob');
    assert.equal(start.length, 1, `the notified video's object is counted: ${start}`);
    const paths = (v) => [
      `/job-status?app_id=${app}&video_id=${v}`,
      `/playback-url?app_id=${app}&video_id=${v}`,
      `/job-events?app_id=${app}&video_id=${v}`,
      `/hls/${app}/${v}/abcdefghijklmnop/master.m3u8`,
      `/hls/${app}/${v}/abcdefghijklmnop/240p/index.m3u8`,
    ];
    const statuses = {};
    for (let i = 0; i < 1000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, async (_, j) => {
        const path = paths(`r${rand()}`)[(i + j) % 5];
        const r = await api.get(path, { headers: freshIp() });
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        assert.equal(errorCode(r), 'not_found', path);
      }));
    }
    assert.deepEqual(statuses, { 404: 1000 });
    await sleep(300);
    assert.deepEqual(objectFiles(persist, 'VideoJob'), start, 'no new object for any of them');
    // The notified video reads at once, from this location.
    const real = await api.get(`/job-status?app_id=${app}&video_id=real`, { headers: freshIp() });
    assert.equal(real.status, 200, real.text);
  });

  test('a read that reaches an object without a job (a stale marker) answers 404 and leaves no tables', async () => {
    const kv = await mf.getKVNamespace('MEDIA_KV');
    await kv.put(`jobs/${app}/ghost`, '1');
    const start = objectFiles(persist, 'VideoJob');
    for (const path of [`/job-status?app_id=${app}&video_id=ghost`, `/job-events?app_id=${app}&video_id=ghost`, `/hls/${app}/ghost/abcdefghijklmnop/240p/index.m3u8`]) {
      const r = await api.get(path, { headers: freshIp() });
      assert.equal(r.status, 404, `${path}: ${r.text}`);
    }
    await sleep(300);
    // workerd opens a file for any object it runs; what matters is that nothing was stored in it.
    const added = objectFiles(persist, 'VideoJob').filter((f) => !start.includes(f));
    assert.equal(added.length, 1, 'the stale marker made the reads ask the object');
    assert.deepEqual(await storedTables(added[0]), [], 'the object was asked, and created no table');
    assert.ok((await storedTables(start[0])).includes('job'), 'a job\'s object has its tables, for comparison');
  });

  test('a presign writes the job marker before its URL is handed out, so reads while the browser uploads reach the object (which stores nothing) and the job shows once notified', async () => {
    // Without the marker, such reads answer from KV's miss, which Cloudflare
    // caches in the reader's location for up to a minute after the notify.
    const kv = await mf.getKVNamespace('MEDIA_KV');
    const presign = await api.post('/generate-upload-url', { app_id: app, video_id: 'vearly', content_type: 'video/mp4', size: 1000 }, { key: API_KEY, headers: freshIp() });
    assert.equal(presign.status, 200, presign.text);
    assert.equal(await kv.get(`jobs/${app}/vearly`), '1', 'the marker is there before any upload');
    const start = objectFiles(persist, 'VideoJob');
    const early = await api.get(`/job-status?app_id=${app}&video_id=vearly`, { headers: freshIp() });
    assert.equal(early.status, 404, early.text);
    await sleep(300);
    const added = objectFiles(persist, 'VideoJob').filter((f) => !start.includes(f));
    assert.equal(added.length, 1, 'the read asked the video\'s object');
    assert.deepEqual(await storedTables(added[0]), [], 'and it stored nothing');
    assert.equal((await notify('vearly')).status, 202);
    const late = await api.get(`/job-status?app_id=${app}&video_id=vearly`, { headers: freshIp() });
    assert.equal(late.status, 200, late.text);
  });

  test('a retried or canceled attempt\'s rung playlist answers an ended playlist, not a 404', async () => {
    assert.equal((await notify('vend')).status, 202);
    const first = await leaseJob('vend');
    await api.internal(`/internal/jobs/${first.job_id}/heartbeat`, { lease_id: first.lease_id, progress: 10, playable: true });
    const rung = `/${first.output_prefix}240p/index.m3u8`;
    await putStored({ backend: 'r2', mf, garage }, rung.slice(1), '#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n', 'application/vnd.apple.mpegurl');
    assert.equal((await api.get(rung)).status, 200, 'the playing attempt');
    await api.internal(`/internal/jobs/${first.job_id}/fail`, { lease_id: first.lease_id, message: 'storage timed out', retryable: true });
    await sleep(2100); // past the playlist's 2 s at the edge
    const ended = await api.get(rung, { headers: freshIp() });
    assert.equal(ended.status, 200, ended.text);
    assert.equal(ended.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    assert.match(ended.text, /#EXT-X-ENDLIST\n$/);
    assert.doesNotMatch(ended.text, /#EXTINF/);
    assert.equal((await api.get(`/${first.output_prefix}240p/00000.m4s`)).status, 404, 'its segments are not served');
    assert.equal((await api.get(`/${first.output_prefix}master.m3u8`)).status, 404);
    // The next attempt, not playable yet: its own playlist is not "ended".
    const second = await leaseJob('vend');
    assert.equal((await api.get(`/${second.output_prefix}240p/index.m3u8`)).status, 404);
    await api.internal(`/internal/jobs/${second.job_id}/heartbeat`, { lease_id: second.lease_id, progress: 10, playable: true });
    const cancel = await api.post('/cancel-job', { app_id: app, video_id: 'vend' }, { key: API_KEY, headers: freshIp() });
    assert.equal(cancel.json.canceled, true, cancel.text);
    const canceled = await api.get(`/${second.output_prefix}240p/index.m3u8`, { headers: freshIp() });
    assert.equal(canceled.status, 200);
    assert.match(canceled.text, /#EXT-X-ENDLIST\n$/);
  });
});
