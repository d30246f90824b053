// Runs the built Workers in workerd through Miniflare, with the bindings of
// their wrangler files: R2, KV, the job queue Durable Object (SQLite) and the
// rate limiters. Storage is either Miniflare's R2 (STORAGE_BACKEND=r2) or a
// real Garage through the S3 adapter (STORAGE_BACKEND=s3).
import { Miniflare, convertV4MiniflareOptions } from 'miniflare';
import { existsSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { putObject } from '../../devkit/sigv4.mjs';
import { videoClient, imageClient } from '@iv/media-client';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const API_KEY = 'test-key-one';
export const API_KEY_2 = 'test-key-two';
export const TRANSCODER_TOKEN = 'test-transcoder-token';

function modules(crate) {
  const dir = join(ROOT, 'crates', crate, 'build');
  const js = join(dir, 'index.js');
  if (!existsSync(js)) throw new Error(`${js} is missing: build the workers first (scripts/build-workers.sh)`);
  return [
    { type: 'ESModule', path: js },
    { type: 'CompiledWasm', path: join(dir, 'index_bg.wasm') },
  ];
}

/** The S3 settings a Worker needs to presign for (and, with s3, read from) `store`. */
export function s3Vars(store) {
  return {
    S3_ENDPOINT: store.endpoint,
    S3_BUCKET: store.bucket,
    S3_REGION: store.region,
    S3_ACCESS_KEY_ID: store.accessKey,
    S3_SECRET_ACCESS_KEY: store.secretKey,
  };
}

/**
 * The Rate Limiting bindings, with the production limits of the wrangler
 * files: per API key, per client IP for missing or wrong keys, per client IP
 * for public reads. `limits` overrides a binding's limit ({ KEY_RATE_LIMITER: 3 }).
 */
export const RATE_LIMITS = { KEY_RATE_LIMITER: 600, BAD_KEY_RATE_LIMITER: 10, PUBLIC_RATE_LIMITER: 1200 };
const ratelimits = (limits = {}) => Object.fromEntries(Object.entries({ ...RATE_LIMITS, ...limits }).map(([name, limit], i) =>
  [name, { namespace_id: String(1001 + i), simple: { limit, period: 60 } }]));

const common = (store, backend, vars, limits) => ({
  compatibilityDate: '2026-10-01',
  modulesRoot: ROOT,
  r2Buckets: ['MEDIA_BUCKET'],
  kvNamespaces: ['MEDIA_KV'],
  ratelimits: ratelimits(limits),
  bindings: {
    ENVIRONMENT: 'test',
    STORAGE_BACKEND: backend,
    IV_API_KEY: `${API_KEY},${API_KEY_2}`,
    ...s3Vars(store),
    ...vars,
  },
});

/** With an array `logs`, the Worker's console lines go there (workerd's structured logs: {timestamp, level, message}) instead of the terminal. */
const capture = (logs) => (logs ? { handleStructuredLogs: (line) => logs.push(line) } : {});

/** The video service in workerd. `logs`: see `capture`. `persist`: a
 *  directory where Miniflare keeps the Durable Objects' SQLite files (and
 *  KV, R2), for tests that count stored objects; without it, a temporary one. */
export async function videoService({ store, backend = 'r2', vars = {}, port, limits, logs, persist }) {
  const base = common(store, backend, { TRANSCODER_TOKEN, QUEUE_SHARDS: '1', ...vars }, limits);
  const mf = new Miniflare(convertV4MiniflareOptions({
    ...base,
    ...capture(logs),
    ...(persist ? { resourcePersistencePath: persist } : {}),
    ...(port ? { host: '127.0.0.1', port } : {}),
    modules: modules('video-service'),
    durableObjects: {
      VIDEO_JOBS: { className: 'VideoJob', useSQLite: true },
      DISPATCH: { className: 'DispatchShard', useSQLite: true },
      APP_EVENTS: { className: 'AppHub', useSQLite: true },
    },
    // R2's event notifications reach the Worker's queue consumer; tests
    // send them with `mf.getQueueProducer('UPLOAD_EVENTS')` (Miniflare
    // emits none on a put). Batches go out at once.
    queueProducers: { UPLOAD_EVENTS: 'iv-upload-events' },
    queueConsumers: { 'iv-upload-events': { maxBatchSize: 10, maxBatchTimeout: 0, maxRetries: 3 } },
  }));
  await mf.ready;
  return mf;
}

/** The image service in workerd. `video`: a video service's Miniflare, which
 *  the `VIDEO_SERVICE` service binding then reaches (its image.* events). */
export async function imageService({ store, backend = 'r2', vars = {}, limits, port, logs, video }) {
  const mf = new Miniflare(convertV4MiniflareOptions({
    ...common(store, backend, vars, limits),
    ...capture(logs),
    ...(video ? { serviceBindings: { VIDEO_SERVICE: (request) => video.dispatchFetch(request) } } : {}),
    ...(port ? { host: '127.0.0.1', port } : {}),
    modules: modules('image-service'),
    // One object per image: single-flight variants, checks of landed uploads.
    durableObjects: { IMAGE_OBJECTS: { className: 'ImageObject', useSQLite: true } },
    // Cloudflare Images, run offline by Miniflare with sharp.
    images: { binding: 'IMAGES' },
  }));
  await mf.ready;
  return mf;
}

/** Helpers bound to one Miniflare instance. */
export function client(mf, base = 'http://video.test') {
  const call = async (method, path, { body, headers = {}, key } = {}) => {
    const h = { ...headers };
    if (key !== undefined) h['x-api-key'] = key;
    if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) {
      h['content-type'] ??= 'application/json';
      body = JSON.stringify(body);
    }
    const res = await mf.dispatchFetch(base + path, { method, headers: h, body });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, headers: res.headers, text, json };
  };
  return {
    call,
    get: (path, opts) => call('GET', path, opts),
    post: (path, body, opts = {}) => call('POST', path, { ...opts, body }),
    internal: (path, body, token = TRANSCODER_TOKEN) => call('POST', path, { body, headers: token ? { authorization: `Bearer ${token}` } : {} }),
  };
}

/**
 * A typed client (@iv/media-client) bound to one Miniflare instance, for the
 * documented routes (`client`/`call` stay for internal routes and malformed
 * requests). openapi-fetch calls fetch(Request), which Miniflare's
 * dispatchFetch does not take (its own undici), so the Request is passed on
 * as URL + init. `key`: the API key sent (`null`: none); `freshIps`: a new
 * cf-connecting-ip per request, so the rate limit only bites where a test
 * wants it; `image: true` for the image service.
 * @returns {import('@iv/media-client').VideoClient | import('@iv/media-client').ImageClient}
 */
export function typedClient(mf, { key = API_KEY, headers = {}, base = 'http://video.test', image = false, freshIps = true } = {}) {
  const fetch = async (request) => mf.dispatchFetch(request.url, {
    method: request.method,
    headers: request.headers,
    body: request.body ? await request.arrayBuffer() : undefined,
  });
  const typed = (image ? imageClient : videoClient)({ baseUrl: base, apiKey: key ?? undefined, headers, fetch });
  if (freshIps) typed.use({ onRequest({ request }) { for (const [name, value] of Object.entries(freshIp())) request.headers.set(name, value); } });
  return typed;
}

/** Asserts the documented error shape and returns the code. */
export function errorCode(res) {
  const e = res.json?.error;
  if (!e || typeof e.code !== 'string' || typeof e.message !== 'string' || !e.message) {
    throw new Error(`not a JSON error: ${res.status} ${res.text}`);
  }
  return e.code;
}

let ipCounter = 0;
/** A distinct client address per call, so the rate limit only bites where a test wants it. */
export const freshIp = () => ({ 'cf-connecting-ip': `10.0.${Math.floor(++ipCounter / 250)}.${ipCounter % 250}` });

/** Puts an object where a service on `backend` reads it from: Miniflare's R2 binding, or Garage. */
export async function putStored({ backend, mf, garage }, key, bytes, type) {
  if (backend === 'r2') {
    const bucket = await mf.getR2Bucket('MEDIA_BUCKET');
    await bucket.put(key, bytes, { httpMetadata: { contentType: type } });
  } else {
    await putObject(garage, key, bytes, type);
  }
}

/** Rate-limit windows are aligned to the wall clock (Miniflare, like
 *  Cloudflare, counts per fixed 60 s window): a test that counts calls in
 *  one window waits for a new window when fewer than `needS` seconds are
 *  left, so its calls never straddle two windows. */
export async function freshWindow(needS = 25, periodS = 60) {
  const left = periodS * 1000 - (Date.now() % (periodS * 1000));
  if (left < needS * 1000) await new Promise((r) => setTimeout(r, left + 50));
}

/** The `.sqlite` files of Durable Objects of `className` under a persist
 *  directory: one per object that has stored anything. */
export function objectFiles(persist, className) {
  const out = [];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.sqlite') && e.name !== 'metadata.sqlite' && p.includes(className)) out.push(p);
    }
  };
  if (existsSync(persist)) walk(persist);
  return out.sort();
}

/** The tables an object's SQLite file holds, other than workerd's own
 *  (`_cf_*`): none for an object that never wrote (workerd opens the file
 *  when the object is first asked, with or without a write). */
export async function storedTables(file) {
  const { DatabaseSync } = await import('node:sqlite');
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    // workerd may be writing the file this moment: wait for its lock
    // rather than fail with 'database is locked' (seen in a clean-clone run).
    db.exec('PRAGMA busy_timeout = 10000');
    return db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 4) != '_cf_' AND substr(name, 1, 7) != 'sqlite_'").all().map((r) => r.name).sort();
  } finally {
    db.close();
  }
}
