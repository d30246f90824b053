// Signed playback against the real platform (a transcoded private video,
// the video Worker in wrangler dev): what a holder of a token, an altered
// token or no token gets. Tokens are signed offline with jose, as an app
// backend would, with RS256 and ES256 keys from POST /signing-keys.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, importPKCS8 } from 'jose';
import { api, answer, makeClip, pollJob, freshIp } from '../devkit/client.mjs';

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

export async function signed({ platform, scratch, say }) {
  const app = 'signed';
  const video = `sig${Date.now()}`;
  const bytes = readFileSync(makeClip(join(scratch, 'signed-clip.mp4'), { size: '640x360', seconds: 4 }));
  const { video: client } = api(platform);
  const presign = answer(await client.POST('/generate-upload-url', { body: { app_id: app, video_id: video, content_type: 'video/mp4', size: bytes.length } }));
  if (presign.status !== 200) throw new Error(`presign: ${presign.status} ${presign.text}`);
  const put = await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body: bytes });
  if (put.status !== 200) throw new Error(`PUT: ${put.status}`);
  const notify = answer(await client.POST('/notify-upload-complete', {
    body: { app_id: app, video_id: video, raw_key: presign.json.raw_key, content_type: 'video/mp4', require_signed_urls: true },
  }));
  if (notify.status !== 202) throw new Error(`notify: ${notify.status} ${notify.text}`);
  say('signed: transcoding a private video…');
  const done = (await pollJob(platform, app, video, { timeoutMs: 180_000 })).at(-1);
  const keyOf = async (appId, alg) => {
    const r = answer(await client.POST('/signing-keys', { body: { app_id: appId, alg } }));
    if (r.status !== 201) throw new Error(`signing key: ${r.status} ${r.text}`);
    return r.json;
  };
  const [rs, es, other] = [await keyOf(app, 'RS256'), await keyOf(app, 'ES256'), await keyOf('signed-other', 'ES256')];
  const sign = async (k, claims, header = {}) => new SignJWT(claims)
    .setProtectedHeader({ alg: k.alg, kid: k.id, typ: 'JWT', ...header })
    .sign(await importPKCS8(k.pem, k.alg));
  const exp = () => Math.floor(Date.now() / 1000) + 600;
  // The first segment of the first rung, as the master playlist names it.
  const get = async (path) => {
    const r = await fetch(`${platform.video}${path}`, { headers: freshIp() });
    const body = Buffer.from(await r.arrayBuffer());
    let code;
    try { code = JSON.parse(body).error?.code; } catch { code = undefined; }
    return { status: r.status, code, body };
  };
  const good = await sign(rs, { sub: video, exp: exp() });
  const master = await get(`/hls/t/${good}/master.m3u8`);
  const rung = /^([^#\s][^\s]*)\/index\.m3u8$/m.exec(master.body.toString())?.[1];
  const file = `${rung}/00000.m4s`;
  const plays = [await get(`/hls/t/${good}/${file}`), await get(`/hls/t/${await sign(es, { sub: video, exp: exp() })}/${file}`)];
  const publicPath = new URL(done.playback_url ?? `${platform.video}/hls/${app}/${video}/x/master.m3u8`).pathname;
  const unsigned = [await get(publicPath), await get(`/playback-url?app_id=${app}&video_id=${video}`)];

  const [h, p, s] = good.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  const flipped = s.slice(0, 20) + (s[20] === 'A' ? 'B' : 'A') + s.slice(21);
  const tampered = {
    header: `${b64({ alg: 'RS256', kid: es.id, typ: 'JWT' })}.${p}.${s}`,
    payload: `${h}.${b64({ ...claims, exp: claims.exp + 3600 })}.${s}`,
    signature: `${h}.${p}.${flipped}`,
    'alg none': `${b64({ alg: 'none', kid: rs.id })}.${p}.`,
    'alg switched': `${b64({ alg: 'ES256', kid: rs.id })}.${p}.${s}`,
    'key confusion (HS256 keyed with the public JWK)': await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: rs.id })
      .sign(Buffer.from(JSON.stringify({ kty: rs.jwk.kty, n: rs.jwk.n, e: rs.jwk.e }))),
  };
  const refusedTampered = {};
  for (const [what, token] of Object.entries(tampered)) refusedTampered[what] = await get(`/hls/t/${token}/${file}`);

  const expired = await get(`/hls/t/${await sign(rs, { sub: video, exp: Math.floor(Date.now() / 1000) - 5 })}/${file}`);
  const wrongApp = await get(`/hls/t/${await sign(other, { sub: video, exp: exp() })}/${file}`);
  const wrongVideo = await get(`/hls/t/${await sign(rs, { sub: `${video}x`, exp: exp() })}/${file}`);
  const revokedToken = await sign(es, { sub: video, exp: exp() });
  const before = await get(`/hls/t/${revokedToken}/${file}`);
  const revoke = answer(await client.DELETE('/signing-keys/{key_id}', { params: { path: { key_id: es.id }, query: { app_id: app } } }));
  const revoked = await get(`/hls/t/${revokedToken}/${file}`);

  const is401 = (r) => r.status === 401 && r.code === 'invalid_token';
  const shown = (r) => `${r.status}${r.code ? ` ${r.code}` : ''}`;
  return [
    {
      check: 'a private video: no token gets nothing (its public files and /playback-url: 403 signed_url_required); RS256 and ES256 tokens play it',
      ok: done.status === 'done' && unsigned.every((r) => r.status === 403 && r.code === 'signed_url_required')
        && master.status === 200 && !!rung && plays.every((r) => r.status === 200 && r.body.length > 0) && plays[0].body.equals(plays[1].body),
      detail: `job ${done.status}; without a token: ${unsigned.map(shown).join(', ')}; master and ${file} with RS256/ES256: ${master.status}, ${plays.map(shown).join('/')} (${plays[0].body.length} bytes)`,
    },
    {
      check: 'token tampering: header, payload and signature each changed, alg switched to none, alg switched, a key confusion attempt (HS256 keyed with the public key): 401 invalid_token',
      ok: Object.values(refusedTampered).every(is401),
      detail: Object.entries(refusedTampered).map(([what, r]) => `${what} ${shown(r)}`).join('; '),
    },
    {
      check: 'a wrong video (another app\'s key naming it; a token for another video), an expired and a revoked-key token: refused',
      ok: wrongApp.status === 404 && wrongVideo.status === 404 && is401(expired) && before.status === 200 && revoke.status === 200 && is401(revoked),
      detail: `another app's key ${shown(wrongApp)}; another video ${shown(wrongVideo)}; expired ${shown(expired)}; revoked key ${before.status} before, revoke ${revoke.status}, then ${shown(revoked)}`,
    },
  ];
}
