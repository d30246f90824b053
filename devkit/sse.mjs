// Reading a Server-Sent Events stream from Node, for tests, reliability runs
// and benchmarks: the frames are parsed by eventsource-parser; this file only
// collects them and lets a caller wait for one.
//
//   const s = await openEvents(fetchFn, url, { lastEventId: '4' });
//   const done = await s.waitFor('job:completed', 10_000);
//   s.events  // every event so far: { id, event, data (parsed JSON), at (ms) }
//   s.close()
import { createParser } from 'eventsource-parser';

/**
 * Opens `url` with `fetchFn` (Miniflare's `dispatchFetch` or `fetch`) and
 * reads its events as they arrive. Resolves once the response headers are
 * in; `status` and `headers` are the response's. A non-200 answer is
 * returned with its `text` and no events.
 */
export async function openEvents(fetchFn, url, { lastEventId, headers = {} } = {}) {
  const controller = new AbortController();
  let closedByUs = false;
  const h = { accept: 'text/event-stream', ...headers };
  if (lastEventId !== undefined) h['last-event-id'] = String(lastEventId);
  const res = await fetchFn(url, { headers: h, signal: controller.signal });
  const events = [];
  const waiters = new Set();
  let ended = false;
  let retry;
  const settle = () => {
    for (const w of [...waiters]) {
      const hit = events.find(w.match);
      if (hit) { waiters.delete(w); clearTimeout(w.timer); w.resolve(hit); } else if (ended) { waiters.delete(w); clearTimeout(w.timer); w.reject(new Error(`the stream ended before ${w.what}; got ${events.map((e) => e.event).join(', ')}`)); }
    }
  };
  const out = {
    status: res.status,
    headers: res.headers,
    events,
    get ended() { return ended; },
    get retry() { return retry; },
    /** Resolves with the first event named `name` (or matching a predicate), now or later. */
    waitFor(name, timeoutMs = 30_000) {
      const match = typeof name === 'function' ? name : (e) => e.event === name;
      return new Promise((resolve, reject) => {
        const w = { match, resolve, reject, what: String(name) };
        w.timer = setTimeout(() => { waiters.delete(w); reject(new Error(`no ${w.what} within ${timeoutMs} ms; got ${events.map((e) => e.event).join(', ')}`)); }, timeoutMs);
        waiters.add(w);
        settle();
      });
    },
    /** Resolves when the server ends the stream. */
    finished: null,
    close() { closedByUs = true; controller.abort(); },
  };
  if (res.status !== 200 || !res.body) {
    out.text = await res.text();
    ended = true;
    out.finished = Promise.resolve();
    return out;
  }
  const parser = createParser({
    onEvent(e) {
      let data;
      try { data = JSON.parse(e.data); } catch { data = e.data; }
      events.push({ id: e.id, event: e.event ?? 'message', data, at: Date.now() });
      settle();
    },
    onRetry(ms) { retry = ms; },
  });
  out.finished = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) parser.feed(decoder.decode(chunk, { stream: true }));
    } catch (e) {
      // After close(), however the fetch reports the cut (AbortError; undici's
      // 'terminated' through Miniflare's dispatchFetch), the stream just ended.
      if (e.name !== 'AbortError' && !closedByUs) throw e;
    } finally {
      ended = true;
      settle();
    }
  })();
  return out;
}
