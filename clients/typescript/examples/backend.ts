// An app backend on @iv/media-client, as TypeScript sees it: type-checked by
// the client's test (scripts/generate.mjs, `tsc --noEmit` in memory) against
// the freshly generated types, so a route or field the services drop or
// rename fails here. The `@ts-expect-error` lines prove the types are real:
// if a wrong call stopped being an error, the check would fail.
import { imageClient, ok, videoClient, type VideoSchemas } from '@iv/media-client';
import { verifyWebhook } from '@iv/media-client/webhooks';

export interface Config {
  videoUrl: string;
  imageUrl: string;
  apiKey: string;
}

/** Creates a direct upload; the browser gets `url`, `headers`, `complete_url` and `token`, the job starts by itself. */
export async function createUpload(config: Config, appId: string, videoId: string, size: number) {
  const video = videoClient({ baseUrl: config.videoUrl, apiKey: config.apiKey });
  const upload = ok(await video.POST('/uploads', { body: { app_id: appId, video_id: videoId, content_type: 'video/mp4', size, timeout_s: 3600 } }));
  const forBrowser: { id: string; url?: string | null; headers?: Record<string, string> | null; complete_url?: string | null; token?: string | null } = upload;
  const state: VideoSchemas['UploadStatus'] = upload.status;
  return { ...forBrowser, state };
}

/** An upload's state: waiting, asset_created (with its job), errored, cancelled or timed_out. */
export async function uploadState(config: Config, uploadId: string) {
  const video = videoClient({ baseUrl: config.videoUrl, apiKey: config.apiKey });
  const upload = ok(await video.GET('/uploads/{upload_id}', { params: { path: { upload_id: uploadId } } }));
  return upload.status === 'asset_created' ? upload.job_id : upload.status;
}

/** A stream token for a browser dashboard: the page opens `new EventSource(events_url)`. */
export async function dashboardStream(config: Config, appId: string): Promise<string> {
  const video = videoClient({ baseUrl: config.videoUrl, apiKey: config.apiKey });
  return ok(await video.POST('/events/token', { body: { app_id: appId, ttl_s: 600 } })).events_url;
}

/** Asks for a presigned PUT for a video; the browser uploads to `upload_url` with `headers`. */
export async function presignVideo(config: Config, appId: string, videoId: string, size: number) {
  const video = videoClient({ baseUrl: config.videoUrl, apiKey: config.apiKey });
  const answer = ok(await video.POST('/generate-upload-url', { body: { app_id: appId, video_id: videoId, content_type: 'video/mp4', size } }));
  // One presigned PUT, or a resumable session when `multipart: true` was asked for.
  if (!('upload_url' in answer)) throw new Error('asked for a single PUT');
  const url: string = answer.upload_url;
  const headers: Record<string, string> = answer.headers;
  return { url, headers, rawKey: answer.raw_key };
}

/** Starts the job once the browser's PUT is done; 202 queued, 200 already queued, running or done. */
export async function startJob(config: Config, appId: string, videoId: string, rawKey: string): Promise<VideoSchemas['JobView']> {
  const video = videoClient({ baseUrl: config.videoUrl, apiKey: config.apiKey });
  const { data, error, response } = await video.POST('/notify-upload-complete', {
    body: { app_id: appId, video_id: videoId, raw_key: rawKey, content_type: 'video/mp4' },
  });
  if (error) throw new Error(`${response.status} ${error.error.code}: ${error.error.message}`);
  return data;
}

/** A public read: no key. */
export async function progress(config: Config, appId: string, videoId: string): Promise<number | undefined> {
  const video = videoClient({ baseUrl: config.videoUrl });
  const { data } = await video.GET('/job-status', { params: { query: { app_id: appId, video_id: videoId } } });
  return data?.progress;
}

/** An image's record (the service checks the upload when asked). */
export async function imageSize(config: Config, appId: string, imageId: string) {
  const images = imageClient({ baseUrl: config.imageUrl, apiKey: config.apiKey });
  const meta = ok(await images.GET('/images', { params: { query: { app_id: appId, image_id: imageId } } }));
  return { width: meta.width, height: meta.height };
}

/** A webhook receiver in a fetch-style server (Workers, Deno, Bun, Hono...). */
export async function onWebhook(request: Request, secret: string): Promise<Response> {
  const body = await request.text();
  try {
    const event = verifyWebhook(secret, request.headers, body);
    console.log('event', event.id, event.type, event.data.video_id);
    return new Response(null, { status: 204 });
  } catch {
    return new Response('bad signature', { status: 400 });
  }
}

export async function wrongCalls(config: Config) {
  const video = videoClient({ baseUrl: config.videoUrl, apiKey: config.apiKey });
  // @ts-expect-error: no such route
  await video.GET('/no-such-route');
  // @ts-expect-error: video_id is required
  await video.GET('/job-status', { params: { query: { app_id: 'a' } } });
  // @ts-expect-error: not a video content type
  await video.POST('/notify-upload-complete', { body: { app_id: 'a', video_id: 'v', raw_key: 'k', content_type: 'image/png' } });
  // @ts-expect-error: an upload's id is a path parameter
  await video.GET('/uploads/{upload_id}', { params: { query: { upload_id: 'u' } } });
  // @ts-expect-error: the key is a string
  videoClient({ baseUrl: config.videoUrl, apiKey: 42 });
}
