// @ts-check
/**
 * @module @iv/media-client/webhooks
 *
 * For webhook receivers: the platform signs deliveries per the Standard
 * Webhooks spec (`webhook-id`, `webhook-timestamp`, `webhook-signature`
 * headers, `whsec_` secrets), so receivers verify with the spec's own
 * `standardwebhooks` library, re-exported here, or with `verifyWebhook`,
 * which also takes a fetch `Headers` object and an operator's legacy raw
 * secret.
 */
import { Webhook } from 'standardwebhooks';

export { Webhook, WebhookVerificationError } from 'standardwebhooks';

/**
 * A delivery's body (docs/video-api.md, "Signed webhooks").
 * @typedef {object} WebhookEvent
 * @property {string} id The event id (`evt_…`), also the `webhook-id` header: the same in every retry and redelivery.
 * @property {string} type The catalogue type, e.g. `upload.asset_created`, `video.ready`, `image.deleted`.
 * @property {string} created_at When the event happened (RFC 3339).
 * @property {Record<string, any>} data The upload, job or image it is about.
 */

/** `whsec_` and standard base64: the spec's secret form; anything else is a raw key. */
const SPEC_SECRET = /^whsec_(?=.{4})(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Verifies one delivery and returns its parsed body; throws
 * `WebhookVerificationError` when a header is missing, the timestamp is
 * more than 5 minutes off, or no signature matches (while a secret is
 * being rotated a delivery carries one signature per secret: either
 * secret verifies it). `secret` is the endpoint's `whsec_…` secret; an
 * operator's `IV_WEBHOOKS` secret that is not `whsec_<base64>` is used as
 * a raw key, as the service signs with it.
 * @example
 * // Node's http server: the raw body as received, not re-serialised JSON.
 * const event = verifyWebhook(process.env.WEBHOOK_SECRET, req.headers, rawBody);
 * @param {string} secret The endpoint's secret (`whsec_…`).
 * @param {Headers | Record<string, string | string[] | undefined>} headers The request's headers
 *   (a fetch `Headers`, or Node's `req.headers`).
 * @param {string | Uint8Array} body The request body exactly as received.
 * @returns {WebhookEvent}
 */
export function verifyWebhook(secret, headers, body) {
  /** @type {Record<string, string>} */
  const flat = {};
  const entries = typeof Headers !== 'undefined' && headers instanceof Headers ? headers.entries() : Object.entries(headers);
  for (const [name, value] of entries) {
    if (value !== undefined) flat[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  const webhook = SPEC_SECRET.test(secret) ? new Webhook(secret) : new Webhook(new TextEncoder().encode(secret), { format: 'raw' });
  return /** @type {WebhookEvent} */ (webhook.verify(body, flat));
}
