// Encrypted HLS end to end: the transcoder binary against the real video
// service (workerd, through Miniflare on a loopback port) and a real
// Garage. A video notified with `encryption: "aes-128"` (and signed URLs)
// is transcoded; every media segment in storage is ciphertext (not MP4)
// that the key object and the IV rule (the media sequence number) turn
// back into an fMP4 fragment, its init segments stay clear, its key lives
// outside `hls/`; ffmpeg decodes every rung, and hls.js in headless
// Chromium plays, through `/hls/t/{token}/master.m3u8`, fetching the key
// from `/hls/t/{token}/key`
// (no-store), which refuses a garbled or expired token; a delete removes
// the key with the outputs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createDecipheriv } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, importPKCS8 } from 'jose';
import { s3, listKeys } from '../../devkit/sigv4.mjs';
import { API_KEY, ROOT } from '../workers/harness.mjs';
import { startStack } from './stack.mjs';

const APP = 'encapp';
let stack, garage, api, base, scratch, transcoder;

let n = 0;
const ip = () => ({ 'cf-connecting-ip': `10.26.0.${++n}` });

before(async () => {
  stack = await startStack({
    name: 'encrypt',
    app: APP,
    ip,
  });
  ({ garage, api, base, scratch, transcoder } = stack);
});

after(async () => {
  await stack?.stop();
});

const transcoded = (...args) => stack.transcoded(...args);

/** The bytes of a stored object, straight from Garage (no route in between). */
async function stored(key) {
  const r = await s3(garage, 'GET', key);
  assert.equal(r.status, 200, `GET ${key}`);
  return Buffer.from(await r.arrayBuffer());
}

/** AES-128-CBC with PKCS#7 under the IV RFC 8216 gives segment `seq` (no IV attribute). */
function decrypt(key, seq, bytes) {
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(seq), 8);
  const d = createDecipheriv('aes-128-cbc', key, iv);
  return Buffer.concat([d.update(bytes), d.final()]);
}

const box = (bytes) => bytes.subarray(4, 8).toString('latin1');

/** Video frames ffmpeg decodes from `url` (stream `map`); fails on any libav error. */
function decodedFrames(url, map = '0:v:0') {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostats', '-i', url, '-map', map, '-f', 'null', '-progress', 'pipe:1', '-'], { encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, `ffmpeg ${url}: ${r.stderr}`);
  assert.equal(r.stderr.trim(), '', `ffmpeg ${url} complained: ${r.stderr}`);
  return Number(r.stdout.split('\n').filter((l) => l.startsWith('frame=')).at(-1)?.slice(6) ?? 0);
}

/** A playback token for `video`: minted with the API key (POST /playback-tokens). */
async function mint(video) {
  const r = await api.post('/playback-tokens', { app_id: APP, video_id: video }, { key: API_KEY, headers: ip() });
  assert.equal(r.status, 200, r.text);
  return r.json.token;
}

/** Plays `url` with hls.js (from node_modules) in headless Chromium, from a page on `url`'s origin;
 *  returns how far it played, how many keys it loaded, and its fatal errors. */
async function playInBrowser(url) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--autoplay-policy=no-user-gesture-required'],
  });
  try {
    const page = await browser.newPage();
    const hlsJs = readFileSync(join(ROOT, 'node_modules', 'hls.js', 'dist', 'hls.min.js'));
    // The player page and hls.js are answered by the test at two paths of the service's own origin
    // (the service has no such routes); everything else the page asks goes to the service.
    const origin = new URL(url).origin;
    await page.route(`${origin}/__player/hls.min.js`, (route) => route.fulfill({ body: hlsJs, contentType: 'text/javascript' }));
    await page.route(`${origin}/__player/`, (route) => route.fulfill({
      body: '<!doctype html><video id="v" muted></video><script src="/__player/hls.min.js"></script>',
      contentType: 'text/html',
    }));
    await page.goto(`${origin}/__player/`);
    await page.evaluate((src) => {
      const v = document.getElementById('v');
      const hls = new window.Hls();
      window.played = { keyLoads: 0, fatal: [] };
      hls.on(window.Hls.Events.KEY_LOADED, () => { window.played.keyLoads += 1; });
      hls.on(window.Hls.Events.ERROR, (_, d) => { if (d.fatal) window.played.fatal.push(`${d.type}/${d.details}`); });
      hls.loadSource(src);
      hls.attachMedia(v);
      v.play();
    }, url);
    await page.waitForFunction(() => document.getElementById('v').currentTime > 1.5 || window.played.fatal.length > 0, null, { timeout: 60000 });
    return await page.evaluate(() => ({ ...window.played, time: document.getElementById('v').currentTime }));
  } finally {
    await browser.close();
  }
}

test('an encrypted video: ciphertext in storage, its key only through the token route, ffmpeg decodes every rung and hls.js plays it', async () => {
  const done = await transcoded('enc1', { require_signed_urls: true, encryption: 'aes-128' });
  const rungs = done.renditions.map((r) => r.name);
  assert.deepEqual(rungs, ['720p', '480p', '360p', '240p']);

  // The key: one object per attempt, outside hls/, 16 bytes.
  const keyObjects = await listKeys(garage, `keys/${APP}/enc1/`);
  assert.equal(keyObjects.length, 1, JSON.stringify(keyObjects));
  const [, , , output, file] = keyObjects[0].split('/');
  assert.equal(file, 'aes128.key');
  const key = await stored(keyObjects[0]);
  assert.equal(key.length, 16);
  const hlsKeys = await listKeys(garage, `hls/${APP}/enc1/`);
  assert.ok(hlsKeys.every((k) => k.startsWith(`hls/${APP}/enc1/${output}/`)), 'the ladder and its key share the output id');
  assert.ok(!hlsKeys.some((k) => k.endsWith('.key') || k.endsWith('/key')), 'no key under hls/');

  // Straight from storage: init segments clear, media segments ciphertext that the key and IV rule open.
  const prefix = `hls/${APP}/enc1/${output}`;
  for (const rung of rungs) {
    const playlist = (await stored(`${prefix}/${rung}/index.m3u8`)).toString();
    const lines = playlist.split('\n');
    const map = lines.indexOf('#EXT-X-MAP:URI="init.mp4"');
    assert.ok(map > 0, playlist);
    assert.equal(lines[map + 1], '#EXT-X-KEY:METHOD=AES-128,URI="../key"', playlist);
    const init = await stored(`${prefix}/${rung}/init.mp4`);
    assert.equal(box(init), 'ftyp', `${rung}: the init segment is clear`);
    const segments = lines.filter((l) => l.endsWith('.m4s'));
    assert.ok(segments.length >= 2, playlist);
    for (const [i, name] of segments.entries()) {
      assert.equal(name, `${String(i).padStart(5, '0')}.m4s`);
      const sealed = await stored(`${prefix}/${rung}/${name}`);
      assert.equal(sealed.length % 16, 0, `${rung}/${name}: whole AES blocks`);
      assert.ok(!['moof', 'styp'].includes(box(sealed)), `${rung}/${name} read from storage is not an MP4 fragment`);
      const probe = join(scratch, 'probe.mp4');
      writeFileSync(probe, Buffer.concat([init, sealed]));
      const frames = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', probe], { encoding: 'utf8' });
      assert.ok(!(Number(frames.stdout.trim()) > 0), `${rung}/${name}: ciphertext decodes to no frame`);
      const opened = decrypt(key, i, sealed);
      assert.ok(['moof', 'styp'].includes(box(opened)), `${rung}/${name} decrypts to an MP4 fragment`);
    }
  }

  // Without a token: the public route refuses a private video, and nothing under hls/ is the key.
  const pub = await fetch(`${base}/hls/${APP}/enc1/${output}/master.m3u8`, { headers: ip() });
  assert.equal(pub.status, 403);
  // `key` is no HLS file name: the public route has nothing by that name.
  const publicKey = await fetch(`${base}/hls/${APP}/enc1/${output}/key`, { headers: ip() });
  assert.ok([403, 404].includes(publicKey.status), `public key path answered ${publicKey.status}`);
  assert.notDeepEqual(Buffer.from(await publicKey.arrayBuffer()), key);

  // With a token: the key route answers the key, never cached; ffmpeg decodes every rung through it.
  const token = await mint('enc1');
  const keyRes = await fetch(`${base}/hls/t/${token}/key`, { headers: ip() });
  assert.equal(keyRes.status, 200);
  assert.equal(keyRes.headers.get('cache-control'), 'no-store');
  assert.deepEqual(Buffer.from(await keyRes.arrayBuffer()), key);
  for (const rung of rungs) {
    const frames = decodedFrames(`${base}/hls/t/${token}/${rung}/index.m3u8`);
    assert.ok(frames >= 6 * 30 - 1, `${rung}: ${frames} frames decoded`);
  }
  // Through the master, as a player starts: every variant is there, and its audio decodes.
  const master = `${base}/hls/t/${token}/master.m3u8`;
  const probe = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,width,height', '-of', 'json', master], { encoding: 'utf8' });
  assert.equal(probe.status, 0, probe.stderr);
  const streams = JSON.parse(probe.stdout).streams;
  for (const { name, width, height } of done.renditions) {
    assert.ok(streams.some((s) => s.codec_type === 'video' && s.width === width && s.height === height), `${name} in ${probe.stdout}`);
  }
  decodedFrames(master, '0:a:0');
  // hls.js in headless Chromium plays the same token URL: it fetches the key through the route, and
  // playback advancing means it decrypted what it played (ciphertext does not demux).
  const played = await playInBrowser(master);
  assert.ok(played.time > 1.5 && played.keyLoads > 0 && played.fatal.length === 0, JSON.stringify(played));

  // A missing or expired token gets no key.
  const garbled = await fetch(`${base}/hls/t/not.a.token/key`, { headers: ip() });
  assert.equal(garbled.status, 401);
  assert.equal((await garbled.json()).error.code, 'invalid_token');
  const created = await api.post('/signing-keys', { app_id: APP }, { key: API_KEY, headers: ip() });
  assert.equal(created.status, 201, created.text);
  const expired = await new SignJWT({ kid: created.json.id })
    .setProtectedHeader({ alg: 'RS256', kid: created.json.id, typ: 'JWT' })
    .setSubject('enc1')
    .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
    .sign(await importPKCS8(created.json.pem, 'RS256'));
  const refused = await fetch(`${base}/hls/t/${expired}/key`, { headers: ip() });
  assert.equal(refused.status, 401);
  assert.equal((await refused.json()).error.code, 'invalid_token');

  // Deleting the video removes its key with its outputs.
  const deleted = await api.call('DELETE', `/videos?app_id=${APP}&video_id=enc1`, { key: API_KEY, headers: ip() });
  assert.equal(deleted.status, 200, deleted.text);
  assert.deepEqual(await listKeys(garage, `keys/${APP}/enc1/`), []);
  assert.deepEqual(await listKeys(garage, `hls/${APP}/enc1/`), []);
});

test('a clear video has no key object and clear segments', async () => {
  await transcoded('clear1', {}, { size: '640x360', seconds: 4 });
  assert.deepEqual(await listKeys(garage, `keys/${APP}/clear1/`), []);
  const [seg] = (await listKeys(garage, `hls/${APP}/clear1/`)).filter((k) => k.endsWith('/00000.m4s'));
  assert.ok(['moof', 'styp'].includes(box(await stored(seg))));
  const [playlist] = (await listKeys(garage, `hls/${APP}/clear1/`)).filter((k) => k.endsWith('/index.m3u8'));
  assert.ok(!(await stored(playlist)).toString().includes('EXT-X-KEY'));
});
