// Minting a private video's playback URL in Node, as an app backend does
// with a key from POST /signing-keys: the same code
// docs/video-api.md#signed-playback-private-videos shows
// (crates/media-core/tests/readme.rs checks that the page carries it
// verbatim). tests/workers/signed-playback.test.mjs plays through it.
// BEGIN README sign-playback-token
import { SignJWT, importPKCS8 } from 'jose';

/**
 * A playback URL of `videoId` for `ttlSeconds` (at most 86400): an RS256
 * (or ES256) JWT signed with the key's private PEM, its `id` as `kid`, in
 * the path, so every URI of the playlists keeps it.
 */
export async function playbackUrl(base, videoId, { id, pem, alg = 'RS256' }, ttlSeconds = 3600) {
  const key = await importPKCS8(pem, alg);
  const token = await new SignJWT({ sub: videoId })
    .setProtectedHeader({ alg, kid: id, typ: 'JWT' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(key);
  return `${base}/hls/t/${token}/master.m3u8`;
}
// END README sign-playback-token
