// Job state per video in workerd: the event stream of one video
// (`GET /job-events`: names, ids, resuming with Last-Event-ID, heartbeats,
// the end after a terminal event), and dispatch across queue shards (no
// shard starves, size classes, rings, public reads never reach a shard).
// A simulated transcoder drives the jobs through the internal API.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openEvents } from '../../devkit/sse.mjs';
import { startReceiver } from '../../devkit/webhook-receiver.mjs';
import { videoService, client, errorCode, freshIp, API_KEY } from './harness.mjs';

const RESULT = {
  duration_s: 4,
  has_audio: false,
  renditions: [{ name: '360p', width: 640, height: 360, bandwidth: 900000, average_bandwidth: 800000, codecs: 'avc1.64001e', frame_rate: 30 }],
  thumbnails: null,
};

// The R2 binding serves reads; presigning needs settings, never a server.
const store = { endpoint: 'http://127.0.0.1:9', bucket: 'media', region: 'us-east-1', accessKey: 'test-access', secretKey: 'test-secret' };

/** A service with helpers for one app. */
async function service(vars = {}) {
  const mf = await videoService({ store, vars: { SSE_HEARTBEAT_MS: '400', RETRY_BACKOFF_MS: '100', ...vars } });
  const api = client(mf);
  const bucket = await mf.getR2Bucket('MEDIA_BUCKET');
  const app = 'evapp';
  const upload = async (video, bytes = 1000) => {
    const raw = `raw/${app}/${video}/source.mp4`;
    await bucket.put(raw, new Uint8Array(bytes).fill(1), { httpMetadata: { contentType: 'video/mp4' } });
    const r = await api.post('/notify-upload-complete', { app_id: app, video_id: video, raw_key: raw, content_type: 'video/mp4' }, { key: API_KEY, headers: freshIp() });
    assert.equal(r.status, 202, r.text);
    return r.json;
  };
  const lease = async (body = {}) => (await api.internal('/internal/jobs/lease', { worker: 'test', wait_ms: 0, ...body })).json.job;
  const leaseVideo = async (video) => {
    for (let i = 0; i < 50; i++) {
      const job = await lease();
      if (job?.video_id === video) return job;
    }
    throw new Error(`never leased ${video}`);
  };
  const events = (video, opts) => openEvents((url, init) => mf.dispatchFetch(url, init), `http://video.test/job-events?app_id=${app}&video_id=${video}`, { ...opts, headers: { ...freshIp(), ...(opts?.headers ?? {}) } });
  const beat = (job, body) => api.internal(`/internal/jobs/${job.job_id}/heartbeat`, { lease_id: job.lease_id, progress: 0, ...body });
  return { mf, api, app, upload, lease, leaseVideo, events, beat };
}

describe('job events (SSE)', () => {
  let s;
  before(async () => { s = await service(); });
  after(async () => s?.mf.dispose());

  test('a job\'s events, in order, with ids, ending after job:completed', async () => {
    await s.upload('seq');
    const stream = await s.events('seq');
    try {
      assert.equal(stream.status, 200);
      assert.equal(stream.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      assert.equal(stream.headers.get('cache-control'), 'no-cache');
      assert.equal(stream.headers.get('x-accel-buffering'), 'no');
      assert.equal(stream.headers.get('access-control-allow-origin'), '*', 'a public route browsers read');
      const connected = await stream.waitFor('connected', 5000);
      assert.match(connected.data.clientId, /^c_[0-9a-f]{16}$/);
      assert.equal(connected.data.job.status, 'queued');
      assert.equal(stream.retry, 3000);
      const created = await stream.waitFor('job:created', 5000);
      // The video is named; never a storage key (no filePath).
      assert.deepEqual({ ...created.data, jobId: undefined }, { jobId: undefined, appId: s.app, videoId: 'seq', status: 'pending' });

      const job = await s.leaseVideo('seq');
      assert.equal((await stream.waitFor('job:started', 5000)).data.attempt, 1);
      await s.beat(job, { progress: 30, stage: 'encoding' });
      const progress = await stream.waitFor((e) => e.event === 'job:progress' && e.data.progress === 30, 5000);
      assert.equal(progress.data.stage, 'encoding');
      await s.beat(job, { progress: 60, stage: 'encoding', playable: true });
      const playable = await stream.waitFor('job:playable', 5000);
      assert.equal(playable.data.playbackUrl, `http://video.test/${job.output_prefix}master.m3u8`);
      const done = await s.api.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result: RESULT });
      assert.equal(done.status, 200, done.text);
      const completed = await stream.waitFor('job:completed', 5000);
      assert.equal(completed.data.status, 'completed');
      assert.equal(completed.data.job.status, 'done');
      await stream.finished;
      assert.ok(stream.ended, 'the stream ends after a terminal event');

      for (const e of stream.events) assert.doesNotMatch(JSON.stringify(e.data ?? null), /raw\/|source\.mp4|filePath/, `${e.event} shows no storage key`);
      assert.equal(completed.data.videoId, 'seq');
      const names = stream.events.map((e) => e.event).filter((n) => n !== 'heartbeat');
      // Each job:* change, and after it the catalogue event it announces (issue 25).
      assert.deepEqual(names, ['connected', 'job:created', 'video.created', 'job:started', 'job:progress', 'job:progress', 'job:playable', 'video.playable', 'job:completed', 'video.ready']);
      const ready = stream.events.find((e) => e.event === 'video.ready').data;
      assert.match(ready.id, /^evt_[a-z0-9]{26}$/);
      assert.deepEqual([ready.type, ready.data.video_id, ready.data.status], ['video.ready', 'seq', 'done']);
      const ids = stream.events.filter((e) => e.event !== 'connected' && e.event !== 'heartbeat').map((e) => Number(e.id));
      assert.ok(ids.every((id, i) => Number.isInteger(id) && id > 0 && (i === 0 || id > ids[i - 1])), `ids rise: ${ids}`);
      assert.ok(stream.events.every((e) => e.id !== undefined), 'every event has an id');

      // Resuming: after job:started, the rest and the end.
      const startedId = stream.events.find((e) => e.event === 'job:started').id;
      const resumed = await s.events('seq', { lastEventId: startedId });
      await resumed.finished;
      assert.deepEqual(resumed.events.map((e) => e.event), ['connected', 'job:progress', 'job:progress', 'job:playable', 'video.playable', 'job:completed', 'video.ready']);
      assert.equal(resumed.events[0].id, startedId, 'connected carries the resume point');
      // A client with everything of an ended job: 204, so EventSource stops reconnecting.
      const last = stream.events.at(-1).id;
      const nothing = await s.events('seq', { lastEventId: last });
      assert.equal(nothing.status, 204);
      // ?last_event_id= for clients that cannot set headers.
      const byQuery = await openEvents((url, init) => s.mf.dispatchFetch(url, init), `http://video.test/job-events?app_id=${s.app}&video_id=seq&last_event_id=${last}`);
      assert.equal(byQuery.status, 204);
    } finally {
      stream.close();
    }
  });

  test('a client that drops mid-job resumes with Last-Event-ID and loses nothing', async () => {
    await s.upload('resume');
    const first = await s.events('resume');
    await first.waitFor('job:created', 5000);
    const job = await s.leaseVideo('resume');
    await first.waitFor('job:started', 5000);
    first.close();
    const lastSeen = first.events.filter((e) => e.event.startsWith('job:') || e.event.startsWith('video.')).at(-1).id;
    // Missed while away.
    await s.beat(job, { progress: 10, stage: 'probing' });
    await s.beat(job, { progress: 20, stage: 'encoding' });
    const second = await s.events('resume', { lastEventId: lastSeen });
    try {
      const twenty = await second.waitFor((e) => e.event === 'job:progress' && e.data.progress === 20, 5000);
      assert.ok(twenty);
      // And live from there on.
      await s.beat(job, { progress: 40, stage: 'encoding' });
      await second.waitFor((e) => e.event === 'job:progress' && e.data.progress === 40, 5000);
      const ids = [...first.events, ...second.events].filter((e) => e.event.startsWith('job:') || e.event.startsWith('video.')).map((e) => Number(e.id));
      assert.deepEqual(ids, [...new Set(ids)].sort((a, b) => a - b), 'no event twice, none out of order');
      assert.equal(ids.length, ids.at(-1) - ids[0] + 1, `no gap: ${ids}`);
    } finally {
      second.close();
    }
  });

  test('a quiet stream sends heartbeats carrying the last id', async () => {
    await s.upload('quiet');
    const stream = await s.events('quiet');
    try {
      const created = await stream.waitFor('video.created', 5000);
      const beat = await stream.waitFor('heartbeat', 5000);
      assert.equal(beat.id, created.id, 'the last event: video.created, after job:created');
      assert.ok(!Number.isNaN(Date.parse(beat.data.timestamp)), beat.data.timestamp);
    } finally {
      stream.close();
    }
  });

  test('a retried failure is job:error (final: false) and the stream goes on; the last one ends it', async () => {
    await s.upload('fails');
    const stream = await s.events('fails');
    try {
      let job = await s.leaseVideo('fails');
      await s.api.internal(`/internal/jobs/${job.job_id}/fail`, { lease_id: job.lease_id, message: 'ffmpeg exploded at /tmp/x', retryable: true });
      const retried = await stream.waitFor('job:error', 5000);
      assert.equal(retried.data.final, false);
      assert.doesNotMatch(retried.data.error, /\/tmp\/x/, 'only the public message');
      await new Promise((r) => setTimeout(r, 150));
      job = await s.leaseVideo('fails');
      await stream.waitFor((e) => e.event === 'job:started' && e.data.attempt === 2, 5000);
      await s.api.internal(`/internal/jobs/${job.job_id}/fail`, { lease_id: job.lease_id, message: 'not a video', retryable: false });
      const final = await stream.waitFor((e) => e.event === 'job:error' && e.data.final === true, 5000);
      assert.equal(final.data.status, 'error');
      await stream.finished;
    } finally {
      stream.close();
    }
  });

  test('a cancel is job:canceled and ends the stream', async () => {
    await s.upload('cancels');
    const stream = await s.events('cancels');
    try {
      await stream.waitFor('job:created', 5000);
      const r = await s.api.post('/cancel-job', { app_id: s.app, video_id: 'cancels' }, { key: API_KEY, headers: freshIp() });
      assert.equal(r.status, 200, r.text);
      const canceled = await stream.waitFor('job:canceled', 5000);
      assert.equal(canceled.data.status, 'canceled');
      await stream.finished;
      assert.ok(!stream.events.some((e) => e.event === 'job:error'), 'a cancel is not an error event');
    } finally {
      stream.close();
    }
  });

  test('bad and unknown videos get JSON errors, not streams', async () => {
    const unknown = await s.events('never-uploaded');
    assert.equal(unknown.status, 404);
    assert.equal(errorCode({ status: 404, json: JSON.parse(unknown.text) }), 'not_found');
    const bad = await openEvents((url, init) => s.mf.dispatchFetch(url, init), 'http://video.test/job-events?app_id=a/b&video_id=v');
    assert.equal(bad.status, 400);
    const post = await s.api.post('/job-events?app_id=a&video_id=v', {});
    assert.equal(post.status, 405);
  });

  test('a Last-Event-ID beyond 2^53 is read exactly, not refused (found by Schemathesis)', async () => {
    await s.upload('bigid');
    // JavaScript's JSON would have turned it into a float the object refused (400).
    const huge = await s.events('bigid', { lastEventId: '222675189240476864' });
    try {
      assert.equal(huge.status, 200, huge.text);
      const connected = await huge.waitFor('connected', 5000);
      assert.equal(connected.id, '222675189240476864', 'the resume point, exactly');
      assert.ok(!huge.events.some((e) => e.event === 'job:created'), 'nothing replayed past the end');
    } finally {
      huge.close();
    }
    const max = await s.events('bigid', { lastEventId: '18446744073709551615' });
    max.close();
    assert.equal(max.status, 200);
  });
});

describe('dispatch across queue shards', () => {
  let s;
  before(async () => { s = await service({ QUEUE_SHARDS: '3', LARGE_SOURCE_BYTES: '5000' }); });
  after(async () => s?.mf.dispose());

  const stats = async () => (await s.api.internal('/internal/dispatch/stats', {})).json.shards;
  const total = (shards, op) => shards.reduce((n, sh) => n + (sh.requests[op] ?? 0), 0);

  test('every job is leased whichever shard it waits in, and public reads never reach a shard', async () => {
    const videos = Array.from({ length: 9 }, (_, i) => `many${i}`);
    for (const v of videos) await s.upload(v);
    const before = await stats();
    assert.equal(before.length, 3);
    assert.ok(before.filter((sh) => (sh.requests.enqueue ?? 0) > 0).length >= 2, `jobs spread over shards: ${JSON.stringify(before)}`);
    for (let i = 0; i < 20; i++) await s.api.get(`/job-status?app_id=${s.app}&video_id=${videos[i % 9]}`, { headers: freshIp() });
    const afterReads = await stats();
    assert.deepEqual(afterReads, before, 'job-status reads reached no shard');
    const leased = new Set();
    for (let i = 0; i < 9; i++) {
      const job = await s.lease();
      assert.ok(job, `lease ${i} found a job`);
      leased.add(job.video_id);
    }
    assert.deepEqual([...leased].sort(), [...videos].sort());
    assert.equal(await s.lease(), null, 'nothing left');
  });

  test('a long-poll on one shard is woken by work queued on another', async () => {
    const waiting = s.api.internal('/internal/jobs/lease', { worker: 'poller', wait_ms: 8000 });
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    // Several uploads, so some land on shards the poller is not parked on.
    await s.upload('ring0');
    const got = await waiting;
    const waited = Date.now() - t0;
    assert.equal(got.json.job?.video_id, 'ring0', got.text);
    assert.ok(waited < 3000, `woken after ${waited} ms`);
  });

  test('size classes: large sources wait in their own class; standard goes first', async () => {
    await s.upload('big', 6000);
    await s.upload('small', 100);
    assert.equal(await s.lease({ classes: ['large'] }).then((j) => j?.video_id), 'big');
    await s.upload('big2', 6000);
    assert.equal((await s.lease({ classes: ['standard'] }))?.video_id, 'small');
    assert.equal(await s.lease({ classes: ['standard'] }), null, 'a standard-only transcoder never gets a large job');
    await s.upload('small2', 100);
    assert.equal((await s.lease())?.video_id, 'small2', 'standard first, though the large job waited longer');
    assert.equal((await s.lease())?.video_id, 'big2');
    const bad = await s.api.internal('/internal/jobs/lease', { worker: 'x', wait_ms: 0, classes: ['huge'] });
    assert.equal(bad.status, 400, bad.text);
  });

  test('heartbeats find their job through its shard; a stale lease is still refused', async () => {
    await s.upload('hb');
    const job = await s.leaseVideo('hb');
    const ok = await s.beat(job, { progress: 5 });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.video_id, 'hb');
    assert.equal((await s.beat({ ...job, lease_id: 'lease_other' }, { progress: 6 })).status, 409);
    assert.equal((await s.beat({ ...job, job_id: 'job_nope' }, { progress: 6 })).status, 404);
    // A transcoder that names the video (from its JobSpec) goes straight to its object: no shard lookup.
    const locates = async () => total(await stats(), 'locate');
    const before = await locates();
    const direct = await s.beat(job, { progress: 7, app_id: s.app, video_id: 'hb' });
    assert.equal(direct.status, 200, direct.text);
    assert.equal(await locates(), before, 'no shard asked');
    const wrongVideo = await s.beat(job, { progress: 8, app_id: s.app, video_id: 'many0' });
    assert.equal(wrongVideo.status, 404, 'that video\'s object has another job');
    await s.beat(job, { progress: 9 });
    assert.equal(await locates(), before + 1, 'without the video, the shard is asked');
  });
});

describe('signed webhooks', () => {
  const SECRET = 'whsec_test_0123456789abcdef';
  let s;
  let receiver;
  before(async () => {
    receiver = await startReceiver({ failFirst: 2 });
    s = await service({
      IV_WEBHOOKS: JSON.stringify({ evapp: { url: `${receiver.url}/hook`, secret: SECRET } }),
      // The app's url is its default endpoint, retried by its hub; a callback_url by the video's object.
      WEBHOOK_RETRY_SCHEDULE_MS: '200,400,800',
      WEBHOOK_RETRY_BASE_MS: '200',
    });
  });
  after(async () => { await s?.mf.dispose(); await receiver?.stop(); });

  test('a receiver that fails twice gets the third attempt, signed as the README shows; the delivery log follows', async () => {
    const { verifyWebhook } = await import('../../devkit/webhook-verify.mjs');
    const appStream = await openEvents((url, init) => s.mf.dispatchFetch(url, init), `http://video.test/events?app_id=${s.app}`, { headers: { 'x-api-key': API_KEY, ...freshIp() } });
    await appStream.waitFor('connected', 5000);
    await s.upload('hooked');
    const job = await s.leaseVideo('hooked');
    const done = await s.api.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result: RESULT });
    assert.equal(done.status, 200, done.text);
    const delivery = (key = API_KEY) => s.api.get(`/videos/delivery?app_id=${s.app}&video_id=hooked`, { key, headers: freshIp() });

    // Three events (video.created, video.playable, video.ready), three attempts each: ample at 200-400 ms waits.
    const deadline = Date.now() + 15_000;
    while (receiver.got.filter((r) => r.status === 200).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const delivered = receiver.got.filter((r) => r.status === 200);
    assert.deepEqual(delivered.map((r) => r.body.type).sort(), ['video.created', 'video.playable', 'video.ready']);
    for (const d of delivered) {
      const attempts = receiver.got.filter((r) => r.headers['webhook-id'] === d.headers['webhook-id']);
      assert.deepEqual(attempts.map((a) => a.status), [500, 500, 200], `${d.body.type}: three attempts, the third delivered`);
      assert.ok(attempts[1].at - attempts[0].at >= 150, 'the retries back off');
      assert.equal(d.path, '/hook');
      assert.equal(d.headers['webhook-id'], d.body.id);
      assert.match(d.body.id, /^evt_[a-z0-9]{26}$/);
      assert.equal(d.body.data.video_id, 'hooked');
      assert.ok(!Number.isNaN(Date.parse(d.body.created_at)));
      // Standard Webhooks, checked by its npm library (a legacy IV_WEBHOOKS secret is a raw key).
      assert.deepEqual(verifyWebhook(SECRET, d.headers, d.raw), d.body);
      assert.match(d.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]{43}=$/);
      assert.ok(Math.abs(Number(d.headers['webhook-timestamp']) - Date.now() / 1000) < 60);
      assert.throws(() => verifyWebhook(SECRET, d.headers, Buffer.concat([d.raw, Buffer.from(' ')])), /No matching signature/);
      assert.throws(() => verifyWebhook('another-secret-000000', d.headers, d.raw), /No matching signature/);
    }
    assert.equal(delivered.find((d) => d.body.type === 'video.ready').body.data.status, 'done');

    // The app's url is its endpoint `default` (issue 25): its delivery log has every attempt;
    // callback_status is a callback_url's only, and this video has none.
    const log = await s.api.get(`/webhooks/endpoints/default/deliveries?app_id=${s.app}`, { key: API_KEY, headers: freshIp() });
    assert.equal(log.status, 200, log.text);
    const ready = delivered.find((d) => d.body.type === 'video.ready').body.id;
    assert.deepEqual(log.json.attempts.filter((a) => a.event_id === ready).map((a) => [a.attempt, a.status_code]), [[3, 200], [2, 500], [1, 500]]);
    const view = (await delivery()).json;
    assert.equal(view.callback_status, undefined, JSON.stringify(view));
    // The delivery is the tenant's: a key route only.
    assert.equal((await s.api.get(`/videos/delivery?app_id=${s.app}&video_id=hooked`, { headers: freshIp() })).status, 401);
    assert.equal((await delivery('wrong-key')).status, 403);
    // The app's stream shows each attempt's outcome.
    try {
      const ready = delivered.find((d) => d.body.type === 'video.ready').body.id;
      const ok = await appStream.waitFor((e) => e.event === 'webhook' && e.data.eventId === ready && e.data.state === 'delivered', 5000);
      assert.equal(ok.data.destination, 'app', 'the IV_WEBHOOKS url, as before');
      assert.equal(ok.data.attempts, 3);
      const failed = appStream.events.filter((e) => e.event === 'webhook' && e.data.eventId === ready && e.data.state === 'pending');
      assert.deepEqual(failed.map((e) => e.data.lastError), ['HTTP 500', 'HTTP 500']);
    } finally {
      appStream.close();
    }
  });

  test('a notify may name a callback_url; unsafe ones and unknown fields are refused', async () => {
    const notify = (video, extra) => s.api.post('/notify-upload-complete', { app_id: s.app, video_id: video, raw_key: `raw/${s.app}/${video}/source.mp4`, content_type: 'video/mp4', ...extra }, { key: API_KEY, headers: freshIp() });
    for (const [url, why] of [
      ['https://10.0.0.1/hook', /private|loopback|not allowed|refused/i],
      ['https://169.254.169.254/latest', /link-local|not allowed|refused/i],
      ['http://hooks.example.com/x', /https/],
      ['https://user:pw@hooks.example.com/x', /user/i],
      ['not a url', /callback_url/],
    ]) {
      const r = await notify('cb-bad', { callback_url: url });
      assert.equal(r.status, 400, `${url}: ${r.text}`);
      assert.match(r.json.error.message, why, url);
    }
    const unknown = await notify('cb-bad', { callbak_url: 'https://hooks.example.com/x' });
    assert.equal(unknown.status, 400);
    assert.match(unknown.json.error.message, /unknown field "callbak_url"/);

    await (await s.mf.getR2Bucket('MEDIA_BUCKET')).put(`raw/${s.app}/cb-ok/source.mp4`, new Uint8Array(100), { httpMetadata: { contentType: 'video/mp4' } });
    const ok = await notify('cb-ok', { callback_url: `${receiver.url}/callback` });
    assert.equal(ok.status, 202, ok.text);
    const job = await s.leaseVideo('cb-ok');
    await s.api.post('/cancel-job', { app_id: s.app, video_id: 'cb-ok' }, { key: API_KEY, headers: freshIp() });
    const deadline = Date.now() + 10_000;
    const arrived = () => receiver.got.filter((r) => r.body.type === 'video.canceled' && r.status === 200).map((r) => r.path).sort();
    while (arrived().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(arrived(), ['/callback', '/hook'], 'the app\'s url and the callback_url both get it');
    assert.ok(job);
  });

  test('a callback_url needs the app to have a webhook secret', async () => {
    const other = await service({ IV_WEBHOOKS: '' });
    try {
      const bucket = await other.mf.getR2Bucket('MEDIA_BUCKET');
      await bucket.put('raw/evapp/nosecret/source.mp4', new Uint8Array(100), { httpMetadata: { contentType: 'video/mp4' } });
      const r = await other.api.post('/notify-upload-complete', { app_id: 'evapp', video_id: 'nosecret', raw_key: 'raw/evapp/nosecret/source.mp4', content_type: 'video/mp4', callback_url: 'https://hooks.example.com/x' }, { key: API_KEY, headers: freshIp() });
      assert.equal(r.status, 400, r.text);
      assert.match(r.json.error.message, /IV_WEBHOOKS/);
    } finally {
      await other.mf.dispose();
    }
  });
});

describe('the app stream (GET /events)', () => {
  const KEY_A = 'key-for-evapp-only';
  const KEY_B = 'key-for-other-app';
  let s;
  before(async () => { s = await service({ IV_API_KEY: `${KEY_A}:evapp, ${KEY_B}:other, ${API_KEY}` }); });
  after(async () => s?.mf.dispose());
  const open = (app, key, opts = {}) => openEvents((url, init) => s.mf.dispatchFetch(url, init), `http://video.test/events?app_id=${app}`, { ...opts, headers: { ...(key ? { 'x-api-key': key } : {}), ...freshIp() } });

  test('refuses another app\'s key and a missing one', async () => {
    const other = await open('evapp', KEY_B);
    assert.equal(other.status, 403, other.text);
    assert.equal(JSON.parse(other.text).error.code, 'app_not_allowed');
    const none = await open('evapp', undefined);
    assert.equal(none.status, 401, none.text);
  });

  test('carries every job event of the app, with its video, and the recent jobs', async () => {
    await s.upload('appv1');
    const stream = await open('evapp', KEY_A);
    try {
      assert.equal(stream.status, 200, stream.text);
      assert.equal(stream.headers.get('access-control-allow-origin'), null, 'an API-key route: no CORS');
      const connected = await stream.waitFor('connected', 5000);
      assert.deepEqual(connected.data.recent.map((r) => [r.videoId, r.status]), [['appv1', 'queued']]);
      await s.upload('appv2');
      const job = await s.leaseVideo('appv2');
      await s.beat(job, { progress: 50, stage: 'encoding' });
      const created = await stream.waitFor((e) => e.event === 'job:created' && e.data.videoId === 'appv2', 5000);
      const progress = await stream.waitFor((e) => e.event === 'job:progress' && e.data.videoId === 'appv2', 5000);
      assert.equal(progress.data.progress, 50);
      assert.ok(Number(progress.id) > Number(created.id));
      // Resume on the app stream too.
      stream.close();
      const resumed = await open('evapp', KEY_A, { lastEventId: created.id });
      await resumed.waitFor((e) => e.event === 'job:progress' && e.data.videoId === 'appv2', 5000);
      const recent = (await resumed.waitFor('connected', 1000)).data.recent;
      assert.deepEqual(recent.map((r) => r.videoId), ['appv2', 'appv1'], 'newest first');
      assert.equal(recent[0].progress, 50);
      resumed.close();
    } finally {
      stream.close();
    }
  });
});

describe('public texts: delivery errors stay on key routes', () => {
  let s;
  let receiver;
  before(async () => {
    receiver = await startReceiver({ failFirst: 1000 });
    s = await service({
      IV_WEBHOOKS: JSON.stringify({ evapp: { url: `${receiver.url}/hook`, secret: 'whsec_test_0123456789abcdef' } }),
      WEBHOOK_RETRY_SCHEDULE_MS: '100,100,100',
      WEBHOOK_RETRY_BASE_MS: '100',
    });
  });
  after(async () => { await s?.mf.dispose(); await receiver?.stop(); });

  test('a failing receiver shows on /videos/delivery and the app stream, never on /job-status, /playback-url or /job-events', async () => {
    const appStream = await openEvents((url, init) => s.mf.dispatchFetch(url, init), `http://video.test/events?app_id=${s.app}`, { headers: { 'x-api-key': API_KEY, ...freshIp() } });
    try {
      await appStream.waitFor('connected', 5000);
      // A callback_url (the video's own deliveries, which /videos/delivery shows) and the app's url (its hub's).
      const raw = `raw/${s.app}/probe/source.mp4`;
      await (await s.mf.getR2Bucket('MEDIA_BUCKET')).put(raw, new Uint8Array(1000), { httpMetadata: { contentType: 'video/mp4' } });
      const n = await s.api.post('/notify-upload-complete', { app_id: s.app, video_id: 'probe', raw_key: raw, content_type: 'video/mp4', callback_url: `${receiver.url}/cb` }, { key: API_KEY, headers: freshIp() });
      assert.equal(n.status, 202, n.text);
      const job = await s.leaseVideo('probe');
      await s.beat(job, { progress: 50, playable: true });
      let keyed;
      for (let i = 0; i < 50; i++) {
        keyed = await s.api.get(`/videos/delivery?app_id=${s.app}&video_id=probe`, { key: API_KEY, headers: freshIp() });
        if (keyed.json?.callback_last_error) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(keyed.status, 200, keyed.text);
      assert.equal(keyed.json.callback_last_error, 'HTTP 500', keyed.text);
      await appStream.waitFor((e) => e.event === 'webhook' && e.data.lastError === 'HTTP 500', 5000);

      const leaks = /callback_|HTTP 500|could not connect/;
      for (const path of [`/job-status?app_id=${s.app}&video_id=probe`, `/playback-url?app_id=${s.app}&video_id=probe`]) {
        const r = await s.api.get(path, { headers: freshIp() });
        assert.equal(r.status, 200, r.text);
        assert.doesNotMatch(r.text, leaks, path);
      }
      const stream = await s.events('probe');
      try {
        const connected = await stream.waitFor('connected', 5000);
        assert.equal(connected.data.job.status, 'processing');
        assert.doesNotMatch(JSON.stringify(stream.events), leaks, 'the public stream');
      } finally {
        stream.close();
      }
    } finally {
      appStream.close();
    }
  });
});

describe('event stream caps', () => {
  let s;
  before(async () => { s = await service({ SSE_MAX_PER_VIDEO: '5', SSE_MAX_PER_ADDRESS: '2' }); });
  after(async () => s?.mf.dispose());

  const from = (ip) => ({ headers: { 'cf-connecting-ip': ip } });
  const opened = async (ip, open) => {
    const st = await s.events('capped', from(ip));
    assert.equal(st.status, 200, `${ip}: ${st.text}`);
    await st.waitFor('connected', 5000);
    open.push(st);
  };
  const refused = async (ip, why) => {
    const st = await s.events('capped', from(ip));
    assert.equal(st.status, 429, `${ip}: ${st.text}`);
    const body = JSON.parse(st.text);
    assert.equal(body.error.code, 'rate_limited');
    assert.match(body.error.message, why);
    assert.ok(Number(st.headers.get('retry-after')) > 0, 'Retry-After');
  };

  test('streams past the cap per address, then per video, get a 429 JSON error with Retry-After; a closed one frees its place', async () => {
    await s.upload('capped');
    const open = [];
    try {
      await opened('198.51.100.1', open);
      await opened('198.51.100.1', open);
      await refused('198.51.100.1', /from this address \(at most 2\)/);
      // Rotating addresses inside one IPv6 /64 is one address.
      await opened('2001:db8:7:7::1', open);
      await opened('2001:db8:7:7:ffff::2', open);
      await refused('2001:db8:7:7::3', /from this address \(at most 2\)/);
      await opened('203.0.113.9', open);
      await refused('203.0.113.10', /for this video \(at most 5\)/);
      // A client that leaves frees its place.
      open.shift().close();
      let again;
      for (let i = 0; i < 25; i++) {
        again = await s.events('capped', from('203.0.113.10'));
        if (again.status === 200) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(again.status, 200, 'a place freed by a closed stream');
      open.push(again);
    } finally {
      for (const st of open) st.close();
    }
  });
});

describe('long-poll waiters', () => {
  let s;
  before(async () => { s = await service(); });
  after(async () => s?.mf.dispose());

  test('lease requests that timed out leave the shard at once', async () => {
    const polls = await Promise.all(Array.from({ length: 5 }, () => s.api.internal('/internal/jobs/lease', { worker: 'idle', wait_ms: 300 })));
    for (const p of polls) assert.equal(p.json.job, null, p.text);
    const stats = (await s.api.internal('/internal/dispatch/stats', {})).json.shards;
    assert.deepEqual(stats.map((sh) => sh.waiters), [0], JSON.stringify(stats));
    // And work still reaches a poller that waits.
    const waiting = s.api.internal('/internal/jobs/lease', { worker: 'poller', wait_ms: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await s.api.internal('/internal/dispatch/stats', {})).json.shards[0].waiters, 1);
    await s.upload('woken');
    assert.equal((await waiting).json.job?.video_id, 'woken');
  });

  test('a stopping transcoder takes back its waiting lease request, and the next job goes to the next one', async () => {
    // The transcoder that stops: its long poll waits in the shard.
    const started = Date.now();
    const stopping = s.api.internal('/internal/jobs/lease', { worker: 'stopping', wait_ms: 20000 });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await s.api.internal('/internal/dispatch/stats', {})).json.shards[0].waiters, 1);
    const other = await s.api.internal('/internal/jobs/withdraw', { worker: 'someone-else' });
    assert.deepEqual([other.status, other.json], [200, { withdrawn: 0 }], other.text);
    const withdrawn = await s.api.internal('/internal/jobs/withdraw', { worker: 'stopping' });
    assert.deepEqual([withdrawn.status, withdrawn.json], [200, { withdrawn: 1 }], withdrawn.text);
    const answer = await stopping;
    assert.equal(answer.json.job, null, 'no job for a transcoder that has gone');
    assert.ok(Date.now() - started < 10000, 'it answered at once, not after its 20-s wait');
    assert.equal((await s.api.internal('/internal/dispatch/stats', {})).json.shards[0].waiters, 0);
    // Before the withdraw existed, the stopping transcoder's request took this job.
    await s.upload('after-withdraw');
    const next = await s.api.internal('/internal/jobs/lease', { worker: 'next', wait_ms: 2000 });
    assert.equal(next.json.job?.video_id, 'after-withdraw', next.text);
    assert.equal(next.json.job?.attempt, 1, 'no attempt spent on the transcoder that stopped');
    const bad = await s.api.internal('/internal/jobs/withdraw', { nobody: true });
    assert.equal(bad.status, 400, bad.text);
  });
});
