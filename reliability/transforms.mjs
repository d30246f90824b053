// The "transforms" group of reliability/run.mjs (issue 15): the image
// service's own transform URLs, `/images/{app}/{image}/{options}`, asked
// 1,000 times for random options: allowed ones written every way the
// grammar allows (w= or width=, any order, defaults given or left out,
// jpg for jpeg), and disallowed ones (a size, quality or fit off the list,
// unknown options, a format it does not write, malformed values). Every
// disallowed request must be a 400 with a JSON error, nothing a 5xx, and
// the variants stored under the image's prefix must be exactly the
// distinct canonical variants asked for, computed here from the rules
// (width, height, quality, fit and the format `f=auto` resolves to), not
// from the service, and within the policy's bound.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freshIp } from '../devkit/client.mjs';
import { listKeys } from '../devkit/sigv4.mjs';

// The dev configuration (wrangler-image.toml's [env.dev.vars]).
const SIZES = [160, 320, 480, 640, 960, 1280, 1600, 1920];
const QUALITIES = [50, 65, 75, 85];
const DEFAULT_QUALITY = 85; // TRANSFORM_QUALITY
const FITS = ['scale-down', 'contain', 'cover', 'crop', 'pad'];
const FORMATS = ['avif', 'webp', 'jpeg', 'png'];
const AVIF_SIDE = 1200;
const BOUND = (SIZES.length + 1) ** 2 * QUALITIES.length * FITS.length * FORMATS.length;
const ACCEPTS = {
  avif: 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8', // Chromium's, for <img>
  webp: 'image/webp,*/*', // Safari 14-15 style
  none: '*/*',
};

/** A small seeded PRNG (mulberry32), so a failing run can be replayed with TRANSFORMS_SEED. */
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = (xs) => xs[Math.floor(next() * xs.length)];
  const shuffle = (xs) => {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  };
  return { next, pick, shuffle, chance: (p) => next() < p };
}

/**
 * The output size of variant `v` for a source of `src` pixels, by the fit
 * rules (Cloudflare's meanings): scale-down fits the box and never enlarges,
 * contain fits it, cover and pad fill a whole box, crop fills it without
 * enlarging; with one side given, the other follows the aspect ratio.
 */
export function outputSize(v, src) {
  const byW = v.w ? v.w / src.width : undefined;
  const byH = v.h ? v.h / src.height : undefined;
  if (byW === undefined && byH === undefined) return src;
  const scaled = (s) => ({ width: Math.max(1, Math.round(src.width * s)), height: Math.max(1, Math.round(src.height * s)) });
  const smaller = Math.min(byW ?? Infinity, byH ?? Infinity);
  const larger = Math.max(byW ?? 0, byH ?? 0);
  const box = v.w && v.h ? { width: v.w, height: v.h } : null;
  switch (v.fit) {
    case 'scale-down': return scaled(Math.min(smaller, 1));
    case 'contain': return scaled(smaller);
    case 'cover': return box ?? scaled(larger);
    case 'pad': return box ?? scaled(smaller);
    case 'crop':
      if (!box) return scaled(Math.min(larger, 1));
      return larger <= 1 ? box : { width: Math.min(box.width, src.width), height: Math.min(box.height, src.height) };
    default: throw new Error(`fit ${v.fit}`);
  }
}

/**
 * What the service must answer for variant `v` asked with `accept` of a
 * JPEG source: the format written, or a refusal (AVIF is written at most
 * 1200 px a side, so `f=avif` over that is a 400; `f=auto` then falls to WebP).
 */
function resolve(v, accept, src) {
  const out = outputSize(v, src);
  const fitsAvif = Math.max(out.width, out.height) <= AVIF_SIDE;
  if (v.f === 'avif' && !fitsAvif) return { status: 400 };
  if (v.f !== 'auto') return { status: 200, format: v.f };
  if (accept === 'avif' && fitsAvif) return { status: 200, format: 'avif' };
  if (accept === 'avif' || accept === 'webp') return { status: 200, format: 'webp' };
  return { status: 200, format: 'jpeg' };
}

/** The stored object's name (`w640-h0-q75-scale-down.webp`, 0 when a side is not given). */
const objectName = (v, format) => `w${v.w ?? 0}-h${v.h ?? 0}-q${v.q}-${v.fit}.${format}`;

/** One way of writing variant `v` as an options segment: aliases, any order, defaults given or not. */
function write(v, r) {
  const items = [];
  if (v.w) items.push(`${r.pick(['w', 'width'])}=${v.w}`);
  if (v.h) items.push(`${r.pick(['h', 'height'])}=${v.h}`);
  if (v.q !== DEFAULT_QUALITY || r.chance(0.5)) items.push(`${r.pick(['q', 'quality'])}=${v.q}`);
  if (v.fit !== 'scale-down' || r.chance(0.5)) items.push(`fit=${v.fit}`);
  if (v.f !== 'auto' || r.chance(0.5)) items.push(`${r.pick(['f', 'format'])}=${v.f === 'jpeg' && r.chance(0.5) ? 'jpg' : v.f}`);
  if (!items.length) items.push(r.pick(['f=auto', 'fit=scale-down', `q=${DEFAULT_QUALITY}`])); // the path needs an options segment
  const order = r.shuffle(items);
  if (order.length && r.chance(0.1)) order.push(''); // a trailing comma
  return order.join(',');
}

/** Options the service must refuse (400): off-list values, unknown options, malformed items. */
const BAD_ITEMS = [
  'w=641', 'width=641', 'h=1000', 'w=0', 'w=0640', 'w=-320', 'w=320.5', 'w=1e3', 'w=%20320', 'w=99999999999999999999',
  'q=77', 'quality=100', 'q=0', 'q=', 'fit=squeeze', 'fit=Cover', 'f=gif', 'format=json', 'f=AVIF', 'f=svg', 'f=webp%00',
  'blur=5', 'rotate=90', 'dpr=2', 'sharpen=1', 'W=320', 'w', 'anim=false', 'background=red', 'gravity=auto', 'w=640;h=480',
];

function badOptions(v, r) {
  const written = write(v, r).split(',').filter(Boolean);
  const kind = r.next();
  if (kind < 0.15 && written.length) {
    // The same option twice (w and width, say).
    const first = written[0].split('=')[0];
    const twin = { w: 'width', width: 'w', h: 'height', height: 'h', q: 'quality', quality: 'q', f: 'format', format: 'f', fit: 'fit' }[first];
    written.push(`${twin}=${written[0].split('=')[1]}`);
  } else if (kind < 0.2) {
    return 'w=640,'.repeat(60); // over the options' length limit
  } else {
    written.splice(Math.floor(r.next() * (written.length + 1)), 0, r.pick(BAD_ITEMS));
  }
  return r.shuffle(written).join(',');
}

async function ask(url, accept) {
  const headers = { ...freshIp(), ...(accept === 'omit' ? {} : { accept: ACCEPTS[accept] }) };
  const res = await fetch(url, { headers });
  const buf = Buffer.from(await res.arrayBuffer());
  return { status: res.status, type: (res.headers.get('content-type') ?? '').split(';')[0].trim(), source: res.headers.get('x-image-variant'), buf };
}

function isJsonError(a) {
  if (a.type !== 'application/json') return false;
  try {
    const e = JSON.parse(a.buf.toString('utf8')).error;
    return typeof e?.code === 'string' && typeof e?.message === 'string';
  } catch {
    return false;
  }
}

export async function transforms({ platform, scratch, soak, say }) {
  const n = soak ? 3000 : 1000;
  const seed = Number(process.env.TRANSFORMS_SEED ?? Date.now() % 1e9);
  const r = rng(seed);
  const src = { width: 1200, height: 900 };
  const jpg = join(scratch, 'transforms.jpg');
  execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=${src.width}x${src.height}`, '-frames:v', '1', '-q:v', '3', jpg]);
  const app = 'transforms';
  const image = `img${randomBytes(6).toString('hex')}`;
  const form = new FormData();
  form.set('app_id', app);
  form.set('image_id', image);
  form.set('file', new Blob([readFileSync(jpg)], { type: 'image/jpeg' }), 'transforms.jpg');
  const up = await fetch(`${platform.image}/upload`, { method: 'POST', headers: { 'x-api-key': platform.apiKey, ...freshIp() }, body: form });
  if (up.status !== 201) throw new Error(`upload: ${up.status} ${await up.text()}`);
  const base = `${platform.image}/images/${app}/${image}/`;

  // A pool of allowed variants, each asked many times in different spellings and with different Accepts.
  const pool = Array.from({ length: 38 }, () => ({
    w: r.chance(0.8) ? r.pick(SIZES) : undefined,
    h: r.chance(0.35) ? r.pick(SIZES) : undefined,
    q: r.pick(QUALITIES),
    fit: r.pick(FITS),
    f: r.pick(['auto', 'auto', 'webp', 'jpeg', 'png', 'avif']),
  }));
  // Always one over AVIF's side: refused with f=avif, WebP for f=auto from an AVIF-taking client.
  pool.push({ w: 1600, q: 75, fit: 'contain', f: 'avif' }, { w: 1920, h: 1920, q: 85, fit: 'pad', f: 'auto' });
  const plan = Array.from({ length: n }, () => {
    const v = r.pick(pool);
    const accept = r.pick(['avif', 'webp', 'none', 'omit']);
    if (r.chance(0.4)) return { options: badOptions(v, r), accept, expect: { status: 400 }, kind: 'disallowed' };
    const expect = resolve(v, accept === 'omit' ? 'none' : accept, src);
    return { options: write(v, r), accept, expect, kind: expect.status === 200 ? 'allowed' : 'avif over 1200 px', key: expect.format && objectName(v, expect.format) };
  });

  say(`transforms: ${n} requests (seed ${seed}) against ${base}…`);
  const started = Date.now();
  const results = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: 6 }, async () => {
    while (next < n) {
      const i = next++;
      results[i] = await ask(base + plan[i].options, plan[i].accept);
    }
  }));
  const secs = (Date.now() - started) / 1000;

  const count = (f) => results.filter(f).length;
  const statuses = {};
  for (const a of results) statuses[a.status] = (statuses[a.status] ?? 0) + 1;
  const sources = {};
  for (const a of results) if (a.source) sources[a.source] = (sources[a.source] ?? 0) + 1;
  const wrong = [];
  plan.forEach((p, i) => {
    const a = results[i];
    if (a.status >= 500) wrong.push(`${p.options} -> ${a.status}`);
    else if (p.expect.status === 400 && !(a.status === 400 && isJsonError(a))) wrong.push(`${p.options} (${p.kind}) -> ${a.status} ${a.type}`);
    else if (p.expect.status === 200 && !(a.status === 200 && a.type === `image/${p.expect.format}`)) wrong.push(`${p.options} accept ${p.accept} -> ${a.status} ${a.type} (expected image/${p.expect.format}) ${a.status !== 200 ? a.buf.toString('utf8').slice(0, 160) : ''}`);
  });
  const expected = new Set(plan.filter((p) => p.key).map((p) => p.key));
  const stored = (await listKeys(platform.garage, `images/${app}/${image}/`)).map((k) => k.slice(`images/${app}/${image}/`.length));
  const storedSet = new Set(stored);
  const missing = [...expected].filter((k) => !storedSet.has(k));
  const extra = stored.filter((k) => !expected.has(k));
  const kinds = {};
  for (const p of plan) kinds[p.kind] = (kinds[p.kind] ?? 0) + 1;
  const created = sources.created ?? 0;
  const ok = wrong.length === 0 && missing.length === 0 && extra.length === 0 && stored.length <= BOUND && count((a) => a.status >= 500) === 0
    && created === expected.size;
  return [{
    check: `${n} random transform URLs: disallowed ones 400 JSON, nothing 5xx, stored variants = distinct canonical variants asked for`,
    ok,
    detail: `seed ${seed}, ${secs.toFixed(0)} s at 6 in flight; asked ${Object.entries(kinds).map(([k, v]) => `${k} ${v}`).join(', ')}; `
      + `answers ${Object.entries(statuses).map(([k, v]) => `${k}×${v}`).join(' ')}; x-image-variant ${['created', 'stored', 'edge'].map((s) => `${s}×${sources[s] ?? 0}`).join(' ')}; `
      + `${expected.size} distinct canonical variants asked (of ${pool.length} drawn option sets), ${stored.length} objects stored under the image's prefix (bound ${BOUND})`
      + `${created !== expected.size ? `; ${created} answers "created" for ${expected.size} variants: each variant must be made exactly once` : ''}`
      + `${wrong.length ? `; ${wrong.length} wrong answers, e.g. ${wrong.slice(0, 4).join(' | ')}` : ''}`
      + `${missing.length ? `; missing ${missing.slice(0, 5).join(' ')}` : ''}${extra.length ? `; unexpected ${extra.slice(0, 5).join(' ')}` : ''}`,
  }, await sixAtOnce(platform, app, jpg)];
}

/** The image service's log lines that say the Images binding was called (one per billed call, logged
 *  by the image's Durable Object just before it calls). */
function bindingCalls(platform) {
  const text = readFileSync(join(platform.logs, 'image-service.log'), 'utf8');
  return text.split('\n').filter((l) => l.includes('Images binding called')).length;
}

/** Six concurrent first requests for one variant of a new image: one binding call, one stored
 *  object, the same bytes for all six. */
async function sixAtOnce(platform, app, jpg) {
  const image = `six${randomBytes(6).toString('hex')}`;
  const up = await fetch(`${platform.image}/upload?app_id=${app}&image_id=${image}`, {
    method: 'POST', headers: { 'x-api-key': platform.apiKey, 'content-type': 'image/jpeg', ...freshIp() }, body: readFileSync(jpg),
  });
  if (up.status !== 201) throw new Error(`upload: ${up.status} ${await up.text()}`);
  const url = `${platform.image}/images/${app}/${image}/w=480,q=65,fit=cover,f=webp`;
  const before = bindingCalls(platform);
  const six = await Promise.all(Array.from({ length: 6 }, () => ask(url, 'webp')));
  // The log is written by wrangler's process: give it a moment to reach the file.
  await new Promise((r) => setTimeout(r, 1000));
  const calls = bindingCalls(platform) - before;
  const sources = six.map((a) => a.source).sort();
  const same = six.every((a) => a.status === 200 && Buffer.compare(a.buf, six[0].buf) === 0);
  const stored = (await listKeys(platform.garage, `images/${app}/${image}/w480-h0-q65-cover.webp`)).length;
  return {
    check: 'six concurrent first variant requests: one binding call',
    ok: calls === 1 && same && stored === 1 && sources.filter((s) => s === 'created').length === 1,
    detail: `${calls} Images binding call(s) in the service's log; answers ${six.map((a) => a.status).join(',')}, x-image-variant ${sources.join(',')}; `
      + `${same ? `the same ${six[0].buf.length} bytes for all six` : 'DIFFERENT BYTES'}; ${stored} object stored`,
  };
}
