// The "deletion" group of reliability/run.mjs (issue 14): deleting a video
// while its transcoder is writing segments. Afterwards nothing may be left
// under its prefixes (once the service's last sweep has run), its reads
// answer 404, and the transcoder stops that job cleanly and takes the next.
// Issue 25: each delete sends one zone purge by its cache tag (to the purge
// stand-in run.mjs starts), and an image's upload and delete reach the
// app's /events stream from the image Worker (wrangler dev: over
// VIDEO_SERVICE_URL) as image.created and image.deleted.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeClip, uploadVideo, pollJob, freshIp } from '../devkit/client.mjs';
import { listKeys } from '../devkit/sigv4.mjs';
import { openEvents } from '../devkit/sse.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The purges `purge` got naming `tag`, once at least one has come (or `ms` passed). */
async function purgesOf(purge, tag, ms = 20_000) {
  const of = () => purge.calls.filter((c) => c.body?.tags?.includes(tag));
  const deadline = Date.now() + ms;
  while (of().length === 0 && Date.now() < deadline) await sleep(200);
  await sleep(500);
  return of();
}

/** One image deleted after it was served: purged once, announced on the stream when uploaded and deleted. */
async function imageRow({ platform, scratch, purge, purgeVars }) {
  const app = 'deletion';
  const image = `pic${Date.now()}`;
  const file = join(scratch, 'deletion-image.png');
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=s=640x480', '-frames:v', '1', file]);
  const stream = await openEvents(fetch, `${platform.video}/events?app_id=${app}`, { headers: { 'x-api-key': platform.apiKey, ...freshIp() } });
  try {
    await stream.waitFor('connected', 10_000);
    const key = { 'x-api-key': platform.apiKey, ...freshIp() };
    const up = await fetch(`${platform.image}/upload?app_id=${app}&image_id=${image}`, { method: 'POST', headers: { ...key, 'content-type': 'image/png' }, body: readFileSync(file) });
    const served = [];
    for (const path of [`/assets/images/${app}/${image}`, `/images/${app}/${image}/w=160`]) {
      for (let i = 0; i < 2; i++) {
        const r = await fetch(`${platform.image}${path}`, { headers: freshIp() });
        await r.arrayBuffer();
        served.push(r.status);
      }
    }
    const del = await fetch(`${platform.image}/images?app_id=${app}&image_id=${image}`, { method: 'DELETE', headers: key });
    const calls = await purgesOf(purge, `iv-img:${app}:${image}`);
    const about = (type) => stream.waitFor((e) => e.event === type && e.data.data?.image_id === image, 15_000).then(() => true, () => false);
    const [created, deleted] = [await about('image.created'), await about('image.deleted')];
    const after = (await fetch(`${platform.image}/assets/images/${app}/${image}`, { headers: freshIp() })).status;
    const bearer = calls.every((c) => c.authorization === `Bearer ${purgeVars.CF_PURGE_TOKEN}` && c.path.endsWith(`/zones/${purgeVars.CF_ZONE_ID}/purge_cache`));
    return {
      check: 'deleting a served image purges it at every location (one purge by its tag) and the app stream gets image.created and image.deleted',
      ok: up.status === 201 && served.every((s) => s === 200) && del.status === 200 && calls.length === 1 && bearer && created && deleted && after === 404,
      detail: `upload ${up.status}; original and a variant served ${served.join('/')}; DELETE ${del.status}; purges naming the image's tag: ${calls.length} (zone path and bearer token right: ${bearer}); stream: image.created ${created}, image.deleted ${deleted}; the original afterwards ${after}`,
    };
  } finally {
    stream.close();
  }
}

export async function deletion({ platform, scratch, say, purge, purgeVars }) {
  const transcoder = platform.addTranscoder('deleter');
  const log = join(platform.logs, 'deleter.log');
  // Only this transcoder takes work now.
  for (const t of platform.transcoders.filter((x) => x !== transcoder && !x.exited)) await t.stop();
  const app = 'deletion';
  const video = `busy${Date.now()}`;
  const clip = makeClip(join(scratch, 'deletion-clip.mp4'), { size: '1280x720', seconds: 30 });
  say('deletion: a job writing segments…');
  const notified = await uploadVideo(platform, app, video, clip);
  if (notified.status !== 202) throw new Error(`notify: ${notified.status} ${notified.text}`);
  await pollJob(platform, app, video, { done: (s) => s.status === 'processing' && s.playable, timeoutMs: 180_000, everyMs: 300 });
  const before = (await listKeys(platform.garage, `hls/${app}/${video}/`)).length;

  const del = await fetch(`${platform.video}/videos?app_id=${app}&video_id=${video}`, { method: 'DELETE', headers: { 'x-api-key': platform.apiKey, ...freshIp() } });
  const answer = await del.json();
  say(`deletion: DELETE answered ${del.status} ${JSON.stringify(answer)}`);
  // Whatever the transcoder writes before it notices is caught by the last sweep.
  const sweepAt = Date.parse(answer.final_sweep_at ?? '') || Date.now();
  await sleep(Math.max(0, sweepAt - Date.now()) + 3000);
  const left = [...await listKeys(platform.garage, `raw/${app}/${video}/`), ...await listKeys(platform.garage, `hls/${app}/${video}/`)];
  const reads = await Promise.all([
    fetch(`${platform.video}/job-status?app_id=${app}&video_id=${video}`, { headers: freshIp() }).then((r) => r.status),
    fetch(`${platform.video}/playback-url?app_id=${app}&video_id=${video}`, { headers: freshIp() }).then((r) => r.status),
  ]);

  // The transcoder stopped that job, is still running, and does the next one.
  const lines = existsSync(log) ? readFileSync(log, 'utf8').split('\n') : [];
  const stopped = lines.filter((l) => l.includes(video) || /lease (lost|gone)|no job/.test(l)).some((l) => /lease|stopp|cancel|gone|404|no job/i.test(l));
  const next = `after${Date.now()}`;
  await uploadVideo(platform, app, next, makeClip(join(scratch, 'deletion-next.mp4'), { seconds: 3 }));
  const final = (await pollJob(platform, app, next, { timeoutMs: 180_000 })).at(-1);
  const alive = !transcoder.exited;
  const videoPurges = await purgesOf(purge, `iv-vid:${app}:${video}`);
  say('deletion: an image served, then deleted…');
  return [{
    check: 'deleting a video mid-transcode leaves nothing under its prefixes, purges its tag once; the transcoder stops the job cleanly',
    ok: del.status === 200 && left.length === 0 && reads.every((s) => s === 404) && alive && final.status === 'done' && videoPurges.length === 1,
    detail: `${before} output objects while it ran; DELETE ${del.status} (${answer.deleted?.objects ?? '?'} objects removed at once, last sweep ${answer.final_sweep_at ?? 'none'}); ${left.length} objects left after the sweep; job-status/playback-url ${reads.join('/')}; purges naming the video's tag: ${videoPurges.length}; the transcoder logged the job's end: ${stopped}, still running: ${alive}, next job ${final.status}`,
  }, await imageRow({ platform, scratch, purge, purgeVars })];
}
