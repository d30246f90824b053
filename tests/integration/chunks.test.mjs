// Chunked jobs end to end: the transcoder binary (two processes) against the
// video service in workerd and a real Garage. With small CHUNK_FROM_S /
// CHUNK_S, a 40-s source is planned as several chunk tasks after the first
// transcoder's probe; both transcoders take chunks; the job reaches done;
// the VOD playlists the service renders list every segment once with
// contiguous numbers and the whole duration; every listed file answers 200;
// ffmpeg reads every rung and the audio rendition end to end without an
// error, and the top rung's frames are all there, one frame apart across
// chunk boundaries.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGarage } from '../../devkit/garage.mjs';
import { freePort, waitFor } from '../../devkit/ports.mjs';
import { makeClip } from '../../devkit/client.mjs';
import { videoService, client, API_KEY } from '../workers/harness.mjs';
import { BIN, spawnTranscoder } from './stack.mjs';

const SECONDS = 40;
const FPS = 30;
let garage, mf, api, base, scratch;
const transcoders = [];
let n = 0;
const ip = () => ({ 'cf-connecting-ip': `10.27.0.${++n}` });

before(async () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: cargo build -p transcoder first`);
  scratch = mkdtempSync(join(tmpdir(), 'chunks-'));
  garage = await startGarage({ dir: join(scratch, 'garage') });
  const port = await freePort();
  // Chunks of 8 s (4 s for the first) from 20 s on: a 40-s source makes about six.
  mf = await videoService({ store: garage, backend: 's3', port, vars: { CHUNK_FROM_S: '20', CHUNK_S: '8', FIRST_CHUNK_S: '4' } });
  base = `http://127.0.0.1:${port}`;
  api = client(mf, base);
});

after(async () => {
  for (const t of transcoders) await t.stop();
  await mf?.dispose();
  await garage?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

function startTranscoder(name) {
  const t = spawnTranscoder({ base, garage, scratch, name });
  transcoders.push(t);
  return t;
}

/** The runner's JSON log lines of `t` with this message (they carry the job span). */
const lines = (t, message) => t.logs().split('\n').filter((l) => l.includes(`"message":"${message}"`)).map((l) => JSON.parse(l)).filter((l) => l.span?.job_id);

/** A media playlist's segments (URI and duration) and its init segment's URI. */
function parsePlaylist(text) {
  const segments = [];
  let duration = null;
  let map = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXTINF:')) duration = Number(line.slice(8).split(',')[0]);
    else if (line.startsWith('#EXT-X-MAP:')) map = /URI="([^"]+)"/.exec(line)[1];
    else if (line && !line.startsWith('#')) { segments.push({ uri: line, duration }); duration = null; }
  }
  return { segments, map };
}

/** ffmpeg reads `url` to the end; its stderr (errors only) must stay empty. */
function decodes(url, what) {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-xerror', '-i', url, '-f', 'null', '-'], { encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, `${what}: ffmpeg exited ${r.status}: ${r.stderr}`);
  assert.equal(r.stderr.trim(), '', `${what}: ffmpeg reported errors`);
}

test('a 40-s source is encoded as chunks by two transcoders and stitched into playlists ffmpeg reads end to end', async () => {
  const a = startTranscoder('chunker-a');
  const b = startTranscoder('chunker-b');
  const body = readFileSync(makeClip(join(scratch, 'long.mp4'), { size: '640x360', seconds: SECONDS, rate: FPS }));
  const presign = await api.post('/generate-upload-url', { app_id: 'chunks', video_id: 'long', content_type: 'video/mp4', size: body.length }, { key: API_KEY, headers: ip() });
  assert.equal(presign.status, 200, presign.text);
  assert.equal((await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body })).status, 200);
  // A cover deep in a later chunk and a preview across chunk 0's end: task 0 makes both for the whole video.
  const extras = { cover: { time_s: SECONDS - 5 }, preview: { start_s: 7, duration_s: 3, format: 'gif' } };
  const notify = await api.post('/notify-upload-complete', { app_id: 'chunks', video_id: 'long', raw_key: presign.json.raw_key, content_type: 'video/mp4', ...extras }, { key: API_KEY, headers: ip() });
  assert.equal(notify.status, 202, notify.text);
  let last;
  const seen = [];
  // While it runs: each rendition's playlist lists a contiguous prefix from
  // segment 0 that only grows, and every segment it lists is already stored.
  const listed = new Map();
  let snapshots = 0;
  await waitFor('the chunked job to end', async () => {
    last = (await api.get('/job-status?app_id=chunks&video_id=long', { headers: ip() })).json;
    seen.push(last);
    if (last.status === 'processing' && last.playable && last.playback_url) {
      const master = await (await fetch(last.playback_url)).text();
      const uris = master.split('\n').filter((l) => l && !l.startsWith('#'));
      const audio = /#EXT-X-MEDIA:TYPE=AUDIO[^\n]*URI="([^"]+)"/.exec(master);
      if (audio) uris.push(audio[1]);
      for (const uri of uris) {
        const url = new URL(uri, last.playback_url);
        const text = await (await fetch(url)).text();
        if (/#EXT-X-ENDLIST/.test(text)) continue;
        assert.match(text, /#EXT-X-PLAYLIST-TYPE:EVENT/, text);
        const seqs = parsePlaylist(text).segments.map((x) => Number(/^(\d+)\.m4s$/.exec(x.uri)[1]));
        assert.deepEqual(seqs, [...seqs.keys()], `${uri} while running: ${seqs}`);
        assert.ok(seqs.length >= (listed.get(uri) ?? 0), `${uri} shrank from ${listed.get(uri)} to ${seqs.length}`);
        listed.set(uri, seqs.length);
        if (seqs.length) {
          const newest = await fetch(new URL(parsePlaylist(text).segments.at(-1).uri, url));
          assert.equal(newest.status, 200, `${uri}: its newest listed segment is stored`);
          await newest.arrayBuffer();
          snapshots++;
        }
      }
    }
    return last.status === 'done' || last.status === 'error';
  }, 300000);
  assert.ok(snapshots > 0, 'the playlists were read while the job ran');
  assert.equal(last.status, 'done', JSON.stringify(last) + a.logs().slice(-3000) + b.logs().slice(-3000));
  assert.ok(Math.abs(last.duration_s - SECONDS) < 0.1, `duration ${last.duration_s}`);
  assert.deepEqual([last.cover?.time_s, last.cover?.width, last.cover?.height], [SECONDS - 5, 640, 360], JSON.stringify(last.cover));
  assert.deepEqual([last.preview?.start_s, last.preview?.frames, last.preview?.width, last.preview?.height], [7, 30, 480, 270], JSON.stringify(last.preview));
  for (const url of [last.cover.jpg, last.cover.webp, last.preview.url]) assert.equal((await fetch(url)).status, 200, url);
  assert.ok(seen.some((s) => s.status === 'processing' && s.playable), 'playable before done');
  const progress = seen.filter((s) => s.status === 'processing').map((s) => s.progress);
  assert.deepEqual(progress, [...progress].sort((x, y) => x - y), 'progress never goes back');

  // The plan and who ran what.
  const planned = [...lines(a, 'job planned'), ...lines(b, 'job planned')];
  assert.equal(planned.length, 1, 'planned once, by the first holder');
  const count = planned[0].fields.chunks;
  assert.ok(count >= 4, `${count} chunks`);
  const started = { a: lines(a, 'chunk started'), b: lines(b, 'chunk started') };
  assert.ok(started.a.length > 0 && started.b.length > 0, `both transcoders ran chunks: a ${started.a.length}, b ${started.b.length}`);
  const done = [...lines(a, 'chunk done'), ...lines(b, 'chunk done')].map((l) => l.fields.chunk).sort((x, y) => x - y);
  assert.deepEqual(done, [...Array(count).keys()], 'every chunk done once');

  // The master (rendered by the service) and every rendition.
  const masterUrl = last.playback_url;
  const master = await (await fetch(masterUrl)).text();
  assert.match(master, /#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"/);
  const audioUri = /#EXT-X-MEDIA:TYPE=AUDIO[^\n]*URI="([^"]+)"/.exec(master)[1];
  const renditions = [...last.renditions.map((r) => ({ name: r.name, url: r.url })), { name: 'audio', url: new URL(audioUri, masterUrl).href }];
  assert.ok(renditions.length >= 3, JSON.stringify(last.renditions));
  for (const r of renditions) {
    const res = await fetch(r.url);
    assert.equal(res.status, 200, r.url);
    const text = await res.text();
    assert.match(text, /#EXT-X-PLAYLIST-TYPE:VOD/, `${r.name}: ${text}`);
    assert.match(text, /#EXT-X-ENDLIST/, r.name);
    assert.doesNotMatch(text, /#EXT-X-DISCONTINUITY/, r.name);
    const { segments, map } = parsePlaylist(text);
    assert.equal(map, 'init.mp4', r.name);
    const seqs = segments.map((s) => Number(/^(\d+)\.m4s$/.exec(s.uri)[1]));
    assert.deepEqual(seqs, [...seqs.keys()], `${r.name}: every segment once, numbered 0..n-1: ${seqs}`);
    const total = segments.reduce((sum, s) => sum + s.duration, 0);
    assert.ok(Math.abs(total - SECONDS) < 0.1, `${r.name}: the playlist lasts ${total} s`);
    for (const uri of [map, ...segments.map((s) => s.uri)]) {
      const file = await fetch(new URL(uri, r.url));
      assert.equal(file.status, 200, `${r.name}/${uri}`);
      await file.arrayBuffer();
    }
    decodes(r.url, r.name);
  }

  // The top rung: every frame of the source, one frame apart across the chunk boundaries.
  const top = renditions[0].url;
  const pts = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', top], { encoding: 'utf8' })
    .trim().split('\n').map(Number).sort((x, y) => x - y);
  assert.equal(pts.length, SECONDS * FPS, `${pts.length} frames`);
  const gaps = pts.slice(1).map((t, i) => t - pts[i]).filter((d) => Math.abs(d - 1 / FPS) > 0.002);
  assert.deepEqual(gaps, [], 'frames are one frame apart');
  await a.stop();
  await b.stop();
});

test('a cancel stops every chunk: each holder sees its lease lost at its next heartbeat and no chunk of the job starts again', async () => {
  const a = startTranscoder('cancel-a');
  const b = startTranscoder('cancel-b');
  const body = readFileSync(makeClip(join(scratch, 'canceled.mp4'), { size: '1280x720', seconds: 60, rate: FPS }));
  const presign = await api.post('/generate-upload-url', { app_id: 'chunks', video_id: 'canceled', content_type: 'video/mp4', size: body.length }, { key: API_KEY, headers: ip() });
  assert.equal((await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body })).status, 200);
  const notify = await api.post('/notify-upload-complete', { app_id: 'chunks', video_id: 'canceled', raw_key: presign.json.raw_key, content_type: 'video/mp4' }, { key: API_KEY, headers: ip() });
  assert.equal(notify.status, 202, notify.text);
  const jobId = notify.json.job_id;
  const ours = (t, message) => lines(t, message).filter((l) => l.span.job_id === jobId);
  await waitFor('both transcoders to run a chunk', async () => ours(a, 'chunk started').length > 0 && ours(b, 'chunk started').length > 0, 120000);
  const canceled = await api.post('/cancel-job', { app_id: 'chunks', video_id: 'canceled' }, { key: API_KEY, headers: ip() });
  assert.equal(canceled.status, 200, canceled.text);
  const at = Date.now();
  await waitFor('both holders to stop', async () => ours(a, 'lease lost: stopped working on the job').length > 0 && ours(b, 'lease lost: stopped working on the job').length > 0, 15000);
  const stoppedAfter = Date.now() - at;
  const started = ours(a, 'chunk started').length + ours(b, 'chunk started').length;
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(ours(a, 'chunk started').length + ours(b, 'chunk started').length, started, 'no chunk of the canceled job starts again');
  assert.equal(ours(a, 'chunk done').length + ours(b, 'chunk done').length < planned(a, b, jobId), true, 'the job did not run to its end');
  const s = (await api.get('/job-status?app_id=chunks&video_id=canceled', { headers: ip() })).json;
  assert.equal(s.status, 'error', JSON.stringify(s));
  assert.match(s.error, /canceled/);
  assert.ok(stoppedAfter < 10000, `stopped ${stoppedAfter} ms after the cancel`);
  await a.stop();
  await b.stop();
});

/** How many chunks job `jobId` was planned as. */
function planned(a, b, jobId) {
  const line = [...lines(a, 'job planned'), ...lines(b, 'job planned')].find((l) => l.span.job_id === jobId);
  return line.fields.chunks;
}
