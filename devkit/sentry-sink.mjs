// A stand-in Sentry for tests: an HTTP server on loopback that accepts
// envelope POSTs (`/api/<project>/envelope/`) and keeps what it received.
import { createServer } from 'node:http';

export function startSentrySink() {
  const received = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const lines = body.split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return l; } });
      received.push({ path: req.url, auth: req.headers['x-sentry-auth'], header: lines[0], item: lines[1], event: lines[2] });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id":"ok"}');
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = server.address().port;
      resolve({ dsn: `http://publickey@127.0.0.1:${port}/42`, received, close: () => new Promise((r) => server.close(r)) });
    });
  });
}
