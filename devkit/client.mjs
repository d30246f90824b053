// Using the platform as a client app would: media made with the ffmpeg
// CLI's lavfi sources, the README's presign → PUT → notify steps, and
// polling job status. Shared by the end-to-end tests, the reliability
// checks and the benchmarks.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Writes a test clip to `file`: testsrc2 video and a sine tone, H.264/AAC MP4 by default. */
export function makeClip(file, { size = '640x360', seconds = 4, rate = 30, audio = true, args = [] } = {}) {
  const input = ['-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${rate}:duration=${seconds}`];
  if (audio) input.push('-f', 'lavfi', '-i', `sine=frequency=330:duration=${seconds}`);
  const codecs = args.length ? args : ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', ...(audio ? ['-c:a', 'aac'] : [])];
  execFileSync('ffmpeg', ['-loglevel', 'error', '-y', ...input, ...codecs, file]);
  return file;
}

let ipCounter = 0;
/** A distinct client address per call, so the per-IP limit does not throttle a script (wrangler dev passes the header on). */
export const freshIp = () => ({ 'cf-connecting-ip': `10.${(ipCounter >> 16) & 255}.${(++ipCounter >> 8) & 255}.${ipCounter & 255}` });

export async function postJson(url, body, key, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(key ? { 'x-api-key': key } : {}), ...freshIp(), ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

/** The README's three steps: presign, PUT, notify. `body` is bytes or a file path. Returns the notify answer. */
export async function uploadVideo(platform, app_id, video_id, body, content_type = 'video/mp4') {
  const bytes = typeof body === 'string' ? readFileSync(body) : body;
  const presign = await postJson(`${platform.video}/generate-upload-url`, { app_id, video_id, content_type, size: bytes.length }, platform.apiKey);
  if (presign.status !== 200) throw new Error(`presign: ${presign.status} ${presign.text}`);
  const put = await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body: bytes });
  if (put.status !== 200) throw new Error(`PUT: ${put.status} ${await put.text()}`);
  return postJson(`${platform.video}/notify-upload-complete`, { app_id, video_id, raw_key: presign.json.raw_key, content_type }, platform.apiKey);
}

export async function jobStatus(platform, app_id, video_id) {
  const r = await fetch(`${platform.video}/job-status?app_id=${app_id}&video_id=${video_id}`);
  return r.status === 200 ? r.json() : { status: `http ${r.status}` };
}

/** Polls job status every `everyMs` until `done(status)` or the timeout; returns every status seen. */
export async function pollJob(platform, app_id, video_id, { done = (s) => s.status === 'done' || s.status === 'error', timeoutMs = 300000, everyMs = 500 } = {}) {
  const seen = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await jobStatus(platform, app_id, video_id);
    seen.push(s);
    if (done(s)) return seen;
    if (Date.now() > deadline) throw new Error(`${app_id}/${video_id} still ${s.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
