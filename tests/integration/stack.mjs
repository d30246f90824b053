// The stack the integration tests that follow whole jobs share: a real
// Garage, the video service (workerd, through Miniflare on a loopback
// port) and the transcoder binary leasing from it, all stopped by
// `stop()`; and `transcoded`, the presign, PUT, notify and wait for done
// each of their tests starts with.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, existsSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGarage } from '../../devkit/garage.mjs';
import { freePort, waitFor } from '../../devkit/ports.mjs';
import { makeClip } from '../../devkit/client.mjs';
import { videoService, client, API_KEY, TRANSCODER_TOKEN, ROOT } from '../workers/harness.mjs';

export const BIN = process.env.TRANSCODER_BIN ?? join(ROOT, 'target', 'debug', 'transcoder');

/**
 * Starts the transcoder binary as `WORKER_NAME` `name` against the video
 * service at `base` and `garage`, logging to `scratch/{log}` and working in
 * `scratch/{workDir}`, with `env` on top of its settings; `wrap` runs it
 * through another command (`[cmd, ...args]`, the binary appended).
 * `logs()` reads its log; `stop()` sends SIGTERM and waits, SIGKILL after 20 s.
 */
export function spawnTranscoder({ base, garage, scratch, name, env = {}, wrap = [], log = `${name}.log`, workDir = `${name}-work` }) {
  const logFile = join(scratch, log);
  const [cmd, ...pre] = wrap.length ? wrap : [BIN];
  const child = spawn(cmd, wrap.length ? [...pre, BIN, 'run'] : ['run'], {
    env: {
      ...process.env,
      VIDEO_SERVICE_URL: base,
      TRANSCODER_TOKEN,
      S3_ENDPOINT: garage.endpoint,
      S3_BUCKET: garage.bucket,
      S3_REGION: garage.region,
      S3_ACCESS_KEY_ID: garage.accessKey,
      S3_SECRET_ACCESS_KEY: garage.secretKey,
      WORK_DIR: join(scratch, workDir),
      LEASE_WAIT_MS: '2000',
      WORKER_NAME: name,
      RUST_LOG: 'info',
      ...env,
    },
    stdio: ['ignore', openSync(logFile, 'a'), openSync(logFile, 'a')],
  });
  const t = { child, log: logFile, exited: null, logs: () => readFileSync(logFile, 'utf8') };
  child.on('exit', (code, signal) => { t.exited = { code, signal }; });
  t.stop = () => new Promise((resolve) => {
    if (t.exited) return resolve(t.exited);
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.kill('SIGTERM');
    setTimeout(() => { if (!t.exited) child.kill('SIGKILL'); }, 20000).unref();
  });
  return t;
}

/**
 * Starts the stack for app `app`: the transcoder is `WORKER_NAME` `name`,
 * with `transcoderEnv` on top of its settings; `ip()` gives each request a
 * client address. Returns `{ garage, mf, api, base, scratch, transcoder,
 * transcoded, stop }`; `transcoder.logs()` reads its log.
 */
export async function startStack({ name, app, ip, transcoderEnv = {} }) {
  assert.ok(existsSync(BIN), `${BIN} is missing: cargo build -p transcoder first`);
  const scratch = mkdtempSync(join(tmpdir(), `${name}-`));
  const garage = await startGarage({ dir: join(scratch, 'garage') });
  const port = await freePort();
  const mf = await videoService({ store: garage, backend: 's3', port });
  const base = `http://127.0.0.1:${port}`;
  const api = client(mf, base);
  const transcoder = spawnTranscoder({ base, garage, scratch, name, env: transcoderEnv, log: 'transcoder.log', workDir: 'work' });
  const { child } = transcoder;

  /** Uploads a clip (with audio) as `video`, notifies with `options`, and waits until the job is done. */
  async function transcoded(video, options, { size = '1280x720', seconds = 6 } = {}) {
    const body = readFileSync(makeClip(join(scratch, `${video}.mp4`), { size, seconds }));
    const presign = await api.post('/generate-upload-url', { app_id: app, video_id: video, content_type: 'video/mp4', size: body.length }, { key: API_KEY, headers: ip() });
    assert.equal(presign.status, 200, presign.text);
    const put = await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body });
    assert.equal(put.status, 200);
    const notify = await api.post('/notify-upload-complete', { app_id: app, video_id: video, raw_key: presign.json.raw_key, content_type: 'video/mp4', ...options }, { key: API_KEY, headers: ip() });
    assert.equal(notify.status, 202, notify.text);
    let last;
    await waitFor(`${video} to be transcoded`, async () => {
      last = (await api.get(`/job-status?app_id=${app}&video_id=${video}`, { headers: ip() })).json;
      return last.status === 'done' || last.status === 'error';
    }, 180000);
    assert.equal(last.status, 'done', JSON.stringify(last) + transcoder.logs().slice(-3000));
    return last;
  }

  async function stop() {
    if (!transcoder.exited) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await gone;
    }
    await mf.dispose();
    await garage.stop();
    rmSync(scratch, { recursive: true, force: true });
  }

  return { garage, mf, api, base, scratch, transcoder, transcoded, stop };
}
