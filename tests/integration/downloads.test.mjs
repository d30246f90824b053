// MP4 downloads end to end: the transcoder binary against the real video
// service (workerd, through Miniflare on a loopback port) and a real
// Garage. A video notified with `download: {"rung": "480p"}` is
// transcoded; /job-status shows the download ready with its size and URL;
// GET /download answers the file as an attachment, which ffprobe opens
// with one H.264 stream of the 480p rung's size and one AAC stream, its
// `moov` before its `mdat`, lasting as long as the source; Range and HEAD
// work; a delete removes it from storage. An encrypted video that requires
// signed URLs gives a clear MP4 through a downloadable token (its file,
// above one 1 MiB part, stored as a multipart upload).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, existsSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGarage } from '../../devkit/garage.mjs';
import { freePort, waitFor } from '../../devkit/ports.mjs';
import { listKeys } from '../../devkit/sigv4.mjs';
import { videoService, client, API_KEY, TRANSCODER_TOKEN, ROOT } from '../workers/harness.mjs';
import { makeClip } from '../../devkit/client.mjs';

const BIN = process.env.TRANSCODER_BIN ?? join(ROOT, 'target', 'debug', 'transcoder');
const APP = 'dlapp';
const SECONDS = 6;
let garage, mf, api, base, scratch, transcoder;

before(async () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: cargo build -p transcoder first`);
  scratch = mkdtempSync(join(tmpdir(), 'downloads-'));
  garage = await startGarage({ dir: join(scratch, 'garage') });
  const port = await freePort();
  mf = await videoService({ store: garage, backend: 's3', port });
  base = `http://127.0.0.1:${port}`;
  api = client(mf, base);
  const log = join(scratch, 'transcoder.log');
  const child = spawn(BIN, ['run'], {
    env: {
      ...process.env,
      VIDEO_SERVICE_URL: base,
      TRANSCODER_TOKEN,
      S3_ENDPOINT: garage.endpoint,
      S3_BUCKET: garage.bucket,
      S3_REGION: garage.region,
      S3_ACCESS_KEY_ID: garage.accessKey,
      S3_SECRET_ACCESS_KEY: garage.secretKey,
      WORK_DIR: join(scratch, 'work'),
      LEASE_WAIT_MS: '2000',
      WORKER_NAME: 'download',
      // 1 MiB parts: a download above 1 MiB goes up as a multipart upload (Garage takes parts under S3's 5 MiB).
      S3_UPLOAD_PART_BYTES: String(1024 * 1024),
      RUST_LOG: 'info',
    },
    stdio: ['ignore', openSync(log, 'a'), openSync(log, 'a')],
  });
  transcoder = { child, logs: () => readFileSync(log, 'utf8'), exited: null };
  child.on('exit', (code, signal) => { transcoder.exited = { code, signal }; });
});

after(async () => {
  if (transcoder && !transcoder.exited) {
    const gone = new Promise((resolve) => transcoder.child.once('exit', resolve));
    transcoder.child.kill('SIGTERM');
    await gone;
  }
  await mf?.dispose();
  await garage?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

let n = 0;
const ip = () => ({ 'cf-connecting-ip': `10.27.0.${++n}` });

/** Uploads a 1280x720 clip with audio as `video`, notifies with `options`, waits until the job is done. */
async function transcoded(video, options) {
  const body = readFileSync(makeClip(join(scratch, `${video}.mp4`), { size: '1280x720', seconds: SECONDS }));
  const presign = await api.post('/generate-upload-url', { app_id: APP, video_id: video, content_type: 'video/mp4', size: body.length }, { key: API_KEY, headers: ip() });
  assert.equal(presign.status, 200, presign.text);
  const put = await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body });
  assert.equal(put.status, 200);
  const notify = await api.post('/notify-upload-complete', { app_id: APP, video_id: video, raw_key: presign.json.raw_key, content_type: 'video/mp4', ...options }, { key: API_KEY, headers: ip() });
  assert.equal(notify.status, 202, notify.text);
  let last;
  await waitFor(`${video} to be transcoded`, async () => {
    last = (await api.get(`/job-status?app_id=${APP}&video_id=${video}`, { headers: ip() })).json;
    return last.status === 'done' || last.status === 'error';
  }, 180000);
  assert.equal(last.status, 'done', JSON.stringify(last) + transcoder.logs().slice(-3000));
  return last;
}

/** Top-level MP4 box types of `bytes`, in order. */
function boxes(bytes) {
  const found = [];
  for (let at = 0; at + 8 <= bytes.length;) {
    let size = bytes.readUInt32BE(at);
    if (size === 1) size = Number(bytes.readBigUInt64BE(at + 8));
    if (size === 0) size = bytes.length - at;
    found.push(bytes.subarray(at + 4, at + 8).toString('latin1'));
    at += size;
  }
  return found;
}

/** Checks a downloaded MP4 with ffprobe and ffmpeg: one video stream `width`x`height`, one audio stream, faststart. */
function checkMp4(bytes, width, height) {
  const file = join(scratch, `check-${++n}.mp4`);
  writeFileSync(file, bytes);
  const probe = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,codec_name,width,height:format=duration', '-of', 'json', file], { encoding: 'utf8' });
  assert.equal(probe.status, 0, probe.stderr);
  const { streams, format } = JSON.parse(probe.stdout);
  const video = streams.filter((s) => s.codec_type === 'video');
  const audio = streams.filter((s) => s.codec_type === 'audio');
  assert.equal(streams.length, 2, probe.stdout);
  assert.equal(video.length, 1, probe.stdout);
  assert.equal(audio.length, 1, probe.stdout);
  assert.deepEqual([video[0].codec_name, video[0].width, video[0].height], ['h264', width, height]);
  assert.equal(audio[0].codec_name, 'aac');
  assert.ok(Math.abs(Number(format.duration) - SECONDS) <= 4, `duration ${format.duration}`);
  const order = boxes(bytes);
  assert.ok(order.indexOf('moov') >= 0 && order.indexOf('moov') < order.indexOf('mdat'), `moov before mdat: ${order}`);
  const decoded = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostats', '-i', file, '-f', 'null', '-'], { encoding: 'utf8' });
  assert.equal(decoded.status, 0, decoded.stderr);
  assert.equal(decoded.stderr.trim(), '', `ffmpeg complained: ${decoded.stderr}`);
}

test('a public video: the 480p rung with its audio, faststart, as an attachment with Range; gone with the video', async () => {
  const done = await transcoded('dl1', { download: { rung: '480p' } });
  const url = `${base}/download?app_id=${APP}&video_id=dl1`;
  assert.equal(done.download.status, 'ready', JSON.stringify(done.download));
  assert.equal(done.download.rung, '480p');
  assert.equal(done.download.url, url);
  const keys = await listKeys(garage, `downloads/${APP}/dl1/`);
  assert.deepEqual(keys, [`downloads/${APP}/dl1/${done.playback_url.split('/')[6]}/dl1.mp4`]);

  const res = await fetch(url, { headers: ip() });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-disposition'), 'attachment; filename="dl1.mp4"');
  assert.equal(res.headers.get('content-type'), 'video/mp4');
  const bytes = Buffer.from(await res.arrayBuffer());
  assert.equal(bytes.length, done.download.size);
  assert.equal(res.headers.get('content-length'), String(bytes.length));
  const rung = done.renditions.find((r) => r.name === '480p');
  checkMp4(bytes, rung.width, rung.height);

  const part = await fetch(url, { headers: { ...ip(), range: 'bytes=0-1023' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes 0-1023/${bytes.length}`);
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), bytes.subarray(0, 1024));
  const etag = res.headers.get('etag');
  assert.equal((await fetch(url, { headers: { ...ip(), 'if-none-match': etag } })).status, 304);

  const del = await api.call('DELETE', `/videos?app_id=${APP}&video_id=dl1`, { key: API_KEY, headers: ip() });
  assert.equal(del.status, 200, del.text);
  assert.deepEqual(await listKeys(garage, `downloads/${APP}/dl1/`), []);
  assert.equal((await fetch(url, { headers: ip() })).status, 404);
});

test('an encrypted video that requires signed URLs: a clear MP4 of the top rung through a downloadable token', async () => {
  const done = await transcoded('dl2', { require_signed_urls: true, encryption: 'aes-128', download: true });
  assert.equal(done.download.status, 'ready', JSON.stringify(done.download));
  assert.equal(done.download.url, null);
  assert.equal(done.download.rung, done.renditions[0].name);
  assert.equal((await fetch(`${base}/download?app_id=${APP}&video_id=dl2`, { headers: ip() })).status, 403);
  const minted = await api.post('/playback-tokens', { app_id: APP, video_id: 'dl2', downloadable: true }, { key: API_KEY, headers: ip() });
  assert.equal(minted.status, 200, minted.text);
  const res = await fetch(`${base}/download?token=${minted.json.token}`, { headers: ip() });
  assert.equal(res.status, 200);
  const bytes = Buffer.from(await res.arrayBuffer());
  checkMp4(bytes, done.renditions[0].width, done.renditions[0].height);
  // Larger than one part: it was stored as a multipart upload, which the checks above read back whole.
  assert.ok(bytes.length > 1024 * 1024, `${bytes.length} bytes`);
  const parts = Math.ceil(bytes.length / (1024 * 1024));
  assert.match(transcoder.logs(), new RegExp(`"parts":${parts}.*stored in parts|stored in parts.*"parts":${parts}`));
});
