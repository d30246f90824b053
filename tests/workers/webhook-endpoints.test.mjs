// Webhook endpoints by API in workerd (issue 25): CRUD with bad input and
// another app's key refused, event filters, secret rotation with both
// signatures verified by the npm `standardwebhooks` package, retries with
// a constant webhook-id, the delivery log, redelivery, 410 disabling, and
// the operator's IV_WEBHOOKS entry as the app's default endpoint. Real
// deliveries go to receivers on 127.0.0.1 (the test environment's
// allowance); retries wait 100-300 ms (WEBHOOK_RETRY_SCHEDULE_MS).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Webhook } from 'standardwebhooks';
import { openEvents } from '../../devkit/sse.mjs';
import { startReceiver } from '../../devkit/webhook-receiver.mjs';
import { verifyWebhook } from '../../devkit/webhook-verify.mjs';
import { videoService, client, errorCode, freshIp, API_KEY } from './harness.mjs';

const APP = 'hookapp';
const KEY = 'key-for-hookapp';
const OTHER_KEY = 'key-for-another-app';
const LEGACY_SECRET = 'legacy-operator-secret-0123';
const store = { endpoint: 'http://127.0.0.1:9', bucket: 'media', region: 'us-east-1', accessKey: 'test-access', secretKey: 'test-secret' };
const RESULT = {
  duration_s: 4,
  has_audio: false,
  renditions: [{ name: '360p', width: 640, height: 360, bandwidth: 900000, average_bandwidth: 800000, codecs: 'avc1.64001e', frame_rate: 30 }],
  thumbnails: null,
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let mf;
let api;
let operator; // the IV_WEBHOOKS receiver
before(async () => {
  operator = await startReceiver();
  mf = await videoService({
    store,
    vars: {
      IV_API_KEY: `${KEY}:${APP}, ${OTHER_KEY}:another, ${API_KEY}`,
      IV_WEBHOOKS: JSON.stringify({ [APP]: { url: `${operator.url}/ops`, secret: LEGACY_SECRET } }),
      WEBHOOK_RETRY_SCHEDULE_MS: '100,200,300',
      RETRY_BACKOFF_MS: '100',
    },
  });
  api = client(mf);
});
after(async () => { await mf?.dispose(); await operator?.stop(); });

const call = (method, path, { body, key = KEY } = {}) => api.call(method, path, { body, key, headers: freshIp() });
const create = (body, key) => call('POST', '/webhooks/endpoints', { body: { app_id: APP, ...body }, key });
const q = `app_id=${APP}`;

/** A video of the app through to `done` (video.created, video.playable, video.ready). */
async function finishVideo(video) {
  const bucket = await mf.getR2Bucket('MEDIA_BUCKET');
  const raw = `raw/${APP}/${video}/source.mp4`;
  await bucket.put(raw, new Uint8Array(1000).fill(1), { httpMetadata: { contentType: 'video/mp4' } });
  const n = await api.post('/notify-upload-complete', { app_id: APP, video_id: video, raw_key: raw, content_type: 'video/mp4' }, { key: KEY, headers: freshIp() });
  assert.equal(n.status, 202, n.text);
  let job;
  for (let i = 0; i < 50 && job?.video_id !== video; i++) job = (await api.internal('/internal/jobs/lease', { worker: 't', wait_ms: 0 })).json.job;
  assert.equal(job?.video_id, video);
  const done = await api.internal(`/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result: RESULT });
  assert.equal(done.status, 200, done.text);
}

/** Waits until `pred()` holds (polling), or fails saying `what`. */
async function until(pred, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await sleep(50);
  }
  assert.fail(`timed out: ${what}`);
}

const delivered = (r, type) => r.got.filter((g) => g.status === 200 && (!type || g.body?.type === type));

describe('endpoints: create, list, get, update, delete', () => {
  test('the lifecycle of an endpoint; the secret is shown once', async () => {
    const made = await create({ url: 'https://hooks.example.com/a', events: ['video.ready', 'video.errored'], description: 'orders' });
    assert.equal(made.status, 201, made.text);
    assert.match(made.json.id, /^ep_[a-z0-9]{26}$/);
    assert.match(made.json.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.equal(Buffer.from(made.json.secret.slice(6), 'base64').length, 32);
    assert.deepEqual(made.json.events, ['video.ready', 'video.errored']);
    assert.equal(made.json.enabled, true);
    const id = made.json.id;

    const list = await call('GET', `/webhooks/endpoints?${q}`);
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.json.endpoints.map((e) => e.id).slice(0, 1), ['default'], 'the operator\'s entry first');
    assert.ok(list.json.endpoints.some((e) => e.id === id));
    assert.doesNotMatch(list.text, /whsec_|legacy-operator-secret/, 'no secret in a listing');
    const dflt = list.json.endpoints[0];
    assert.deepEqual([dflt.url, dflt.events, dflt.description], [`${operator.url}/ops`, null, 'IV_WEBHOOKS']);

    const got = await call('GET', `/webhooks/endpoints/${id}?${q}`);
    assert.equal(got.status, 200, got.text);
    assert.equal(got.json.description, 'orders');
    assert.equal(got.json.secret, undefined);

    const updated = await call('POST', `/webhooks/endpoints/${id}?${q}`, { body: { url: 'https://hooks.example.com/b', events: null, description: null } });
    assert.equal(updated.status, 200, updated.text);
    assert.deepEqual([updated.json.url, updated.json.events, updated.json.description], ['https://hooks.example.com/b', null, null]);

    const gone = await call('DELETE', `/webhooks/endpoints/${id}?${q}`);
    assert.deepEqual([gone.status, gone.json], [200, { id, deleted: true }]);
    assert.equal((await call('GET', `/webhooks/endpoints/${id}?${q}`)).status, 404);
    assert.equal((await call('DELETE', `/webhooks/endpoints/${id}?${q}`)).status, 404);
  });

  test('bad input is a 400 naming the problem; unknown ids are 404; the default endpoint is the operator\'s', async () => {
    const bad = [
      [{ url: 'https://h.example/', events: ['video.cancelled'] }, /unknown event type "video.cancelled"/],
      [{ url: 'https://h.example/', events: [] }, /at least one/],
      [{ url: 'https://h.example/', events: 'video.ready' }, /list of event type names/],
      [{ url: 'https://10.0.0.1/hook' }, /url .*private/],
      [{ url: 'https://user:pw@h.example/' }, /url .*user/i],
      [{ url: 'not a url' }, /url/],
      [{}, /url is required/],
      [{ url: 'https://h.example/', secret: 'mine' }, /unknown field "secret"/],
      [{ url: 'https://h.example/', description: 'x'.repeat(201) }, /at most 200/],
    ];
    for (const [body, why] of bad) {
      const r = await create(body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.match(r.json.error.message, why, JSON.stringify(body));
      assert.ok(['invalid_field', 'invalid_json'].includes(errorCode(r)));
    }
    const noApp = await call('POST', '/webhooks/endpoints', { body: { url: 'https://h.example/' } });
    assert.equal(noApp.status, 400, noApp.text);
    const notJson = await call('POST', '/webhooks/endpoints', { body: '{"app_id":' });
    assert.equal(errorCode(notJson), 'invalid_json');
    const made = await create({ url: 'https://h.example/' });
    const id = made.json.id;
    assert.equal((await call('POST', `/webhooks/endpoints/${id}?${q}`, { body: {} })).status, 400, 'an update must change something');
    assert.equal((await call('POST', `/webhooks/endpoints/${id}/rotate?${q}`, { body: { old_secret_expires_in_s: 604801 } })).status, 400);
    assert.equal((await call('GET', `/webhooks/endpoints/${id}`)).status, 400, 'app_id is required');
    for (const path of ['/webhooks/endpoints/ep_nope', '/webhooks/endpoints/..%2f..', `/webhooks/endpoints/ep_${'a'.repeat(26)}`]) {
      const r = await call('GET', `${path}?${q}`);
      assert.equal(r.status, 404, `${path}: ${r.text}`);
      assert.equal(errorCode(r), 'not_found');
    }
    assert.equal((await call('POST', `/webhooks/endpoints/${id}/deliveries/evt_${'0'.repeat(26)}/redeliver?${q}`)).status, 404, 'an event not kept');
    for (const [method, path, body] of [
      ['POST', `/webhooks/endpoints/default?${q}`, { enabled: false }],
      ['DELETE', `/webhooks/endpoints/default?${q}`],
      ['POST', `/webhooks/endpoints/default/rotate?${q}`, {}],
    ]) {
      const r = await call(method, path, { body });
      assert.equal(r.status, 409, `${method} ${path}: ${r.text}`);
      assert.match(r.json.error.message, /IV_WEBHOOKS/);
    }
    assert.equal((await call('PUT', `/webhooks/endpoints/${id}?${q}`)).status, 405);
    await call('DELETE', `/webhooks/endpoints/${id}?${q}`);
  });

  test('a key acts only on its own apps\' endpoints', async () => {
    const made = await create({ url: 'https://h.example/' });
    const id = made.json.id;
    const attempts = [
      ['POST', '/webhooks/endpoints', { app_id: APP, url: 'https://h.example/' }],
      ['GET', `/webhooks/endpoints?${q}`],
      ['GET', `/webhooks/endpoints/${id}?${q}`],
      ['POST', `/webhooks/endpoints/${id}?${q}`, { enabled: false }],
      ['DELETE', `/webhooks/endpoints/${id}?${q}`],
      ['POST', `/webhooks/endpoints/${id}/rotate?${q}`, {}],
      ['GET', `/webhooks/endpoints/${id}/deliveries?${q}`],
      ['POST', `/webhooks/endpoints/${id}/deliveries/evt_${'0'.repeat(26)}/redeliver?${q}`],
    ];
    for (const [method, path, body] of attempts) {
      const other = await call(method, path, { body, key: OTHER_KEY });
      assert.equal(other.status, 403, `${method} ${path}: ${other.text}`);
      assert.equal(errorCode(other), 'app_not_allowed');
      const none = await api.call(method, path, { body, headers: freshIp() });
      assert.equal(none.status, 401, `${method} ${path} without a key`);
      assert.equal(none.headers.get('access-control-allow-origin'), null, 'server-only: no CORS');
    }
    const still = await call('GET', `/webhooks/endpoints/${id}?${q}`);
    assert.equal(still.json.enabled, true, 'nothing changed');
    // Another app's hub has none of this app's endpoints.
    const theirs = await call('GET', `/webhooks/endpoints/${id}?app_id=another`, { key: OTHER_KEY });
    assert.equal(theirs.status, 404);
    await call('DELETE', `/webhooks/endpoints/${id}?${q}`);
  });
});

describe('deliveries', () => {
  let all; let readyOnly;
  before(async () => {
    all = await startReceiver();
    readyOnly = await startReceiver({ failFirst: 2 });
  });
  after(async () => { await all?.stop(); await readyOnly?.stop(); });

  test('filters, Standard Webhooks signatures, retries with one webhook-id, the delivery log and the app stream', async () => {
    const a = await create({ url: `${all.url}/all` });
    const r = await create({ url: `${readyOnly.url}/ready`, events: ['video.ready'] });
    assert.equal(a.status, 201, a.text);
    const appStream = await openEvents((url, init) => mf.dispatchFetch(url, init), `http://video.test/events?${q}`, { headers: { 'x-api-key': KEY, ...freshIp() } });
    let ready;
    try {
      await appStream.waitFor('connected', 5000);
      await finishVideo('filtered');
      await until(() => delivered(all).length >= 3 && delivered(readyOnly).length >= 1 && delivered(operator).filter((g) => g.body.data?.video_id === 'filtered').length >= 3, 'every endpoint got its events');
      await sleep(500); // anything more would show now
      const types = (rcv) => delivered(rcv).filter((g) => g.body.data?.video_id === 'filtered').map((g) => g.body.type).sort();
      assert.deepEqual(types(all), ['video.created', 'video.playable', 'video.ready']);
      assert.deepEqual(types(readyOnly), ['video.ready'], 'only its filter\'s type');
      assert.deepEqual(types(operator), ['video.created', 'video.playable', 'video.ready'], 'the default endpoint gets every type');

      for (const g of delivered(all)) {
        // The npm library of the spec checks every delivery.
        assert.deepEqual(new Webhook(a.json.secret).verify(g.raw.toString(), g.headers), g.body);
        assert.equal(g.headers['webhook-id'], g.body.id);
        assert.match(g.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]{43}=$/, 'one signature without a rotation');
        assert.throws(() => new Webhook(r.json.secret).verify(g.raw.toString(), g.headers), /No matching signature/, 'each endpoint its own secret');
      }
      for (const g of delivered(operator)) assert.deepEqual(verifyWebhook(LEGACY_SECRET, g.headers, g.raw), g.body, 'the legacy secret is a raw key');
      ready = delivered(all, 'video.ready').find((g) => g.body.data.video_id === 'filtered');
      assert.equal(delivered(readyOnly)[0].headers['webhook-id'], ready.headers['webhook-id'], 'one event id for every endpoint');

      // The ready-only receiver failed twice: three attempts, one webhook-id, fresh timestamps, backing off.
      const tries = readyOnly.got.filter((g) => g.headers['webhook-id'] === ready.body.id);
      assert.deepEqual(tries.map((t) => t.status), [500, 500, 200]);
      assert.ok(tries[1].at - tries[0].at >= 70 && tries[2].at - tries[1].at >= 150, `backs off: ${tries.map((t) => t.at - tries[0].at)}`);
      for (const t of tries) new Webhook(r.json.secret).verify(t.raw.toString(), t.headers);

      const log = await call('GET', `/webhooks/endpoints/${r.json.id}/deliveries?${q}`);
      assert.equal(log.status, 200, log.text);
      assert.equal(log.json.endpoint_id, r.json.id);
      const mine = log.json.attempts.filter((x) => x.event_id === ready.body.id);
      assert.deepEqual(mine.map((x) => [x.attempt, x.delivered, x.status_code, x.error]), [[3, true, 200, null], [2, false, 500, 'HTTP 500'], [1, false, 500, 'HTTP 500']], 'newest first');
      for (const x of mine) {
        assert.equal(x.type, 'video.ready');
        assert.ok(Number.isInteger(x.latency_ms) && x.latency_ms >= 0);
        assert.ok(!Number.isNaN(Date.parse(x.at)));
      }
      const opsLog = await call('GET', `/webhooks/endpoints/default/deliveries?${q}`);
      assert.ok(opsLog.json.attempts.filter((x) => x.delivered).length >= 3, 'the default endpoint has a log too');

      // The app stream: each catalogue event under its type, and each attempt.
      const shown = await appStream.waitFor((e) => e.event === 'video.ready' && e.data.videoId === 'filtered', 5000);
      assert.deepEqual([shown.data.id, shown.data.type, shown.data.data.status], [ready.body.id, 'video.ready', 'done']);
      await appStream.waitFor((e) => e.event === 'webhook' && e.data.eventId === ready.body.id && e.data.destination === r.json.id && e.data.state === 'delivered', 5000);
    } finally {
      appStream.close();
    }

    // Redelivery: the same event, the same webhook-id, a fresh attempt 1.
    const before = readyOnly.got.length;
    const again = await call('POST', `/webhooks/endpoints/${r.json.id}/deliveries/${ready.body.id}/redeliver?${q}`);
    assert.equal(again.status, 202, again.text);
    assert.deepEqual(again.json, { endpoint_id: r.json.id, event_id: ready.body.id, status: 'queued' });
    await until(() => readyOnly.got.length > before, 'the redelivery arrives');
    const redelivered = readyOnly.got.at(-1);
    assert.equal(redelivered.headers['webhook-id'], ready.body.id);
    assert.deepEqual(new Webhook(r.json.secret).verify(redelivered.raw.toString(), redelivered.headers), ready.body);
    await until(async () => (await call('GET', `/webhooks/endpoints/${r.json.id}/deliveries?${q}`)).json.attempts[0].attempt === 1, 'logged');
    const top = (await call('GET', `/webhooks/endpoints/${r.json.id}/deliveries?${q}`)).json.attempts[0];
    assert.deepEqual([top.event_id, top.attempt, top.delivered], [ready.body.id, 1, true]);
    for (const id of [a.json.id, r.json.id]) await call('DELETE', `/webhooks/endpoints/${id}?${q}`);
  });

  test('a rotation signs with both secrets until the old one expires; each verifies with standardwebhooks', async () => {
    const rcv = await startReceiver();
    try {
      const made = await create({ url: `${rcv.url}/rot`, events: ['video.ready'] });
      const oldSecret = made.json.secret;
      const rotated = await call('POST', `/webhooks/endpoints/${made.json.id}/rotate?${q}`, { body: '' });
      assert.equal(rotated.status, 200, rotated.text);
      const newSecret = rotated.json.secret;
      assert.match(newSecret, /^whsec_/);
      assert.notEqual(newSecret, oldSecret);
      const day = Date.parse(rotated.json.old_secret_expires_at) - Date.now();
      assert.ok(day > 86_300_000 && day <= 86_400_000, `a day by default: ${day}`);
      const view = await call('GET', `/webhooks/endpoints/${made.json.id}?${q}`);
      assert.equal(view.json.old_secret_expires_at, rotated.json.old_secret_expires_at);

      await finishVideo('rotated');
      await until(() => delivered(rcv).length >= 1, 'the rotated endpoint gets video.ready');
      const d = delivered(rcv)[0];
      const sigs = d.headers['webhook-signature'].split(' ');
      assert.equal(sigs.length, 2, d.headers['webhook-signature']);
      assert.ok(sigs.every((s) => /^v1,[A-Za-z0-9+/]{43}=$/.test(s)));
      // BOTH receivers verify the same delivery: one holding the old secret, one the new.
      assert.deepEqual(new Webhook(oldSecret).verify(d.raw.toString(), d.headers), d.body);
      assert.deepEqual(new Webhook(newSecret).verify(d.raw.toString(), d.headers), d.body);
      assert.equal(new Webhook(newSecret).sign(d.headers['webhook-id'], new Date(Number(d.headers['webhook-timestamp']) * 1000), d.raw.toString()), sigs[0], 'the new secret\'s first');

      // Rotating with no grace: only the newest secret signs.
      const now = await call('POST', `/webhooks/endpoints/${made.json.id}/rotate?${q}`, { body: { old_secret_expires_in_s: 0 } });
      assert.equal(now.json.old_secret_expires_at, null);
      const redo = await call('POST', `/webhooks/endpoints/${made.json.id}/deliveries/${d.body.id}/redeliver?${q}`);
      assert.equal(redo.status, 202, redo.text);
      await until(() => delivered(rcv).length >= 2, 'the redelivery');
      const d2 = delivered(rcv)[1];
      assert.equal(d2.headers['webhook-signature'].split(' ').length, 1);
      new Webhook(now.json.secret).verify(d2.raw.toString(), d2.headers);
      for (const stale of [oldSecret, newSecret]) assert.throws(() => new Webhook(stale).verify(d2.raw.toString(), d2.headers), /No matching signature/);
      await call('DELETE', `/webhooks/endpoints/${made.json.id}?${q}`);
    } finally {
      await rcv.stop();
    }
  });

  test('a 410 Gone disables the endpoint until its owner enables it', async () => {
    const rcv = await startReceiver({ failFirst: 1, failStatus: 410 });
    try {
      const made = await create({ url: `${rcv.url}/gone`, events: ['video.ready'] });
      await finishVideo('gone410');
      await until(async () => (await call('GET', `/webhooks/endpoints/${made.json.id}?${q}`)).json.enabled === false, 'disabled by the 410');
      const view = await call('GET', `/webhooks/endpoints/${made.json.id}?${q}`);
      assert.match(view.json.disabled_reason, /410/);
      await sleep(400);
      assert.equal(rcv.got.length, 1, 'no retry after a 410');
      const event = rcv.got[0].body.id;
      const refused = await call('POST', `/webhooks/endpoints/${made.json.id}/deliveries/${event}/redeliver?${q}`);
      assert.equal(refused.status, 409, refused.text);
      const enabled = await call('POST', `/webhooks/endpoints/${made.json.id}?${q}`, { body: { enabled: true } });
      assert.deepEqual([enabled.json.enabled, enabled.json.disabled_reason], [true, null]);
      const ok = await call('POST', `/webhooks/endpoints/${made.json.id}/deliveries/${event}/redeliver?${q}`);
      assert.equal(ok.status, 202, ok.text);
      await until(() => delivered(rcv).length === 1, 'delivered once enabled');
      await call('DELETE', `/webhooks/endpoints/${made.json.id}?${q}`);
    } finally {
      await rcv.stop();
    }
  });
});
