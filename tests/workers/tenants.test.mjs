// Tenants, keys and what browsers may reach, in workerd (Miniflare, R2
// binding): API keys tied to apps (the whole matrix of keys, apps and
// API-key routes of both services, and nothing written for a refused app),
// the rate limits (per key; per address only for missing or wrong keys),
// request bodies streamed with a cap (chunked, no Content-Length), and CORS
// (Vary: Origin with an allow-list; nothing on the server-only routes).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startSentrySink } from '../../devkit/sentry-sink.mjs';
import { freePort, waitFor } from '../../devkit/ports.mjs';
import { videoService, imageService, client, errorCode, freshIp, putStored, API_KEY, TRANSCODER_TOKEN, freshWindow } from './harness.mjs';

const VIDEO = 'http://video.test';
const IMAGE = 'http://image.test';
// Presigning is pure signing and reads go through the R2 binding: the one
// call that reaches the S3 endpoint here is a video delete's check for
// resumable uploads in progress (none), answered by a stub; the real
// exchange is tested against Garage in uploads.test.mjs.
const store = { endpoint: 'http://127.0.0.1:9', bucket: 'media', region: 'us-east-1', accessKey: 'test-access', secretKey: 'test-secret' };
let s3Stub;
before(async () => {
  s3Stub = http.createServer((req, res) => {
    const listing = req.method === 'GET' && new URL(req.url, 'http://x').searchParams.has('uploads');
    res.writeHead(listing ? 200 : 404, { 'content-type': 'application/xml' });
    res.end(listing ? '<ListMultipartUploadsResult></ListMultipartUploadsResult>' : '<Error><Code>NotImplemented</Code></Error>');
  });
  await new Promise((r) => s3Stub.listen(0, '127.0.0.1', r));
  store.endpoint = `http://127.0.0.1:${s3Stub.address().port}`;
});
after(() => new Promise((r) => s3Stub.close(r)));
// A 1x1 PNG.
const PNG = new Uint8Array(Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64'));

// Three tenants' keys and a plain key (any app: the single-tenant default).
const KEY_AB = 'tenant-key-ab-0123456789';
const KEY_C = 'tenant-key-c-0123456789';
const KEY_ANY = 'tenant-key-any-0123456789';
const IV_API_KEY = `${KEY_AB}:app-a|app-b, ${KEY_C}:app-c, ${KEY_ANY}`;

/** A multipart/form-data body as Node's fetch encodes it. */
async function formBody(fields) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (value instanceof Uint8Array) form.append(name, new Blob([value], { type: 'image/png' }), 'x.png');
    else form.append(name, value);
  }
  const encoded = new Response(form);
  return { body: new Uint8Array(await encoded.arrayBuffer()), contentType: encoded.headers.get('content-type') };
}

const corsHeaders = (res) => [...res.headers.keys()].filter((k) => k.startsWith('access-control-'));

/**
 * POSTs a chunked body (no Content-Length) over a real connection, 16 KiB
 * every 5 ms, up to `limit` bytes (bounded, so a Worker that reads
 * everything still ends). Resolves with the answer and how many bytes had
 * been sent when it came: a Worker that stops reading at its cap answers
 * long before the body ends.
 */
function trickle(url, headers, { limit = 8 << 20, chunk = 16 << 10, everyMs = 5 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    let sent = 0;
    let answered = false;
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', headers: { ...headers, 'transfer-encoding': 'chunked' } }, (res) => {
      answered = true;
      const sentAtAnswer = sent;
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => {
        req.destroy();
        const text = Buffer.concat(parts).toString();
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json, sentAtAnswer, limit });
      });
    });
    // A server that answers without reading the body may close the
    // connection under the writes: the answer can still be on its way.
    let failed = false;
    req.on('error', (e) => {
      if (answered || failed) return;
      failed = true;
      if (e.code === 'EPIPE' || e.code === 'ECONNRESET') setTimeout(() => { if (!answered) reject(e); }, 2000);
      else reject(e);
    });
    req.setTimeout(60000, () => req.destroy(new Error(`${url}: no answer in 60 s`)));
    const data = Buffer.alloc(chunk, 0x20);
    const pump = () => {
      if (answered || failed || req.destroyed) return;
      if (sent >= limit) return req.end();
      sent += chunk;
      req.write(data);
      setTimeout(pump, everyMs);
    };
    pump();
  });
}

/**
 * `trickle`, tried again (3 times in all) when the connection was reset
 * before any answer arrived: a server that answers without reading the body
 * closes with unread bytes, and the TCP reset that follows can discard its
 * answer in the client's kernel ('write EPIPE', seen in a local run). What
 * is checked is the answer when one arrives.
 */
async function trickleAnswered(url, headers, opts) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await trickle(url, headers, opts);
    } catch (e) {
      if (attempt >= 3 || !['EPIPE', 'ECONNRESET'].includes(e.code)) throw e;
    }
  }
}

let seq = 0;
const fresh = (prefix) => `${prefix}${++seq}`;

describe('API keys are tied to apps', () => {
  let video;
  let image;
  let vapi;
  let iapi;
  before(async () => {
    video = await videoService({ store, vars: { IV_API_KEY } });
    image = await imageService({ store, vars: { IV_API_KEY } });
    vapi = client(video, VIDEO);
    iapi = client(image, IMAGE);
  });
  after(async () => {
    await video?.dispose();
    await image?.dispose();
  });

  const jobOf = async (app, id) => (await vapi.get(`/job-status?app_id=${app}&video_id=${id}`, { headers: freshIp() }));
  const stored = async (mf, key) => (await (await mf.getR2Bucket('MEDIA_BUCKET')).head(key)) !== null;

  // Every API-key route of both services. `call` makes the request for
  // (key, app); `effect` says, after a refusal, that nothing happened; the
  // accepted status is what a permitted call answers.
  const routes = [
    {
      name: 'video /generate-upload-url',
      accepted: 200,
      call: (key, app) => vapi.post('/generate-upload-url', { app_id: app, video_id: fresh('v'), content_type: 'video/mp4', size: 10 }, { key, headers: freshIp() }),
    },
    {
      name: 'video /notify-upload-complete',
      accepted: 202,
      call: async (key, app) => {
        const id = fresh('n');
        const raw = `raw/${app}/${id}/source.mp4`;
        await putStored({ backend: 'r2', mf: video }, raw, new Uint8Array(100).fill(1), 'video/mp4');
        const res = await vapi.post('/notify-upload-complete', { app_id: app, video_id: id, raw_key: raw, content_type: 'video/mp4' }, { key, headers: freshIp() });
        res.effect = async () => (await jobOf(app, id)).status === 404 ? null : 'a job was created';
        return res;
      },
    },
    {
      name: 'video /cancel-job',
      accepted: 200,
      call: async (key, app) => {
        // The app's own backend (the plain key) starts a job; `key` tries to cancel it.
        const id = fresh('c');
        const raw = `raw/${app}/${id}/source.mp4`;
        await putStored({ backend: 'r2', mf: video }, raw, new Uint8Array(100).fill(1), 'video/mp4');
        const started = await vapi.post('/notify-upload-complete', { app_id: app, video_id: id, raw_key: raw, content_type: 'video/mp4' }, { key: KEY_ANY, headers: freshIp() });
        assert.equal(started.status, 202, started.text);
        const res = await vapi.post('/cancel-job', { app_id: app, video_id: id }, { key, headers: freshIp() });
        if (res.status === 200) assert.equal(res.json.canceled, true);
        res.effect = async () => {
          const job = (await jobOf(app, id)).json;
          return job.status === 'queued' && !job.error ? null : `the job is ${job.status} (${job.error})`;
        };
        return res;
      },
    },
    {
      name: 'video DELETE /videos',
      accepted: 200,
      call: async (key, app) => {
        // The app's own backend starts a job; `key` tries to delete the video.
        const id = fresh('d');
        const raw = `raw/${app}/${id}/source.mp4`;
        await putStored({ backend: 'r2', mf: video }, raw, new Uint8Array(100).fill(1), 'video/mp4');
        const started = await vapi.post('/notify-upload-complete', { app_id: app, video_id: id, raw_key: raw, content_type: 'video/mp4' }, { key: KEY_ANY, headers: freshIp() });
        assert.equal(started.status, 202, started.text);
        const res = await vapi.call('DELETE', `/videos?app_id=${app}&video_id=${id}`, { key, headers: freshIp() });
        if (res.status === 200) assert.deepEqual(res.json.deleted, { objects: 1, job: true, playback_record: false });
        res.effect = async () => {
          const gone = [(await jobOf(app, id)).status === 404 && 'the job', !(await stored(video, raw)) && 'the source'].filter(Boolean);
          return gone.length ? `deleted: ${gone.join(', ')}` : null;
        };
        return res;
      },
    },
    {
      name: 'video GET /videos/{app_id}/{video_id}',
      accepted: 200,
      call: async (key, app) => {
        // The app's own backend starts a job; `key` reads it.
        const id = fresh('g');
        const raw = `raw/${app}/${id}/source.mp4`;
        await putStored({ backend: 'r2', mf: video }, raw, new Uint8Array(100).fill(1), 'video/mp4');
        const started = await vapi.post('/notify-upload-complete', { app_id: app, video_id: id, raw_key: raw, content_type: 'video/mp4' }, { key: KEY_ANY, headers: freshIp() });
        assert.equal(started.status, 202, started.text);
        const res = await vapi.get(`/videos/${app}/${id}`, { key, headers: freshIp() });
        if (res.status === 200) assert.equal(res.json.video_id, id);
        res.effect = async () => (res.text.includes(started.json.job_id) ? 'the job was shown' : null);
        return res;
      },
    },
    {
      name: 'image DELETE /images',
      accepted: 200,
      call: async (key, app) => {
        const id = fresh('x');
        const up = await iapi.post(`/upload?app_id=${app}&image_id=${id}`, PNG, { key: KEY_ANY, headers: { ...freshIp(), 'content-type': 'image/png' } });
        assert.equal(up.status, 201, up.text);
        const res = await iapi.call('DELETE', `/images?app_id=${app}&image_id=${id}`, { key, headers: freshIp() });
        if (res.status === 200) assert.deepEqual(res.json.deleted, { objects: 1, record: true });
        res.effect = async () => (await stored(image, `images/${app}/${id}`)) ? null : 'the image was deleted';
        return res;
      },
    },
    {
      name: 'image /generate-image-upload-url',
      accepted: 200,
      call: (key, app) => iapi.post('/generate-image-upload-url', { app_id: app, content_type: 'image/png', size: PNG.length }, { key, headers: freshIp() }),
    },
    {
      name: 'image /upload (raw body, app_id in the query)',
      accepted: 201,
      call: async (key, app) => {
        const id = fresh('r');
        const res = await iapi.post(`/upload?app_id=${app}&image_id=${id}`, PNG, { key, headers: { ...freshIp(), 'content-type': 'image/png' } });
        res.effect = async () => (await stored(image, `images/${app}/${id}`)) ? 'the image was stored' : null;
        return res;
      },
    },
    {
      name: 'image /upload (form, app_id as a field)',
      accepted: 201,
      call: async (key, app) => {
        const id = fresh('f');
        const { body, contentType } = await formBody({ app_id: app, image_id: id, file: PNG });
        const res = await iapi.post('/upload', body, { key, headers: { ...freshIp(), 'content-type': contentType } });
        res.effect = async () => (await stored(image, `images/${app}/${id}`)) ? 'the image was stored' : null;
        return res;
      },
    },
  ];

  // (key, app, allowed): each tenant key with its own apps and the others',
  // and the plain key with every app.
  const matrix = [
    [KEY_AB, 'app-a', true],
    [KEY_AB, 'app-b', true],
    [KEY_AB, 'app-c', false],
    [KEY_C, 'app-c', true],
    [KEY_C, 'app-a', false],
    [KEY_C, 'app-b', false],
    [KEY_ANY, 'app-a', true],
    [KEY_ANY, 'app-c', true],
  ];

  test('the matrix: every key x its own and other apps x every API-key route; another app gets 403 and nothing happens', async () => {
    let checked = 0;
    const leaks = [];
    for (const route of routes) {
      for (const [key, app, allowed] of matrix) {
        const res = await route.call(key, app);
        const label = `${route.name} key=${key.slice(0, 16)}… app=${app}`;
        if (allowed) {
          assert.equal(res.status, route.accepted, `${label}: ${res.text}`);
        } else {
          assert.equal(res.status, 403, `${label}: ${res.text}`);
          assert.equal(errorCode(res), 'app_not_allowed', label);
          assert.match(res.json.error.message, new RegExp(`may not act for app_id "${app}"`));
          assert.ok(!res.text.includes(key), 'the answer never repeats the key');
          assert.equal(res.json.upload_url, undefined);
          const leak = await res.effect?.();
          if (leak) leaks.push(`${label}: ${leak}`);
        }
        checked++;
      }
    }
    assert.deepEqual(leaks, []);
    assert.equal(checked, routes.length * matrix.length);
  });

  test('GET /videos/{app_id}/{video_id}: the job with its delivery for the app\'s key, as /videos/delivery; 401, 403, 404, 400 and 405 otherwise', async () => {
    const id = fresh('view');
    const raw = `raw/app-a/${id}/source.mp4`;
    await putStored({ backend: 'r2', mf: video }, raw, new Uint8Array(100).fill(1), 'video/mp4');
    const started = await vapi.post('/notify-upload-complete', { app_id: 'app-a', video_id: id, raw_key: raw, content_type: 'video/mp4' }, { key: KEY_AB, headers: freshIp() });
    assert.equal(started.status, 202, started.text);
    const path = `/videos/app-a/${id}`;
    const view = await vapi.get(path, { key: KEY_AB, headers: freshIp() });
    assert.equal(view.status, 200, view.text);
    assert.equal(view.headers.get('cache-control'), 'no-store');
    const delivery = await vapi.get(`/videos/delivery?app_id=app-a&video_id=${id}`, { key: KEY_AB, headers: freshIp() });
    assert.deepEqual(view.json, delivery.json, 'the same view as /videos/delivery');
    assert.equal(view.json.job_id, started.json.job_id);
    assert.equal(view.json.status, 'queued');
    // Without a key, with a wrong one, with another tenant's: refused, nothing of the job shown.
    for (const [key, status, code] of [[undefined, 401, 'unauthorized'], ['nope', 403, 'forbidden'], [KEY_C, 403, 'app_not_allowed']]) {
      const r = await vapi.get(path, { key, headers: freshIp() });
      assert.equal(r.status, status, `${key}: ${r.text}`);
      assert.equal(errorCode(r), code);
      assert.ok(!r.text.includes(started.json.job_id));
    }
    // Another app's video, or one without a job: 404 for a key of that app.
    const none = await vapi.get('/videos/app-b/no-such-video', { key: KEY_AB, headers: freshIp() });
    assert.equal(none.status, 404, none.text);
    assert.equal(errorCode(none), 'not_found');
    const other = await vapi.get(`/videos/app-c/${id}`, { key: KEY_C, headers: freshIp() });
    assert.equal(other.status, 404, 'app-a\'s video is not app-c\'s');
    // A bad id is a 400 naming it; other methods are 405 with Allow.
    const bad = await vapi.get('/videos/app-a/bad.id', { key: KEY_AB, headers: freshIp() });
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.json.error.message, /video_id/);
    const post = await vapi.call('POST', path, { key: KEY_AB, headers: freshIp() });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, OPTIONS');
    // Server-only: no CORS on the answer or its preflight.
    const browser = await video.dispatchFetch(VIDEO + path, { headers: { ...freshIp(), origin: 'https://a.example', 'x-api-key': KEY_AB } });
    assert.equal(browser.status, 200);
    assert.deepEqual(corsHeaders(browser), []);
    await browser.arrayBuffer();
    const pre = await video.dispatchFetch(VIDEO + path, { method: 'OPTIONS', headers: { origin: 'https://a.example', 'access-control-request-method': 'GET' } });
    assert.deepEqual(corsHeaders(pre), []);
    await pre.arrayBuffer();
    // And the served OpenAPI document has it, with the key.
    const doc = (await vapi.get('/openapi.json')).json;
    assert.deepEqual(doc.paths['/videos/{app_id}/{video_id}'].get.security, [{ ApiKey: [] }]);
  });

  test('a refused app is refused before the upload is read', async () => {
    // A raw /upload for another app is answered without reading its body.
    const mf = await imageService({ store, vars: { IV_API_KEY }, port: await freePort() });
    try {
      const res = await trickleAnswered(`${await mf.ready}upload?app_id=app-c&image_id=x1`, { 'x-api-key': KEY_AB, 'content-type': 'image/png' });
      assert.equal(res.status, 403, res.text);
      assert.equal(res.json.error.code, 'app_not_allowed');
      assert.ok(res.sentAtAnswer < res.limit / 2, `answered after ${res.sentAtAnswer} of ${res.limit} bytes`);
    } finally {
      await mf.dispose();
    }
  });

  test('keys still answer 401/403 as before; the key with its app list is not a key', async () => {
    for (const [key, status, code] of [[undefined, 401, 'unauthorized'], ['', 401, 'unauthorized'], ['nope', 403, 'forbidden'],
      [`${KEY_AB}:app-a|app-b`, 403, 'forbidden'], [`${KEY_AB}:app-a`, 403, 'forbidden'], ['app-a', 403, 'forbidden']]) {
      const r = await vapi.post('/generate-upload-url', { app_id: 'app-a', video_id: 'v', content_type: 'video/mp4', size: 10 }, { key, headers: freshIp() });
      assert.equal(r.status, status, String(key));
      assert.equal(errorCode(r), code);
    }
  });

  test('a misconfigured IV_API_KEY is a clear configuration error that never shows a key', async () => {
    const sentry = await startSentrySink();
    try {
      for (const [configured, detail] of [
        ['secret-one:app/a', /IV_API_KEY cannot be used: entry 1 has an invalid app id: app_id contains '\/'/],
        ['secret-one, secret-two:', /IV_API_KEY cannot be used: entry 2 has no app ids after its ':'/],
        ['secret-one, secret-one:app-a', /IV_API_KEY cannot be used: entries 1 and 2 have the same key/],
      ]) {
        const mf = await videoService({ store, vars: { IV_API_KEY: configured, IV_SENTRY_DSN: sentry.dsn } });
        try {
          const before = sentry.received.length;
          const r = await client(mf, VIDEO).post('/generate-upload-url', { app_id: 'a', video_id: 'v', content_type: 'video/mp4', size: 10 }, { key: 'secret-one', headers: freshIp() });
          assert.equal(r.status, 500, configured);
          assert.equal(errorCode(r), 'internal');
          assert.doesNotMatch(r.text, /secret|IV_API_KEY/, 'the client sees nothing of the configuration');
          // The operator sees what to change, and no key.
          await waitFor('the Sentry event', () => sentry.received.length > before, 10000);
          const message = sentry.received.at(-1).event.exception.values[0].value;
          assert.match(message, detail);
          assert.doesNotMatch(message, /secret-/);
        } finally {
          await mf.dispose();
        }
      }
    } finally {
      await sentry.close();
    }
  });
});

describe('rate limits: per key, and per address only for missing or wrong keys', () => {
  test('bad keys from one address get 429 with Retry-After; a valid key from that address is not throttled', async () => {
    await freshWindow();
    for (const [make, base, call] of [
      [videoService, VIDEO, (api, key, ip) => api.post('/generate-upload-url', { app_id: 'a', video_id: 'v', content_type: 'video/mp4', size: 10 }, { key, headers: ip })],
      [imageService, IMAGE, (api, key, ip) => api.post('/upload?app_id=a', PNG, { key, headers: { ...ip, 'content-type': 'image/png' } })],
    ]) {
      const mf = await make({ store });
      try {
        const api = client(mf, base);
        const ip = { 'cf-connecting-ip': '198.51.100.7' };
        const codes = [];
        for (let i = 0; i < 12; i++) {
          const r = await call(api, i % 2 ? `wrong-${i}` : undefined, ip);
          codes.push(r.status);
          if (r.status === 429) {
            assert.equal(r.headers.get('retry-after'), '60');
            assert.equal(errorCode(r), 'rate_limited');
            assert.match(r.json.error.message, /without a valid API key from this address/);
          }
        }
        assert.deepEqual(codes, [401, 403, 401, 403, 401, 403, 401, 403, 401, 403, 429, 429], base);
        // The same address with the valid key: not throttled, well past 10.
        for (let i = 0; i < 15; i++) {
          const r = await call(api, API_KEY, ip);
          assert.ok(r.status === 200 || r.status === 201, `${base} valid key #${i + 1}: ${r.status} ${r.text}`);
        }
        // Other addresses' bad keys are theirs to spend.
        assert.equal((await call(api, 'wrong', { 'cf-connecting-ip': '198.51.100.8' })).status, 403);
      } finally {
        await mf.dispose();
      }
    }
  });

  test('a backend gets its default budget of 600 calls a minute from one address; the 601st is 429', async () => {
    await freshWindow();
    const mf = await videoService({ store });
    try {
      const api = client(mf, VIDEO);
      const ip = { 'cf-connecting-ip': '198.51.100.20' };
      const codes = {};
      for (let i = 0; i < 601; i++) {
        const r = await api.post('/generate-upload-url', { app_id: 'a', video_id: `b${i}`, content_type: 'video/mp4', size: 10 }, { key: API_KEY, headers: ip });
        codes[r.status] = (codes[r.status] ?? 0) + 1;
      }
      assert.deepEqual(codes, { 200: 600, 429: 1 });
    } finally {
      await mf.dispose();
    }
  });

  test('a key over its budget gets 429 wherever it calls from; other keys and addresses are unaffected', async () => {
    await freshWindow();
    for (const [make, base, call] of [
      [videoService, VIDEO, (api, key, ip) => api.post('/generate-upload-url', { app_id: 'app-a', video_id: 'v', content_type: 'video/mp4', size: 10 }, { key, headers: ip })],
      [imageService, IMAGE, (api, key, ip) => api.post('/generate-image-upload-url', { app_id: 'app-a', content_type: 'image/png', size: 1000 }, { key, headers: ip })],
    ]) {
      const mf = await make({ store, vars: { IV_API_KEY }, limits: { KEY_RATE_LIMITER: 5 } });
      try {
        const api = client(mf, base);
        const codes = [];
        for (let i = 0; i < 7; i++) {
          const r = await call(api, KEY_AB, freshIp());
          codes.push(r.status);
          if (r.status === 429) {
            assert.equal(r.headers.get('retry-after'), '60');
            assert.equal(errorCode(r), 'rate_limited');
            assert.match(r.json.error.message, /too many requests with this API key/);
            assert.ok(!r.text.includes(KEY_AB));
          }
        }
        assert.deepEqual(codes, [200, 200, 200, 200, 200, 429, 429], base);
        // Calls for another app count against the key too (they are its calls).
        assert.equal((await call(api, KEY_AB, freshIp())).status, 429);
        // Another key has its own budget; a wrong key is refused as wrong, not limited.
        assert.equal((await call(api, KEY_ANY, freshIp())).status, 200);
        assert.equal((await call(api, 'wrong', freshIp())).status, 403);
      } finally {
        await mf.dispose();
      }
    }
  });
});

describe('request bodies without Content-Length are read with a cap', () => {
  let video;
  let image;
  let videoUrl;
  let imageUrl;
  before(async () => {
    video = await videoService({ store, port: await freePort() });
    image = await imageService({ store, vars: { MAX_IMAGE_BYTES: '4096' }, port: await freePort() });
    videoUrl = String(await video.ready).replace(/\/$/, '');
    imageUrl = String(await image.ready).replace(/\/$/, '');
  });
  after(async () => {
    await video?.dispose();
    await image?.dispose();
  });

  const send = (mf, url, headers, body) =>
    mf.dispatchFetch(url, { method: 'POST', duplex: 'half', signal: AbortSignal.timeout(20000), headers: { ...freshIp(), ...headers }, body });
  const chunked = (...parts) => new ReadableStream({ start(c) { for (const p of parts) c.enqueue(typeof p === 'string' ? new TextEncoder().encode(p) : p); c.close(); } });

  test('a long chunked JSON body is refused with 413 as soon as it passes the 16 KiB cap, not once it ends', async () => {
    for (const path of ['/generate-upload-url', '/notify-upload-complete', '/cancel-job']) {
      const res = await trickleAnswered(videoUrl + path, { 'x-api-key': API_KEY, 'content-type': 'application/json' });
      assert.equal(res.status, 413, `${path}: ${res.text}`);
      assert.equal(res.json.error.code, 'payload_too_large');
      assert.match(res.json.error.message, /more than 16384 bytes; this route takes at most 16384 bytes/);
      assert.ok(res.sentAtAnswer < res.limit / 2, `${path}: answered after ${res.sentAtAnswer} of ${res.limit} bytes`);
    }
  });

  test('a long chunked /upload body is refused with 413 at MAX_IMAGE_BYTES, raw or as a form', async () => {
    for (const type of ['image/png', 'multipart/form-data; boundary=b']) {
      const res = await trickleAnswered(`${imageUrl}/upload?app_id=a&image_id=long`, { 'x-api-key': API_KEY, 'content-type': type });
      assert.equal(res.status, 413, `${type}: ${res.text}`);
      assert.equal(res.json.error.code, 'payload_too_large');
      assert.ok(res.sentAtAnswer < res.limit / 2, `${type}: answered after ${res.sentAtAnswer} of ${res.limit} bytes`);
    }
  });

  test('small chunked bodies still work; the cap is exact', async () => {
    const json = JSON.stringify({ app_id: 'a', video_id: 'chunked1', content_type: 'video/mp4', size: 10 });
    const res = await send(video, `${VIDEO}/generate-upload-url`, { 'x-api-key': API_KEY, 'content-type': 'application/json' },
      chunked(json.slice(0, 10), json.slice(10, 30), json.slice(30)));
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal((await res.json()).raw_key, 'raw/a/chunked1/source.mp4');
    const img = await send(image, `${IMAGE}/upload?app_id=a&image_id=chunked2`, { 'x-api-key': API_KEY, 'content-type': 'image/png' },
      chunked(PNG.slice(0, 20), PNG.slice(20)));
    assert.equal(img.status, 201, await img.clone().text());
    assert.equal((await img.json()).size, PNG.length);
    // Exactly at the cap is read; one byte over is not.
    const atCap = new Uint8Array(4096);
    atCap.set(PNG);
    const over = new Uint8Array(4097);
    over.set(PNG);
    const okCap = await send(image, `${IMAGE}/upload?app_id=a&image_id=chunked3`, { 'x-api-key': API_KEY, 'content-type': 'image/png' }, chunked(atCap.slice(0, 1000), atCap.slice(1000)));
    assert.notEqual(okCap.status, 413, await okCap.text());
    const tooBig = await send(image, `${IMAGE}/upload?app_id=a&image_id=chunked4`, { 'x-api-key': API_KEY, 'content-type': 'image/png' }, chunked(over.slice(0, 1000), over.slice(1000)));
    assert.equal(tooBig.status, 413);
    assert.equal((await tooBig.json()).error.code, 'payload_too_large');
  });
});

describe('CORS', () => {
  const LIST = 'https://a.example, https://b.example';
  let instances;
  before(async () => {
    instances = {
      videoListed: await videoService({ store, vars: { CORS_ALLOWED_ORIGINS: LIST } }),
      imageListed: await imageService({ store, vars: { CORS_ALLOWED_ORIGINS: LIST } }),
      videoAny: await videoService({ store }),
      imageAny: await imageService({ store }),
    };
  });
  after(async () => {
    for (const mf of Object.values(instances ?? {})) await mf.dispose();
  });

  test('with an allow-list every public answer says Vary: Origin, whatever the origin', async () => {
    for (const [mf, base, paths] of [
      [instances.videoListed, VIDEO, ['/health', '/job-status?app_id=a&video_id=none', '/hls/a/b/c/master.m3u8', '/nope']],
      [instances.imageListed, IMAGE, ['/health', '/assets/images/a/none', '/nope']],
    ]) {
      for (const path of paths) {
        for (const origin of ['https://b.example', 'https://evil.example', undefined]) {
          const r = await mf.dispatchFetch(base + path, { headers: { ...freshIp(), ...(origin ? { origin } : {}) } });
          assert.match(r.headers.get('vary') ?? '', /Origin/, `${base}${path} from ${origin}`);
          assert.equal(r.headers.get('access-control-allow-origin'), origin === 'https://b.example' ? origin : null, `${path} from ${origin}`);
          await r.arrayBuffer();
        }
      }
      // Preflights too.
      const pre = await mf.dispatchFetch(`${base}/health`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } });
      assert.match(pre.headers.get('vary') ?? '', /Origin/);
    }
    // With `*` the answer is the same for every origin: no Vary.
    const any = await instances.videoAny.dispatchFetch(`${VIDEO}/health`, { headers: { origin: 'https://a.example' } });
    assert.equal(any.headers.get('access-control-allow-origin'), '*');
    assert.equal(any.headers.get('vary'), null);
  });

  test('the API-key and internal routes answer browsers with no CORS headers, preflights included', async () => {
    const cases = [
      ['videoAny', VIDEO, '/generate-upload-url', { app_id: 'a', video_id: 'v', content_type: 'video/mp4', size: 10 }],
      ['videoAny', VIDEO, '/notify-upload-complete', { app_id: 'a', video_id: 'v', raw_key: 'raw/a/v/source.mp4', content_type: 'video/mp4' }],
      ['videoAny', VIDEO, '/cancel-job', { app_id: 'a', video_id: 'v' }],
      ['videoAny', VIDEO, '/internal/jobs/lease', { worker: 'x', wait_ms: 0 }],
      ['imageAny', IMAGE, '/generate-image-upload-url', { app_id: 'a', content_type: 'image/png', size: 1000 }],
      ['imageAny', IMAGE, '/upload?app_id=a', null],
      ['videoListed', VIDEO, '/generate-upload-url', { app_id: 'a', video_id: 'v', content_type: 'video/mp4', size: 10 }],
      ['imageListed', IMAGE, '/upload?app_id=a', null],
    ];
    let answers = 0;
    for (const [name, base, path, json] of cases) {
      const mf = instances[name];
      const body = json ? JSON.stringify(json) : PNG;
      const type = json ? 'application/json' : 'image/png';
      for (const origin of ['https://a.example', 'https://evil.example']) {
        // Preflight: nothing granted.
        const pre = await mf.dispatchFetch(base + path, {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, x-api-key' },
        });
        assert.deepEqual(corsHeaders(pre), [], `${name} OPTIONS ${path}`);
        await pre.arrayBuffer();
        // The answers themselves, with a valid, a wrong and no key (and the transcoder's token).
        for (const headers of [{ 'x-api-key': API_KEY }, { 'x-api-key': 'wrong' }, {}, { authorization: `Bearer ${TRANSCODER_TOKEN}` }]) {
          const r = await mf.dispatchFetch(base + path, { method: 'POST', headers: { ...freshIp(), origin, 'content-type': type, ...headers }, body });
          assert.deepEqual(corsHeaders(r), [], `${name} POST ${path} ${JSON.stringify(headers)} -> ${r.status}`);
          await r.arrayBuffer();
          answers++;
        }
      }
      // A method the route does not take: still nothing.
      const get = await mf.dispatchFetch(base + path, { headers: { origin: 'https://a.example' } });
      assert.ok(get.status >= 400, `GET ${path}: ${get.status}`);
      assert.deepEqual(corsHeaders(get), []);
      await get.arrayBuffer();
    }
    assert.equal(answers, cases.length * 2 * 4);
  });

  test('public routes keep their CORS; browsers are not invited to send x-api-key', async () => {
    for (const [mf, base, path] of [[instances.videoAny, VIDEO, '/job-status'], [instances.videoAny, VIDEO, '/playback-url'], [instances.imageAny, IMAGE, '/assets/images/a/b']]) {
      const pre = await mf.dispatchFetch(base + path, {
        method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'range' },
      });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers.get('access-control-allow-origin'), '*');
      assert.match(pre.headers.get('access-control-allow-headers'), /Range/);
      assert.doesNotMatch(pre.headers.get('access-control-allow-headers'), /x-api-key|authorization/i);
    }
  });
});
