// Resumable (multipart) video uploads in workerd against a real Garage: a
// session from /generate-upload-url, the Companion-shaped endpoints Uppy's
// @uppy/aws-s3 calls (create, sign part, batch sign, list parts, complete,
// abort), parts PUT straight to Garage with the presigned URLs, resuming
// from the listed parts, then an ordinary notify. And every bad input the
// issue names, each a clear JSON error that loses nothing already stored.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { startGarage } from '../../devkit/garage.mjs';
import { abortAbandonedUploads, s3 } from '../../devkit/sigv4.mjs';
import { videoService, client, freshIp, API_KEY } from './harness.mjs';

const MIB = 1024 * 1024;

let garage;
let garageDir;
let mf;
let api;
before(async () => {
  garageDir = mkdtempSync(join(tmpdir(), 'garage-uploads-'));
  garage = await startGarage({ dir: garageDir });
  // The S3 adapter: what the presigned parts and the notify's HEAD reach are one bucket (as with R2 in production).
  mf = await videoService({ store: garage, backend: 's3' });
  api = client(mf);
});
after(async () => {
  await mf?.dispose();
  await garage?.stop();
  rmSync(garageDir, { recursive: true, force: true });
});

const session = (video, size, extra = {}) =>
  api.post('/generate-upload-url', { app_id: 'up', video_id: video, content_type: 'video/mp4', size, multipart: true, ...extra }, { key: API_KEY, headers: freshIp() });

/** Calls a session's endpoint as Uppy would (a browser: no key). */
async function call(endpoint, method, path, body) {
  const url = endpoint.replace('http://video.test', 'http://video.test') + path;
  const res = await mf.dispatchFetch(url, { method, headers: body ? { 'content-type': 'application/json', origin: 'https://app.example' } : { origin: 'https://app.example' }, body: body && JSON.stringify(body) });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, json, text };
}

/** PUTs one part to its presigned URL (straight to Garage); its ETag. */
async function putPart(url, bytes) {
  const res = await fetch(url, { method: 'PUT', body: bytes });
  assert.equal(res.status, 200, `part PUT: ${res.status} ${await res.text()}`);
  return res.headers.get('etag');
}

function fileOf(size) {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 4096) bytes[i] = (i / 4096) & 255;
  return bytes;
}

describe('resumable uploads', () => {
  test('a session, parts straight to storage, a resume from the listed parts, complete, then notify', async () => {
    const size = 40 * MIB + 123;
    const file = fileOf(size);
    const s = await session('big', size);
    assert.equal(s.status, 200, s.text);
    assert.deepEqual(
      { multipart: s.json.multipart, raw_key: s.json.raw_key, size: s.json.size, part_size: s.json.part_size, parts: s.json.parts },
      { multipart: true, raw_key: 'raw/up/big/source.mp4', size, part_size: 16 * MIB, parts: 3 },
    );
    assert.match(s.json.upload_token, /^up1\./);
    assert.equal(s.json.endpoint, `http://video.test/uploads/${s.json.upload_token}`);
    assert.ok(Date.parse(s.json.expires_at) > Date.now() + 23 * 3600 * 1000);
    const ep = s.json.endpoint;

    const created = await call(ep, 'POST', '/s3/multipart', { filename: 'big.mp4', type: 'video/mp4', metadata: {} });
    assert.equal(created.status, 200, created.text);
    assert.equal(created.headers.get('access-control-allow-origin'), '*', 'browsers call it');
    const { uploadId, key } = created.json;
    assert.equal(key, 'raw/up/big/source.mp4');
    const q = `?key=${encodeURIComponent(key)}`;

    // Part 1, then the "network drops": the client only knows the upload id.
    const signed1 = await call(ep, 'GET', `/s3/multipart/${encodeURIComponent(uploadId)}/1${q}`);
    assert.equal(signed1.status, 200, signed1.text);
    assert.equal(signed1.json.expires, 900);
    const etag1 = await putPart(signed1.json.url, file.subarray(0, 16 * MIB));
    // Resuming: what is stored already.
    const listed = await call(ep, 'GET', `/s3/multipart/${encodeURIComponent(uploadId)}${q}`);
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(listed.json, [{ PartNumber: 1, Size: 16 * MIB, ETag: etag1 }]);
    // Only the missing parts are sent again.
    const batch = await call(ep, 'GET', `/s3/multipart/${encodeURIComponent(uploadId)}/batch${q}&partNumbers=2,3`);
    assert.equal(batch.status, 200, batch.text);
    const etag2 = await putPart(batch.json.presignedUrls['2'], file.subarray(16 * MIB, 32 * MIB));
    const etag3 = await putPart(batch.json.presignedUrls['3'], file.subarray(32 * MIB));

    // Completing with a part missing is refused, and loses nothing.
    const early = await call(ep, 'POST', `/s3/multipart/${encodeURIComponent(uploadId)}/complete${q}`, { parts: [{ PartNumber: 1, ETag: etag1 }, { PartNumber: 2, ETag: etag2 }] });
    assert.equal(early.status, 400, early.text);
    assert.match(early.json.error.message, /name all 3 parts/);

    const done = await call(ep, 'POST', `/s3/multipart/${encodeURIComponent(uploadId)}/complete${q}`, { parts: [{ PartNumber: 1, ETag: etag1 }, { PartNumber: 2, ETag: etag2 }, { PartNumber: 3, ETag: etag3 }] });
    assert.equal(done.status, 200, done.text);
    assert.equal(done.json.key, key);

    const stored = await s3(garage, 'GET', key);
    const got = Buffer.from(await stored.arrayBuffer());
    assert.equal(got.length, size);
    assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(file).digest('hex'), 'the stored object is the file');

    const notified = await api.post('/notify-upload-complete', { app_id: 'up', video_id: 'big', raw_key: key, content_type: 'video/mp4' }, { key: API_KEY, headers: freshIp() });
    assert.equal(notified.status, 202, notified.text);
    assert.equal(notified.json.status, 'queued');
  });

  test('missing parts, wrong part numbers and sizes, foreign and altered tokens: clear errors', async () => {
    const size = 20 * MIB;
    const s = await session('bad', size);
    const ep = s.json.endpoint;
    const { uploadId, key } = (await call(ep, 'POST', '/s3/multipart', { type: 'video/mp4' })).json;
    const q = `?key=${encodeURIComponent(key)}`;
    const id = encodeURIComponent(uploadId);

    for (const n of ['0', '3', 'x', '-1']) {
      const r = await call(ep, 'GET', `/s3/multipart/${id}/${n}${q}`);
      assert.equal(r.status, 400, `part ${n}: ${r.text}`);
      assert.match(r.json.error.message, /part/);
    }
    // A part of the wrong size: its URL binds the exact length, so storage refuses it.
    const signed = await call(ep, 'GET', `/s3/multipart/${id}/1${q}`);
    // (Garage answers 403 before reading the body and may close the connection while it is sent.)
    const wrong = await fetch(signed.json.url, { method: 'PUT', body: new Uint8Array(16 * MIB - 1) })
      .then(async (r) => { await r.arrayBuffer(); return r.status; }, (e) => `refused (${e.cause?.code ?? e.message})`);
    assert.notEqual(wrong, 200, 'storage refuses a part of another size');
    assert.deepEqual((await call(ep, 'GET', `/s3/multipart/${id}${q}`)).json, [], `nothing stored by the refused part (${wrong})`);
    const etag1 = await putPart(signed.json.url, new Uint8Array(16 * MIB));

    const missing = await call(ep, 'POST', `/s3/multipart/${id}/complete${q}`, { parts: [{ PartNumber: 1, ETag: etag1 }, { PartNumber: 2, ETag: '"x"' }] });
    assert.equal(missing.status, 409, missing.text);
    assert.match(missing.json.error.message, /1 of 2 parts are not uploaded yet \(parts 2\)/);
    // The stored part survived the refused call.
    assert.equal((await call(ep, 'GET', `/s3/multipart/${id}${q}`)).json.length, 1);

    const otherKey = await call(ep, 'GET', `/s3/multipart/${id}?key=raw/up/other/source.mp4`);
    assert.equal(otherKey.status, 403, otherKey.text);
    const noKey = await call(ep, 'GET', `/s3/multipart/${id}`);
    assert.equal(noKey.status, 400, noKey.text);

    // A token for another session cannot touch this one's key; an altered one is nobody's.
    const other = await session('bad-other', size);
    const cross = await call(other.json.endpoint, 'GET', `/s3/multipart/${id}${q}`);
    assert.equal(cross.status, 403, cross.text);
    const token = s.json.upload_token;
    const altered = token.slice(0, -2) + (token.endsWith('00') ? '11' : '00');
    const forged = await call(`http://video.test/uploads/${altered}`, 'GET', `/s3/multipart/${id}${q}`);
    assert.equal(forged.status, 403, forged.text);
    assert.match(forged.json.error.message, /was not issued here/);

    const wrongType = await call(ep, 'POST', '/s3/multipart', { type: 'video/webm' });
    assert.equal(wrongType.status, 400, wrongType.text);

    // Abort drops the parts; a repeat is harmless; the upload is then gone.
    assert.equal((await call(ep, 'DELETE', `/s3/multipart/${id}${q}`)).status, 200);
    assert.equal((await call(ep, 'DELETE', `/s3/multipart/${id}${q}`)).status, 200);
    const gone = await call(ep, 'GET', `/s3/multipart/${id}${q}`);
    assert.equal(gone.status, 404, gone.text);
  });

  test('deleting a video during its upload: 409 that says how to go on; force=true aborts the upload, then deletes', async () => {
    const s = await session('mid', 20 * MIB);
    const ep = s.json.endpoint;
    const { uploadId, key } = (await call(ep, 'POST', '/s3/multipart', { type: 'video/mp4' })).json;
    const q = `?key=${encodeURIComponent(key)}`;
    const signed = await call(ep, 'GET', `/s3/multipart/${encodeURIComponent(uploadId)}/1${q}`);
    await putPart(signed.json.url, new Uint8Array(16 * MIB));
    const del = (force) => mf.dispatchFetch(`http://video.test/videos?app_id=up&video_id=mid${force ? '&force=true' : ''}`, { method: 'DELETE', headers: { 'x-api-key': API_KEY, ...freshIp() } });
    const refused = await del(false);
    const body = await refused.json();
    assert.equal(refused.status, 409, JSON.stringify(body));
    assert.match(body.error.message, /1 resumable upload\(s\) of this video are in progress.*force=true/);
    assert.equal((await call(ep, 'GET', `/s3/multipart/${encodeURIComponent(uploadId)}${q}`)).json.length, 1, 'nothing lost by the refusal');
    const forced = await del(true);
    assert.equal(forced.status, 200, await forced.text());
    assert.equal((await call(ep, 'GET', `/s3/multipart/${encodeURIComponent(uploadId)}${q}`)).status, 404, 'the upload was aborted');
  });

  test('abandoned uploads are aborted by a bucket lifecycle rule, as R2 does after 7 days', async () => {
    const rule = await abortAbandonedUploads(garage, 7);
    assert.match(rule, /<AbortIncompleteMultipartUpload><DaysAfterInitiation>7<\/DaysAfterInitiation>/);
  });

  test('sessions: size required, limits, and the single PUT stays for what fits', async () => {
    const noSize = await api.post('/generate-upload-url', { app_id: 'up', video_id: 'v', content_type: 'video/mp4', multipart: true }, { key: API_KEY, headers: freshIp() });
    assert.equal(noSize.status, 400, noSize.text);
    assert.match(noSize.json.error.message, /size is required/);
    const notBool = await api.post('/generate-upload-url', { app_id: 'up', video_id: 'v', content_type: 'video/mp4', size: 10, multipart: 'yes' }, { key: API_KEY, headers: freshIp() });
    assert.equal(notBool.status, 400, notBool.text);
    const tooBig = await session('huge', 5 * 1024 * MIB + 1);
    assert.equal(tooBig.status, 413, `over MAX_VIDEO_BYTES (5 GiB by default): ${tooBig.text}`);
    const plain = await api.post('/generate-upload-url', { app_id: 'up', video_id: 'v', content_type: 'video/mp4', size: 10 }, { key: API_KEY, headers: freshIp() });
    assert.equal(plain.status, 200, plain.text);
    assert.ok(plain.json.upload_url, 'no multipart: the one presigned PUT, as before');
    const preflight = await mf.dispatchFetch(`http://video.test/uploads/up1.x.y/s3/multipart/u`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'DELETE' } });
    assert.equal(preflight.status, 204);
    assert.match(preflight.headers.get('access-control-allow-methods'), /DELETE/);
  });
});
