// A stand-in for Cloudflare's zone purge API, for tests: an HTTP server on
// loopback that records every call as {path, authorization, body} and
// answers Cloudflare's success JSON (or the status a test sets, to see a
// failed purge). Point a Worker's CF_API_BASE at `apiBase`.
import { createServer } from 'node:http';

/**
 * Starts the stand-in. `status`: what it answers (200 by default; change
 * it later with `answerWith`). Returns { apiBase, calls, answerWith, waitForCalls, stop }.
 */
export function startPurgeStandin({ status = 200 } = {}) {
  const calls = [];
  let answer = status;
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      let body;
      try { body = JSON.parse(text); } catch { body = text; }
      calls.push({ method: req.method, path: req.url, authorization: req.headers.authorization, body, status: answer });
      res.writeHead(answer, { 'content-type': 'application/json' });
      res.end(answer < 300
        ? JSON.stringify({ success: true, errors: [], messages: [], result: { id: `purge-${calls.length}` } })
        : JSON.stringify({ success: false, errors: [{ code: answer, message: 'stand-in failure' }], messages: [], result: null }));
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        apiBase: `http://127.0.0.1:${port}/client/v4`,
        calls,
        answerWith: (s) => { answer = s; },
        /** Resolves once at least `n` calls have arrived (purges run after the delete has answered). */
        async waitForCalls(n, timeoutMs = 20000) {
          const deadline = Date.now() + timeoutMs;
          while (calls.length < n) {
            if (Date.now() > deadline) throw new Error(`the purge stand-in got ${calls.length} call(s), not ${n}`);
            await new Promise((r) => setTimeout(r, 50));
          }
          return calls;
        },
        stop: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
      });
    });
  });
}
