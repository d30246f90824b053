// Signing a private image's URL in Node, as an app backend does: the same
// code docs/image-api.md#private-images shows (crates/media-core/tests/readme.rs
// checks that the page carries it verbatim). tests/workers/private-images.test.mjs
// signs every URL with it.
// BEGIN README sign-image-url
import { createHmac } from 'node:crypto';

/**
 * Returns `url` (an asset_url or a variant URL of the image service) signed
 * for `ttlSeconds`: `exp` (unix seconds) and `sig`, the hex HMAC-SHA256,
 * keyed with the app's URL-signing secret (`uss_…`), of the path and the
 * query without `sig`.
 */
export function signImageUrl(url, secret, ttlSeconds = 3600) {
  const u = new URL(url);
  u.searchParams.delete('sig');
  u.searchParams.set('exp', String(Math.floor(Date.now() / 1000) + ttlSeconds));
  const toSign = u.pathname + '?' + u.searchParams.toString();
  u.searchParams.set('sig', createHmac('sha256', secret).update(toSign).digest('hex'));
  return u.toString();
}
// END README sign-image-url
