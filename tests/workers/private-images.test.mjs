// Private images (issue 26), in workerd: an image that requires signed URLs
// answers its original and every variant only to a valid exp/sig query
// (HMAC-SHA256 with the app's URL-signing secret, signed here with the
// README's Node example, devkit/sign-image-url.mjs), keeps signed copies at the edge apart from
// public ones, drops its public copies (here at once, elsewhere by a purge
// of its cache tag, against devkit's purge stand-in) when it turns
// private; secrets rotate with a grace, and only for the key's own apps.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPurgeStandin } from '../../devkit/purge-standin.mjs';
import { signImageUrl } from '../../devkit/sign-image-url.mjs';
import { imageService, client, errorCode, freshIp, freshWindow, putStored, API_KEY } from './harness.mjs';

const BASE = 'http://image.test';
const ZONE = 'zone0123456789abcdef';
const OTHER_KEY = 'other-app-key-0123456789';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Presigning needs S3 settings; nothing is sent there (the R2 backend serves, putStored plays the browser's PUT).
const STORE = { endpoint: 'http://127.0.0.1:9', bucket: 'media', region: 'garage', accessKey: 'GKtest', secretKey: 'secret' };

/** The README's signing code (devkit/sign-image-url.mjs). */
const signUrl = (url, secret, ttlS = 600) => signImageUrl(url, secret, ttlS);

let dir;
let png;
let standin;
let mf;
let api;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'private-images-'));
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=s=640x480', '-frames:v', '1', join(dir, 'shot.png')]);
  png = readFileSync(join(dir, 'shot.png'));
  standin = await startPurgeStandin();
  mf = await imageService({
    store: STORE,
    vars: { IV_API_KEY: `${API_KEY}, ${OTHER_KEY}:other-app`, CF_ZONE_ID: ZONE, CF_PURGE_TOKEN: 'purge-token', CF_API_BASE: standin.apiBase },
  });
  api = client(mf, BASE);
});
after(async () => {
  await mf?.dispose();
  await standin?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const get = (url, headers = {}) => mf.dispatchFetch(url.startsWith('http') ? url : BASE + url, { headers: { ...freshIp(), ...headers } });
const keyed = (key = API_KEY) => ({ key, headers: freshIp() });
const bytesOf = async (res) => Buffer.from(await res.arrayBuffer());

async function upload(app, id, query = '') {
  const up = await api.post(`/upload?app_id=${app}&image_id=${id}${query}`, png, { key: API_KEY, headers: { ...freshIp(), 'content-type': 'image/png' } });
  assert.equal(up.status, 201, up.text);
  return up.json;
}

async function newSecret(app, body = {}) {
  const r = await api.post('/url-signing-keys', { app_id: app, ...body }, keyed());
  assert.equal(r.status, 201, r.text);
  assert.match(r.json.secret, /^uss_[0-9a-f]{64}$/);
  assert.match(r.json.id, /^usk_[0-9a-f]{24}$/);
  return r.json;
}

async function setAccess(app, id, requireSignedUrls, key = API_KEY) {
  return api.post(`/images/${app}/${id}/access`, { require_signed_urls: requireSignedUrls }, keyed(key));
}

/** GETs `url` until the edge cache answers it; returns that answer's bytes. */
async function untilEdgeHit(url, headers = {}) {
  for (let i = 0; i < 40; i++) {
    const res = await get(url, headers);
    assert.equal(res.status, 200, `${url}: ${res.status}`);
    const hit = (res.headers.get('server-timing') ?? '').includes('cache;desc="hit"');
    const body = await bytesOf(res);
    if (hit) return body;
    await sleep(50);
  }
  assert.fail(`${url} never reached the edge cache`);
}

async function refused(url, status, code, headers = {}) {
  const res = await get(url, headers);
  const text = await res.text();
  assert.equal(res.status, status, `${url}: ${text}`);
  const json = JSON.parse(text);
  assert.equal(errorCode({ json }), code, text);
  return json.error.message;
}

describe('private images', () => {
  const app = 'priv_app';
  const original = `/assets/images/${app}/pic`;
  const variant = `/images/${app}/pic/w=320,f=webp`;
  const auto = `/images/${app}/pic/w=160`;
  let before_;
  let secret;

  test('turning an image private refuses unsigned requests, its public edge copies included, and purges its tag', async () => {
    await upload(app, 'pic');
    // Served publicly, and kept at the edge (an edge hit skips the record).
    before_ = {
      original: await untilEdgeHit(original),
      variant: await untilEdgeHit(variant),
      auto: await untilEdgeHit(auto, { accept: 'image/webp' }),
    };
    secret = (await newSecret(app)).secret;
    const from = standin.calls.length;
    const set = await setAccess(app, 'pic', true);
    assert.equal(set.status, 200, set.text);
    assert.equal(set.json.require_signed_urls, true);
    assert.equal(set.json.image_id, 'pic');
    for (const path of [original, variant, auto]) {
      const message = await refused(path, 403, 'signed_url_required', { accept: 'image/webp' });
      assert.match(message, /exp.*sig/);
    }
    const [call] = (await standin.waitForCalls(from + 1)).slice(from);
    assert.deepEqual(call.body, { tags: [`iv-img:${app}:pic`] }, 'every location drops its copies');
    const meta = await api.get(`/images?app_id=${app}&image_id=pic`, keyed());
    assert.equal(meta.json.require_signed_urls, true);
  });

  test('signed URLs serve the same bytes as before, privately cached until exp', async () => {
    for (const [path, bytes, headers] of [[original, before_.original, {}], [variant, before_.variant, {}], [auto, before_.auto, { accept: 'image/webp' }]]) {
      const url = signUrl(BASE + path, secret);
      const res = await get(url, headers);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('cache-control'), /^private, max-age=(\d+)$/);
      assert.ok(Number(res.headers.get('cache-control').split('=')[1]) <= 600);
      assert.deepEqual(await bytesOf(res), bytes, `${path}: the same bytes`);
      // Another viewer's signed URL shares the edge copy; an unsigned request never gets it.
      assert.deepEqual(await untilEdgeHit(signUrl(BASE + path, secret, 900), headers), bytes);
      await refused(path, 403, 'signed_url_required', headers);
    }
    const ranged = await get(signUrl(BASE + original, secret), { range: 'bytes=0-9' });
    assert.equal(ranged.status, 206);
    assert.deepEqual(await bytesOf(ranged), before_.original.subarray(0, 10));
  });

  test('expired, tampered, incomplete and other-image signatures are 401 saying why', async () => {
    const good = new URL(signUrl(BASE + original, secret));
    const sig = good.searchParams.get('sig');
    const expired = signUrl(BASE + original, secret, -5);
    assert.match(await refused(expired, 401, 'invalid_token'), /expired/);
    const flipped = good.toString().replace(`sig=${sig}`, `sig=${sig[0] === 'a' ? 'b' : 'a'}${sig.slice(1)}`);
    assert.match(await refused(flipped, 401, 'invalid_token'), /does not match/);
    const later = new URL(good);
    later.searchParams.set('exp', String(Number(good.searchParams.get('exp')) + 3600));
    assert.match(await refused(later.toString(), 401, 'invalid_token'), /does not match/);
    const elsewhere = `${BASE}${variant}${good.search}`;
    assert.match(await refused(elsewhere, 401, 'invalid_token'), /does not match/);
    assert.match(await refused(`${original}?exp=${good.searchParams.get('exp')}`, 401, 'invalid_token'), /no sig/);
    assert.match(await refused(`${original}?exp=soon&sig=${sig}`, 401, 'invalid_token'), /unix time/);
    // Another app's secret does not sign this app's images.
    const other = await newSecret('priv_other');
    assert.match(await refused(signUrl(BASE + original, other.secret), 401, 'invalid_token'), /does not match/);
  });

  test('public again, then private again: both ways', async () => {
    const open = await setAccess(app, 'pic', false);
    assert.equal(open.status, 200, open.text);
    assert.equal(open.json.require_signed_urls, false);
    for (const [path, bytes, headers] of [[original, before_.original, {}], [variant, before_.variant, {}], [auto, before_.auto, { accept: 'image/webp' }]]) {
      const res = await get(path, headers);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
      assert.deepEqual(await bytesOf(res), bytes);
    }
    // Signed URLs of a public image work as well.
    assert.equal((await get(signUrl(BASE + original, secret))).status, 200);
    await untilEdgeHit(original);
    assert.equal((await setAccess(app, 'pic', true)).status, 200);
    await refused(original, 403, 'signed_url_required');
    assert.equal((await get(signUrl(BASE + original, secret))).status, 200);
  });

  test('require_signed_urls at upload: /upload (query and form) and a presigned upload', async () => {
    const sec = (await newSecret('priv_up')).secret;
    const raw = await upload('priv_up', 'raw', '&require_signed_urls=true');
    assert.equal(raw.require_signed_urls, true);
    await refused(`/assets/images/priv_up/raw`, 403, 'signed_url_required');
    assert.equal((await get(signUrl(`${BASE}/assets/images/priv_up/raw`, sec))).status, 200);

    const form = new FormData();
    form.append('app_id', 'priv_up');
    form.append('image_id', 'form');
    form.append('require_signed_urls', 'true');
    form.append('file', new Blob([png], { type: 'image/png' }), 'shot.png');
    // Encoded by undici here (Miniflare's own fetch would not see the boundary of Node's FormData).
    const encoded = new Response(form);
    const body = Buffer.from(await encoded.arrayBuffer());
    const headers = { 'x-api-key': API_KEY, 'content-type': encoded.headers.get('content-type'), ...freshIp() };
    const up = await mf.dispatchFetch(`${BASE}/upload`, { method: 'POST', headers, body });
    const upJson = await up.json();
    assert.equal(up.status, 201, JSON.stringify(upJson));
    assert.equal(upJson.require_signed_urls, true);
    await refused(`/images/priv_up/form/w=320`, 403, 'signed_url_required');

    const bad = await api.post('/upload?app_id=priv_up&image_id=bad&require_signed_urls=yes', png, { key: API_KEY, headers: { ...freshIp(), 'content-type': 'image/png' } });
    assert.equal(bad.status, 400, bad.text);

    const presign = await api.post('/generate-image-upload-url', { app_id: 'priv_up', image_id: 'pre', content_type: 'image/png', size: png.length, require_signed_urls: true }, keyed());
    assert.equal(presign.status, 200, presign.text);
    await putStored({ backend: 'r2', mf }, 'images/priv_up/pre', png, 'image/png');
    // The first request checks the upload, as private as its presign said.
    await refused(`/assets/images/priv_up/pre`, 403, 'signed_url_required');
    const signed = await get(signUrl(`${BASE}/assets/images/priv_up/pre`, sec));
    assert.equal(signed.status, 200);
    assert.deepEqual(await bytesOf(signed), png);
    const meta = await api.get('/images?app_id=priv_up&image_id=pre', keyed());
    assert.equal(meta.json.require_signed_urls, true, meta.text);
  });

  test('rotation: the old secret signs during its grace, not after; lists show no secrets', async () => {
    const a = 'priv_rot';
    await upload(a, 'pic', '&require_signed_urls=true');
    const first = await newSecret(a);
    const oldUrl = signUrl(`${BASE}/assets/images/${a}/pic`, first.secret);
    const second = await newSecret(a, { old_secret_expires_in_s: 3 });
    assert.equal(second.previous.id, first.id);
    const graceEnds = Date.parse(second.previous.expires_at);
    assert.ok(graceEnds > Date.now() && graceEnds <= Date.now() + 3500, second.previous.expires_at);
    assert.equal((await get(oldUrl)).status, 200, 'in its grace');
    const newUrl = signUrl(`${BASE}/assets/images/${a}/pic`, second.secret);
    assert.equal((await get(newUrl)).status, 200);
    const list = await api.get(`/url-signing-keys?app_id=${a}`, keyed());
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.json.keys.map((k) => k.id), [second.id, first.id]);
    assert.ok(!list.text.includes(first.secret) && !list.text.includes(second.secret) && !list.text.includes('uss_'), 'no secrets');
    await sleep(Math.max(0, graceEnds - Date.now()) + 300);
    // A URL signed with the old secret, the same or new, is refused once the grace is over.
    assert.match(await refused(oldUrl, 401, 'invalid_token'), /does not match/);
    assert.match(await refused(signUrl(`${BASE}/assets/images/${a}/pic`, first.secret), 401, 'invalid_token'), /rotated out/);
    assert.equal((await get(newUrl)).status, 200);
    const after_ = await api.get(`/url-signing-keys?app_id=${a}`, keyed());
    assert.deepEqual(after_.json.keys.map((k) => k.id), [second.id]);
    // The default grace is a day.
    const third = await newSecret(a);
    const day = Date.parse(third.previous.expires_at) - Date.parse(third.created_at);
    assert.ok(Math.abs(day - 86_400_000) < 5000, `${day}`);
  });

  test("only the app's own keys: another app's key can neither rotate, list nor change access; no key is 401", async () => {
    const mine = 'priv_rot';
    const rotate = await api.post('/url-signing-keys', { app_id: mine }, keyed(OTHER_KEY));
    assert.equal(rotate.status, 403, rotate.text);
    assert.equal(errorCode(rotate), 'app_not_allowed');
    const list = await api.get(`/url-signing-keys?app_id=${mine}`, keyed(OTHER_KEY));
    assert.equal(errorCode(list), 'app_not_allowed');
    const access = await setAccess(mine, 'pic', false, OTHER_KEY);
    assert.equal(errorCode(access), 'app_not_allowed');
    assert.equal((await api.post('/url-signing-keys', { app_id: mine }, { headers: freshIp() })).status, 401);
    // Its own app is fine.
    assert.equal((await api.post('/url-signing-keys', { app_id: 'other-app' }, keyed(OTHER_KEY))).status, 201);
  });

  test("refused signatures count against the address's budget of reads past the edge", async () => {
    const small = await imageService({ store: STORE, limits: { PUBLIC_RATE_LIMITER: 3 } });
    try {
      const own = client(small, BASE);
      const up = await own.post('/upload?app_id=priv_rl&image_id=pic&require_signed_urls=true', png, { key: API_KEY, headers: { ...freshIp(), 'content-type': 'image/png' } });
      assert.equal(up.status, 201, up.text);
      const forged = signUrl(`${BASE}/assets/images/priv_rl/pic`, 'uss_guessed');
      await freshWindow(10);
      const ip = { 'cf-connecting-ip': '10.9.9.9' };
      const statuses = [];
      for (let i = 0; i < 5; i++) {
        const res = await small.dispatchFetch(forged, { headers: ip });
        await res.arrayBuffer();
        statuses.push(res.status);
      }
      assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
    } finally {
      await small.dispose();
    }
  });

  test('bad bodies and unknown images are clear JSON errors', async () => {
    for (const [path, body, status] of [
      [`/images/${app}/pic/access`, {}, 400],
      [`/images/${app}/pic/access`, { require_signed_urls: 'yes' }, 400],
      [`/images/${app}/nope/access`, { require_signed_urls: true }, 404],
      ['/url-signing-keys', { app_id: app, old_secret_expires_in_s: 604801 }, 400],
      ['/url-signing-keys', { app_id: app, extra: 1 }, 400],
    ]) {
      const r = await api.post(path, body, keyed());
      assert.equal(r.status, status, `${path} ${JSON.stringify(body)}: ${r.text}`);
      errorCode(r);
    }
    const wrongMethod = await api.call('GET', `/images/${app}/pic/access`, keyed());
    assert.equal(wrongMethod.status, 405);
  });
});
