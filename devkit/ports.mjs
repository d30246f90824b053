// Free loopback ports for servers started by tests and by the platform.
//
// Ports come from below the kernel's ephemeral range, so no process that
// binds port 0 (workerd's internal listeners, inspectors, outgoing
// connections) can be handed one between our check and the server binding
// it, and one process never hands out the same port twice. A port taken
// from the ephemeral range and closed again was seen reused by a Worker's
// internal listener before the other Worker bound it (e2e, 2026-12-06).
import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';

const handedOut = new Set();

/** The lowest ephemeral port (Linux: /proc; elsewhere the IANA default). */
export function ephemeralLow() {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && low > 2048) return low;
  } catch { /* not Linux */ }
  return 49152;
}

function canBind(port) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A port in [10000, ephemeral low) that binds now and was not handed out before by this process. */
export async function freePort() {
  const low = 10000;
  const high = ephemeralLow();
  for (let tries = 0; tries < 200; tries++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (handedOut.has(port)) continue;
    if (await canBind(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`freePort: no free port in [${low}, ${high}) after 200 tries`);
}

/** Waits until `probe()` resolves truthy, polling every 100 ms. */
export async function waitFor(what, probe, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}
