// The demo: what an app's backend does with this platform, and the page a
// newcomer opens after `bash scripts/up.sh`.
//
// The backend holds the API key and only does the key-protected calls,
// through the typed client (@iv/media-client, clients/typescript):
// creating uploads, reading and cancelling them, and minting the stream
// token with which the page's operator view reads the app's `/events`
// itself (no relay, no key in the browser). `POST /api/videos` creates a
// direct upload (`POST /uploads`, Mux's model): the browser gets its
// single-use token with one presigned PUT and a `complete_url`, or with
// `multipart: true` a resumable `endpoint` that answers Uppy's
// Companion-shaped calls itself. The upload starts its job when the file
// lands (the page's completion call, or the multipart complete): this
// backend makes no call after the upload. The browser uploads straight to
// storage with Uppy (single PUT, or parts with `@uppy/aws-s3`, resumed
// after a network cut), follows the upload and then its job on the public
// `/job-events` stream from the moment the upload exists (polling
// `/job-status` when it cannot), and plays the HLS ladder with hls.js. A
// video the page marks private is created with signed URLs, AES-128
// encryption and an MP4 download; `POST /api/videos/token` mints its
// playback token (`POST /playback-tokens`). A video may ask for an AV1
// rung beside H.264's at every size (`codecs`), and once done take caption
// tracks (`POST /api/videos/captions`, a WebVTT or SRT file per language).
// Images go with one presigned PUT, then `POST /api/images/check` asks the
// image service for the image's record (which checks the upload) before
// the page shows it and its variants. Uppy and hls.js are served from
// node_modules (pinned in package.json), no CDN.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { extname, join, dirname, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { imageClient, videoClient } from '@iv/media-client';

const HERE = dirname(fileURLToPath(import.meta.url));
const STATIC = {
  '/': join(HERE, 'public', 'index.html'),
  '/app.js': join(HERE, 'public', 'app.js'),
  '/style.css': join(HERE, 'public', 'style.css'),
  '/vendor/hls.min.js': join(HERE, '..', 'node_modules', 'hls.js', 'dist', 'hls.min.js'),
  // Uppy's browser-ready ESM bundle (core, @uppy/aws-s3, @uppy/xhr-upload...); the page drives it headless, with its own UI.
  '/vendor/uppy.min.mjs': join(HERE, '..', 'node_modules', 'uppy', 'dist', 'uppy.min.mjs'),
};
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
const APP_ID = 'demo';

/** Starts the demo on 127.0.0.1:`port`; returns `{ url, close() }`. */
export function startDemo({ port = 0, videoService, imageService, apiKey }) {
  const video = videoClient({ baseUrl: videoService, apiKey });
  const image = imageClient({ baseUrl: imageService, apiKey });
  // A service's answer as the page gets it: its status and JSON (data or the service's error).
  const answer = ({ data, error, response }) => {
    if (!response.ok && typeof error !== 'object') throw new Error(`${response.status} from the service: ${String(error).slice(0, 200)}`);
    return { status: response.status, body: response.ok ? data : error };
  };
  const handlers = {
    // The page asks for somewhere to put a video; we create a direct upload (with the key): its
    // token with one presigned PUT (`url`, `headers`, `complete_url`), or with `multipart: true`
    // a resumable `endpoint` (`part_size`, `parts`). The upload starts its job when the file lands.
    'POST /api/videos': async (b) => {
      const videoId = `v-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
      const ask = { app_id: APP_ID, video_id: videoId, content_type: b.content_type, size: b.size };
      if (b.multipart !== undefined) ask.multipart = b.multipart;
      // A private video: signed URLs only, AES-128 segments, an MP4 download of the top rung.
      if (b.private === true) Object.assign(ask, { require_signed_urls: true, encryption: 'aes-128', download: true });
      // A cover and a short animated preview, as a video card or a hover preview shows them.
      if (b.extras === true) Object.assign(ask, { cover: { time_s: 1 }, preview: { start_s: 0, duration_s: 3, width: 320, fps: 10, format: 'webp' } });
      // An AV1 rung at every size beside H.264's: players that decode AV1 take it, the others H.264.
      if (b.av1 === true) ask.codecs = ['h264', 'av1'];
      const r = answer(await video.POST('/uploads', { body: ask }));
      return r.status === 201 ? { status: 201, body: { ...r.body, video_service: videoService } } : r;
    },
    // An upload's state: waiting, asset_created (with its job), errored, cancelled or timed_out.
    'POST /api/uploads/state': async (b) => answer(await video.GET('/uploads/{upload_id}', { params: { path: { upload_id: String(b.id ?? '') } } })),
    // A short-lived token for the page's EventSource on the app's /events (the key stays here).
    // A private video's playback token, minted with the key (an app would check its user first).
    'POST /api/videos/token': async (b) => answer(await video.POST('/playback-tokens', { body: { app_id: APP_ID, video_id: String(b.video_id ?? ''), ttl_s: 3600, downloadable: true } })),
    // A caption track for a video (WebVTT or SRT text), posted with the key; the service checks the file.
    'POST /api/videos/captions': async (b) => answer(await video.POST('/videos/{app_id}/{video_id}/captions/{language}', {
      params: { path: { app_id: APP_ID, video_id: String(b.video_id ?? ''), language: String(b.language ?? '') }, query: b.label ? { label: String(b.label) } : {} },
      body: String(b.text ?? ''),
      bodySerializer: (text) => text,
      headers: { 'content-type': b.format === 'srt' ? 'application/x-subrip' : 'text/vtt' },
    })),
    'POST /api/events/token': async () => answer(await video.POST('/events/token', { body: { app_id: APP_ID, ttl_s: 600 } })),
    'POST /api/images': async (b) => answer(await image.POST('/generate-image-upload-url', { body: { app_id: APP_ID, content_type: b.content_type, size: b.size } })),
    // The browser's PUT is done: ask for the image's record (with the key). The service checks the
    // upload there and answers its type, size, width and height, or 404 if it refused it.
    'POST /api/images/check': async (b) => answer(await image.GET('/images', { params: { query: { app_id: APP_ID, image_id: b.image_id ?? '' } } })),
    'GET /api/config': async () => ({ status: 200, body: { app_id: APP_ID, video_service: videoService, image_service: imageService } }),
  };
  const server = createServer(async (req, res) => {
    const send = (status, body, type = 'application/json; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(typeof body === 'string' || body instanceof Buffer ? body : JSON.stringify(body));
    };
    try {
      const path = new URL(req.url, 'http://demo').pathname;
      const handler = handlers[`${req.method} ${path}`];
      if (handler) {
        let raw = '';
        for await (const chunk of req) raw += chunk;
        const { status, body } = await handler(raw ? JSON.parse(raw) : {});
        return send(status, body);
      }
      const file = STATIC[normalize(path)];
      if (req.method === 'GET' && file) return send(200, await readFile(file), TYPES[extname(file)]);
      send(404, { error: { code: 'not_found', message: `no such page: ${path}` } });
    } catch (e) {
      send(502, { error: { code: 'demo_backend', message: e.message } });
    }
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      resolve({ url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => {
        server.close(r);
        server.closeIdleConnections();
      }) });
    });
  });
}
