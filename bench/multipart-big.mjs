// A big resumable upload, end to end against a real Garage (issue 14): a
// file generated here (6 GiB by default, never committed) goes through a
// multipart session of the video service in workerd, part by part as a
// browser would (sign, PUT straight to storage, 4 at a time), is completed,
// then read back from storage and compared: size and SHA-256. Prints the
// time of each phase and the peak memory of every process involved. Not
// part of the test command: it writes 2x the file to disk and takes minutes.
//
//   node bench/multipart-big.mjs [--gib=6] [--concurrency=4]
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readSync, closeSync, rmSync, statSync, readFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startGarage } from '../devkit/garage.mjs';
import { videoService, client, API_KEY } from '../tests/workers/harness.mjs';

const arg = (name, dflt) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const GIB = 1024 ** 3;
const size = Math.round(Number(arg('gib', 6)) * GIB);
const concurrency = Number(arg('concurrency', 4));
const say = (m) => console.log(`multipart-big: ${m}`);
const seconds = (t0) => ((Date.now() - t0) / 1000).toFixed(1);

/** Peak resident memory (VmHWM) of a process and its descendants, in MiB. */
function peakMiB(pid) {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    try {
      pids.push(...execFileSync('pgrep', ['-P', String(pids[i])], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number));
    } catch { /* no children */ }
  }
  return pids.map((p) => {
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      const name = /^Name:\s+(.+)$/m.exec(status)?.[1];
      const hwm = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0) / 1024;
      return { pid: p, name, peakMiB: Math.round(hwm) };
    } catch {
      return { pid: p, name: '?', peakMiB: 0 };
    }
  });
}

const dir = mkdtempSync(join(tmpdir(), 'multipart-big-'));
let garage;
let mf;
try {
  const file = join(dir, 'source.bin');
  say(`generating ${(size / GIB).toFixed(2)} GiB of random bytes…`);
  let t0 = Date.now();
  const fd = openSync(file, 'w');
  const chunk = 64 * 1024 * 1024;
  const wantHash = createHash('sha256');
  for (let done = 0; done < size; done += chunk) {
    const bytes = randomBytes(Math.min(chunk, size - done));
    wantHash.update(bytes);
    writeSync(fd, bytes);
  }
  closeSync(fd);
  const want = wantHash.digest('hex');
  say(`generated in ${seconds(t0)} s, sha256 ${want.slice(0, 16)}…`);

  garage = await startGarage({ dir: join(dir, 'garage') });
  mf = await videoService({ store: garage, backend: 's3', vars: { MAX_VIDEO_BYTES: String(size) } });
  const api = client(mf);
  const s = await api.post('/generate-upload-url', { app_id: 'big', video_id: 'six', content_type: 'video/mp4', size, multipart: true }, { key: API_KEY });
  if (s.status !== 200) throw new Error(`session: ${s.status} ${s.text}`);
  const { endpoint, part_size: partSize, parts } = s.json;
  const call = async (method, path, body) => {
    const r = await mf.dispatchFetch(endpoint + path, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body && JSON.stringify(body) });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return JSON.parse(text);
  };
  const { uploadId, key } = await call('POST', '/s3/multipart', { type: 'video/mp4' });
  const q = `?key=${encodeURIComponent(key)}`;
  say(`session: ${parts} parts of ${partSize / 1024 / 1024} MiB; uploading ${concurrency} at a time…`);
  t0 = Date.now();
  const etags = new Array(parts);
  let next = 1;
  const src = openSync(file, 'r');
  const worker = async () => {
    const buf = Buffer.allocUnsafe(partSize);
    for (;;) {
      const n = next++;
      if (n > parts) return;
      const offset = (n - 1) * partSize;
      const len = Math.min(partSize, size - offset);
      readSync(src, buf, 0, len, offset);
      const { url } = await call('GET', `/s3/multipart/${encodeURIComponent(uploadId)}/${n}${q}`);
      const r = await fetch(url, { method: 'PUT', body: buf.subarray(0, len) });
      if (r.status !== 200) throw new Error(`part ${n}: ${r.status} ${await r.text()}`);
      etags[n - 1] = r.headers.get('etag');
      if (n % 64 === 0) say(`  ${n}/${parts} parts, ${seconds(t0)} s`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  closeSync(src);
  const uploadS = seconds(t0);
  t0 = Date.now();
  const listed = await call('GET', `/s3/multipart/${encodeURIComponent(uploadId)}${q}`);
  await call('POST', `/s3/multipart/${encodeURIComponent(uploadId)}/complete${q}`, { parts: etags.map((ETag, i) => ({ PartNumber: i + 1, ETag })) });
  const completeS = seconds(t0);
  say(`uploaded in ${uploadS} s (${(size / 1024 / 1024 / Number(uploadS)).toFixed(0)} MiB/s); ${listed.length} parts listed; completed in ${completeS} s`);

  t0 = Date.now();
  const { s3 } = await import('../devkit/sigv4.mjs');
  const got = await s3(garage, 'GET', key);
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const c of got.body) { hash.update(c); bytes += c.length; }
  const match = hash.digest('hex') === want && bytes === size;
  say(`read back ${bytes} bytes in ${seconds(t0)} s: size and sha256 ${match ? 'match' : 'DIFFER'}`);
  const notified = await api.post('/notify-upload-complete', { app_id: 'big', video_id: 'six', raw_key: key, content_type: 'video/mp4' }, { key: API_KEY });
  say(`notify: ${notified.status} (${notified.json?.status}, source size ${statSync(file).size === size ? 'as declared' : '?'})`);
  say(`peak memory (VmHWM): this script ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB; Garage ${JSON.stringify(peakMiB(garage.pid))}; workerd ${JSON.stringify(peakMiB(process.pid).filter((p) => /workerd/.test(p.name)))}`);
  if (!match) process.exitCode = 1;
} finally {
  await mf?.dispose();
  await garage?.stop();
  rmSync(dir, { recursive: true, force: true });
}
