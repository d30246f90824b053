// The "load" group of reliability/run.mjs: a bounded wrk run (Debian's wrk,
// installed by scripts/bootstrap.sh) on 127.0.0.1 against the public read
// routes a player and a status page hammer: /health as the baseline,
// /job-status of a finished job, and a media segment of that job through the
// HLS route. Every answer must be 2xx/3xx, with no socket errors or
// timeouts; the rows carry requests per second and p50/p99 latency.
//
// Before the load, what public reads cost (issue 11, items 10 and 11):
// /job-status hammered while a job runs, counting the answers that reached
// the job store (`Server-Timing: jobstore;desc="video"`) and any that show
// internals; and the storage operations of every kind of served answer
// (`Server-Timing: storage;desc="ops=N"`), cold and from the edge cache.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { makeClip, uploadVideo, pollJob, freshIp } from '../devkit/client.mjs';
import { runWrk } from '../devkit/wrk.mjs';

const CONNECTIONS = 4;
const THREADS = 2;
const TIMEOUT_S = 5;

/** One answer of the route before the load, to know it is the right one (status, type, size). */
async function probe(url, type) {
  const res = await fetch(url);
  const body = Buffer.from(await res.arrayBuffer());
  const got = res.headers.get('content-type') ?? '';
  if (res.status !== 200 || !got.startsWith(type) || body.length === 0) {
    throw new Error(`${url} answers ${res.status} ${got} (${body.length} bytes) before the load; expected 200 ${type}`);
  }
  return `${res.status} ${got.split(';')[0]}, ${body.length} bytes`;
}

const opsOf = (res) => Number(/storage;desc="ops=(\d+)"/.exec(res.headers.get('server-timing') ?? '')?.[1] ?? NaN);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** 200 /job-status reads of a job while it runs: how many reached the job store, and whether any showed internals. */
async function hammerStatus(platform, scratch, say) {
  say('load: 200 /job-status reads of a running job…');
  const clip = makeClip(join(scratch, 'hammer-clip.mp4'), { size: '1280x720', seconds: 20 });
  const app = 'loadtest';
  const video = `hammer${Date.now()}`;
  const notified = await uploadVideo(platform, app, video, clip);
  if (notified.status !== 202) throw new Error(`notify: ${notified.status} ${notified.text}`);
  await pollJob(platform, app, video, { done: (s) => ['processing', 'done', 'error'].includes(s.status), timeoutMs: 60000, everyMs: 200 });
  const read = async (tally) => {
    const r = await fetch(`${platform.video}/job-status?app_id=${app}&video_id=${video}`, { headers: { 'cf-connecting-ip': '198.51.100.20' } });
    const text = await r.text();
    const source = /jobstore;desc="(\w+)"/.exec(r.headers.get('server-timing') ?? '')?.[1] ?? 'none';
    tally.sources[source] = (tally.sources[source] ?? 0) + 1;
    const status = r.status === 200 ? JSON.parse(text).status : r.status;
    tally.statuses[status] = (tally.statuses[status] ?? 0) + 1;
    // Internals: a source key, panic text or a source path (the public HLS URLs aside).
    if (/raw\/|panicked|\.rs:\d/.test(text)) tally.leaks++;
  };
  // As pollers do, one after another; then in bursts of 20 at once.
  const polled = { sources: {}, statuses: {}, leaks: 0 };
  let started = Date.now();
  for (let i = 0; i < 200; i++) await read(polled);
  const seconds = (Date.now() - started) / 1000;
  const burst = { sources: {}, statuses: {}, leaks: 0 };
  started = Date.now();
  for (let wave = 0; wave < 10; wave++) await Promise.all(Array.from({ length: 20 }, () => read(burst)));
  const burstSeconds = (Date.now() - started) / 1000;
  const queue = polled.sources.video ?? 0;
  return {
    check: '200 /job-status reads of a running job: few reach the job store, none shows internals',
    // Bounded by time (a 1 s edge-cache lifetime) and by the job's own writes (each heartbeat drops the copy here), not by readers.
    ok: queue <= 2 * Math.ceil(seconds) + 2 && polled.leaks + burst.leaks === 0 && !polled.statuses[429] && !burst.statuses[429],
    detail: `one after another: ${seconds.toFixed(1)} s, job ${JSON.stringify(polled.statuses)}, answered from ${JSON.stringify(polled.sources)}: ${queue} of 200 reached the video's job object; in bursts of 20: ${burstSeconds.toFixed(1)} s, from ${JSON.stringify(burst.sources)}: ${burst.sources.video ?? 0} of 200 (before: 200 of 200 each); answers with a storage key or panic text: ${polled.leaks + burst.leaks}`,
  };
}

/** The storage operations of each kind of served answer: HLS and images, cold and from the edge cache. */
async function storageOps(platform, job, rung, say) {
  say('load: storage operations per served request…');
  const seg = `${platform.video}${rung}00001.m4s`;
  const playlist = job.renditions[0].url;
  const seen = [];
  const ask = async (name, url, init = {}) => {
    const r = await fetch(url, init);
    await r.arrayBuffer();
    seen.push({ name, status: r.status, ops: opsOf(r) });
    return r;
  };
  const first = await ask('segment GET cold', seg);
  await sleep(300);
  await ask('segment GET repeat', seg);
  await ask('segment Range repeat', seg, { headers: { range: 'bytes=0-99' } });
  await ask('segment 304 repeat', seg, { headers: { 'if-none-match': first.headers.get('etag') } });
  await sleep(2100);
  await ask('playlist Range cold', playlist, { headers: { range: 'bytes=0-6' } });
  await ask('playlist 416 cold', playlist, { headers: { range: 'bytes=99999999-' } });
  await ask('playlist HEAD cold', playlist, { method: 'HEAD' });
  const png = execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'color=c=blue:s=16x16', '-frames:v', '1', '-f', 'image2', '-c:v', 'png', '-']);
  const upload = await fetch(`${platform.image}/upload?app_id=loadtest&image_id=ops${Date.now()}`, {
    method: 'POST',
    headers: { 'x-api-key': platform.apiKey, 'content-type': 'image/png', ...freshIp() },
    body: png,
  });
  if (upload.status !== 201) throw new Error(`/upload: ${upload.status} ${await upload.text()}`);
  const img = (await upload.json()).asset_url;
  const imgFirst = await ask('image GET cold', img);
  await sleep(300);
  await ask('image GET repeat', img);
  await ask('image 304 repeat', img, { headers: { 'if-none-match': imgFirst.headers.get('etag') } });
  const cold = seen.filter((s) => s.name.includes('cold'));
  const repeat = seen.filter((s) => s.name.includes('repeat'));
  return {
    check: 'storage operations per served request: at most 1 cold, 0 from the edge cache',
    ok: cold.every((s) => s.ops <= 1) && repeat.every((s) => s.ops === 0),
    detail: `${seen.map((s) => `${s.name} ${s.status}: ${s.ops}`).join('; ')} (before: 2 per GET, a HEAD then a GET, and 1 per HEAD, 304 or 416; no edge cache)`,
  };
}

export async function load({ platform, scratch, soak, say }) {
  const seconds = soak ? 60 : 5;
  say('load: a finished job to read…');
  const clip = makeClip(join(scratch, 'load-clip.mp4'), { size: '640x360', seconds: 4 });
  const app = 'loadtest';
  const video = `v${Date.now()}`;
  const notified = await uploadVideo(platform, app, video, clip);
  if (notified.status !== 202) throw new Error(`notify: ${notified.status} ${notified.text}`);
  const job = (await pollJob(platform, app, video, { timeoutMs: 120000 })).at(-1);
  if (job.status !== 'done') throw new Error(`the job ended ${job.status}: ${job.error}`);
  const rung = new URL(job.renditions[0].url).pathname.replace(/index\.m3u8$/, '');
  const costs = [await hammerStatus(platform, scratch, say), await storageOps(platform, job, rung, say)];

  const targets = [
    { name: '/health (baseline)', url: `${platform.video}/health`, type: 'application/json' },
    { name: '/job-status of a done job', url: `${platform.video}/job-status?app_id=${app}&video_id=${video}`, type: 'application/json' },
    { name: `HLS media segment ${job.renditions[0].name}/00000.m4s`, url: `${platform.video}${rung}00000.m4s`, type: 'video/iso.segment' },
  ];
  const rows = [...costs];
  for (const t of targets) {
    const before = await probe(t.url, t.type);
    say(`load: wrk ${seconds} s on ${t.name}…`);
    const r = await runWrk(t.url, { seconds, connections: CONNECTIONS, threads: THREADS, timeoutS: TIMEOUT_S });
    const ok = r.requests > 0 && Number.isFinite(r.rps) && Number.isFinite(r.p99) && r.errors === 0;
    rows.push({
      check: `wrk ${t.name}: zero errors`,
      ok,
      detail: `${r.requests} requests in ${r.seconds.toFixed(1)} s, ${THREADS} threads × ${CONNECTIONS} connections: ${r.rps.toFixed(0)} rps, p50 ${r.p50.toFixed(2)} ms, p90 ${r.p90.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms; non-2xx/3xx ${r.non2xx3xx}, socket errors connect ${r.socket.connect}/read ${r.socket.read}/write ${r.socket.write}/timeout ${r.socket.timeout} (timeout ${TIMEOUT_S} s); first answer ${before}`,
    });
  }
  return rows;
}
