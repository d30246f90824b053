// Signed playback (issue 26), in workerd (Miniflare, R2 binding): signing
// keys by API (the private key shown once, per app), playback tokens that
// an app backend signs offline with `jose` (RS256 and ES256) or mints with
// POST /playback-tokens, the token-in-path routes /hls/t/{token}/... (same
// bytes and the same edge-cache entry as the public file), the refusals
// (no token, expired, tampered, alg none, revoked key, another app's key),
// the key route of an encrypted video, /playback-url of a private video,
// and the access route that makes a video private and public again.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SignJWT, importPKCS8, importJWK, decodeProtectedHeader } from 'jose';
import { playbackUrl } from '../../devkit/sign-playback-token.mjs';
import { videoService, client, freshIp, freshWindow, errorCode, API_KEY } from './harness.mjs';

const store = { endpoint: 'http://127.0.0.1:9', bucket: 'media', region: 'us-east-1', accessKey: 'test-access', secretKey: 'test-secret' };
const APP = 'sp-app';
const OTHER = 'sp-other';
const KEY_APP = 'sp-key-app-0123456789';
const KEY_OTHER = 'sp-key-other-0123456789';
const IV_API_KEY = `${KEY_APP}:${APP}, ${KEY_OTHER}:${OTHER}, ${API_KEY}`;
const result = { duration_s: 4, has_audio: false, renditions: [], thumbnails: null };
const now = () => Math.floor(Date.now() / 1000);

let mf;
let api;
before(async () => {
  mf = await videoService({ store, vars: { IV_API_KEY, LEASE_TTL_MS: '60000' } });
  api = client(mf);
});
after(async () => { await mf?.dispose(); });

const get = (path, headers = {}) => api.get(path, { headers: { ...freshIp(), ...headers } });
const bytesOf = async (path, headers = {}) => {
  const res = await mf.dispatchFetch(`http://video.test${path}`, { headers: { ...freshIp(), ...headers } });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
};

/** A done video of `app` with its files planted: master, a rung playlist,
 *  init and segment, poster. Options go in the notify (`require_signed_urls`,
 *  `encryption`). Returns its output prefix and the bytes planted. */
async function finishedVideo(app, video, options = {}, key = API_KEY) {
  const bucket = await mf.getR2Bucket('MEDIA_BUCKET');
  const raw = `raw/${app}/${video}/source.mp4`;
  await bucket.put(raw, new Uint8Array(1000).fill(7), { httpMetadata: { contentType: 'video/mp4' } });
  const notified = await api.post('/notify-upload-complete', { app_id: app, video_id: video, raw_key: raw, content_type: 'video/mp4', ...options }, { key, headers: freshIp() });
  assert.equal(notified.status, 202, notified.text);
  let job;
  for (let i = 0; i < 20 && job?.video_id !== video; i++) job = (await api.internal('/internal/jobs/lease', { worker: 'test', wait_ms: 3000 })).json.job;
  assert.equal(job?.video_id, video, 'leased');
  const files = {
    'master.m3u8': Buffer.from('#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=500000\n360p/index.m3u8\n'),
    '360p/index.m3u8': Buffer.from('#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4,\n00000.m4s\n#EXT-X-ENDLIST\n'),
    '360p/init.mp4': randomBytes(64),
    '360p/00000.m4s': randomBytes(4096),
    'poster.jpg': randomBytes(256),
  };
  const types = { m3u8: 'application/vnd.apple.mpegurl', mp4: 'video/mp4', m4s: 'video/iso.segment', jpg: 'image/jpeg' };
  for (const [file, body] of Object.entries(files)) {
    await bucket.put(`${job.output_prefix}${file}`, body, { httpMetadata: { contentType: types[file.split('.').pop()] } });
  }
  const aesKey = randomBytes(16);
  if (options.encryption === 'aes-128') {
    await bucket.put(`keys/${app}/${video}/${job.output_id}/aes128.key`, aesKey, { httpMetadata: { contentType: 'application/octet-stream' } });
  }
  const done = await api.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result });
  assert.equal(done.status, 200, done.text);
  return { prefix: job.output_prefix, files, aesKey };
}

/** A signing key of `app` made through the API. */
async function signingKey(app, alg, key = API_KEY) {
  const r = await api.post('/signing-keys', alg ? { app_id: app, alg } : { app_id: app }, { key, headers: freshIp() });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

/** A token signed offline, as an app backend does with jose. */
async function sign(created, claims, { alg = created.alg, header = {} } = {}) {
  const key = alg === 'RS256' ? await importPKCS8(created.pem, 'RS256') : await importJWK(created.jwk, 'ES256');
  const jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg, kid: created.id, typ: 'JWT', ...header });
  if (claims.exp === undefined) jwt.setExpirationTime('1h');
  return jwt.sign(key);
}

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('signing keys', () => {
  test('created (RS256 by default, or ES256) with the private key shown once, listed without it, revoked by their app only', async () => {
    const rs = await signingKey(APP, undefined, KEY_APP);
    assert.match(rs.id, /^[0-9a-f]{32}$/);
    assert.equal(rs.alg, 'RS256');
    assert.equal(rs.app_id, APP);
    assert.ok(rs.pem.startsWith('-----BEGIN PRIVATE KEY-----\n') && rs.pem.trimEnd().endsWith('-----END PRIVATE KEY-----'), rs.pem);
    assert.equal(rs.jwk.kty, 'RSA');
    assert.ok(rs.jwk.d, 'the private JWK');
    assert.equal(rs.jwk.kid, rs.id);
    const es = await signingKey(APP, 'ES256', KEY_APP);
    assert.equal(es.alg, 'ES256');
    assert.equal(es.jwk.crv, 'P-256');

    const list = await api.get(`/signing-keys?app_id=${APP}`, { key: KEY_APP, headers: freshIp() });
    assert.equal(list.status, 200, list.text);
    const ids = list.json.keys.map((k) => k.id);
    assert.ok(ids.includes(rs.id) && ids.includes(es.id), list.text);
    assert.ok(!list.text.includes('PRIVATE') && !list.text.includes('"d"'), 'no key material is listed');
    assert.equal(list.headers.get('access-control-allow-origin'), null, 'server-only: no CORS');

    // Another app's key may not create, list or revoke this app's keys.
    for (const r of [
      await api.post('/signing-keys', { app_id: APP }, { key: KEY_OTHER, headers: freshIp() }),
      await api.get(`/signing-keys?app_id=${APP}`, { key: KEY_OTHER, headers: freshIp() }),
      await api.call('DELETE', `/signing-keys/${rs.id}?app_id=${APP}`, { key: KEY_OTHER, headers: freshIp() }),
    ]) {
      assert.equal(r.status, 403, r.text);
      assert.equal(errorCode(r), 'app_not_allowed');
    }
    // A key that may act for both apps cannot revoke app A's key as app B's.
    const asOther = await api.call('DELETE', `/signing-keys/${rs.id}?app_id=${OTHER}`, { key: API_KEY, headers: freshIp() });
    assert.equal(asOther.status, 404, asOther.text);

    const revoked = await api.call('DELETE', `/signing-keys/${es.id}?app_id=${APP}`, { key: KEY_APP, headers: freshIp() });
    assert.equal(revoked.status, 200, revoked.text);
    assert.deepEqual(revoked.json, { id: es.id, revoked: true });
    const again = await api.call('DELETE', `/signing-keys/${es.id}?app_id=${APP}`, { key: KEY_APP, headers: freshIp() });
    assert.equal(again.status, 404);
    const after = await api.get(`/signing-keys?app_id=${APP}`, { key: KEY_APP, headers: freshIp() });
    assert.ok(!after.json.keys.some((k) => k.id === es.id));

    for (const [body, why] of [[{ app_id: APP, alg: 'HS256' }, 'alg'], [{ app_id: APP, alg: 'none' }, 'alg none'], [{}, 'no app']]) {
      const r = await api.post('/signing-keys', body, { key: KEY_APP, headers: freshIp() });
      assert.equal(r.status, 400, why);
    }
  });
});

describe('token-in-path playback', () => {
  let pub;
  let priv;
  let rs;
  let es;
  before(async () => {
    pub = await finishedVideo(APP, 'vpublic');
    priv = await finishedVideo(APP, 'vprivate', { require_signed_urls: true });
    rs = await signingKey(APP, 'RS256');
    es = await signingKey(APP, 'ES256');
  });

  test('a private video refuses its public files and /playback-url with signed_url_required', async () => {
    for (const file of ['master.m3u8', '360p/index.m3u8', '360p/00000.m4s', 'poster.jpg']) {
      const r = await get(`/${priv.prefix}${file}`);
      assert.equal(r.status, 403, `${file}: ${r.text}`);
      assert.equal(errorCode(r), 'signed_url_required');
    }
    const url = await get(`/playback-url?app_id=${APP}&video_id=vprivate`);
    assert.equal(url.status, 403, url.text);
    assert.equal(errorCode(url), 'signed_url_required');
    assert.match(url.json.error.message, /POST \/playback-tokens/);
    assert.match(url.json.error.message, /\/hls\/t\/\{token\}\/master\.m3u8/);
    assert.match(url.json.error.message, /POST \/signing-keys/);
    // The public video is untouched.
    assert.equal((await get(`/playback-url?app_id=${APP}&video_id=vpublic`)).status, 200);
  });

  test('valid RS256 and ES256 tokens serve every file: the same bytes as the public file, private answers', async () => {
    for (const created of [rs, es]) {
      for (const [video, planted] of [['vpublic', pub], ['vprivate', priv]]) {
        const token = await sign(created, { sub: video });
        assert.equal(decodeProtectedHeader(token).alg, created.alg);
        for (const [file, body] of Object.entries(planted.files)) {
          const r = await bytesOf(`/hls/t/${token}/${file}`);
          assert.equal(r.status, 200, `${created.alg} ${video} ${file}: ${r.body}`);
          assert.ok(r.body.equals(body), `${created.alg} ${video} ${file}: the planted bytes`);
          assert.match(r.headers.get('cache-control'), /^private, max-age=\d+$/, file);
          assert.equal(r.headers.get('access-control-allow-origin'), '*', 'players read it (CORS)');
        }
      }
    }
    // The docs' Node code (devkit/sign-playback-token.mjs) makes a URL that plays, with either key.
    for (const created of [rs, es]) {
      const url = new URL(await playbackUrl('http://video.test', 'vprivate', created, 600));
      const master = await bytesOf(url.pathname);
      assert.equal(master.status, 200, `${created.alg}: ${master.body}`);
      assert.ok(master.body.equals(priv.files['master.m3u8']));
      const rung = await bytesOf(new URL('360p/index.m3u8', url).pathname);
      assert.ok(rung.body.equals(priv.files['360p/index.m3u8']), 'relative URIs keep the token');
    }
    // A public video's public file and its token file are one and the same.
    const token = await sign(rs, { sub: 'vpublic' });
    const viaPublic = await bytesOf(`/${pub.prefix}360p/00000.m4s`);
    const viaToken = await bytesOf(`/hls/t/${token}/360p/00000.m4s`);
    assert.ok(viaPublic.body.equals(viaToken.body));
  });

  test('the edge cache keeps one copy per file, keyed by the file, never by the token', async () => {
    const token = await sign(es, { sub: 'vprivate' });
    const path = `/hls/t/${token}/360p/init.mp4`;
    let hit;
    await bytesOf(path);
    for (let i = 0; i < 40; i++) {
      // Another token of the same video: a cache keyed by the token would miss.
      hit = await bytesOf(`/hls/t/${await sign(rs, { sub: 'vprivate' })}/360p/init.mp4`);
      if ((hit.headers.get('server-timing') ?? '').includes('cache;desc="hit"')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(hit.headers.get('server-timing'), /cache;desc="hit"/);
    const kept = await (await mf.getCaches()).default.match(`http://video.test/${priv.prefix}360p/init.mp4`);
    assert.ok(kept, 'kept under the canonical key');
    await kept.arrayBuffer();
  });

  test('no token, expired, not yet valid, too long, tampered, alg none, another app\'s key, another video', async () => {
    const refused = async (path, status, code, why) => {
      const r = await get(path);
      assert.equal(r.status, status, `${why}: ${r.text}`);
      assert.equal(errorCode(r), code, why);
      return r;
    };
    await refused(`/${priv.prefix}360p/00000.m4s`, 403, 'signed_url_required', 'no token');
    const expired = await sign(rs, { sub: 'vprivate', exp: now() - 5 });
    const e = await refused(`/hls/t/${expired}/master.m3u8`, 401, 'invalid_token', 'expired');
    assert.match(e.json.error.message, /expired/);
    await refused(`/hls/t/${await sign(es, { sub: 'vprivate', nbf: now() + 3600 })}/master.m3u8`, 403, 'forbidden', 'nbf ahead');
    await refused(`/hls/t/${await sign(es, { sub: 'vprivate', exp: now() + 3 * 86400 })}/master.m3u8`, 401, 'invalid_token', 'exp beyond 24 h');

    const good = await sign(rs, { sub: 'vprivate' });
    const [h, p, s] = good.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url'));
    const flipped = s.slice(0, 10) + (s[10] === 'A' ? 'B' : 'A') + s.slice(11);
    const cases = [
      ['payload changed (another video, same signature)', `${h}.${b64({ ...claims, sub: 'vpublic' })}.${s}`],
      ['payload changed (later exp)', `${h}.${b64({ ...claims, exp: claims.exp + 60 })}.${s}`],
      ['signature changed', `${h}.${p}.${flipped}`],
      ['header changed (kid of the ES256 key)', `${b64({ alg: 'RS256', kid: es.id, typ: 'JWT' })}.${p}.${s}`],
      ['alg none', `${b64({ alg: 'none', kid: rs.id })}.${p}.`],
      ['alg switched to ES256 on an RS256 key', `${b64({ alg: 'ES256', kid: rs.id })}.${p}.${s}`],
      ['HS256 keyed with the public key (key confusion)', await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: rs.id }).sign(Buffer.from(JSON.stringify(rs.jwk)))],
      ['unknown kid', `${b64({ alg: 'RS256', kid: 'f'.repeat(32) })}.${p}.${s}`],
      ['garbage', 'not.a.token'],
    ];
    for (const [why, token] of cases) {
      await refused(`/hls/t/${token}/360p/00000.m4s`, 401, 'invalid_token', why);
    }

    // Another app's key signs for another app: the same video id is not
    // this app's video, whatever the token says.
    const otherKey = await signingKey(OTHER, 'ES256', KEY_OTHER);
    await refused(`/hls/t/${await sign(otherKey, { sub: 'vprivate' })}/master.m3u8`, 404, 'not_found', 'another app\'s key');
    // A token opens its own video only: vpublic's token never reaches vprivate's files.
    const pubToken = await sign(rs, { sub: 'vpublic' });
    const seg = await bytesOf(`/hls/t/${pubToken}/360p/00000.m4s`);
    assert.ok(seg.body.equals(pub.files['360p/00000.m4s']) && !seg.body.equals(priv.files['360p/00000.m4s']));
    // Paths that are no file of the output (clients resolve dot segments before sending).
    for (const rest of ['nope.txt', '', '360p', '360p/00009.m4s', '360p%2F..%2Fmaster.m3u8', 'keys']) {
      const r = await get(`/hls/t/${good}/${rest}`);
      assert.equal(r.status, 404, `${rest}: ${r.text}`);
      errorCode(r);
    }
  });

  test('a revoked key\'s tokens stop working', async () => {
    const key = await signingKey(APP, 'ES256');
    const token = await sign(key, { sub: 'vprivate' });
    assert.equal((await get(`/hls/t/${token}/master.m3u8`)).status, 200, 'works before');
    const r = await api.call('DELETE', `/signing-keys/${key.id}?app_id=${APP}`, { key: API_KEY, headers: freshIp() });
    assert.equal(r.status, 200, r.text);
    const after = await get(`/hls/t/${token}/master.m3u8`);
    assert.equal(after.status, 401, after.text);
    assert.equal(errorCode(after), 'invalid_token');
    assert.match(after.json.error.message, /revoked/);
    assert.equal(await (await mf.getKVNamespace('MEDIA_KV')).get(`signing-key/${key.id}`), null, 'gone from KV');
  });

  test('the key route: an encrypted video\'s key, no-store; 404 JSON for a clear video; 401 without a valid token', async () => {
    const enc = await finishedVideo(APP, 'vencrypted', { require_signed_urls: true, encryption: 'aes-128' });
    const token = await sign(es, { sub: 'vencrypted' });
    const r = await bytesOf(`/hls/t/${token}/key`);
    assert.equal(r.status, 200, String(r.body));
    assert.ok(r.body.equals(enc.aesKey));
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.equal(r.headers.get('content-type'), 'application/octet-stream');
    const clear = await get(`/hls/t/${await sign(es, { sub: 'vprivate' })}/key`);
    assert.equal(clear.status, 404, clear.text);
    assert.equal(errorCode(clear), 'not_found');
    assert.equal((await get(`/hls/t/${await sign(es, { sub: 'vencrypted', exp: now() - 1 })}/key`)).status, 401);
    // The key object is under keys/, which no public route serves.
    assert.equal((await get(`/keys/${APP}/vencrypted/x/aes128.key`)).status, 404);
  });

  test('app "t" keeps its public files: a path without a token is the public route', async () => {
    const t = await finishedVideo('t', 'tvideo');
    const r = await bytesOf(`/${t.prefix}master.m3u8`);
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(t.files['master.m3u8']));
  });
});

describe('the access route', () => {
  test('makes a video private and public again, in the KV record and the cached job at once', async () => {
    const v = await finishedVideo(APP, 'vtoggle');
    const seg = `/${v.prefix}360p/00000.m4s`;
    // Reads first, so the job read and the segment are cached here.
    assert.equal((await get(`/playback-url?app_id=${APP}&video_id=vtoggle`)).status, 200);
    assert.equal((await get(seg)).status, 200);
    const kv = await mf.getKVNamespace('MEDIA_KV');
    const set = (flag, key = KEY_APP) => api.post(`/videos/${APP}/vtoggle/access`, { require_signed_urls: flag }, { key, headers: freshIp() });

    const on = await set(true);
    assert.equal(on.status, 200, on.text);
    assert.equal(on.json.video_id, 'vtoggle');
    assert.equal(JSON.parse(await kv.get(`playback/${APP}/vtoggle`)).playback?.require_signed_urls, true);
    assert.equal((await get(seg)).status, 403);
    assert.equal(errorCode(await get(`/playback-url?app_id=${APP}&video_id=vtoggle`)), 'signed_url_required');
    const token = await sign(await signingKey(APP, 'ES256'), { sub: 'vtoggle' });
    assert.equal((await get(`/hls/t/${token}/360p/00000.m4s`)).status, 200);

    const off = await set(false);
    assert.equal(off.status, 200, off.text);
    assert.equal(JSON.parse(await kv.get(`playback/${APP}/vtoggle`)).playback?.require_signed_urls, undefined);
    assert.equal((await get(seg)).status, 200);
    assert.equal((await get(`/playback-url?app_id=${APP}&video_id=vtoggle`)).status, 200);

    // Another app's key, a video without a job, a bad body.
    const other = await set(true, KEY_OTHER);
    assert.equal(other.status, 403);
    assert.equal(errorCode(other), 'app_not_allowed');
    assert.equal((await api.post(`/videos/${APP}/nojob/access`, { require_signed_urls: true }, { key: KEY_APP, headers: freshIp() })).status, 404);
    for (const body of [{}, { require_signed_urls: 'yes' }, { require_signed_urls: true, extra: 1 }]) {
      assert.equal((await api.post(`/videos/${APP}/vtoggle/access`, body, { key: KEY_APP, headers: freshIp() })).status, 400, JSON.stringify(body));
    }
  });

  test('an encrypted video stays private (409)', async () => {
    await finishedVideo(APP, 'vencstays', { require_signed_urls: true, encryption: 'aes-128' });
    const r = await api.post(`/videos/${APP}/vencstays/access`, { require_signed_urls: false }, { key: KEY_APP, headers: freshIp() });
    assert.equal(r.status, 409, r.text);
  });
});

describe('minted tokens', () => {
  test('POST /playback-tokens signs with the app\'s service key; its URLs play; bounded life; the app only', async () => {
    const v = await finishedVideo(APP, 'vminted', { require_signed_urls: true });
    const r = await api.post('/playback-tokens', { app_id: APP, video_id: 'vminted', ttl_s: 600 }, { key: KEY_APP, headers: freshIp() });
    assert.equal(r.status, 200, r.text);
    const { token, expires_at: expiresAt, playback_url: mintedUrl, poster_url: posterUrl } = r.json;
    assert.equal(mintedUrl, `http://video.test/hls/t/${token}/master.m3u8`);
    assert.equal(posterUrl, `http://video.test/hls/t/${token}/poster.jpg`);
    assert.equal(r.json.download_url, undefined);
    assert.ok(Math.abs(Date.parse(expiresAt) / 1000 - (now() + 600)) < 5, expiresAt);
    const header = decodeProtectedHeader(token);
    assert.equal(header.alg, 'ES256');
    for (const [url, body] of [[mintedUrl, v.files['master.m3u8']], [posterUrl, v.files['poster.jpg']]]) {
      const res = await bytesOf(new URL(url).pathname);
      assert.equal(res.status, 200);
      assert.ok(res.body.equals(body));
    }
    // The service key is the app's one key for minting: the same kid again, and not listed.
    const second = await api.post('/playback-tokens', { app_id: APP, video_id: 'vminted', downloadable: true }, { key: KEY_APP, headers: freshIp() });
    assert.equal(decodeProtectedHeader(second.json.token).kid, header.kid);
    assert.equal(second.json.download_url, `http://video.test/download?token=${second.json.token}`);
    assert.equal(JSON.parse(Buffer.from(second.json.token.split('.')[1], 'base64url')).downloadable, true);
    const list = await api.get(`/signing-keys?app_id=${APP}`, { key: KEY_APP, headers: freshIp() });
    assert.ok(!list.json.keys.some((k) => k.id === header.kid));
    // It cannot be revoked by its kid (409), and its tokens keep playing: a revoke that took it out
    // of KV first broke every minted token while answering 404.
    const revoke = await api.call('DELETE', `/signing-keys/${header.kid}?app_id=${APP}`, { key: KEY_APP, headers: freshIp() });
    assert.equal(revoke.status, 409, revoke.text);
    assert.equal((await bytesOf(new URL(mintedUrl).pathname)).status, 200, 'a minted token after the refused revoke');

    for (const [body, key, status] of [
      [{ app_id: APP, video_id: 'vminted', ttl_s: 86401 }, KEY_APP, 400],
      [{ app_id: APP, video_id: 'vminted', ttl_s: 0 }, KEY_APP, 400],
      [{ app_id: APP, video_id: 'vminted' }, KEY_OTHER, 403],
      [{ app_id: APP, video_id: 'nosuchvideo' }, KEY_APP, 404],
      [{ app_id: APP }, KEY_APP, 400],
    ]) {
      const res = await api.post('/playback-tokens', body, { key, headers: freshIp() });
      assert.equal(res.status, status, `${JSON.stringify(body)}: ${res.text}`);
    }
  });
});

describe('made-up key ids', () => {
  test('a token whose key must be read from KV counts against the address\'s public-read budget', async () => {
    const limited = await videoService({ store, vars: { IV_API_KEY }, limits: { PUBLIC_RATE_LIMITER: 3 } });
    try {
      await freshWindow(20);
      const statuses = [];
      for (let i = 0; i < 6; i++) {
        const kid = randomBytes(16).toString('hex');
        const token = `${b64({ alg: 'ES256', kid, typ: 'JWT' })}.${b64({ sub: 'v', exp: now() + 60 })}.${Buffer.alloc(64).toString('base64url')}`;
        const res = await limited.dispatchFetch(`http://video.test/hls/t/${token}/master.m3u8`, { headers: { 'cf-connecting-ip': '10.99.0.1' } });
        statuses.push(res.status);
        await res.arrayBuffer();
      }
      assert.deepEqual(statuses.slice(0, 3), [401, 401, 401], statuses.join());
      assert.ok(statuses.slice(3).every((s) => s === 429), statuses.join());
    } finally {
      await limited.dispose();
    }
  });
});
