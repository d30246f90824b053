// Chunked jobs (issue 27) in workerd (Miniflare, R2 binding), driven
// through the internal API as transcoders drive it: a whole-job lease
// (`chunks: true`) whose probe found a long source asks POST /plan, its
// lease becomes chunk task 0 and tasks 1..n wait at once in their own shard
// rows; other transcoders lease them, beat with `published_segments`, and
// complete with a chunk report. The Worker renders the playlists from the
// job: a contiguous prefix of published segments (EVENT), then VOD with the
// measured BANDWIDTH once every task is done. A task whose lease expires is
// leased again alone; cancel and delete end every task (each holder gets
// 409 lease_lost); a transcoder that predates chunks is never offered a task.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGarage } from '../../devkit/garage.mjs';
import { videoService, client, freshIp, errorCode, API_KEY } from './harness.mjs';

const APP = 'chunks-app';
// Long enough that beats every 300 ms keep a lease under a loaded test run.
const LEASE_TTL_MS = 3000;

let mf;
let api;
let garage;
let garageDir;
before(async () => {
  // Files are in Miniflare's R2; a delete also lists the video's open
  // multipart uploads through the S3 API, which Garage answers.
  garageDir = mkdtempSync(join(tmpdir(), 'garage-chunks-'));
  garage = await startGarage({ dir: garageDir });
  mf = await videoService({
    store: garage,
    vars: { LEASE_TTL_MS: String(LEASE_TTL_MS), RETRY_BACKOFF_MS: '100', CHUNK_FROM_S: '20', CHUNK_S: '6', FIRST_CHUNK_S: '2' },
  });
  api = client(mf);
});
after(async () => {
  await mf?.dispose();
  await garage?.stop();
  rmSync(garageDir, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// 30 s at 30 fps: a 0.5 s first segment, then 4 s ones (9 segments). With
// CHUNK_S=6 (two segments a chunk) and FIRST_CHUNK_S=2 (one segment):
// chunk 0 = seq 0, 1 = seq 1-2, 2 = 3-4, 3 = 5-6, 4 = 7-8 (to the end).
const geometry = { frame_rate: { num: 30, den: 1 }, gop_frames: 60, first_segment_frames: 15, segment_frames: 120, total_frames: 900 };
const rungs = [
  { name: '360p', width: 640, height: 360, bitrate: 800000, max_bitrate: 1200000, buffer_size: 2400000 },
  { name: '720p', width: 1280, height: 720, bitrate: 2500000, max_bitrate: 3750000, buffer_size: 7500000 },
];
const CHUNKS = [
  { index: 0, first_seq: 0, segments: 1 },
  { index: 1, first_seq: 1, segments: 2 },
  { index: 2, first_seq: 3, segments: 2 },
  { index: 3, first_seq: 5, segments: 2 },
  { index: 4, first_seq: 7, segments: 2 },
];

async function notify(video) {
  const bucket = await mf.getR2Bucket('MEDIA_BUCKET');
  const raw = `raw/${APP}/${video}/source.mp4`;
  await bucket.put(raw, new Uint8Array(1000).fill(7), { httpMetadata: { contentType: 'video/mp4' } });
  const r = await api.post('/notify-upload-complete', { app_id: APP, video_id: video, raw_key: raw, content_type: 'video/mp4' }, { key: API_KEY, headers: freshIp() });
  assert.equal(r.status, 202, r.text);
}

/** A lease as a transcoder asks it: `chunks` absent for one that predates chunk tasks. */
async function lease(worker, { chunks, waitMs = 0 } = {}) {
  const body = { worker, wait_ms: waitMs, ...(chunks === undefined ? {} : { chunks }) };
  const r = await api.internal('/internal/jobs/lease', body);
  assert.equal(r.status, 200, r.text);
  return r.json.job;
}

/** The whole-job lease of `video` by a chunk-capable transcoder (what an
 *  earlier test left queued is leased and dropped). */
async function leaseWhole(video) {
  for (let i = 0; i < 20; i++) {
    const job = await lease('t-whole', { chunks: true, waitMs: 2000 });
    if (job?.video_id === video) return job;
  }
  throw new Error(`never leased ${video}`);
}

const ids = (spec) => ({ app_id: spec.app_id, video_id: spec.video_id });
const beat = (spec, extra = {}) => api.internal(`/internal/jobs/${spec.job_id}/heartbeat`, { lease_id: spec.lease_id, ...ids(spec), progress: 50, stage: 'encoding', ...extra });
const plan = (spec, durationS = 30) => api.internal(`/internal/jobs/${spec.job_id}/plan`, {
  lease_id: spec.lease_id, ...ids(spec), geometry: { ...geometry, total_frames: Math.round(durationS * 30) }, t0_s: 0, duration_s: durationS, has_audio: true, rungs,
});

/** What a chunk task reports: `segments` segments of 40 kB (360p) and 100 kB (720p) each, 8 kB of audio for task 0. */
function report(chunk, { frames } = {}) {
  const n = CHUNKS[chunk.index].segments;
  const seg = (bytes) => Array.from({ length: n }, (_, i) => bytes + 1000 * (chunk.first_seq + i));
  const rungReport = (r, bytes) => ({ name: r.name, width: r.width, height: r.height, codecs: r.name === '360p' ? 'avc1.64001e' : 'avc1.64001f', init_bytes: chunk.index === 0 ? 900 : 0, segment_bytes: seg(bytes) });
  const fullFrames = chunk.end_frame == null ? 900 - chunk.start_frame : chunk.end_frame - chunk.start_frame;
  return {
    frames: frames ?? fullFrames,
    segments: n,
    rungs: [rungReport(rungs[0], 40000), rungReport(rungs[1], 100000)],
    ...(chunk.audio ? { audio: { name: 'audio', codecs: 'mp4a.40.2', init_bytes: 700, segment_bytes: Array.from({ length: 9 }, () => 64000) } } : {}),
    poster: chunk.index === 0,
  };
}
const complete = (spec, chunk, opts) => api.internal(`/internal/jobs/${spec.job_id}/complete`, { lease_id: spec.lease_id, ...ids(spec), chunk: report(chunk, opts) });

/** Keeps leases alive as live transcoders would, until stopped. */
function keepAlive(specs) {
  const live = new Set(specs);
  const timer = setInterval(() => { for (const s of live) beat(s).catch(() => {}); }, 300);
  return { live, stop: () => clearInterval(timer) };
}

const hls = (path) => api.get(path, { headers: freshIp() });
/** The segment URIs a media playlist lists. */
const segmentsOf = (text) => text.split('\n').filter((l) => l.endsWith('.m4s'));

test('a chunked job: plan, tasks leased by other transcoders, playlists grow as a contiguous prefix, done with VOD and measured bandwidth', async () => {
  await notify('vchunked');
  const whole = await leaseWhole('vchunked');
  assert.equal(whole.chunk_from_s, 20, 'a whole-job lease says from which length to plan');
  assert.equal(whole.chunk, undefined);
  const alive = keepAlive([whole]);
  try {
    // A transcoder that predates chunks finds nothing while only tasks wait.
    const planned = await plan(whole);
    assert.equal(planned.status, 200, planned.text);
    const c0 = planned.json.chunk;
    assert.deepEqual([c0.index, c0.count, c0.start_frame, c0.end_frame, c0.first_seq, c0.audio], [0, 5, 0, 15, 0, true]);
    // A repeat by the same lease (its answer was lost): the same chunk, nothing queued twice.
    const again = await plan(whole);
    assert.deepEqual(again.json.chunk, c0);
    assert.equal(await lease('t-old'), null, 'no task for a transcoder without chunks');
    assert.equal(await lease('t-old', { chunks: false }), null);

    // Tasks 1..4 go to the chunk-capable transcoders, each once, in order, under the run's output.
    const tasks = [];
    for (let i = 1; i <= 4; i++) {
      const t = await lease(`t-${i}`, { chunks: true });
      assert.ok(t, `task ${i} leased`);
      assert.equal(t.chunk.index, i);
      assert.equal(t.chunk.first_seq, CHUNKS[i].first_seq);
      assert.equal(t.chunk.audio, false);
      assert.equal(t.output_id, whole.output_id, 'every task writes under the one output');
      assert.notEqual(t.lease_id, whole.lease_id);
      assert.equal(t.chunk_from_s, undefined, 'a task is never planned again');
      tasks.push(t);
      alive.live.add(t);
    }
    assert.equal(tasks[3].chunk.end_frame, null, 'the last chunk runs to the end of the file');
    assert.equal(await lease('t-5', { chunks: true }), null, 'every task is out');

    // Task 0 published its first segment on every rung and the audio: playable.
    assert.equal((await beat(whole, { published_segments: 1, published_audio_segments: 1, playable: true })).status, 200);
    const pb = await api.get(`/playback-url?app_id=${APP}&video_id=vchunked`, { headers: freshIp() });
    assert.equal(pb.status, 200, pb.text);
    const base = `/hls/${APP}/vchunked/${whole.output_id}`;
    const master = await hls(`${base}/master.m3u8`);
    assert.equal(master.status, 200, master.text);
    assert.match(master.headers.get('content-type'), /mpegurl/);
    assert.match(master.text, /#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"[^\n]*URI="audio\/index\.m3u8"/);
    assert.equal(master.text.match(/#EXT-X-STREAM-INF:[^\n]*AUDIO="audio"/g)?.length, 2, master.text);
    const planned360 = Number(master.text.match(/BANDWIDTH=(\d+)[^\n]*\n360p\/index\.m3u8/)[1]);

    const playlist = async (rung = '360p') => {
      const r = await hls(`${base}/${rung}/index.m3u8`);
      assert.equal(r.status, 200, r.text);
      return r.text;
    };
    let p = await playlist();
    assert.match(p, /#EXT-X-PLAYLIST-TYPE:EVENT/);
    assert.doesNotMatch(p, /#EXT-X-ENDLIST/);
    assert.deepEqual(segmentsOf(p), ['00000.m4s']);
    assert.deepEqual(segmentsOf(await playlist('audio')), ['00000.m4s']);
    // The audio group's files (and every rung's) come from storage, as the transcoder wrote them.
    const bucket = await mf.getR2Bucket('MEDIA_BUCKET');
    for (const file of ['audio/init.mp4', 'audio/00000.m4s', '360p/00000.m4s']) {
      await bucket.put(`${whole.output_prefix}${file}`, new Uint8Array(64).fill(1), { httpMetadata: { contentType: file.startsWith('audio') ? 'audio/mp4' : 'video/iso.segment' } });
      const got = await hls(`${base}/${file}`);
      assert.equal(got.status, 200, `${file}: ${got.text}`);
      assert.equal(got.text.length, 64);
    }
    assert.equal((await hls(`${base}/audio/00001.m4s`)).status, 404, 'not uploaded yet');

    // Task 2 is ahead of task 1: nothing past the gap is listed.
    assert.equal((await beat(tasks[1], { published_segments: 2 })).status, 200);
    assert.deepEqual(segmentsOf(await playlist()), ['00000.m4s']);
    // Task 0 is done (its chunk), task 1 publishes one of its two segments.
    assert.equal((await complete(whole, c0)).status, 200);
    alive.live.delete(whole);
    assert.equal((await beat(tasks[0], { published_segments: 1 })).status, 200);
    assert.deepEqual(segmentsOf(await playlist()), ['00000.m4s', '00001.m4s']);
    // Task 1 done: its segments, then task 2's published ones follow.
    const r1 = await complete(tasks[0], tasks[0].chunk);
    assert.equal(r1.status, 200, r1.text);
    assert.equal(r1.json.status, 'processing', 'not done before every task is');
    alive.live.delete(tasks[0]);
    p = await playlist('720p');
    assert.deepEqual(segmentsOf(p), ['00000.m4s', '00001.m4s', '00002.m4s', '00003.m4s', '00004.m4s']);
    assert.doesNotMatch(p, /#EXT-X-DISCONTINUITY/, 'stitched, no discontinuities');

    // Progress is the share of chunk work done, never going back.
    const status = await api.get(`/job-status?app_id=${APP}&video_id=vchunked`, { headers: freshIp() });
    assert.equal(status.json.status, 'processing');
    assert.ok(status.json.progress > 0 && status.json.progress < 100, String(status.json.progress));
    for (const t of [whole, ...tasks]) assert.ok(!status.text.includes(t.lease_id), 'no lease id in a public read');

    for (const t of tasks.slice(1)) {
      const r = await complete(t, t.chunk);
      assert.equal(r.status, 200, r.text);
      alive.live.delete(t);
    }
    const done = await api.get(`/job-status?app_id=${APP}&video_id=vchunked`, { headers: freshIp() });
    assert.equal(done.json.status, 'done', done.text);
    assert.equal(done.json.progress, 100);
    // A repeated complete by a task's lease: the same answer, nothing changes.
    assert.equal((await complete(tasks[3], tasks[3].chunk)).status, 200);

    p = await playlist();
    assert.match(p, /#EXT-X-PLAYLIST-TYPE:VOD/);
    assert.match(p, /#EXT-X-ENDLIST/);
    assert.deepEqual(segmentsOf(p), Array.from({ length: 9 }, (_, i) => `${String(i).padStart(5, '0')}.m4s`));
    const audio = await playlist('audio');
    assert.match(audio, /#EXT-X-ENDLIST/);
    assert.equal(segmentsOf(audio).length, 9);
    const vod = await hls(`${base}/master.m3u8`);
    const measured360 = Number(vod.text.match(/BANDWIDTH=(\d+)[^\n]*\n360p\/index\.m3u8/)[1]);
    assert.notEqual(measured360, planned360, 'the measured bandwidth replaces the planned one');
    const inspect = await api.internal('/internal/jobs/inspect', { app_id: APP, video_id: 'vchunked' });
    const r360 = inspect.json.result.renditions.find((r) => r.name === '360p');
    assert.ok(r360.bandwidth > 0 && measured360 >= r360.bandwidth, `${measured360} vs ${r360.bandwidth}`);
    // Made private, the same rendered playlists play through a token (/hls/t/{token}/...).
    const access = await api.post(`/videos/${APP}/vchunked/access`, { require_signed_urls: true }, { key: API_KEY, headers: freshIp() });
    assert.equal(access.status, 200, access.text);
    assert.equal((await hls(`${base}/master.m3u8`)).status, 403);
    const minted = await api.post('/playback-tokens', { app_id: APP, video_id: 'vchunked' }, { key: API_KEY, headers: freshIp() });
    assert.equal(minted.status, 200, minted.text);
    const signed = await hls(`/hls/t/${minted.json.token}/master.m3u8`);
    assert.equal(signed.status, 200, signed.text);
    assert.equal(signed.text, vod.text);
    assert.match(signed.headers.get('cache-control'), /^private/);
    const signedAudio = await hls(`/hls/t/${minted.json.token}/audio/index.m3u8`);
    assert.equal(signedAudio.text, audio);
    // The rendered playlists are no objects: no playlist was ever stored.
    const stored = (await (await mf.getR2Bucket('MEDIA_BUCKET')).list({ prefix: `hls/${APP}/vchunked/` })).objects;
    assert.deepEqual(stored.filter((o) => o.key.endsWith('.m3u8')), []);
  } finally {
    alive.stop();
  }
});

test('a chunk task whose lease expires is leased again alone; the others keep theirs', async () => {
  await notify('vexpire');
  const whole = await leaseWhole('vexpire');
  const alive = keepAlive([whole]);
  try {
    const c0 = (await plan(whole)).json.chunk;
    const tasks = [];
    for (let i = 1; i <= 4; i++) tasks.push(await lease(`t-${i}`, { chunks: true }));
    // Task 2's transcoder dies: its beats stop. The others beat on.
    for (const t of tasks) if (t.chunk.index !== 2) alive.live.add(t);
    let again = null;
    for (let i = 0; i < 20 && !again; i++) again = await lease('t-new', { chunks: true, waitMs: 1000 });
    assert.ok(again, 'the expired task is queued again');
    assert.equal(again.chunk.index, 2, 'only that task');
    assert.equal(again.attempt, 2);
    assert.equal(again.output_id, whole.output_id);
    assert.equal(await lease('t-other', { chunks: true }), null, 'nothing else was re-queued');
    // The dead holder's late beat is refused; the live ones are not.
    const late = await beat(tasks[1]);
    assert.equal(late.status, 409);
    assert.equal(errorCode(late), 'lease_lost');
    assert.equal((await beat(tasks[0])).status, 200);
    alive.live.add(again);
    assert.equal((await complete(whole, c0)).status, 200);
    alive.live.delete(whole);
    for (const t of [tasks[0], again, tasks[2], tasks[3]]) {
      assert.equal((await complete(t, t.chunk)).status, 200);
      alive.live.delete(t);
    }
    const done = await api.get(`/job-status?app_id=${APP}&video_id=vexpire`, { headers: freshIp() });
    assert.equal(done.json.status, 'done', done.text);
  } finally {
    alive.stop();
  }
});

for (const how of ['cancel', 'delete']) {
  test(`${how} ends every chunk task: each holder gets 409 lease_lost, no task is offered again`, async () => {
    const video = `v${how}`;
    await notify(video);
    const whole = await leaseWhole(video);
    const alive = keepAlive([whole]);
    let holders;
    try {
      assert.equal((await plan(whole)).status, 200);
      const t1 = await lease('t-1', { chunks: true });
      const t2 = await lease('t-2', { chunks: true });
      holders = [whole, t1, t2];
      alive.live.add(t1);
      alive.live.add(t2);
    } finally {
      alive.stop();
    }
    const r = how === 'cancel'
      ? await api.post('/cancel-job', { app_id: APP, video_id: video }, { key: API_KEY, headers: freshIp() })
      : await api.call('DELETE', `/videos?app_id=${APP}&video_id=${video}`, { key: API_KEY, headers: freshIp() });
    assert.equal(r.status, 200, r.text);
    for (const h of holders) {
      const hb = await beat(h);
      assert.equal(hb.status, 409, `task ${h.chunk?.index ?? 0}: ${hb.text}`);
      assert.equal(errorCode(hb), 'lease_lost');
    }
    assert.equal(await lease('t-3', { chunks: true }), null, 'the queued tasks are gone from the shard');
  });
}

test('a short source, or a job that asks for a download, stays single-pass', async () => {
  await notify('vshort');
  const whole = await leaseWhole('vshort');
  const r = await plan(whole, 10);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.chunk, null, 'shorter than CHUNK_FROM_S');
  const other = await api.internal(`/internal/jobs/${whole.job_id}/plan`, { lease_id: 'lease_other', ...ids(whole), geometry, t0_s: 0, duration_s: 30, has_audio: false });
  assert.equal(other.status, 409, 'only the lease holder plans');
  assert.equal(errorCode(other), 'lease_lost');
  await api.internal(`/internal/jobs/${whole.job_id}/fail`, { lease_id: whole.lease_id, ...ids(whole), message: 'test over', retryable: false });

  const bucket = await mf.getR2Bucket('MEDIA_BUCKET');
  const raw = `raw/${APP}/vdownload/source.mp4`;
  await bucket.put(raw, new Uint8Array(1000).fill(7), { httpMetadata: { contentType: 'video/mp4' } });
  const n = await api.post('/notify-upload-complete', { app_id: APP, video_id: 'vdownload', raw_key: raw, content_type: 'video/mp4', download: true }, { key: API_KEY, headers: freshIp() });
  assert.equal(n.status, 202, n.text);
  const dl = await leaseWhole('vdownload');
  assert.equal(dl.chunk_from_s, undefined, 'a download keeps the job single-pass');
  const p = await plan(dl);
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.chunk, null);
  await api.internal(`/internal/jobs/${dl.job_id}/fail`, { lease_id: dl.lease_id, ...ids(dl), message: 'test over', retryable: false });
});
