// Verifying the platform's signed webhooks in Node: the same code
// docs/video-api.md#7-signed-webhooks shows receivers (crates/media-core/tests/readme.rs
// checks that the page carries it verbatim).
// BEGIN README webhook-verify
import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Checks a `Webhook-Signature: t=<unix>,v1=<hex>` header against the raw
 * request body (the exact bytes, before any JSON parsing). Throws when the
 * signature does not match or the timestamp is more than `toleranceS` away.
 */
export function verifyWebhook(secret, header, rawBody, toleranceS = 300, nowS = Math.floor(Date.now() / 1000)) {
  const pairs = String(header).split(',').map((p) => p.trim().split('='));
  const t = Number(pairs.find(([k]) => k === 't')?.[1]);
  if (!Number.isInteger(t)) throw new Error('malformed Webhook-Signature');
  if (Math.abs(nowS - t) > toleranceS) throw new Error('timestamp outside the tolerance: a replay?');
  const expected = createHmac('sha256', secret).update(`${t}.`).update(rawBody).digest();
  const ok = pairs.filter(([k]) => k === 'v1').some(([, hex]) => {
    const given = Buffer.from(hex ?? '', 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!ok) throw new Error('no matching signature');
}
// END README webhook-verify
