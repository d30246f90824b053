// The "load" group of reliability/run.mjs: a bounded wrk run (Debian's wrk,
// installed by scripts/bootstrap.sh) on 127.0.0.1 against the public read
// routes a player and a status page hammer: /health as the baseline,
// /job-status of a finished job, and a media segment of that job through the
// HLS route. Every answer must be 2xx/3xx, with no socket errors or
// timeouts; the rows carry requests per second and p50/p99 latency.
import { join } from 'node:path';
import { makeClip, uploadVideo, pollJob } from '../devkit/client.mjs';
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

export async function load({ platform, scratch, soak, say }) {
  const seconds = soak ? 60 : 10;
  say('load: a finished job to read…');
  const clip = makeClip(join(scratch, 'load-clip.mp4'), { size: '640x360', seconds: 4 });
  const app = 'loadtest';
  const video = `v${Date.now()}`;
  const notified = await uploadVideo(platform, app, video, clip);
  if (notified.status !== 202) throw new Error(`notify: ${notified.status} ${notified.text}`);
  const job = (await pollJob(platform, app, video, { timeoutMs: 120000 })).at(-1);
  if (job.status !== 'done') throw new Error(`the job ended ${job.status}: ${job.error}`);
  const rung = new URL(job.renditions[0].url).pathname.replace(/index\.m3u8$/, '');

  const targets = [
    { name: '/health (baseline)', url: `${platform.video}/health`, type: 'application/json' },
    { name: '/job-status of a done job', url: `${platform.video}/job-status?app_id=${app}&video_id=${video}`, type: 'application/json' },
    { name: `HLS media segment ${job.renditions[0].name}/00000.m4s`, url: `${platform.video}${rung}00000.m4s`, type: 'video/iso.segment' },
  ];
  const rows = [];
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
