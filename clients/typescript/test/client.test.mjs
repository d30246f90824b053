// The typed client's own tests (run in the lint part of scripts/test.sh):
// its committed types are what the current OpenAPI documents generate, the
// JS sources and the example type-check, and the wrappers send what they
// say (against a local HTTP listener that records requests; the services
// themselves are exercised through the client by the demo's e2e test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { generate, PACKAGE } from '../scripts/generate.mjs';
import { videoClient, imageClient, ok, ApiError } from '@iv/media-client';
import { verifyWebhook, Webhook, WebhookVerificationError } from '@iv/media-client/webhooks';

test('the committed types are what the OpenAPI documents generate now, and the sources and the example type-check', async () => {
  const { files, problems } = await generate();
  assert.deepEqual(problems, [], 'type errors in clients/typescript');
  for (const [file, text] of files) {
    assert.ok(
      readFileSync(join(PACKAGE, file), 'utf8') === text,
      `clients/typescript/${file} is stale: run \`node clients/typescript/scripts/generate.mjs\` and commit the result`,
    );
  }
  assert.deepEqual([...files.keys()].sort(), ['src/image-service.d.ts', 'src/index.d.ts', 'src/video-service.d.ts', 'src/webhooks.d.ts']);
});

/** A listener answering `reply(request, body)`; records each request. */
async function listener(reply) {
  const seen = [];
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    seen.push({ method: req.method, url: req.url, headers: req.headers, body });
    const [status, json] = reply(req, body);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(json));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, seen, close: () => new Promise((r) => server.close(r)) };
}

test('videoClient sends the key, the JSON body and the query; ok() returns data or throws the service error', async () => {
  const svc = await listener((req) =>
    req.url.startsWith('/job-status') ? [404, { error: { code: 'not_found', message: 'no such job' } }] : [202, { job_id: 'j1', status: 'queued' }],
  );
  try {
    const video = videoClient({ baseUrl: svc.url, apiKey: 'k-123', headers: { 'cf-connecting-ip': '10.0.0.1' } });
    const body = { app_id: 'a', video_id: 'v', raw_key: 'raw/a/v/source.mp4', content_type: /** @type {const} */ ('video/mp4') };
    const job = ok(await video.POST('/notify-upload-complete', { body }));
    assert.equal(job.job_id, 'j1');
    assert.equal(svc.seen[0].method, 'POST');
    assert.equal(svc.seen[0].url, '/notify-upload-complete');
    assert.equal(svc.seen[0].headers['x-api-key'], 'k-123');
    assert.equal(svc.seen[0].headers['cf-connecting-ip'], '10.0.0.1');
    assert.match(svc.seen[0].headers['content-type'], /^application\/json/);
    assert.deepEqual(JSON.parse(svc.seen[0].body), body);

    const missing = await video.GET('/job-status', { params: { query: { app_id: 'a', video_id: 'v w' } } });
    assert.equal(svc.seen[1].url, '/job-status?app_id=a&video_id=v%20w');
    assert.equal(missing.response.status, 404);
    assert.equal(missing.error?.error.code, 'not_found');
    assert.throws(() => ok(missing), (e) => e instanceof ApiError && e.status === 404 && e.code === 'not_found' && /no such job/.test(e.message));

    // Without a key, no key header at all (public routes).
    await videoClient({ baseUrl: svc.url }).GET('/job-status', { params: { query: { app_id: 'a', video_id: 'v' } } });
    assert.equal(svc.seen[2].headers['x-api-key'], undefined);
    await imageClient({ baseUrl: svc.url, apiKey: 'k-9' }).GET('/images', { params: { query: { app_id: 'a', image_id: 'i' } } });
    assert.equal(svc.seen[3].headers['x-api-key'], 'k-9');
    assert.throws(() => videoClient(/** @type {any} */ ({ apiKey: 'k' })), TypeError);
  } finally {
    await svc.close();
  }
});

test('verifyWebhook checks Standard Webhooks signatures from fetch Headers or Node headers, either secret during a rotation, and a legacy raw secret', () => {
  const oldSecret = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
  const newSecret = `whsec_${Buffer.alloc(32, 2).toString('base64')}`;
  const body = JSON.stringify({ id: 'evt_1', type: 'video.ready', created_at: new Date().toISOString(), data: { video_id: 'v' } });
  const at = new Date();
  const id = 'msg_1';
  const signature = `${new Webhook(newSecret).sign(id, at, body)} ${new Webhook(oldSecret).sign(id, at, body)}`;
  const nodeHeaders = { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signature };
  assert.equal(verifyWebhook(newSecret, nodeHeaders, body).type, 'video.ready');
  assert.equal(verifyWebhook(oldSecret, new Headers(nodeHeaders), body).data.video_id, 'v');
  const other = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;
  assert.throws(() => verifyWebhook(other, nodeHeaders, body), WebhookVerificationError);
  assert.throws(() => verifyWebhook(newSecret, nodeHeaders, `${body} `), WebhookVerificationError);
  assert.throws(() => verifyWebhook(newSecret, { 'webhook-id': id }, body), WebhookVerificationError);
  // An operator's legacy IV_WEBHOOKS secret (not whsec_<base64>) is a raw key, as the service signs with it.
  const legacy = 'a-legacy-secret-of-32-characters';
  const raw = { ...nodeHeaders, 'webhook-signature': new Webhook(new TextEncoder().encode(legacy), { format: 'raw' }).sign(id, at, body) };
  assert.equal(verifyWebhook(legacy, raw, body).type, 'video.ready');
});
