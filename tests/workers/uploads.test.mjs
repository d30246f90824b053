// Resumable (multipart) video uploads in workerd against a real Garage: a
// session from /generate-upload-url, the Companion-shaped endpoints Uppy's
// @uppy/aws-s3 calls (create, sign part, batch sign, list parts, complete,
// abort), parts PUT straight to Garage with the presigned URLs, resuming
// from the listed parts, then an ordinary notify. And every bad input the
// issue names, each a clear JSON error that loses nothing already stored.
// A token is one upload and is revoked when it ends (complete, abort,
// DELETE /videos): replays are refused and store nothing.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { startGarage } from '../../devkit/garage.mjs';
import { abortAbandonedUploads, listKeys, openUploads, s3, startUpload } from '../../devkit/sigv4.mjs';
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
  // Deletes list open uploads 2 a page here (1,000 in production), so every test crosses pages.
  mf = await videoService({ store: garage, backend: 's3', vars: { UPLOAD_LIST_PAGE: '2' } });
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
    const ttl = Date.parse(s.json.expires_at) - Date.now();
    assert.ok(ttl > 5.9 * 3600 * 1000 && ttl <= 6 * 3600 * 1000, `UPLOAD_SESSION_TTL_S: 6 h by default (${ttl} ms)`);
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

    // Abort drops the parts and ends the session: the token is then revoked.
    assert.equal((await call(ep, 'DELETE', `/s3/multipart/${id}${q}`)).status, 200);
    const again = await call(ep, 'DELETE', `/s3/multipart/${id}${q}`);
    assert.equal(again.status, 403, again.text);
    assert.match(again.json.error.message, /revoked: its upload was aborted/);
    assert.deepEqual(await openUploads(garage, 'raw/up/bad/'), [], 'the upload is gone');
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
    assert.deepEqual(await openUploads(garage, 'raw/up/mid/'), [], 'the upload was aborted');
  });

  /** Starts a session's one upload and stores its single part; what completing needs. */
  async function started(video, size = 100) {
    const s = await session(video, size);
    assert.equal(s.status, 200, s.text);
    const ep = s.json.endpoint;
    const created = await call(ep, 'POST', '/s3/multipart', { type: 'video/mp4' });
    assert.equal(created.status, 200, created.text);
    const { uploadId, key } = created.json;
    const u = `/s3/multipart/${encodeURIComponent(uploadId)}`;
    const q = `?key=${encodeURIComponent(key)}`;
    const signed = await call(ep, 'GET', `${u}/1${q}`);
    assert.equal(signed.status, 200, signed.text);
    const etag = await putPart(signed.json.url, fileOf(size));
    return { s, ep, uploadId, key, u, q, parts: [{ PartNumber: 1, ETag: etag }] };
  }

  /** Every call a replayed token could make: create, list, sign, batch, complete, abort. Each must be refused. */
  async function replay(ep, u, q, parts, why) {
    const tries = [
      await call(ep, 'POST', '/s3/multipart', { type: 'video/mp4' }),
      await call(ep, 'GET', `${u}${q}`),
      await call(ep, 'GET', `${u}/1${q}`),
      await call(ep, 'GET', `${u}/batch${q}&partNumbers=1`),
      await call(ep, 'POST', `${u}/complete${q}`, { parts }),
      await call(ep, 'DELETE', `${u}${q}`),
    ];
    for (const r of tries) {
      assert.equal(r.status, 403, r.text);
      assert.equal(r.json.error.code, 'forbidden');
      assert.match(r.json.error.message, why);
      assert.match(r.json.error.message, /ask your backend for a new upload session/);
    }
  }

  test('a token starts one upload: a second create is 409 and starts nothing', async () => {
    const { ep, uploadId, u, q } = await started('once');
    for (let i = 0; i < 3; i++) {
      const again = await call(ep, 'POST', '/s3/multipart', { type: 'video/mp4' });
      assert.equal(again.status, 409, again.text);
      assert.match(again.json.error.message, /already started upload .*one upload only/);
    }
    assert.deepEqual((await openUploads(garage, 'raw/up/once/')).map((x) => x.uploadId), [uploadId], 'one upload, the first');
    assert.equal((await call(ep, 'GET', `${u}${q}`)).status, 200, 'the first upload still works');
  });

  test('replaying a token after complete is refused, and nothing more is stored', async () => {
    const { ep, u, q, parts, key } = await started('after-complete');
    const done = await call(ep, 'POST', `${u}/complete${q}`, { parts });
    assert.equal(done.status, 200, done.text);
    await s3(garage, 'DELETE', key); // say the backend moved it on: a replay must not bring it back
    await replay(ep, u, q, parts, /revoked: its upload was completed/);
    assert.deepEqual(await listKeys(garage, 'raw/up/after-complete/'), [], 'nothing stored by the replay');
    assert.deepEqual(await openUploads(garage, 'raw/up/after-complete/'), [], 'no upload started by the replay');
  });

  test('replaying a token after abort is refused, and nothing is stored', async () => {
    const { ep, u, q, parts } = await started('after-abort');
    assert.equal((await call(ep, 'DELETE', `${u}${q}`)).status, 200);
    await replay(ep, u, q, parts, /revoked: its upload was aborted/);
    assert.deepEqual(await listKeys(garage, 'raw/up/after-abort/'), []);
    assert.deepEqual(await openUploads(garage, 'raw/up/after-abort/'), []);
  });

  test('replaying a token after DELETE /videos is refused, and the deleted source does not come back', async () => {
    const del = (video) => mf.dispatchFetch(`http://video.test/videos?app_id=up&video_id=${video}&force=true`, { method: 'DELETE', headers: { 'x-api-key': API_KEY, ...freshIp() } });
    // An upload in progress (aborted by the forced delete), and a completed source.
    const open = await started('after-delete');
    const doneOne = await started('after-delete-done');
    assert.equal((await call(doneOne.ep, 'POST', `${doneOne.u}/complete${doneOne.q}`, { parts: doneOne.parts })).status, 200);
    // A session issued but never used is revoked too.
    const unused = await session('after-delete-unused', 100);
    for (const v of ['after-delete', 'after-delete-done', 'after-delete-unused']) {
      const r = await del(v);
      assert.equal(r.status, 200, await r.text());
    }
    await replay(open.ep, open.u, open.q, open.parts, /revoked: its video was deleted/);
    await replay(doneOne.ep, doneOne.u, doneOne.q, doneOne.parts, /revoked: its video was deleted/);
    const fresh = await call(unused.json.endpoint, 'POST', '/s3/multipart', { type: 'video/mp4' });
    assert.equal(fresh.status, 403, fresh.text);
    for (const v of ['after-delete', 'after-delete-done', 'after-delete-unused']) {
      assert.deepEqual(await listKeys(garage, `raw/up/${v}/`), [], `${v}: nothing stored`);
      assert.deepEqual(await openUploads(garage, `raw/up/${v}/`), [], `${v}: no upload open`);
    }
    // The video can be uploaded again with a new session.
    const again = await session('after-delete', 100);
    assert.equal(again.status, 200, again.text);
    assert.equal((await call(again.json.endpoint, 'POST', '/s3/multipart', { type: 'video/mp4' })).status, 200);
  });

  test("a second session of the same video cannot list, sign, complete or abort the first session's upload", async () => {
    const first = await started('two-sessions');
    const second = await session('two-sessions', 100);
    assert.equal(second.status, 200, second.text);
    const ep2 = second.json.endpoint;
    const tries = [
      await call(ep2, 'GET', `${first.u}${first.q}`),
      await call(ep2, 'GET', `${first.u}/1${first.q}`),
      await call(ep2, 'GET', `${first.u}/batch${first.q}&partNumbers=1`),
      await call(ep2, 'POST', `${first.u}/complete${first.q}`, { parts: first.parts }),
      await call(ep2, 'DELETE', `${first.u}${first.q}`),
    ];
    for (const r of tries) {
      assert.equal(r.status, 403, r.text);
      assert.match(r.json.error.message, /does not allow upload .*only the one upload it started/);
    }
    assert.deepEqual(await listKeys(garage, 'raw/up/two-sessions/'), [], 'not completed');
    const listed = await call(first.ep, 'GET', `${first.u}${first.q}`);
    assert.equal(listed.status, 200, listed.text);
    assert.equal(listed.json.length, 1, 'not aborted: its part is there');
  });

  test('a delete aborts every open upload of the video, over several pages of the listing', async () => {
    // 5 uploads at 2 a page: 3 pages (as more than 1,000 would be with R2's page size).
    const key = 'raw/up/many/source.mp4';
    for (let i = 0; i < 4; i++) await startUpload(garage, key);
    await started('many');
    assert.equal((await openUploads(garage, 'raw/up/many/')).length, 5);
    const del = (force) => mf.dispatchFetch(`http://video.test/videos?app_id=up&video_id=many${force ? '&force=true' : ''}`, { method: 'DELETE', headers: { 'x-api-key': API_KEY, ...freshIp() } });
    const refused = await del(false);
    const body = await refused.json();
    assert.equal(refused.status, 409, JSON.stringify(body));
    assert.match(body.error.message, /^5 resumable upload\(s\)/, 'every page counted');
    const forced = await del(true);
    assert.equal(forced.status, 200, await forced.text());
    assert.deepEqual(await openUploads(garage, 'raw/up/many/'), [], 'all aborted, not only the first page');
  });

  test("a delete aborts more than 1,000 open uploads, with storage's own page size", async () => {
    // The service as deployed (1,000 a page): 1,001 uploads are two pages of ListMultipartUploads.
    const deployed = await videoService({ store: garage, backend: 's3' });
    try {
      const key = 'raw/up/thousand/source.mp4';
      let t = Date.now();
      await Promise.all(Array.from({ length: 1001 }, () => startUpload(garage, key)));
      const made = Date.now() - t;
      assert.equal((await openUploads(garage, 'raw/up/thousand/')).length, 1001);
      t = Date.now();
      const res = await deployed.dispatchFetch('http://video.test/videos?app_id=up&video_id=thousand&force=true', { method: 'DELETE', headers: { 'x-api-key': API_KEY, ...freshIp() } });
      assert.equal(res.status, 200, await res.text());
      const took = Date.now() - t;
      assert.deepEqual(await openUploads(garage, 'raw/up/thousand/'), [], 'all 1,001 aborted, past the first page');
      console.log(`1,001 uploads: started in ${made} ms; DELETE ?force=true aborted them in ${took} ms`);
    } finally {
      await deployed.dispose();
    }
  });

  test('abandoned uploads are aborted by a bucket lifecycle rule, as R2 does after 7 days', async () => {
    const rule = await abortAbandonedUploads(garage, 7);
    assert.match(rule, /<AbortIncompleteMultipartUpload><DaysAfterInitiation>7<\/DaysAfterInitiation>/);
  });

  test('sessions: size required, limits, and the single PUT stays for what fits', async () => {
    for (const multipart of [true, false]) {
      // Clients of the first API left size out of the single PUT: a 400 that says what to send.
      const noSize = await api.post('/generate-upload-url', { app_id: 'up', video_id: 'v', content_type: 'video/mp4', multipart }, { key: API_KEY, headers: freshIp() });
      assert.equal(noSize.status, 400, noSize.text);
      assert.equal(noSize.json.error.code, 'invalid_field');
      assert.match(noSize.json.error.message, /^size is required: the file's length in bytes, at most 5368709120 \(5 GiB\)/);
    }
    const notBool = await api.post('/generate-upload-url', { app_id: 'up', video_id: 'v', content_type: 'video/mp4', size: 10, multipart: 'yes' }, { key: API_KEY, headers: freshIp() });
    assert.equal(notBool.status, 400, notBool.text);
    const tooBig = await session('huge', 5 * 1024 * MIB + 1);
    assert.equal(tooBig.status, 413, `over MAX_VIDEO_BYTES (5 GiB by default): ${tooBig.text}`);
    const plain = await api.post('/generate-upload-url', { app_id: 'up', video_id: 'v', content_type: 'video/mp4', size: 10 }, { key: API_KEY, headers: freshIp() });
    assert.equal(plain.status, 200, plain.text);
    assert.ok(plain.json.upload_url, 'no multipart: the one presigned PUT, as before');
    assert.deepEqual(plain.json.headers, { 'Content-Type': 'video/mp4', 'If-None-Match': '*' }, 'length and If-None-Match are signed');
    assert.match(plain.json.upload_url, /X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bif-none-match/);
    const preflight = await mf.dispatchFetch(`http://video.test/uploads/up1.x.y/s3/multipart/u`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'DELETE' } });
    assert.equal(preflight.status, 204);
    assert.match(preflight.headers.get('access-control-allow-methods'), /DELETE/);
  });
});
