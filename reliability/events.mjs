// The "events" group of reliability/run.mjs (issue 13): live job events and
// webhooks under load and faults, against the real platform (wrangler dev,
// Garage, the transcoder).
//
// - 200 concurrent SSE clients on one video all receive job:completed.
// - 50 clients that drop mid-stream and come back with Last-Event-ID miss
//   nothing and get nothing twice (their event ids against a client that
//   stayed).
// - Webhook receivers (the app's IV_WEBHOOKS url and an endpoint made by
//   API) down for the first 3 attempts of each event: each event is then
//   delivered exactly once per endpoint, and is in its delivery log.
// - Job state per video: /job-status on 100 different videos, and what
//   reached the queue shards meanwhile (public reads: nothing).
// - 1,000 anonymous reads of random ids: no new Durable Object (counted as
//   SQLite files in wrangler dev's persist directory).
// - SSE past the per-address cap: 429 with a JSON error and Retry-After.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeClip, uploadVideo, postJson, freshIp } from '../devkit/client.mjs';
import { openEvents } from '../devkit/sse.mjs';
import { startReceiver } from '../devkit/webhook-receiver.mjs';

/** The app whose webhooks go to the run's receiver (run.mjs configures it). */
export const HOOKS_APP = 'hooks';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const jobIds = (events) => events.filter((e) => e.event.startsWith('job:')).map((e) => Number(e.id));

export async function events({ platform, scratch, say, receiver }) {
  const rows = [];
  const stream = (app, video, opts) => openEvents(fetch, `${platform.video}/job-events?app_id=${app}&video_id=${video}`, { ...opts, headers: freshIp() });
  const clip = makeClip(join(scratch, 'events-clip.mp4'), { size: '640x360', seconds: 6 });

  // 1. Many clients on one video.
  {
    const video = `many${Date.now()}`;
    const notified = await uploadVideo(platform, HOOKS_APP, video, clip);
    if (notified.status !== 202) throw new Error(`notify: ${notified.status} ${notified.text}`);
    say('events: 200 SSE clients on one video…');
    const t0 = Date.now();
    const clients = await Promise.all(Array.from({ length: 200 }, () => stream(HOOKS_APP, video)));
    const opened = Date.now() - t0;
    const results = await Promise.allSettled(clients.map((c) => c.waitFor('job:completed', 240_000)));
    const got = results.filter((r) => r.status === 'fulfilled');
    const times = got.map((r) => r.value.at).sort((a, b) => a - b);
    // After the streams end: the catalogue event that follows job:completed
    // (video.ready) may still be in flight when job:completed arrives.
    await Promise.all(clients.map((c) => Promise.race([c.finished, sleep(5000)])));
    const lastIds = new Set(clients.map((c) => c.events.at(-1)?.id));
    const ended = clients.filter((c) => c.ended).length;
    clients.forEach((c) => c.close());
    rows.push({
      check: '200 concurrent SSE clients on one video all receive job:completed',
      ok: got.length === 200 && ended === 200 && lastIds.size === 1,
      detail: `${clients.filter((c) => c.status === 200).length} streams opened in ${opened} ms; ${got.length} of 200 got job:completed, spread ${times.length ? times.at(-1) - times[0] : '-'} ms; ${ended} ended after it; last event id the same for all: ${lastIds.size === 1}`,
    });
  }

  // 2. Clients that drop and resume.
  {
    const video = `resume${Date.now()}`;
    const longClip = makeClip(join(scratch, 'events-long.mp4'), { size: '1280x720', seconds: 12 });
    const notified = await uploadVideo(platform, 'eventsrel', video, longClip);
    if (notified.status !== 202) throw new Error(`notify: ${notified.status} ${notified.text}`);
    say('events: 50 clients drop mid-stream and resume…');
    const control = await stream('eventsrel', video);
    const droppers = await Promise.all(Array.from({ length: 50 }, () => stream('eventsrel', video)));
    const resumed = await Promise.all(droppers.map(async (first, i) => {
      await first.waitFor('job:progress', 180_000);
      first.close();
      await sleep(300 + i * 20);
      const last = first.events.filter((e) => e.event.startsWith('job:')).at(-1).id;
      const second = await stream('eventsrel', video, { lastEventId: last });
      await second.waitFor('job:completed', 240_000).catch(() => {});
      second.close();
      return { first, second };
    }));
    await control.waitFor('job:completed', 240_000);
    control.close();
    const want = jobIds(control.events).join(',');
    const lost = resumed.filter(({ first, second }) => jobIds([...first.events, ...second.events]).join(',') !== want).length;
    const dropsMid = resumed.filter(({ first }) => !first.events.some((e) => e.event === 'job:completed')).length;
    rows.push({
      check: 'clients that drop mid-stream and resume with Last-Event-ID lose nothing',
      ok: lost === 0 && dropsMid === 50,
      detail: `50 clients closed after their first job:progress (${dropsMid} before the end) and reconnected with Last-Event-ID: ${50 - lost} saw exactly the ${jobIds(control.events).length} events of a client that stayed, in order, none twice`,
    });
  }

  // 3. Webhooks to receivers that are down for 3 attempts (row 1's video and this one): the app's
  // IV_WEBHOOKS url (its endpoint `default`) and an endpoint made by API, each down for the first
  // 3 attempts of each event. Every event reaches each endpoint once, and each endpoint's delivery
  // log has it (its failed attempts, then the delivered one).
  {
    const second = await startReceiver({ failFirst: 3, failStatus: 'reset' });
    try {
      const made = await postJson(`${platform.video}/webhooks/endpoints`, { app_id: HOOKS_APP, url: `${second.url}/api` }, platform.apiKey);
      if (made.status !== 201) throw new Error(`endpoint: ${made.status} ${made.text}`);
      const video = `hook${Date.now()}`;
      await uploadVideo(platform, HOOKS_APP, video, new Uint8Array(2000).fill(3));
      await postJson(`${platform.video}/cancel-job`, { app_id: HOOKS_APP, video_id: video }, platform.apiKey);
      say('events: waiting for webhooks through receivers that were down…');
      const ofVideo = (r) => r.got.filter((g) => g.body?.data?.video_id === video);
      const deadline = Date.now() + 60_000;
      const delivered = (r) => ofVideo(r).filter((g) => g.status === 200);
      while ((delivered(receiver).length < 2 || delivered(second).length < 2) && Date.now() < deadline) await sleep(250);
      await sleep(4000); // Anything sent after a delivery would show up here.
      const check = async (r, endpoint) => {
        const got = endpoint === 'default' ? r.got : ofVideo(r);
        const ids = [...new Set(got.map((g) => g.headers['webhook-id']))];
        const perId = ids.map((id) => got.filter((g) => g.headers['webhook-id'] === id));
        const once = perId.every((a) => a.filter((g) => g.status === 200).length === 1 && a.at(-1).status === 200);
        const downFirst = perId.every((a) => a.slice(0, 3).every((g) => g.status === 'reset'));
        const res = await fetch(`${platform.video}/webhooks/endpoints/${endpoint}/deliveries?app_id=${HOOKS_APP}`, { headers: { 'x-api-key': platform.apiKey, ...freshIp() } });
        const log = (await res.json()).attempts ?? [];
        const logged = ids.filter((id) => log.some((a) => a.event_id === id && a.delivered && a.attempt === 4)).length;
        const types = perId.map((a) => a[0].body?.type).sort();
        return { ids, once, downFirst, logged, types, attempts: got.length };
      };
      const ops = await check(receiver, 'default');
      const api = await check(second, made.json.id);
      rows.push({
        check: 'webhook receivers down for 3 attempts, then up: every event delivered once per endpoint, and in its delivery log',
        ok: ops.ids.length >= 3 && api.ids.length === 2 && [ops, api].every((c) => c.once && c.downFirst && c.logged === c.ids.length),
        detail: `IV_WEBHOOKS endpoint: ${ops.ids.length} events (${ops.types.join(', ')}), ${ops.attempts} attempts; API endpoint: ${api.ids.length} events (${api.types.join(', ')}), ${api.attempts} attempts. Each refused 3 times (connection dropped), then delivered once and never again: ${[ops, api].every((c) => c.once && c.downFirst)}; in the delivery log as delivered on attempt 4: ${ops.logged}/${ops.ids.length} and ${api.logged}/${api.ids.length}`,
      });
    } finally {
      await second.stop();
    }
  }

  // 4. Public reads never reach a queue shard.
  {
    say('events: /job-status on 100 videos…');
    const app = 'shardload';
    const videos = Array.from({ length: 100 }, (_, i) => `v${i}x${Date.now()}`);
    for (let i = 0; i < videos.length; i += 10) {
      await Promise.all(videos.slice(i, i + 10).map(async (v) => {
        const r = await uploadVideo(platform, app, v, new Uint8Array(1000).fill(1));
        if (r.status !== 202) throw new Error(`notify ${v}: ${r.status} ${r.text}`);
        await postJson(`${platform.video}/cancel-job`, { app_id: app, video_id: v }, platform.apiKey);
      }));
    }
    const stats = async () => (await fetch(`${platform.video}/internal/dispatch/stats`, { method: 'POST', headers: { authorization: `Bearer ${platform.transcoderToken}` }, body: '{}' })).json();
    const before = await stats();
    const sources = {};
    const statuses = {};
    const t0 = Date.now();
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < videos.length; i += 20) {
        await Promise.all(videos.slice(i, i + 20).map(async (v) => {
          const r = await fetch(`${platform.video}/job-status?app_id=${app}&video_id=${v}`, { headers: freshIp() });
          await r.arrayBuffer();
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          const source = /jobstore;desc="(\w+)"/.exec(r.headers.get('server-timing') ?? '')?.[1] ?? 'none';
          sources[source] = (sources[source] ?? 0) + 1;
        }));
      }
    }
    const seconds = (Date.now() - t0) / 1000;
    const after = await stats();
    const delta = {};
    for (const [i, shard] of after.shards.entries()) {
      for (const [op, n] of Object.entries(shard.requests)) delta[op] = (delta[op] ?? 0) + n - (before.shards[i]?.requests[op] ?? 0);
    }
    const publicOps = Object.entries(delta).filter(([op, n]) => op !== 'lease' && op !== 'ring' && n > 0);
    rows.push({
      check: 'job-status on 100 videos reaches no queue shard',
      ok: statuses[200] === 500 && publicOps.length === 0,
      detail: `500 reads in ${seconds.toFixed(1)} s over ${after.shards.length} shards, answered ${JSON.stringify(statuses)} from ${JSON.stringify(sources)}; shard requests meanwhile ${JSON.stringify(delta)} (lease/ring: the idle transcoder's long-polls; anything else would be reads)`,
    });
  }

  // 5. Anonymous reads of ids that have no job create no object.
  {
    say('events: 1,000 anonymous reads of random ids…');
    const before = objectFiles(platform.stateDir, 'VideoJob');
    const app = 'anon';
    const rand = () => Math.random().toString(36).slice(2, 12);
    const paths = (v) => [
      `/job-status?app_id=${app}&video_id=${v}`,
      `/playback-url?app_id=${app}&video_id=${v}`,
      `/job-events?app_id=${app}&video_id=${v}`,
      `/hls/${app}/${v}/abcdefghijklmnop/master.m3u8`,
      `/hls/${app}/${v}/abcdefghijklmnop/360p/index.m3u8`,
    ];
    const statuses = {};
    const t0 = Date.now();
    for (let i = 0; i < 1000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, async (_, j) => {
        const r = await fetch(`${platform.video}${paths(`r${rand()}`)[(i + j) % 5]}`, { headers: freshIp() });
        await r.arrayBuffer();
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      }));
    }
    const seconds = (Date.now() - t0) / 1000;
    await sleep(500);
    const after = objectFiles(platform.stateDir, 'VideoJob');
    const added = after.filter((f) => !before.includes(f));
    rows.push({
      check: '1,000 anonymous reads of random ids: zero new Durable Objects',
      ok: statuses[404] === 1000 && added.length === 0 && before.length > 0,
      detail: `/job-status, /playback-url, /job-events and /hls/ (200 each) in ${seconds.toFixed(1)} s answered ${JSON.stringify(statuses)}; VideoJob SQLite files in the persist directory ${before.length} before, ${after.length} after (${added.length} new)`,
    });
  }

  // 6. Event streams past the cap.
  {
    const video = `capped${Date.now()}`;
    const notified = await uploadVideo(platform, 'sse-cap', video, clip);
    if (notified.status !== 202) throw new Error(`notify: ${notified.status} ${notified.text}`);
    say('events: SSE streams past the per-address cap…');
    const ip = { 'cf-connecting-ip': '192.0.2.77' };
    const url = `${platform.video}/job-events?app_id=sse-cap&video_id=${video}`;
    const open = [];
    try {
      for (let i = 0; i < 10; i++) open.push(await openEvents(fetch, url, { headers: ip }));
      const past = await openEvents(fetch, url, { headers: ip });
      let error;
      try { error = JSON.parse(past.text).error; } catch { error = undefined; }
      const other = await openEvents(fetch, url, { headers: freshIp() });
      open.push(other);
      rows.push({
        check: 'SSE past the cap: 429',
        ok: open.slice(0, 10).every((c) => c.status === 200) && past.status === 429 && error?.code === 'rate_limited' && Number(past.headers.get('retry-after')) > 0 && other.status === 200,
        detail: `10 streams from one address: ${tally(open.slice(0, 10).map((c) => c.status))}; the 11th: ${past.status} ${error?.code ?? '-'} (Retry-After ${past.headers.get('retry-after')}): ${error?.message ?? past.text}; another address meanwhile: ${other.status}`,
      });
    } finally {
      open.forEach((c) => c.close());
    }
  }
  return rows;
}

const tally = (list) => Object.entries(list.reduce((m, s) => ({ ...m, [s]: (m[s] ?? 0) + 1 }), {})).map(([k, v]) => `${k}×${v}`).join(' ');

/** The `.sqlite` files of Durable Objects of `className` under a persist directory. */
function objectFiles(dir, className) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.sqlite') && e.name !== 'metadata.sqlite' && p.includes(className)) out.push(p);
    }
  };
  if (dir && existsSync(dir)) walk(dir);
  return out;
}
