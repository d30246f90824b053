// S3 calls for tests and dev scripts, signed with aws4fetch (a maintained
// SigV4 client for fetch): lets Node talk to Garage (put fixtures, set bucket
// CORS) without an SDK. Path-style URLs, service 's3', the store's region
// (Garage's is 'garage'). The product's signer is aws-sigv4, through
// media_core::http::sigv4 (Rust).
import { createHash } from 'node:crypto';
import { AwsClient } from 'aws4fetch';

const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());

/** One client per store (it caches signing keys). */
const clients = new WeakMap();
function client(store) {
  let c = clients.get(store);
  if (!c) {
    // No retries: callers (and tests of failure paths) see each answer as the store gave it.
    c = new AwsClient({ accessKeyId: store.accessKey, secretAccessKey: store.secretKey, service: 's3', region: store.region, retries: 0 });
    clients.set(store, c);
  }
  return c;
}

/** Signs and sends one S3 request. `key` may be '' for bucket-level calls. */
export async function s3(store, method, key, { query = {}, headers = {}, body } = {}) {
  const url = new URL(store.endpoint);
  const path = `/${store.bucket}/${key.split('/').map(enc).join('/')}`;
  const qs = Object.keys(query).sort().map((k) => `${enc(k)}=${enc(query[k])}`).join('&');
  return client(store).fetch(`${url.origin}${path}${qs ? '?' + qs : ''}`, { method, headers, body });
}

/** Every key under `prefix` in the bucket (ListObjectsV2, all pages); throws on failure. */
export async function listKeys(store, prefix) {
  const keys = [];
  let token;
  for (;;) {
    const query = { 'list-type': '2', prefix, ...(token ? { 'continuation-token': token } : {}) };
    const r = await s3(store, 'GET', '', { query });
    const xml = await r.text();
    if (r.status !== 200) throw new Error(`ListObjectsV2 ${prefix}: ${r.status} ${xml}`);
    keys.push(...[...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]));
    token = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1];
    if (!token) return keys;
  }
}

/** Puts an object; throws on failure. */
export async function putObject(store, key, body, contentType = 'application/octet-stream') {
  const r = await s3(store, 'PUT', key, { headers: { 'content-type': contentType }, body });
  if (!r.ok) throw new Error(`PUT ${key}: ${r.status} ${await r.text()}`);
}

/** Lets browsers PUT to presigned URLs and read objects from any origin. */
export async function allowBrowserUploads(store, origins = ['*']) {
  const rules = origins.map((o) => `<AllowedOrigin>${o}</AllowedOrigin>`).join('');
  const xml = `<CORSConfiguration><CORSRule>${rules}<AllowedMethod>PUT</AllowedMethod><AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod><AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3600</MaxAgeSeconds></CORSRule></CORSConfiguration>`;
  const md5 = createHash('md5').update(xml).digest('base64');
  const r = await s3(store, 'PUT', '', { query: { cors: '' }, headers: { 'content-type': 'application/xml', 'content-md5': md5 }, body: xml });
  if (!r.ok) throw new Error(`PutBucketCors: ${r.status} ${await r.text()}`);
}

/**
 * Aborts multipart uploads left unfinished for `days` (their parts would
 * otherwise be kept, and billed, for ever): a lifecycle rule on the bucket,
 * as R2 applies by default after 7 days. Returns the rule as stored.
 */
export async function abortAbandonedUploads(store, days = 7) {
  const xml = `<LifecycleConfiguration><Rule><ID>abort-abandoned-multipart-uploads</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><AbortIncompleteMultipartUpload><DaysAfterInitiation>${days}</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>`;
  const md5 = createHash('md5').update(xml).digest('base64');
  const r = await s3(store, 'PUT', '', { query: { lifecycle: '' }, headers: { 'content-type': 'application/xml', 'content-md5': md5 }, body: xml });
  if (!r.ok) throw new Error(`PutBucketLifecycleConfiguration: ${r.status} ${await r.text()}`);
  const got = await s3(store, 'GET', '', { query: { lifecycle: '' } });
  return got.text();
}

/** The multipart uploads in progress under `prefix` ([{key, uploadId}], ListMultipartUploads, all pages); throws on failure. */
export async function openUploads(store, prefix) {
  const uploads = [];
  let markers = {};
  for (;;) {
    const r = await s3(store, 'GET', '', { query: { uploads: '', prefix, ...markers } });
    const xml = await r.text();
    if (r.status !== 200) throw new Error(`ListMultipartUploads ${prefix}: ${r.status} ${xml}`);
    for (const [, body] of xml.matchAll(/<Upload>([\s\S]*?)<\/Upload>/g)) {
      uploads.push({ key: /<Key>([^<]*)<\/Key>/.exec(body)[1], uploadId: /<UploadId>([^<]*)<\/UploadId>/.exec(body)[1] });
    }
    if (!/<IsTruncated>true<\/IsTruncated>/.test(xml)) return uploads;
    const last = uploads.at(-1);
    markers = {
      'key-marker': /<NextKeyMarker>([^<]*)<\/NextKeyMarker>/.exec(xml)?.[1] ?? last.key,
      'upload-id-marker': /<NextUploadIdMarker>([^<]*)<\/NextUploadIdMarker>/.exec(xml)?.[1] ?? last.uploadId,
    };
  }
}

/** Starts a multipart upload of `key` straight at the store (as a leaked credential could); its upload id. */
export async function startUpload(store, key, contentType = 'video/mp4') {
  const r = await s3(store, 'POST', key, { query: { uploads: '' }, headers: { 'content-type': contentType } });
  const xml = await r.text();
  if (r.status !== 200) throw new Error(`CreateMultipartUpload ${key}: ${r.status} ${xml}`);
  return /<UploadId>([^<]*)<\/UploadId>/.exec(xml)[1];
}
