// freePort never hands out a port the OS may give to a port-0 listener, nor the same port twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { ephemeralLow, freePort } from './ports.mjs';

test('ports come from below the ephemeral range and are never repeated', async () => {
  const low = ephemeralLow();
  const seen = new Set();
  for (let i = 0; i < 300; i++) {
    const port = await freePort();
    assert.ok(port < low, `port ${port} is in the ephemeral range (from ${low})`);
    assert.ok(!seen.has(port), `port ${port} handed out twice`);
    seen.add(port);
  }
});

test('a port handed out can then be bound', async () => {
  const port = await freePort();
  const srv = createServer();
  await new Promise((resolve, reject) => { srv.once('error', reject); srv.listen(port, '127.0.0.1', resolve); });
  await new Promise((r) => srv.close(r));
});
