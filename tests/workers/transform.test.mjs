// Image transforms in workerd with the local Images binding (Miniflare runs
// it on sharp): GET /images/{app_id}/{image_id}/{options} makes a variant
// once, stores it under the image's prefix and serves repeats from the edge
// cache or storage without the binding; f=auto follows Accept within AVIF's
// side limit; only the allowed options are taken; the older /cdn-cgi/image/
// URLs get the same variants; bad images (corrupt, a decompression bomb, a
// GIF of thousands of frames, an original over the binding's input limit)
// get a clear 422 or a bounded result and store nothing broken; GET /images
// gives a presigned upload its record; deleting an image deletes its
// variants. Outputs are checked with ffprobe. Runs once per storage backend:
// the R2 binding and the S3 adapter against a real Garage. Test images are
// made at start-up by the ffmpeg CLI.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, crc32 } from 'node:zlib';
import { startGarage } from '../../devkit/garage.mjs';
import { listKeys } from '../../devkit/sigv4.mjs';
import { avifSize } from '../../devkit/images.mjs';
import { imageService, client, errorCode, putStored, API_KEY, API_KEY_2 } from './harness.mjs';

const BASE = 'http://image.test';
const CHROME_ACCEPT = 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8';
// No cache purge configured here (CF_ZONE_ID, CF_PURGE_TOKEN): the edge TTL is capped at
// EDGE_TTL_WITHOUT_PURGE_S, 1 h (tests/workers/purge.test.mjs has the year-long TTL with a purge).
const IMMUTABLE = 'public, max-age=3600, immutable';
// API_KEY_2 may act only for this app (see IV_API_KEY below).
const OTHER_APP = 'someone_else';

let dir;
let garage;
const media = {};

/** A PNG whose header declares `w` x `h` pixels, with almost no data. */
function declaredPng(w, h) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth; colour type 0 (grey)
  return Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(w + 1))), chunk('IEND', Buffer.alloc(0))]);
}

const ffmpeg = (...args) => execFileSync('ffmpeg', ['-v', 'error', '-y', ...args]);

/** ffprobe's view of image bytes: codec, width, height and frame count of
 *  the first stream. (Debian's ffprobe 5.1 names an AVIF's codec, av1, but
 *  reads no size or frames from a still AVIF: those come from its header.) */
function probe(bytes, name = 'probe') {
  const file = join(dir, `${name}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, bytes);
  const args = ['-v', 'quiet', '-count_frames', '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'json', file];
  const out = JSON.parse(execFileSync('ffprobe', args).toString());
  rmSync(file);
  const s = out.streams[0];
  if (s.codec_name === 'av1') return { codec: 'av1', ...avifSize(bytes), frames: 1 };
  return { codec: s.codec_name, width: s.width, height: s.height, frames: Number(s.nb_read_frames) };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'transform-'));
  ffmpeg('-f', 'lavfi', '-i', 'testsrc2=s=1600x1200', '-frames:v', '1', join(dir, 'photo.jpg'));
  ffmpeg('-f', 'lavfi', '-i', 'testsrc2=s=800x600', '-frames:v', '1', join(dir, 'shot.png'));
  // 3,000 frames of 64x48: about 1.3 MB, far inside the upload limit.
  ffmpeg('-f', 'lavfi', '-i', 'testsrc=s=64x48:r=25', '-frames:v', '3000', join(dir, 'many.gif'));
  media.jpeg = readFileSync(join(dir, 'photo.jpg'));
  media.png = readFileSync(join(dir, 'shot.png'));
  media.gif = readFileSync(join(dir, 'many.gif'));
  // A JPEG cut after its header (dimensions readable) and padded with junk.
  media.corrupt = Buffer.concat([media.jpeg.subarray(0, 700), Buffer.alloc(5000, 0x5a)]);
  media.bomb = declaredPng(50_000, 50_000);
  // A real JPEG followed by 21 MB of padding after its end marker: accepted
  // by upload (limit 25 MiB), over the binding's 20 MB input limit.
  media.huge = Buffer.concat([media.jpeg, Buffer.alloc(21_000_000)]);
  garage = await startGarage({ dir: join(dir, 'garage') });
});
after(async () => {
  await garage?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

for (const backend of ['r2', 's3']) {
  describe(`image transforms (${backend} backend)`, () => {
    let mf;
    let api;
    const app = `tr_${backend}`;
    const get = (path, headers = {}, method = 'GET') => mf.dispatchFetch(BASE + path, { method, headers });
    const upload = async (id, bytes, type) => {
      const r = await api.call('POST', `/upload?app_id=${app}&image_id=${id}`, { body: new Uint8Array(bytes), headers: { 'content-type': type }, key: API_KEY });
      assert.equal(r.status, 201, r.text);
      return r.json;
    };
    /** The stored objects under `prefix`, as the bucket lists them. */
    const keysIn = async (prefix) => {
      if (backend === 'r2') return (await (await mf.getR2Bucket('MEDIA_BUCKET')).list({ prefix })).objects.map((o) => o.key);
      return listKeys(garage, prefix);
    };
    const variantsOf = (id) => keysIn(`images/${app}/${id}/`);
    const fetchVariant = async (path, headers) => {
      const r = await get(path, headers);
      const bytes = Buffer.from(await r.arrayBuffer());
      return { r, bytes, source: r.headers.get('x-image-variant') };
    };
    const jsonError = async (r) => {
      const body = JSON.parse(await r.text());
      return { status: r.status, ...body.error, code: errorCode({ json: body, status: r.status, text: '' }) };
    };

    before(async () => {
      mf = await imageService({ store: garage, backend, vars: { IV_API_KEY: `${API_KEY},${API_KEY_2}:${OTHER_APP}` } });
      api = client(mf, BASE);
    });
    after(async () => mf?.dispose());

    test('transform_url makes a variant once: stored under the image, then served from the edge cache or storage', async () => {
      const up = await upload('photo', media.jpeg, 'image/jpeg');
      assert.equal(up.transform_url, `${BASE}/images/${app}/photo/w=1280,q=85,f=auto`);
      const path = new URL(up.transform_url).pathname;

      const first = await fetchVariant(path, { accept: CHROME_ACCEPT });
      assert.equal(first.r.status, 200);
      assert.equal(first.source, 'created');
      // 1280 px is over AVIF's 1200 px side: WebP, which Chrome also takes.
      assert.equal(first.r.headers.get('content-type'), 'image/webp');
      assert.equal(first.r.headers.get('vary'), 'Accept');
      assert.equal(first.r.headers.get('cache-control'), IMMUTABLE);
      assert.equal(first.r.headers.get('access-control-allow-origin'), '*');
      assert.match(first.r.headers.get('access-control-expose-headers'), /X-Image-Variant/, 'pages may read where it came from');
      assert.deepEqual(probe(first.bytes), { codec: 'webp', width: 1280, height: 960, frames: 1 });
      assert.ok(first.bytes.length < media.jpeg.length, `${first.bytes.length} < ${media.jpeg.length}`);
      assert.deepEqual(await variantsOf('photo'), [`images/${app}/photo/w1280-h0-q85-scale-down.webp`]);

      // The same request again: the edge cache, no binding call.
      const again = await fetchVariant(path, { accept: CHROME_ACCEPT });
      assert.equal(again.source, 'edge');
      assert.deepEqual(again.bytes, first.bytes);
      // Aliases name the same variant (same cache entry).
      const alias = await fetchVariant(`/images/${app}/photo/format=auto,quality=85,width=1280`, { accept: CHROME_ACCEPT });
      assert.equal(alias.source, 'edge');
      // Another kind of client that resolves to the same WebP: from storage.
      const webpOnly = await fetchVariant(path, { accept: 'image/webp,*/*' });
      assert.equal(webpOnly.source, 'stored');
      assert.deepEqual(webpOnly.bytes, first.bytes);
      // The older Cloudflare form of the URL: the same variant.
      const cdnCgi = await fetchVariant(`/cdn-cgi/image/width=1280,quality=85,format=auto/assets/images/${app}/photo`, { accept: 'image/webp' });
      assert.equal(cdnCgi.r.status, 200);
      assert.notEqual(cdnCgi.source, 'created');
      assert.deepEqual(cdnCgi.bytes, first.bytes);
      assert.equal((await variantsOf('photo')).length, 1, 'one variant, one binding call');

      // Conditional, ranged and HEAD requests, as for originals.
      const etag = first.r.headers.get('etag');
      assert.equal((await get(path, { accept: CHROME_ACCEPT, 'if-none-match': etag })).status, 304);
      const range = await get(path, { accept: 'image/webp', range: 'bytes=0-11' });
      assert.equal(range.status, 206);
      assert.equal(Buffer.from(await range.arrayBuffer()).subarray(8, 12).toString(), 'WEBP');
      const head = await get(path, { accept: CHROME_ACCEPT }, 'HEAD');
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(first.bytes.length));
    });

    test('six concurrent first requests for one variant: one Images binding call, the same bytes for all; other variants take turns', async () => {
      // The Worker logs one line per binding call ("Images binding called"), in the image's Durable
      // Object, just before the call: an instance of its own, whose console lines come here.
      const logs = [];
      const counted = await imageService({ store: garage, backend, logs });
      try {
        const capi = client(counted, BASE);
        const up = await capi.call('POST', `/upload?app_id=${app}&image_id=six`, { body: new Uint8Array(media.jpeg), headers: { 'content-type': 'image/jpeg' }, key: API_KEY });
        assert.equal(up.status, 201, up.text);
        const path = `/images/${app}/six/w=640,f=webp`;
        const six = await Promise.all(Array.from({ length: 6 }, async () => {
          const r = await counted.dispatchFetch(BASE + path, { headers: { accept: CHROME_ACCEPT } });
          return { status: r.status, source: r.headers.get('x-image-variant'), type: r.headers.get('content-type'), bytes: Buffer.from(await r.arrayBuffer()) };
        }));
        const calls = logs.filter((l) => /Images binding called/.test(l.message));
        assert.equal(calls.length, 1, `binding calls: ${calls.length}`);
        assert.deepEqual(six.map((v) => v.status), Array(6).fill(200));
        assert.deepEqual(six.map((v) => v.type), Array(6).fill('image/webp'));
        for (const v of six) assert.deepEqual(v.bytes, six[0].bytes, 'the same bytes for all six');
        assert.deepEqual(probe(six[0].bytes), { codec: 'webp', width: 640, height: 480, frames: 1 });
        // Only the request that made it says `created`; the others waited for it and were served what it stored.
        assert.deepEqual(six.map((v) => v.source).toSorted(), ['created', 'stored', 'stored', 'stored', 'stored', 'stored']);
        const keys = backend === 'r2'
          ? (await (await counted.getR2Bucket('MEDIA_BUCKET')).list({ prefix: `images/${app}/six/` })).objects.map((o) => o.key)
          : await listKeys(garage, `images/${app}/six/`);
        assert.deepEqual(keys, [`images/${app}/six/w640-h0-q85-scale-down.webp`]);
        // A later miss (f=auto for a WebP client: the same variant, no edge entry yet) finds it stored: still one call.
        const later = await counted.dispatchFetch(`${BASE}/images/${app}/six/w=640,f=auto`, { headers: { accept: 'image/webp,*/*' } });
        assert.equal(later.headers.get('x-image-variant'), 'stored');
        await later.arrayBuffer();
        assert.equal(logs.filter((l) => /Images binding called/.test(l.message)).length, 1);

        // Different variants of the image asked at once are made one after another: one original in
        // memory at a time (each call's line is followed by its "created" line before the next call).
        logs.length = 0;
        const three = await Promise.all(['w=160,f=webp', 'w=320,f=webp', 'w=480,f=webp'].map(async (o) => {
          const r = await counted.dispatchFetch(`${BASE}/images/${app}/six/${o}`);
          await r.arrayBuffer();
          return [r.status, r.headers.get('x-image-variant')];
        }));
        assert.deepEqual(three, Array(3).fill([200, 'created']));
        const order = logs.map((l) => l.message).flatMap((m) => (/Images binding called/.test(m) ? ['call'] : /image variant created/.test(m) ? ['made'] : []));
        assert.deepEqual(order, ['call', 'made', 'call', 'made', 'call', 'made']);
      } finally {
        await counted.dispose();
      }
    });

    test('f=auto: AVIF within 1200 px, WebP, or the original format by Accept; explicit formats as asked', async () => {
      await upload('pic', media.jpeg, 'image/jpeg');
      await upload('shot', media.png, 'image/png');
      const cases = [
        ['pic', 'w=640', CHROME_ACCEPT, 'image/avif', 'av1', 640],
        ['pic', 'w=640', 'image/webp,*/*', 'image/webp', 'webp', 640],
        ['pic', 'w=320', '*/*', 'image/jpeg', 'mjpeg', 320],
        ['shot', 'w=320', undefined, 'image/png', 'png', 320],
        ['shot', 'h=160,f=webp', CHROME_ACCEPT, 'image/webp', 'webp', 213],
        ['pic', 'w=320,h=320,fit=cover,f=jpeg', CHROME_ACCEPT, 'image/jpeg', 'mjpeg', 320],
        // scale-down never enlarges: the 800 px screenshot stays 800 px.
        ['shot', 'w=1600,f=png', CHROME_ACCEPT, 'image/png', 'png', 800],
      ];
      for (const [id, options, accept, type, codec, width] of cases) {
        const v = await fetchVariant(`/images/${app}/${id}/${options}`, accept ? { accept } : {});
        assert.equal(v.r.status, 200, `${id} ${options}: ${v.bytes}`);
        assert.equal(v.r.headers.get('content-type'), type, `${id} ${options} ${accept}`);
        const p = probe(v.bytes);
        assert.equal(p.codec, codec, `${id} ${options}`);
        assert.equal(p.width, width, `${id} ${options}`);
        assert.equal(v.r.headers.get('vary'), options.includes('f=') ? null : 'Accept');
      }
      const big = await jsonError(await get(`/images/${app}/pic/w=1280,f=avif`));
      assert.equal(big.status, 400);
      assert.match(big.message, /at most 1200 pixels a side/);
    });

    test('only the allowed options are taken: anything else is a 400 that says what is allowed, and stores nothing', async () => {
      await upload('limits', media.png, 'image/png');
      for (const options of ['w=641', 'q=77', 'blur=5', 'f=gif', 'fit=squeeze', 'w=640,w=320', 'dpr=2', 'w=0640', 'width']) {
        const e = await jsonError(await get(`/images/${app}/limits/${options}`));
        assert.equal(e.status, 400, options);
        assert.equal(e.code, 'invalid_field', options);
        assert.match(e.message, /allowed: w and h: 160, 320, 480, 640, 960, 1280, 1600, 1920; q: 50, 65, 75, 85/, options);
      }
      assert.deepEqual(await variantsOf('limits'), []);
      for (const path of [`/images/${app}/missing/w=320`, `/images/${app}/limits`, `/images/${app}/../x/w=320`, `/images/${app}/limits/w=320/extra`]) {
        const r = await get(path);
        assert.equal(r.status, 404, path);
        assert.equal((await jsonError(r)).code, 'not_found', path);
      }
      const post = await get(`/images/${app}/limits/w=320`, {}, 'POST');
      assert.equal(post.status, 405);
    });

    test('bad images: corrupt, a decompression bomb, a huge original: 422 saying why, nothing stored; 3,000 frames give one', async () => {
      await upload('corrupt', media.corrupt, 'image/jpeg');
      await upload('bomb', media.bomb, 'image/png');
      await upload('huge', media.huge, 'image/jpeg');
      await upload('many', media.gif, 'image/gif');
      for (const [id, message] of [
        ['corrupt', /could not be decoded or transformed \(Images error \d+\)/],
        ['bomb', /declares 50000x50000 pixels/],
        ['huge', /at most 20000000 bytes/],
      ]) {
        const e = await jsonError(await get(`/images/${app}/${id}/w=320`, { accept: CHROME_ACCEPT }));
        assert.equal(e.status, 422, id);
        assert.equal(e.code, 'image_unprocessable', id);
        assert.match(e.message, message, id);
        assert.doesNotMatch(e.message, /node_modules|\n\s*at |sharp|Vips|\/work\//, `${id}: no internals`);
        assert.deepEqual(await variantsOf(id), [], id);
        // The original is still served as it is.
        assert.equal((await get(`/assets/images/${app}/${id}`, {}, 'HEAD')).status, 200, id);
      }
      const many = await fetchVariant(`/images/${app}/many/w=320,f=webp`);
      assert.equal(many.r.status, 200);
      // One frame: a still WebP has no ANIM chunk, and ffprobe reads one frame.
      assert.ok(!many.bytes.includes(Buffer.from('ANIM')), 'not animated');
      assert.equal(probe(many.bytes).frames, 1);
      // SVG stays refused at upload.
      const svg = await api.call('POST', `/upload?app_id=${app}`, { body: '<svg xmlns="http://www.w3.org/2000/svg"/>', headers: { 'content-type': 'image/svg+xml' }, key: API_KEY });
      assert.equal(svg.status, 415);
    });

    test('a presigned upload gets its record from GET /images (type, size, width, height), then transforms', async () => {
      const put = await api.post('/generate-image-upload-url', { app_id: app, image_id: 'direct', content_type: 'image/jpeg', size: media.jpeg.length }, { key: API_KEY });
      assert.equal(put.status, 200, put.text);
      // The browser's PUT, straight to storage.
      await putStored({ backend, mf, garage }, `images/${app}/direct`, media.jpeg, 'image/jpeg');
      const meta = await api.get(`/images?app_id=${app}&image_id=direct`, { key: API_KEY });
      assert.equal(meta.status, 200, meta.text);
      assert.deepEqual(
        { type: meta.json.content_type, size: meta.json.size, width: meta.json.width, height: meta.json.height, url: meta.json.transform_url },
        { type: 'image/jpeg', size: media.jpeg.length, width: 1600, height: 1200, url: put.json.transform_url },
      );
      const kv = await mf.getKVNamespace('MEDIA_KV');
      assert.equal(JSON.parse(await kv.get(`image/${app}/direct`)).width, 1600, 'the record is kept');
      const v = await fetchVariant(`/images/${app}/direct/w=160`, { accept: CHROME_ACCEPT });
      assert.equal(v.r.status, 200);
      assert.equal(probe(v.bytes).width, 160);
      // Junk uploaded to a presigned URL is refused there, and removed.
      await putStored({ backend, mf, garage }, `images/${app}/junk`, Buffer.from('<html>not an image</html>'), 'image/png');
      const junk = await api.get(`/images?app_id=${app}&image_id=junk`, { key: API_KEY });
      assert.equal(junk.status, 404);
      assert.match(junk.json.error.message, /was refused/);
      assert.deepEqual(await keysIn(`images/${app}/junk`), []);
      // Only with a key for the app.
      assert.equal((await api.get(`/images?app_id=${app}&image_id=direct`, { key: API_KEY_2 })).status, 403);
      assert.equal((await api.get(`/images?app_id=${app}&image_id=direct`)).status, 401);
      assert.equal((await api.get(`/images?app_id=${app}&image_id=nothing`, { key: API_KEY })).status, 404);
      assert.equal((await api.get(`/images?app_id=${app}`, { key: API_KEY })).status, 400);
    });

    test('deleting an image deletes its variants and drops them from the edge cache', async () => {
      await upload('gone', media.png, 'image/png');
      const paths = [`/images/${app}/gone/w=320`, `/images/${app}/gone/w=160,f=webp`];
      for (const p of paths) assert.equal((await fetchVariant(p, { accept: CHROME_ACCEPT })).source, 'created', p);
      for (const p of paths) assert.equal((await fetchVariant(p, { accept: CHROME_ACCEPT })).source, 'edge', p);
      assert.equal((await variantsOf('gone')).length, 2);
      const del = await api.call('DELETE', `/images?app_id=${app}&image_id=gone`, { key: API_KEY });
      assert.equal(del.status, 200, del.text);
      assert.deepEqual(del.json.deleted, { objects: 3, record: true });
      assert.deepEqual(await keysIn(`images/${app}/gone`), []);
      for (const p of paths) assert.equal((await get(p, { accept: CHROME_ACCEPT })).status, 404, `${p} after the delete`);
    });
  });
}

describe('image transforms: the allowed set is the operator\'s', () => {
  let mf;
  before(async () => {
    mf = await imageService({ store: garage, vars: { TRANSFORM_SIZES: '200', TRANSFORM_QUALITIES: '60', TRANSFORM_FITS: 'cover', TRANSFORM_WIDTH: '400', TRANSFORM_QUALITY: '70' } });
  });
  after(async () => mf?.dispose());

  test('configured sizes, qualities and fits are taken, the transform_url\'s own options always', async () => {
    const api = client(mf, BASE);
    const up = await api.call('POST', '/upload?app_id=conf&image_id=p', { body: new Uint8Array(media.png), headers: { 'content-type': 'image/png' }, key: API_KEY });
    assert.equal(up.status, 201, up.text);
    assert.equal(up.json.transform_url, `${BASE}/images/conf/p/w=400,q=70,f=auto`);
    for (const [options, status] of [['', 200], ['w=200,q=60', 200], ['w=400,q=70', 200], ['w=320', 400], ['q=85', 400], ['fit=contain', 400]]) {
      const r = await mf.dispatchFetch(`${BASE}/images/conf/p/${options}`);
      await r.arrayBuffer();
      assert.equal(r.status, status, options);
    }
    const r = await mf.dispatchFetch(`${BASE}/images/conf/p/w=320`);
    assert.match(JSON.parse(await r.text()).error.message, /allowed: w and h: 200, 400; q: 60, 70; fit: cover;/);
  });
});
