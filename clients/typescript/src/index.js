// @ts-check
/**
 * @module @iv/media-client
 *
 * Typed clients for the platform's two services: openapi-fetch clients over
 * the types that openapi-typescript generates from the services' OpenAPI
 * documents (`openapi/video-service.json`, `openapi/image-service.json`,
 * regenerated with `npm run generate -w @iv/media-client`). Paths, query
 * parameters, bodies and answers are checked by TypeScript, and by editors
 * in plain JavaScript through these JSDoc types.
 *
 * Every call answers `{ data, error, response }`: `data` on a 2xx, `error`
 * (the service's `{ error: { code, message } }`) otherwise; `ok()` turns that
 * into the data or a thrown `ApiError`.
 *
 * The API key is for servers only: a browser never gets it (pages use the
 * public routes, upload tokens and stream tokens).
 */
import createClient from 'openapi-fetch';

/** @typedef {import('./video-service.js').paths} VideoPaths */
/** @typedef {import('./video-service.js').components['schemas']} VideoSchemas */
/** @typedef {import('./image-service.js').paths} ImagePaths */
/** @typedef {import('./image-service.js').components['schemas']} ImageSchemas */
/** @typedef {import('openapi-fetch').Client<VideoPaths, 'application/json'>} VideoClient */
/** @typedef {import('openapi-fetch').Client<ImagePaths, 'application/json'>} ImageClient */

/**
 * @typedef {object} ClientOptions
 * @property {string} baseUrl The service's origin, e.g. `https://video.example.com`.
 * @property {string} [apiKey] One of the service's API keys (sent as `x-api-key`), for the key-protected
 *   routes; leave it out to call only public routes. Server-side only: never ship it to a browser.
 * @property {Record<string, string>} [headers] More headers for every request.
 * @property {typeof globalThis.fetch} [fetch] The fetch to call (default: the global one).
 */

/**
 * @param {ClientOptions} options
 * @returns {import('openapi-fetch').ClientOptions}
 */
function settings({ baseUrl, apiKey, headers = {}, fetch }) {
  if (typeof baseUrl !== 'string' || !baseUrl) throw new TypeError('baseUrl is required (the service origin)');
  return {
    baseUrl,
    headers: apiKey ? { ...headers, 'x-api-key': apiKey } : { ...headers },
    ...(fetch ? { fetch } : {}),
  };
}

/**
 * A typed client of the video service.
 * @example
 * const video = videoClient({ baseUrl: process.env.VIDEO_URL, apiKey: process.env.IV_API_KEY });
 * const { data, error } = await video.GET('/job-status', { params: { query: { app_id: 'app', video_id: 'v1' } } });
 * @param {ClientOptions} options
 * @returns {VideoClient}
 */
export function videoClient(options) {
  return /** @type {VideoClient} */ (createClient(settings(options)));
}

/**
 * A typed client of the image service.
 * @param {ClientOptions} options
 * @returns {ImageClient}
 */
export function imageClient(options) {
  return /** @type {ImageClient} */ (createClient(settings(options)));
}

/** A call's non-2xx answer, thrown by `ok()`: the HTTP status and the service's error code and message. */
export class ApiError extends Error {
  /**
   * @param {Response} response
   * @param {unknown} body The answer's body: the service's `{ error: { code, message } }`, or its text.
   */
  constructor(response, body) {
    const detail = /** @type {{ error?: { code?: string, message?: string } } | undefined} */ (typeof body === 'object' && body !== null ? body : undefined)?.error;
    super(`${response.status} ${detail?.code ?? 'http_error'}: ${detail?.message ?? String(body ?? response.statusText)}`);
    this.name = 'ApiError';
    /** @type {number} */
    this.status = response.status;
    /** @type {string | undefined} The service's error code, e.g. `not_found`. */
    this.code = detail?.code;
    /** @type {unknown} */
    this.body = body;
    /** @type {Response} */
    this.response = response;
  }
}

/**
 * The data of a 2xx answer, or throws an `ApiError` for any other.
 * @example
 * const job = ok(await video.POST('/notify-upload-complete', { body }));
 * @template T
 * @param {{ data?: T, error?: unknown, response: Response }} result What a client call resolved to.
 * @returns {T}
 */
export function ok({ data, error, response }) {
  if (!response.ok) throw new ApiError(response, error);
  return /** @type {T} */ (data);
}
