// @ts-check
/**
 * @module @iv/media-client/webhooks
 *
 * For webhook receivers: the platform signs deliveries per the Standard
 * Webhooks spec (`webhook-id`, `webhook-timestamp`, `webhook-signature`
 * headers, `whsec_` secrets), so receivers verify with the spec's own
 * `standardwebhooks` library, re-exported here, or with `verifyWebhook`,
 * which also takes a fetch `Headers` object.
 */
import { Webhook } from 'standardwebhooks';

export { Webhook, WebhookVerificationError } from 'standardwebhooks';

/**
 * Verifies one delivery with the endpoint's secret and returns its parsed
 * JSON body; throws `WebhookVerificationError` when a header is missing, the
 * timestamp is more than 5 minutes off, or no signature matches (during a
 * secret rotation a delivery carries one signature per secret: either
 * secret verifies it).
 * @example
 * // Node's http server: the raw body as received, not re-serialised JSON.
 * const event = verifyWebhook(process.env.WEBHOOK_SECRET, rawBody, req.headers);
 * @param {string} secret The endpoint's secret (`whsec_…`).
 * @param {string | Uint8Array} body The request body exactly as received.
 * @param {Headers | Record<string, string | string[] | undefined>} headers The request's headers
 *   (a fetch `Headers`, or Node's `req.headers`).
 * @returns {unknown}
 */
export function verifyWebhook(secret, body, headers) {
  /** @type {Record<string, string>} */
  const flat = {};
  const entries = typeof Headers !== 'undefined' && headers instanceof Headers ? headers.entries() : Object.entries(headers);
  for (const [name, value] of entries) {
    if (value !== undefined) flat[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return new Webhook(secret).verify(body, flat);
}
