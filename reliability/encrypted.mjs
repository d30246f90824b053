// Encrypted HLS against the real platform: what someone who reads the
// bucket directly (a leaked listing, a public bucket, a backup) gets of an
// encrypted video. Every media segment is ciphertext (no MP4 box, a whole
// number of AES blocks) that only the key object and the IV rule open; the
// key is outside `hls/`, and no public route hands it or a segment out.
import { createDecipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { api, answer, makeClip, pollJob, freshIp } from '../devkit/client.mjs';
import { listKeys, s3 } from '../devkit/sigv4.mjs';

const box = (bytes) => bytes.subarray(4, 8).toString('latin1');

/** AES-128-CBC, PKCS#7, IV = the media sequence number (RFC 8216 without an IV attribute). */
function decrypt(key, seq, bytes) {
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(seq), 8);
  const d = createDecipheriv('aes-128-cbc', key, iv);
  return Buffer.concat([d.update(bytes), d.final()]);
}

async function stored(platform, key) {
  const r = await s3(platform.garage, 'GET', key);
  if (r.status !== 200) throw new Error(`GET ${key}: ${r.status}`);
  return Buffer.from(await r.arrayBuffer());
}

export async function encrypted({ platform, scratch, say }) {
  const app = 'encrypted';
  const video = `enc${Date.now()}`;
  const bytes = readFileSync(makeClip(join(scratch, 'encrypted-clip.mp4'), { size: '1280x720', seconds: 6 }));
  const { video: client } = api(platform);
  const presign = answer(await client.POST('/generate-upload-url', { body: { app_id: app, video_id: video, content_type: 'video/mp4', size: bytes.length } }));
  if (presign.status !== 200) throw new Error(`presign: ${presign.status} ${presign.text}`);
  const put = await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body: bytes });
  if (put.status !== 200) throw new Error(`PUT: ${put.status}`);
  const notify = answer(await client.POST('/notify-upload-complete', {
    body: { app_id: app, video_id: video, raw_key: presign.json.raw_key, content_type: 'video/mp4', require_signed_urls: true, encryption: 'aes-128' },
  }));
  if (notify.status !== 202) throw new Error(`notify: ${notify.status} ${notify.text}`);
  say('encrypted: transcoding an encrypted video…');
  const done = (await pollJob(platform, app, video, { timeoutMs: 180_000 })).at(-1);

  const keys = await listKeys(platform.garage, `keys/${app}/${video}/`);
  const key = keys.length === 1 ? await stored(platform, keys[0]) : Buffer.alloc(0);
  const output = keys[0]?.split('/')[3];
  const hls = await listKeys(platform.garage, `hls/${app}/${video}/`);
  const segments = hls.filter((k) => k.endsWith('.m4s'));
  let ciphertext = 0;
  let opened = 0;
  for (const k of segments) {
    const sealed = await stored(platform, k);
    if (sealed.length % 16 === 0 && !['moof', 'styp'].includes(box(sealed))) ciphertext += 1;
    try {
      if (['moof', 'styp'].includes(box(decrypt(key, Number(k.split('/').at(-1).slice(0, -4)), sealed)))) opened += 1;
    } catch { /* a wrong key or IV fails the padding check: not opened */ }
  }
  const inits = hls.filter((k) => k.endsWith('/init.mp4'));
  const clearInits = (await Promise.all(inits.map((k) => stored(platform, k)))).filter((b) => box(b) === 'ftyp').length;
  // Without a token, no public route serves a segment or anything named like the key.
  const rung = segments[0]?.split('/')[4];
  const publicReads = await Promise.all([
    `/hls/${app}/${video}/${output}/${rung}/00000.m4s`,
    `/hls/${app}/${video}/${output}/key`,
    `/hls/${app}/${video}/${output}/aes128.key`,
    `/keys/${app}/${video}/${output}/aes128.key`,
  ].map((path) => fetch(`${platform.video}${path}`, { headers: freshIp() }).then(async (r) => ({ status: r.status, leaked: Buffer.from(await r.arrayBuffer()).equals(key) }))));
  const refused = publicReads.every((r) => r.status >= 400 && !r.leaked);
  return [{
    check: 'direct storage access to encrypted segments: every media segment in the bucket is ciphertext that only its key object and IV open; the key lives outside hls/ and no public route serves it or a segment',
    ok: done.status === 'done' && keys.length === 1 && key.length === 16 && !hls.some((k) => /key$/.test(k))
      && segments.length > 0 && ciphertext === segments.length && opened === segments.length && clearInits === inits.length && refused,
    detail: `job ${done.status}; ${keys.length} key object (${key.length} bytes) under keys/, none under hls/; ${ciphertext}/${segments.length} segments read from Garage are not MP4, ${opened}/${segments.length} open with the key + IV rule; ${clearInits}/${inits.length} init segments clear; public reads of a segment and key-like paths: ${publicReads.map((r) => r.status).join('/')}`,
  }];
}
