// A small SigV4 signer for tests and dev scripts: lets Node talk to Garage
// (put fixtures, set bucket CORS) without an SDK. The product's signer is
// media_core::sigv4 (Rust); this one only has to agree with S3 servers.
import { createHash, createHmac } from 'node:crypto';

const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
const sha256 = (d) => createHash('sha256').update(d).digest('hex');
const hmac = (k, d) => createHmac('sha256', k).update(d).digest();

/** Signs and sends one S3 request. `key` may be '' for bucket-level calls. */
export async function s3(store, method, key, { query = {}, headers = {}, body } = {}) {
  const url = new URL(store.endpoint);
  const path = `/${store.bucket}/${key.split('/').map(enc).join('/')}`;
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const date = amzDate.slice(0, 8);
  const payloadHash = sha256(body ?? '');
  const all = { ...Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v)])), host: url.host, 'x-amz-date': amzDate, 'x-amz-content-sha256': payloadHash };
  const names = Object.keys(all).sort();
  const qs = Object.keys(query).sort().map((k) => `${enc(k)}=${enc(query[k])}`).join('&');
  const canonical = [method, path, qs, names.map((n) => `${n}:${all[n].trim()}\n`).join(''), names.join(';'), payloadHash].join('\n');
  const scope = `${date}/${store.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  let k = hmac('AWS4' + store.secretKey, date);
  for (const part of [store.region, 's3', 'aws4_request']) k = hmac(k, part);
  const signature = createHmac('sha256', k).update(toSign).digest('hex');
  all.authorization = `AWS4-HMAC-SHA256 Credential=${store.accessKey}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  delete all.host;
  return fetch(`${url.origin}${path}${qs ? '?' + qs : ''}`, { method, headers: all, body });
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
