// Using the platform as a client app would: media made with the ffmpeg
// CLI's lavfi sources, the README's presign → PUT → notify steps, and
// polling job status, through the typed client (@iv/media-client, made
// from the OpenAPI documents). Shared by the end-to-end tests, the
// reliability checks and the benchmarks. `postJson` stays for the calls
// the typed client will not make on purpose: malformed bodies, internal
// routes, paths outside the documents.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { imageClient, videoClient } from '@iv/media-client';

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

const clients = new WeakMap();
/**
 * The platform's typed clients (one set per platform object): `video` and
 * `image` send its API key and a fresh client address on every request (as
 * `postJson` does), `publicVideo` neither (what a browser's reads send).
 * @returns {{ video: import('@iv/media-client').VideoClient, image: import('@iv/media-client').ImageClient, publicVideo: import('@iv/media-client').VideoClient }}
 */
export function api(platform) {
  let set = clients.get(platform);
  if (!set) {
    const fresh = { onRequest({ request }) { for (const [name, value] of Object.entries(freshIp())) request.headers.set(name, value); } };
    set = {
      video: videoClient({ baseUrl: platform.video, apiKey: platform.apiKey }),
      image: platform.image && imageClient({ baseUrl: platform.image, apiKey: platform.apiKey }),
      publicVideo: videoClient({ baseUrl: platform.video }),
    };
    set.video.use(fresh);
    set.image?.use(fresh);
    clients.set(platform, set);
  }
  return set;
}

/** A typed client call's answer in `postJson`'s shape: `{ status, headers, text, json }`. */
export function answer({ data, error, response }) {
  const json = response.ok ? data : error;
  return { status: response.status, headers: response.headers, text: typeof json === 'string' ? json : JSON.stringify(json) ?? '', json: typeof json === 'string' ? undefined : json };
}

/** The README's three steps: presign, PUT, notify. `body` is bytes or a file path. Returns the notify answer (`answer()`'s shape). */
export async function uploadVideo(platform, app_id, video_id, body, content_type = 'video/mp4', options = {}) {
  const bytes = typeof body === 'string' ? readFileSync(body) : body;
  const { video } = api(platform);
  const presign = answer(await video.POST('/generate-upload-url', { body: { app_id, video_id, content_type, size: bytes.length } }));
  if (presign.status !== 200) throw new Error(`presign: ${presign.status} ${presign.text}`);
  const put = await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body: bytes });
  if (put.status !== 200) throw new Error(`PUT: ${put.status} ${await put.text()}`);
  return answer(await video.POST('/notify-upload-complete', { body: { app_id, video_id, raw_key: presign.json.raw_key, content_type, ...options } }));
}

export async function jobStatus(platform, app_id, video_id) {
  const { data, response } = await api(platform).publicVideo.GET('/job-status', { params: { query: { app_id, video_id } } });
  return response.status === 200 ? data : { status: `http ${response.status}` };
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
