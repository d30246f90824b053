// Verifying the platform's webhooks in Node with the Standard Webhooks
// library (npm `standardwebhooks`): the same code
// docs/video-api.md#7-signed-webhooks shows receivers (crates/media-core/tests/readme.rs
// checks that the page carries it verbatim). The tests verify every delivery with it.
// BEGIN README webhook-verify
import { Webhook } from 'standardwebhooks';

/**
 * Checks a delivery's `webhook-id`, `webhook-timestamp` and
 * `webhook-signature` headers against the raw request body (the exact
 * bytes, before any JSON parsing) and returns the parsed body. Throws a
 * `WebhookVerificationError` when no signature matches or the timestamp is
 * more than 5 minutes away. `secret` is the endpoint's `whsec_…` secret; an
 * `IV_WEBHOOKS` secret that is not `whsec_<base64>` is a raw key.
 */
export function verifyWebhook(secret, headers, rawBody) {
  const wh = /^whsec_(?=.{4})(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(secret)
    ? new Webhook(secret)
    : new Webhook(new TextEncoder().encode(secret), { format: 'raw' });
  return wh.verify(rawBody, headers);
}
// END README webhook-verify
