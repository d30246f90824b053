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
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listKeys } from '../../devkit/sigv4.mjs';
import { API_KEY } from '../workers/harness.mjs';
import { startStack } from './stack.mjs';

const APP = 'dlapp';
const SECONDS = 6;
let stack, garage, api, base, scratch, transcoder;

let n = 0;
const ip = () => ({ 'cf-connecting-ip': `10.27.0.${++n}` });

before(async () => {
  stack = await startStack({
    name: 'download',
    app: APP,
    ip,
    // 1 MiB parts: a download above 1 MiB goes up as a multipart upload (Garage takes parts under S3's 5 MiB).
    transcoderEnv: { S3_UPLOAD_PART_BYTES: String(1024 * 1024) },
  });
  ({ garage, api, base, scratch, transcoder } = stack);
});

after(async () => {
  await stack?.stop();
});

/** Uploads a 1280x720 clip with audio as `video`, notifies with `options`, waits until the job is done. */
const transcoded = (video, options) => stack.transcoded(video, options, { seconds: SECONDS });

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
