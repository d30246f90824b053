// Covers and animated previews end to end: the transcoder binary against
// the real video service (workerd, through Miniflare on a loopback port)
// and a real Garage. A video notified with `cover` and `preview` is
// transcoded; /job-status lists both with their URLs and what was made;
// the HLS route serves them with their types (a JPEG and a WebP cover at
// the frame asked, an animated GIF whose frames ffprobe counts). The same
// options again change nothing; other ones run the video again and list
// the new files; options out of bounds are refused with the field's name
// before anything is queued.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { API_KEY } from '../workers/harness.mjs';
import { waitFor } from '../../devkit/ports.mjs';
import { startStack } from './stack.mjs';

const APP = 'xapp';
let stack, api, base, scratch;

let n = 0;
const ip = () => ({ 'cf-connecting-ip': `10.28.0.${++n}` });

before(async () => {
  stack = await startStack({ name: 'extras', app: APP, ip });
  ({ api, base, scratch } = stack);
});

after(async () => {
  await stack?.stop();
});

/** GETs a public file; its status, type and bytes. */
async function fetched(url) {
  assert.ok(url.startsWith(`${base}/hls/${APP}/`), url);
  const res = await fetch(url, { headers: ip() });
  return { status: res.status, type: res.headers.get('content-type'), bytes: Buffer.from(await res.arrayBuffer()) };
}

/** ffprobe's view of an image or animation: width, height and frames read. */
function probe(bytes, name) {
  const file = join(scratch, `${++n}-${name}`);
  writeFileSync(file, bytes);
  const out = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'json', file], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  return JSON.parse(out.stdout).streams[0];
}

test('a cover and a GIF preview are made, listed in /job-status and served by the HLS route', async () => {
  const options = { cover: { time_s: 2 }, preview: { start_s: 1, duration_s: 2, width: 320, fps: 5, format: 'gif' } };
  const done = await stack.transcoded('x1', options);
  const output = done.playback_url.split('/').slice(0, -1).join('/');
  assert.deepEqual(done.cover, { jpg: `${output}/cover.jpg`, webp: `${output}/cover.webp`, time_s: 2, width: 1280, height: 720 });
  assert.deepEqual(done.preview, { url: `${output}/preview.gif`, format: 'gif', start_s: 1, duration_s: 2, width: 320, height: 180, fps: 5, frames: 10 });

  const jpg = await fetched(done.cover.jpg);
  assert.deepEqual([jpg.status, jpg.type, [...jpg.bytes.subarray(0, 3)]], [200, 'image/jpeg', [0xff, 0xd8, 0xff]]);
  assert.deepEqual([probe(jpg.bytes, 'cover.jpg').width, probe(jpg.bytes, 'cover.jpg').height], [1280, 720]);
  const webp = await fetched(done.cover.webp);
  assert.deepEqual([webp.status, webp.type, webp.bytes.subarray(8, 12).toString('latin1')], [200, 'image/webp', 'WEBP']);
  const gif = await fetched(done.preview.url);
  assert.deepEqual([gif.status, gif.type, gif.bytes.subarray(0, 6).toString('latin1')], [200, 'image/gif', 'GIF89a']);
  const frames = probe(gif.bytes, 'preview.gif');
  assert.deepEqual([frames.codec_name, frames.width, frames.height, frames.nb_read_frames], ['gif', 320, 180, '10']);

  // The same options again: the same job, nothing queued.
  const again = await api.post('/notify-upload-complete', { app_id: APP, video_id: 'x1', raw_key: `raw/${APP}/x1/source.mp4`, content_type: 'video/mp4', ...options }, { key: API_KEY, headers: ip() });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.status, 'done');

  // Other options: the video runs again, and its status lists the new files.
  const other = { cover: { time_s: 4 }, preview: { duration_s: 1, width: 160, format: 'webp' } };
  const rerun = await api.post('/notify-upload-complete', { app_id: APP, video_id: 'x1', raw_key: `raw/${APP}/x1/source.mp4`, content_type: 'video/mp4', ...other }, { key: API_KEY, headers: ip() });
  assert.equal(rerun.status, 202, rerun.text);
  assert.equal(rerun.json.job_id, done.job_id, 'the same job, a new run');
  let last;
  await waitFor('the re-run to be done', async () => {
    last = (await api.get(`/job-status?app_id=${APP}&video_id=x1`, { headers: ip() })).json;
    return last.status === 'done' && last.preview?.format === 'webp';
  }, 120000);
  assert.notEqual(last.playback_url, done.playback_url, 'a new output');
  assert.equal(last.cover.time_s, 4);
  assert.deepEqual([last.preview.frames, last.preview.width, last.preview.height], [10, 160, 90]);
  const anim = await fetched(last.preview.url);
  assert.deepEqual([anim.status, anim.type, anim.bytes.subarray(0, 4).toString('latin1')], [200, 'image/webp', 'RIFF']);
  assert.ok(anim.bytes.includes(Buffer.from('ANMF')), 'an animated WebP');
});

test('options out of bounds or unknown are refused with the field named, before anything is queued', async () => {
  const refused = [
    [{ cover: { time_s: 1, at: 2 } }, 'unknown field `at`'],
    [{ cover: { time_s: -1 } }, 'cover.time_s'],
    [{ preview: { duration_s: 30 } }, 'preview.duration_s'],
    [{ preview: { format: 'apng' } }, 'unknown variant `apng`'],
    [{ thumbnail: true }, 'unknown field "thumbnail"'],
  ];
  for (const [options, says] of refused) {
    const res = await api.post('/notify-upload-complete', { app_id: APP, video_id: 'x2', raw_key: `raw/${APP}/x2/source.mp4`, content_type: 'video/mp4', ...options }, { key: API_KEY, headers: ip() });
    assert.equal(res.status, 400, `${JSON.stringify(options)}: ${res.text}`);
    assert.equal(res.json.error.code, 'invalid_field', res.text);
    assert.ok(res.json.error.message.includes(says), `${says} in ${res.json.error.message}`);
  }
  const status = await api.get(`/job-status?app_id=${APP}&video_id=x2`, { headers: ip() });
  assert.equal(status.status, 404, 'no job was made');
});
