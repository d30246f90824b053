// The "deletion" group of reliability/run.mjs (issue 14): deleting a video
// while its transcoder is writing segments. Afterwards nothing may be left
// under its prefixes (once the service's last sweep has run), its reads
// answer 404, and the transcoder stops that job cleanly and takes the next.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeClip, uploadVideo, pollJob, freshIp } from '../devkit/client.mjs';
import { listKeys } from '../devkit/sigv4.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function deletion({ platform, scratch, say }) {
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
  return [{
    check: 'deleting a video mid-transcode leaves nothing under its prefixes; the transcoder stops the job cleanly',
    ok: del.status === 200 && left.length === 0 && reads.every((s) => s === 404) && alive && final.status === 'done',
    detail: `${before} output objects while it ran; DELETE ${del.status} (${answer.deleted?.objects ?? '?'} objects removed at once, last sweep ${answer.final_sweep_at ?? 'none'}); ${left.length} objects left after the sweep; job-status/playback-url ${reads.join('/')}; the transcoder logged the job's end: ${stopped}, still running: ${alive}, next job ${final.status}`,
  }];
}
