// The SSE gaps of issue 25, in workerd: a client resuming from an id the
// log no longer keeps gets `reset` with the present state (the logs shrunk
// to 4 events with SSE_LOG_EVENTS), one resuming inside the log gets the
// replay as before; and a stream token from POST /events/token opens the
// app stream without the key header, as a browser's EventSource must, with
// CORS on its answers only. Documented routes are called through the typed
// client (@iv/media-client); internal routes and malformed bodies stay raw.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openEvents } from '../../devkit/sse.mjs';
import { ok } from '@iv/media-client';
import { videoService, client, typedClient, errorCode, freshIp, API_KEY } from './harness.mjs';

// The R2 binding serves reads; presigning needs settings, never a server.
const store = { endpoint: 'http://127.0.0.1:9', bucket: 'media', region: 'us-east-1', accessKey: 'test-access', secretKey: 'test-secret' };
const APP = 'sseapp';
const KEY_APP = 'key-for-sseapp-only';
const KEY_OTHER = 'key-for-other-app';
const ORIGIN = 'https://dashboard.example';
const KEEP = 4;

describe('reset and stream tokens', () => {
  let mf; let api; let logs; let typed; let otherApp; let noKey;
  before(async () => {
    logs = [];
    mf = await videoService({
      store,
      logs,
      vars: {
        SSE_LOG_EVENTS: String(KEEP),
        SSE_HEARTBEAT_MS: '400',
        IV_API_KEY: `${KEY_APP}:${APP}, ${KEY_OTHER}:other, ${API_KEY}`,
      },
    });
    api = client(mf);
    typed = typedClient(mf, { key: KEY_APP });
    otherApp = typedClient(mf, { key: KEY_OTHER });
    noKey = typedClient(mf, { key: null });
  });
  after(async () => mf?.dispose());

  const fetchMf = (url, init) => mf.dispatchFetch(url, init);
  const jobEvents = (video, opts = {}) => openEvents(fetchMf, `http://video.test/job-events?app_id=${APP}&video_id=${video}`, { ...opts, headers: { ...freshIp(), ...(opts.headers ?? {}) } });
  const appEvents = (opts = {}) => openEvents(fetchMf, `http://video.test/events?app_id=${APP}`, { ...opts, headers: { 'x-api-key': KEY_APP, ...freshIp(), ...(opts.headers ?? {}) } });
  const notify = async (id) => {
    const raw = `raw/${APP}/${id}/source.mp4`;
    await (await mf.getR2Bucket('MEDIA_BUCKET')).put(raw, new Uint8Array(1000).fill(1), { httpMetadata: { contentType: 'video/mp4' } });
    const { response, error } = await typed.POST('/notify-upload-complete', { body: { app_id: APP, video_id: id, raw_key: raw, content_type: 'video/mp4' } });
    assert.equal(response.status, 202, JSON.stringify(error));
  };
  const leaseVideo = async (video) => {
    for (let i = 0; i < 50; i++) {
      const job = (await api.internal('/internal/jobs/lease', { worker: 'test', wait_ms: 0 })).json.job;
      if (job?.video_id === video) return job;
    }
    throw new Error(`never leased ${video}`);
  };
  const beat = (job, n) => api.internal(`/internal/jobs/${job.job_id}/heartbeat`, { lease_id: job.lease_id, progress: n, stage: `step ${n}` });
  // The typed answer {data, error, response}.
  const mint = (body, as = typed, headers = {}) => as.POST('/events/token', { body, headers });

  test('/job-events: a resume from an id the video dropped is reset with the job, then live; one inside the log replays', async () => {
    await notify('long');
    const first = await jobEvents('long');
    const created = await first.waitFor('job:created', 5000);
    first.close();
    // A long disconnect: more events than the video keeps.
    const job = await leaseVideo('long');
    for (let n = 1; n <= KEEP + 2; n++) assert.equal((await beat(job, n * 5)).status, 200);
    const status = ok(await typed.GET('/job-status', { params: { query: { app_id: APP, video_id: 'long' } } }));

    const back = await jobEvents('long', { lastEventId: created.id });
    try {
      assert.equal(back.status, 200, back.text);
      const reset = await back.waitFor('reset', 5000);
      const names = back.events.map((e) => e.event);
      assert.deepEqual(names.slice(0, 2), ['connected', 'reset'], 'reset first, no replay with a hole in it');
      assert.equal(reset.data.reason, 'last_event_id_too_old');
      assert.ok(reset.data.oldest_kept > Number(created.id) + 1, `${reset.data.oldest_kept} after ${created.id}`);
      assert.equal(reset.data.job.status, 'processing');
      assert.equal(reset.data.job.progress, status.progress, 'the job as /job-status shows it');
      assert.equal(reset.data.job.stage, status.stage);
      const newest = Number(reset.id);
      assert.equal(newest, reset.data.oldest_kept + KEEP - 1, 'the newest id: the browser moves on from it');
      // Then live.
      await beat(job, 90);
      const live = await back.waitFor((e) => e.event === 'job:progress' && e.data.progress === 90, 5000);
      assert.equal(Number(live.id), newest + 1);
      assert.ok(back.events.every((e) => e.event !== 'job:progress' || e.data.progress === 90), 'nothing replayed');

      // Inside the log: the replay, no reset.
      const inside = await jobEvents('long', { lastEventId: String(newest - 1) });
      try {
        const got = await inside.waitFor((e) => e.event === 'job:progress' && e.data.progress === 90, 5000);
        assert.equal(Number(got.id), newest + 1);
        assert.ok(!inside.events.some((e) => e.event === 'reset'), inside.events.map((e) => e.event).join());
        assert.equal(inside.events.filter((e) => e.event.startsWith('job:')).length, 2, 'the two after the id');
      } finally {
        inside.close();
      }
      // A new stream (no id) replays what is kept, without a reset.
      const fresh = await jobEvents('long');
      try {
        await fresh.waitFor((e) => e.event === 'job:progress' && e.data.progress === 90, 5000);
        assert.ok(!fresh.events.some((e) => e.event === 'reset'));
      } finally {
        fresh.close();
      }
      // An id past the newest (a log that was wiped since): reset too.
      const ahead = await jobEvents('long', { lastEventId: '100000' });
      try {
        const r = await ahead.waitFor('reset', 5000);
        assert.deepEqual([r.data.reason, Number(r.id)], ['last_event_id_unknown', newest + 1]);
      } finally {
        ahead.close();
      }
    } finally {
      back.close();
    }
  });

  test('/events: a resume from an id the app dropped is reset with the recent jobs', async () => {
    const first = await appEvents();
    await first.waitFor('connected', 5000);
    await notify('appreset');
    const created = await first.waitFor((e) => e.event === 'job:created' && e.data.videoId === 'appreset', 5000);
    first.close();
    const job = await leaseVideo('appreset');
    for (let n = 1; n <= KEEP + 2; n++) await beat(job, n * 5);
    const back = await appEvents({ lastEventId: created.id });
    try {
      const reset = await back.waitFor('reset', 5000);
      assert.deepEqual(back.events.slice(0, 2).map((e) => e.event), ['connected', 'reset']);
      assert.equal(reset.data.reason, 'last_event_id_too_old');
      const connected = back.events[0].data;
      assert.deepEqual(reset.data.jobs, connected.recent, 'the recent jobs, as connected lists them');
      assert.equal(reset.data.jobs.find((j) => j.videoId === 'appreset').status, 'processing');
      await beat(job, 95);
      const live = await back.waitFor((e) => e.event === 'job:progress' && e.data.progress === 95, 5000);
      assert.equal(Number(live.id), Number(reset.id) + 1, 'live right after the newest id');
    } finally {
      back.close();
    }
  });

  test('a stream token opens /events without the key, with CORS; key answers stay without', async () => {
    const minted = await mint({ app_id: APP, ttl_s: 120 }, typed, { origin: ORIGIN });
    assert.equal(minted.response.status, 200, JSON.stringify(minted.error));
    assert.equal(minted.response.headers.get('access-control-allow-origin'), null, 'minting is for servers: no CORS');
    const { token, expires_at: expiresAt, events_url: eventsUrl } = minted.data;
    assert.match(token, /^st1\.[0-9a-f]+\.[0-9a-f]{64}$/);
    const life = Date.parse(expiresAt) - Date.now();
    assert.ok(life > 110_000 && life <= 120_000, `ttl_s 120: ${life} ms`);
    assert.equal(eventsUrl, `http://video.test/events?app_id=${APP}&stream_token=${token}`);
    const def = ok(await mint({ app_id: APP }));
    const defLife = Date.parse(def.expires_at) - Date.now();
    assert.ok(defLife > 590_000 && defLife <= 600_000, `600 s by default: ${defLife} ms`);

    const page = await openEvents(fetchMf, eventsUrl, { headers: { origin: ORIGIN, ...freshIp() } });
    try {
      assert.equal(page.status, 200, page.text);
      assert.equal(page.headers.get('access-control-allow-origin'), '*', 'a browser reads it');
      assert.equal(page.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      await page.waitFor('connected', 5000);
      await notify('bytoken');
      await page.waitFor((e) => e.event === 'job:created' && e.data.videoId === 'bytoken', 5000);
    } finally {
      page.close();
    }
    // Resuming with ?last_event_id= and a token.
    const resumed = await openEvents(fetchMf, `${eventsUrl}&last_event_id=0`, { headers: freshIp() });
    try {
      assert.equal(resumed.status, 200, resumed.text);
      await resumed.waitFor((e) => e.event === 'reset' || e.event.startsWith('job:'), 5000);
    } finally {
      resumed.close();
    }
    // The same stream with the key: no CORS, as before.
    const server = await appEvents({ headers: { origin: ORIGIN } });
    try {
      assert.equal(server.status, 200, server.text);
      assert.equal(server.headers.get('access-control-allow-origin'), null, 'key answers are for servers');
    } finally {
      server.close();
    }
    // Nothing logged shows the token.
    assert.ok(!JSON.stringify(logs).includes(token.split('.')[2]), 'the token is never logged');
  });

  test('expired, altered, other-app and upload tokens are refused with JSON errors browsers can read', async () => {
    const open = (token, app = APP) => mf.dispatchFetch(`http://video.test/events?app_id=${app}&stream_token=${encodeURIComponent(token)}`, { headers: { origin: ORIGIN, ...freshIp() } });
    const refusal = async (res) => {
      const text = await res.text();
      return { status: res.status, code: errorCode({ json: JSON.parse(text) }), cors: res.headers.get('access-control-allow-origin'), text };
    };
    const short = ok(await mint({ app_id: APP, ttl_s: 1 })).token;
    const good = ok(await mint({ app_id: APP })).token;
    const other = ok(await mint({ app_id: 'other' }, otherApp)).token;
    const [prefix, body, mac] = good.split('.');
    const altered = `${prefix}.${body}.${mac.startsWith('0') ? '1' : '0'}${mac.slice(1)}`;
    const session = ok(await typed.POST('/generate-upload-url', { body: { app_id: APP, video_id: 'up', content_type: 'video/mp4', size: 10 * 1024 * 1024, multipart: true } }));
    const upload = session.upload_token;
    assert.match(upload, /^up1\./);
    await new Promise((r) => setTimeout(r, 1100));

    for (const [what, token, app, status, code] of [
      ['expired', short, APP, 401, 'unauthorized'],
      ['altered', altered, APP, 401, 'unauthorized'],
      ['an upload token', upload, APP, 401, 'unauthorized'],
      ['garbage', 'nope', APP, 401, 'unauthorized'],
      ['another app\'s', other, APP, 403, 'app_not_allowed'],
      ['for another app than its own', good, 'other', 403, 'app_not_allowed'],
    ]) {
      const r = await refusal(await open(token, app));
      assert.deepEqual([r.status, r.code], [status, code], `${what}: ${r.text}`);
      assert.equal(r.cors, '*', `${what}: the page can read why`);
      assert.ok(!r.text.includes(mac), 'the answer never echoes a token');
    }
    // And a stream token is no upload token.
    const asUpload = await mf.dispatchFetch(`http://video.test/uploads/${good}/s3/multipart`, { method: 'POST', headers: { 'content-type': 'application/json', ...freshIp() }, body: JSON.stringify({ filename: 'a.mp4', type: 'video/mp4', metadata: {} }) });
    assert.equal(asUpload.status, 403, await asUpload.text());

    // The minting route: the key, its app, a bounded life.
    const refused = async (call) => { const { response, error } = await call; return [response.status, errorCode({ json: error })]; };
    assert.deepEqual(await refused(mint({ app_id: 'other' })), [403, 'app_not_allowed']);
    assert.deepEqual(await refused(mint({ app_id: APP }, noKey)), [401, 'unauthorized'], 'no key');
    for (const ttl of [0, 3601]) {
      assert.deepEqual(await refused(mint({ app_id: APP, ttl_s: ttl })), [400, 'invalid_field'], `ttl_s ${ttl}`);
    }
    // Not a number: a body the typed client would not send, so raw.
    const r = await api.post('/events/token', { app_id: APP, ttl_s: 'soon' }, { key: KEY_APP, headers: freshIp() });
    assert.deepEqual([r.status, errorCode(r)], [400, 'invalid_field'], `ttl_s soon: ${r.text}`);
  });
});
