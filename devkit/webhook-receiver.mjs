// A webhook receiver on 127.0.0.1 for tests and reliability runs: it fails
// the first `failFirst` deliveries of each event id (answering `failStatus`,
// or, with `failStatus: 'reset'`, dropping the connection as a receiver
// that is down would), then answers 200. It keeps every request it got.
import { createServer } from 'node:http';

export async function startReceiver({ failFirst = 0, failStatus = 500 } = {}) {
  const got = [];
  const seen = new Map();
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const id = req.headers['webhook-id'];
      const attempt = (seen.get(id) ?? 0) + 1;
      seen.set(id, attempt);
      const failing = attempt <= failFirst;
      const status = failing ? failStatus : 200;
      let body;
      try { body = JSON.parse(raw.toString()); } catch { body = undefined; }
      got.push({ path: req.url, headers: req.headers, raw, body, attempt, status, at: Date.now() });
      if (status === 'reset') req.socket.destroy();
      else res.writeHead(status).end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    got,
    url: `http://127.0.0.1:${server.address().port}`,
    stop: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}
