// The demo: what an app's backend does with this platform, and the page a
// newcomer opens after `bash scripts/up.sh`.
//
// The backend holds the API key and only does the key-protected calls,
// through the typed client (@iv/media-client, clients/typescript):
// asking for upload sessions, starting jobs, and relaying the app's event
// stream (`GET /api/events` -> the video service's `/events`, which needs
// the key) for the page's operator view. `POST /api/videos` asks for one
// presigned PUT, or with `multipart: true` (and the file's size) for a
// resumable session whose token-bearing `endpoint` answers Uppy's
// Companion-shaped calls itself, so this backend signs nothing per part.
// The browser uploads straight to storage with Uppy (single PUT, or parts
// with `@uppy/aws-s3`, resumed after a network cut), follows its job on the
// public `/job-events` stream (polling `/job-status` when it cannot) and
// plays the HLS ladder with hls.js. Images go the same way (one presigned
// PUT), then `POST /api/images/check` asks the image service for the
// image's record (which checks the upload) before the page shows it and
// its variants. Uppy and hls.js are served from node_modules (pinned in
// package.json), no CDN.
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
    // The page asks for somewhere to put a video; we ask the video service (with the key):
    // one presigned PUT, or with `multipart: true` a resumable session (`endpoint`, `part_size`, `parts`).
    'POST /api/videos': async (b) => {
      const videoId = `v-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
      const ask = { app_id: APP_ID, video_id: videoId, content_type: b.content_type, size: b.size };
      if (b.multipart !== undefined) ask.multipart = b.multipart;
      const r = answer(await video.POST('/generate-upload-url', { body: ask }));
      return r.status === 200 ? { status: 200, body: { ...r.body, app_id: APP_ID, video_id: videoId, video_service: videoService } } : r;
    },
    // The upload finished: start the job (with the key).
    'POST /api/videos/start': async (b) => answer(await video.POST('/notify-upload-complete', { body: { app_id: APP_ID, video_id: b.video_id, raw_key: b.raw_key, content_type: b.content_type } })),
    'POST /api/images': async (b) => answer(await image.POST('/generate-image-upload-url', { body: { app_id: APP_ID, content_type: b.content_type, size: b.size } })),
    // The browser's PUT is done: ask for the image's record (with the key). The service checks the
    // upload there and answers its type, size, width and height, or 404 if it refused it.
    'POST /api/images/check': async (b) => answer(await image.GET('/images', { params: { query: { app_id: APP_ID, image_id: b.image_id ?? '' } } })),
    'GET /api/config': async () => ({ status: 200, body: { app_id: APP_ID, video_service: videoService, image_service: imageService } }),
  };
  // Open /api/events responses: close() ends them, or server.close() would wait for them forever.
  const streams = new Set();
  // The app's event stream, relayed chunk by chunk (no buffering) since the browser cannot send the key.
  const relayEvents = async (req, res) => {
    const upstream = new AbortController();
    streams.add(res);
    // 'close' on the response fires when the browser goes away (or we end it): stop reading upstream.
    res.on('close', () => { upstream.abort(); streams.delete(res); });
    const headers = { accept: 'text/event-stream' };
    if (req.headers['last-event-id']) headers['last-event-id'] = req.headers['last-event-id'];
    try {
      const { data, error, response: r } = await video.GET('/events', { params: { query: { app_id: APP_ID } }, headers, parseAs: 'stream', signal: upstream.signal });
      if (r.status !== 200) {
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json; charset=utf-8', 'cache-control': 'no-store' });
        return res.end(typeof error === 'string' ? error : JSON.stringify(error));
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      const reader = data.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        res.write(value);
      }
    } catch (e) {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(502, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify({ error: { code: 'demo_backend', message: e.message } }));
      }
    }
    // Upstream ended or failed mid-stream: end ours too; the EventSource reconnects with Last-Event-ID.
    if (!res.writableEnded) res.end();
  };
  const server = createServer(async (req, res) => {
    const send = (status, body, type = 'application/json; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(typeof body === 'string' || body instanceof Buffer ? body : JSON.stringify(body));
    };
    try {
      const path = new URL(req.url, 'http://demo').pathname;
      if (req.method === 'GET' && path === '/api/events') return await relayEvents(req, res);
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
        for (const res of streams) res.destroy();
        server.close(r);
        server.closeIdleConnections();
      }) });
    });
  });
}
