// Crashes and faults, on the real parts: a transcoder killed with -9 in the
// middle of a job, two transcoders sharing one queue, storage going away
// while outputs upload, the video service restarting, duplicate notifies
// racing, and a work disk too small for the upload. Nothing may be lost or
// done twice.
import { readFileSync, mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { makeClip, uploadVideo, pollJob, jobStatus, postJson } from '../devkit/client.mjs';

const APP = 'faults';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Fetches a finished job's ladder through the playback route and decodes every rung. */
async function ladderPlays(status, seconds, scratch) {
  const master = await (await fetch(status.playback_url)).text();
  const rungs = master.split('\n').filter((l) => l && !l.startsWith('#'));
  for (const rung of rungs) {
    const url = new URL(rung, status.playback_url);
    const playlist = await (await fetch(url)).text();
    const dir = join(scratch, `ladder-${status.video_id}`, rung.split('/')[0]);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'index.m3u8'), playlist);
    for (const f of ['init.mp4', ...playlist.split('\n').filter((l) => l && !l.startsWith('#'))]) {
      const r = await fetch(new URL(f, url));
      if (r.status !== 200) return `${rung} ${f}: ${r.status}`;
      writeFileSync(join(dir, f), Buffer.from(await r.arrayBuffer()));
    }
    const d = Number(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', join(dir, 'index.m3u8')]).toString());
    if (Math.abs(d - seconds) > 0.2) return `${rung} lasts ${d} s, not ${seconds}`;
    execFileSync('ffmpeg', ['-v', 'error', '-xerror', '-i', join(dir, 'index.m3u8'), '-f', 'null', '-']);
  }
  return rungs.length ? null : 'no rungs';
}

/** Job starts and ends per transcoder, from their JSON logs. */
function jobEvents(logFile) {
  const events = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    const e = JSON.parse(line);
    const msg = e.fields?.message;
    if (msg === 'job started' || msg === 'job done') events.push({ msg, job: e.span?.job_id, t: Date.parse(e.timestamp) });
    if ((msg === 'chunk started' || msg === 'chunk done') && Number.isInteger(e.fields.chunk)) events.push({ msg, job: e.span?.job_id, chunk: e.fields.chunk, t: Date.parse(e.timestamp) });
  }
  return events;
}

export async function faults({ platform, scratch, say }) {
  const rows = [];
  const clip = (name, o) => makeClip(join(scratch, name), o);

  // 1. Concurrent duplicate notifies: one job.
  {
    const file = clip('dup.mp4', { size: '320x240', seconds: 2 });
    const bytes = readFileSync(file);
    const presign = await postJson(`${platform.video}/generate-upload-url`, { app_id: APP, video_id: 'dup', content_type: 'video/mp4', size: bytes.length }, platform.apiKey);
    await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body: bytes });
    const notifies = await Promise.all(Array.from({ length: 12 }, () =>
      postJson(`${platform.video}/notify-upload-complete`, { app_id: APP, video_id: 'dup', raw_key: presign.json.raw_key, content_type: 'video/mp4' }, platform.apiKey)));
    const ids = new Set(notifies.map((n) => n.json?.job_id));
    const created = notifies.filter((n) => n.status === 202).length;
    const done = (await pollJob(platform, APP, 'dup')).at(-1);
    rows.push({ check: '12 concurrent notifies make one job', ok: ids.size === 1 && created === 1 && done.status === 'done' && done.attempts === 1, detail: `${ids.size} job id, ${created}x202 + ${notifies.length - created}x200, ${done.status} after ${done.attempts} attempt` });
  }

  // 2. Two transcoders, ten jobs: each done once, never by both.
  {
    const second = platform.addTranscoder('second');
    const files = Array.from({ length: 10 }, (_, i) => clip(`pair-${i}.mp4`, { size: '640x360', seconds: 3 }));
    await Promise.all(files.map((f, i) => uploadVideo(platform, APP, `pair-${i}`, f)));
    const finals = await Promise.all(files.map((_, i) => pollJob(platform, APP, `pair-${i}`).then((s) => s.at(-1))));
    const jobIds = new Set(finals.map((s) => s.job_id));
    const byWorker = Object.fromEntries(['transcoder', 'second'].map((name) => [name, jobEvents(join(platform.logs, `${name}.log`)).filter((e) => jobIds.has(e.job))]));
    const starts = [...byWorker.transcoder, ...byWorker.second].filter((e) => e.msg === 'job started');
    const perJob = new Map();
    for (const e of starts) perJob.set(e.job, (perJob.get(e.job) ?? 0) + 1);
    const doneOnce = finals.every((s) => s.status === 'done' && s.attempts === 1);
    const startedOnce = [...perJob.values()].every((n) => n === 1) && perJob.size === 10;
    const counts = Object.entries(byWorker).map(([w, ev]) => `${w} ${ev.filter((e) => e.msg === 'job done').length}`).join(', ');
    rows.push({ check: 'two transcoders, 10 jobs: each done exactly once, by one', ok: doneOnce && startedOnce, detail: `${finals.filter((s) => s.status === 'done').length}/10 done, attempts ${[...new Set(finals.map((s) => s.attempts))].join('/')}; jobs done: ${counts}` });
    await second.stop();
  }

  // 3. kill -9 in the middle of a job: after a restart the job is re-leased and completes.
  {
    const file = clip('crash.mp4', { size: '1280x720', seconds: 12 });
    await uploadVideo(platform, APP, 'crash', file);
    await pollJob(platform, APP, 'crash', { done: (s) => s.status === 'processing' && s.progress >= 10, timeoutMs: 60000 });
    const victim = platform.transcoders.find((t) => t.name === 'transcoder' && !t.exited);
    process.kill(victim.pid, 'SIGKILL');
    say(`killed the transcoder (pid ${victim.pid}) with -9 mid-job`);
    await sleep(1000);
    platform.addTranscoder('restarted');
    const final = (await pollJob(platform, APP, 'crash')).at(-1);
    const broken = final.status === 'done' ? await ladderPlays(final, 12, scratch) : final.error;
    rows.push({ check: 'kill -9 mid-job: re-leased after restart, completes', ok: final.status === 'done' && final.attempts === 2 && !broken, detail: `${final.status} after ${final.attempts} attempts; ${broken ?? 'every rung decodes, 12 s'}; first attempt: ${final.last_error ?? '-'}` });
  }

  // 4. Restart of the video service: queued and finished jobs are still there.
  {
    const doneBefore = await jobStatus(platform, APP, 'dup');
    for (const t of platform.transcoders.filter((x) => !x.exited)) await t.stop();
    // A stopped transcoder's last long-poll (LEASE_WAIT_MS, 2 s here) may
    // still be open at the queue; let it end so the job stays queued.
    await sleep(2500);
    await uploadVideo(platform, APP, 'waiting', clip('waiting.mp4', { size: '320x240', seconds: 2 }));
    const queuedBefore = await jobStatus(platform, APP, 'waiting');
    await platform.restartVideoService();
    const doneAfter = await jobStatus(platform, APP, 'dup');
    const queuedAfter = await jobStatus(platform, APP, 'waiting');
    const playback = await fetch(`${platform.video}/playback-url?app_id=${APP}&video_id=dup`);
    platform.addTranscoder('after-restart');
    const finished = (await pollJob(platform, APP, 'waiting')).at(-1);
    const kept = doneAfter.status === 'done' && doneAfter.job_id === doneBefore.job_id && queuedBefore.status === 'queued' && queuedAfter.status === 'queued' && queuedAfter.job_id === queuedBefore.job_id;
    rows.push({ check: 'video service restart: queued and done jobs kept', ok: kept && playback.status === 200 && finished.status === 'done', detail: `done job ${doneBefore.status} -> ${doneAfter.status} (same id: ${doneAfter.job_id === doneBefore.job_id}), queued job ${queuedBefore.status} -> ${queuedAfter.status} (same id: ${queuedAfter.job_id === queuedBefore.job_id}) then ${finished.status}, playback-url ${playback.status}` });
  }

  // 5. Storage stops while outputs upload, then comes back: the job retries and completes.
  {
    const file = clip('storage.mp4', { size: '1280x720', seconds: 20 });
    await uploadVideo(platform, APP, 'storage', file);
    await pollJob(platform, APP, 'storage', { done: (s) => s.playable, timeoutMs: 60000 });
    await platform.stopStorage();
    say('stopped Garage while the job uploads its segments');
    const during = await pollJob(platform, APP, 'storage', { done: (s) => s.status !== 'processing' || s.attempts > 1, timeoutMs: 90000 });
    await sleep(2000);
    await platform.startStorage();
    say('started Garage again');
    const final = (await pollJob(platform, APP, 'storage', { timeoutMs: 300000 })).at(-1);
    const broken = final.status === 'done' ? await ladderPlays(final, 20, scratch) : final.error;
    rows.push({
      check: 'storage down mid-upload, then back: retried, completes',
      ok: final.status === 'done' && final.attempts >= 2 && !broken,
      detail: `${final.status} after ${final.attempts} attempts; failed attempt: ${(during.at(-1).last_error ?? final.last_error ?? '-').slice(0, 110)}; ${broken ?? 'every rung decodes'}`,
    });
  }

  // 6. The work disk: a transcoder whose disk (a 2 MB tmpfs of its own) cannot
  //    hold the upload refuses it as its own, retryable fault; one with room
  //    finishes it; stale spools of a killed run are removed at start-up.
  {
    for (const t of platform.transcoders.filter((x) => !x.exited)) await t.stop();
    await sleep(2500);
    const tiny = join(scratch, 'tiny-work');
    mkdirSync(tiny, { recursive: true });
    const cramped = platform.addTranscoder('tiny-disk', { WORK_DIR: tiny }, ['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c', `mount -t tmpfs -o size=2m tmpfs ${tiny} && exec "$0" "$@"`]);
    const file = clip('disk.mp4', { size: '640x360', seconds: 4 });
    await uploadVideo(platform, APP, 'disk', file);
    const log = () => readFileSync(join(platform.logs, 'tiny-disk.log'), 'utf8');
    let refusal = '';
    for (let i = 0; i < 120 && !refusal; i++) {
      refusal = log().split('\n').find((l) => l.includes('"job failed"')) ?? '';
      if (!refusal) await sleep(500);
    }
    const during = await jobStatus(platform, APP, 'disk');
    await cramped.stop();
    await sleep(2500);
    const roomyWork = join(scratch, 'roomy-work');
    mkdirSync(join(roomyWork, 'job_killed'), { recursive: true });
    writeFileSync(join(roomyWork, 'job_killed', 'source-7.spool'), Buffer.alloc(3 << 20));
    writeFileSync(join(roomyWork, 'notes.txt'), 'not a spool');
    platform.addTranscoder('roomy', { WORK_DIR: roomyWork });
    const final = (await pollJob(platform, APP, 'disk')).at(-1);
    const message = refusal.match(/the transcoder's work disk[^"]*/)?.[0] ?? '(no refusal logged)';
    rows.push({
      check: 'work disk smaller than the upload: retryable, then done elsewhere',
      ok: /work disk \(WORK_DIR\) has \d+ MB free/.test(message) && /"retryable":true/.test(refusal) && during.status !== 'error' && final.status === 'done',
      detail: `${(file && readFileSync(file).length / 1e6).toFixed(1)} MB upload on a 2 MB disk: "${message.slice(0, 90)}"; then ${final.status} after ${final.attempts} attempt(s)`,
    });
    const stale = existsSync(join(roomyWork, 'job_killed'));
    rows.push({ check: 'stale spools removed at start-up, nothing else', ok: !stale && existsSync(join(roomyWork, 'notes.txt')), detail: `3 MB spool of a killed run ${stale ? 'still there' : 'removed'}; other files kept` });
  }

  // 7. A chunked job on two transcoders, one killed with -9 mid-chunk: only
  //    its chunk is leased again, and the stitched video is whole.
  {
    for (const t of platform.transcoders.filter((x) => !x.exited)) await t.stop();
    await sleep(2500);
    const names = ['chunks-a', 'chunks-b'];
    for (const name of names) platform.addTranscoder(name);
    const seconds = 60; // over CHUNK_FROM_S (run.mjs): planned as chunks of CHUNK_S
    const file = clip('chunked.mp4', { size: '640x360', seconds });
    await uploadVideo(platform, APP, 'chunked', file);
    const logOf = (name) => join(platform.logs, `${name}.log`);
    let victim;
    let killed;
    for (let i = 0; i < 240 && !victim; i++) {
      for (const name of names) {
        const open = jobEvents(logOf(name)).filter((e) => e.chunk !== undefined);
        const last = open.at(-1);
        if (last?.msg === 'chunk started' && last.chunk >= 1) { victim = name; killed = last.chunk; break; }
      }
      if (!victim) await sleep(250);
    }
    let detail;
    let ok = false;
    if (!victim) {
      detail = `no transcoder started a chunk past the first (${(await jobStatus(platform, APP, 'chunked')).status})`;
    } else {
      const t = platform.transcoders.find((x) => x.name === victim && !x.exited);
      process.kill(t.pid, 'SIGKILL');
      say(`killed ${victim} (pid ${t.pid}) with -9 in chunk ${killed}`);
      const final = (await pollJob(platform, APP, 'chunked', { timeoutMs: 300000 })).at(-1);
      const events = names.flatMap((n) => jobEvents(logOf(n)).filter((e) => e.msg === 'chunk started' && e.job === final.job_id));
      const starts = new Map();
      for (const e of events) starts.set(e.chunk, (starts.get(e.chunk) ?? 0) + 1);
      const again = [...starts].filter(([, n]) => n > 1).map(([c]) => c);
      const broken = final.status === 'done' ? (await ladderPlays(final, seconds, scratch)) ?? (await audioPlays(final, seconds, scratch)) : final.error;
      const contiguous = final.status === 'done' ? await contiguousSegments(final) : 'not done';
      ok = final.status === 'done' && !broken && !contiguous && again.length === 1 && again[0] === killed && starts.size >= 3;
      detail = `${starts.size} chunks; chunk ${killed} killed on ${victim}, chunks started more than once: [${again.join(', ')}]; ${final.status}; ${broken ?? `every rung and the audio decode, ${seconds} s`}; ${contiguous ?? 'segments contiguous'}`;
    }
    rows.push({ check: 'kill -9 of one of two transcoders mid-chunk: that chunk alone re-leased, video whole', ok, detail });
  }
  return rows;
}

/** The audio rendition of a finished chunked job decodes end to end and lasts `seconds`. */
async function audioPlays(status, seconds, scratch) {
  const master = await (await fetch(status.playback_url)).text();
  const uri = master.match(/#EXT-X-MEDIA:TYPE=AUDIO[^\n]*URI="([^"]+)"/)?.[1];
  if (!uri) return 'no audio rendition in the master';
  const url = new URL(uri, status.playback_url);
  const playlist = await (await fetch(url)).text();
  const dir = join(scratch, `audio-${status.video_id}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'index.m3u8'), playlist);
  for (const f of ['init.mp4', ...playlist.split('\n').filter((l) => l && !l.startsWith('#'))]) {
    const r = await fetch(new URL(f, url));
    if (r.status !== 200) return `audio ${f}: ${r.status}`;
    writeFileSync(join(dir, f), Buffer.from(await r.arrayBuffer()));
  }
  const d = Number(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', join(dir, 'index.m3u8')]).toString());
  if (Math.abs(d - seconds) > 0.2) return `audio lasts ${d} s, not ${seconds}`;
  execFileSync('ffmpeg', ['-v', 'error', '-xerror', '-i', join(dir, 'index.m3u8'), '-f', 'null', '-']);
  return null;
}

/** Every rung playlist lists segments 0, 1, 2… once each, in order (null), or what is wrong. */
async function contiguousSegments(status) {
  const master = await (await fetch(status.playback_url)).text();
  const rungs = master.split('\n').filter((l) => l && !l.startsWith('#'));
  for (const rung of rungs) {
    const playlist = await (await fetch(new URL(rung, status.playback_url))).text();
    const seqs = playlist.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => Number(l.match(/(\d+)\.m4s$/)?.[1]));
    const bad = seqs.findIndex((n, i) => n !== i);
    if (bad >= 0) return `${rung}: segment ${bad} is ${seqs[bad]}`;
    if (!playlist.includes('#EXT-X-ENDLIST')) return `${rung}: no ENDLIST`;
  }
  return null;
}
