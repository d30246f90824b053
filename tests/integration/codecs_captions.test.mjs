// AV1 rungs and caption tracks end to end: the transcoder binary against
// the real video service (workerd, through Miniflare on a loopback port)
// and a real Garage. A video notified with `codecs: ["h264", "av1"]` gets
// an AV1 rung beside each H.264 one, listed in the master with its own
// CODECS; an SRT track posted to the captions route is stored as WebVTT,
// listed in /job-status, and served as an HLS subtitle rendition
// (EXT-X-MEDIA TYPE=SUBTITLES, segmented WebVTT holding each cue in the
// segments it overlaps); a faulty file is refused naming its line; a
// delete takes the track out of the master and storage. A private video's
// track plays through a playback token only, as its ladder does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { API_KEY } from '../workers/harness.mjs';
import { startStack } from './stack.mjs';

const APP = 'capp';
let stack, api, base;

let n = 0;
const ip = () => ({ 'cf-connecting-ip': `10.29.0.${++n}` });

before(async () => {
  stack = await startStack({ name: 'codecs', app: APP, ip });
  ({ api, base } = stack);
});

after(async () => {
  await stack?.stop();
});

const text = async (url) => {
  const res = await fetch(url, { headers: ip() });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
};

const SRT = '1\r\n00:00:00,500 --> 00:00:02,000\r\n<font color="#ff0">Hello</font> &amp; <i>welcome</i>\r\n\r\n2\r\n00:00:03,500 --> 00:00:04,500\r\nAcross the first cut\r\n';

test('an AV1 rung beside each H.264 rung, and an SRT track served as a WebVTT subtitle rendition', async () => {
  const done = await stack.transcoded('c1', { codecs: ['av1', 'h264'] }, { size: '640x360', seconds: 6 });
  const names = done.renditions.map((r) => r.name);
  assert.deepEqual(names.filter((r) => r.endsWith('-av1')).length, names.filter((r) => !r.endsWith('-av1')).length, names.join());
  for (const r of done.renditions) assert.match(r.codecs, r.name.endsWith('-av1') ? /^av01\.0\.\d\dM\.08,mp4a\.40\.2$/ : /^avc1\./, r.name);
  const master = await text(done.playback_url);
  assert.equal(master.status, 200);
  assert.match(master.body, /CODECS="av01\.0\.\d\dM\.08,mp4a\.40\.2",RESOLUTION=640x360[^\n]*\n360p-av1\/index\.m3u8/, master.body);
  assert.doesNotMatch(master.body, /SUBTITLES/, 'no track yet');

  // A faulty file: refused with its line, nothing stored.
  const bad = await api.post(`/videos/${APP}/c1/captions/en`, 'WEBVTT\n\n00:01.000 --> 00:02.000\nok\n\n00:03.000 --> 00:02.000\nbackwards\n', { key: API_KEY, headers: ip() });
  assert.equal(bad.status, 400, bad.text);
  assert.match(bad.json.error.message, /line 6: the cue ends \(00:02\.000\) before it starts/, bad.text);
  const script = await api.post(`/videos/${APP}/c1/captions/en`, 'WEBVTT\n\n00:01.000 --> 00:02.000\n<script>x</script>\n', { key: API_KEY, headers: ip() });
  assert.equal(script.status, 400);
  assert.match(script.json.error.message, /line 4: <script> is not WebVTT cue markup/);
  const tag = await api.post(`/videos/${APP}/c1/captions/english`, SRT, { key: API_KEY, headers: ip() });
  assert.equal(tag.status, 400);
  assert.match(tag.json.error.message, /not a language tag/);
  const other = await api.post(`/videos/otherapp/c1/captions/en`, SRT, { key: API_KEY, headers: ip() });
  assert.equal(other.status, 404, 'a video without a job: nothing stored for it');

  // An SRT track, converted and listed.
  const put = await api.post(`/videos/${APP}/c1/captions/en?label=English`, SRT, { key: API_KEY, headers: ip() });
  assert.equal(put.status, 200, put.text);
  assert.deepEqual([put.json.language, put.json.label, put.json.cues, put.json.source_format], ['en', 'English', 2, 'srt']);
  const output = done.playback_url.split('/').slice(0, -1).join('/');
  assert.equal(put.json.url, `${output}/subs/en/index.m3u8`);
  const status = (await api.get(`/job-status?app_id=${APP}&video_id=c1`, { headers: ip() })).json;
  assert.deepEqual(status.captions.map((c) => [c.language, c.url]), [['en', put.json.url]]);
  const listed = await api.get(`/videos/${APP}/c1/captions`, { key: API_KEY, headers: ip() });
  assert.deepEqual(listed.json.captions.map((c) => c.label), ['English']);

  // The master lists the rendition, and every variant names its group.
  const withSubs = await text(done.playback_url);
  assert.match(withSubs.body, /#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,FORCED=NO,URI="subs\/en\/index\.m3u8"/, withSubs.body);
  const variants = withSubs.body.split('\n').filter((l) => l.startsWith('#EXT-X-STREAM-INF:'));
  assert.ok(variants.length === names.length && variants.every((v) => v.endsWith(',SUBTITLES="subs"')), withSubs.body);
  // Its playlist: 4-s segments over the 6-s video.
  const playlist = await text(put.json.url);
  assert.equal(playlist.type, 'application/vnd.apple.mpegurl');
  assert.match(playlist.body, /#EXTINF:4\.000000,\n00000\.vtt\n#EXTINF:2\.0\d+,\n00001\.vtt\n#EXT-X-ENDLIST/, playlist.body);
  // Each segment holds the cues it overlaps (the second cue crosses the 4-s cut), font tags dropped.
  const first = await text(`${output}/subs/en/00000.vtt`);
  assert.equal(first.type, 'text/vtt; charset=utf-8');
  assert.equal(first.body, 'WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n00:00:00.500 --> 00:00:02.000\nHello &amp; <i>welcome</i>\n\n00:00:03.500 --> 00:00:04.500\nAcross the first cut\n\n');
  const second = await text(`${output}/subs/en/00001.vtt`);
  assert.match(second.body, /00:00:03\.500 --> 00:00:04\.500\nAcross the first cut/);
  assert.doesNotMatch(second.body, /Hello/);
  assert.equal((await text(`${output}/subs/fr/index.m3u8`)).status, 404, 'no such track');

  // Deleted: gone from the master, the status and the route.
  const del = await api.call('DELETE', `/videos/${APP}/c1/captions/en`, { key: API_KEY, headers: ip() });
  assert.equal(del.status, 200, del.text);
  assert.deepEqual(del.json.captions, []);
  assert.doesNotMatch((await text(done.playback_url)).body, /SUBTITLES/);
  assert.equal((await text(put.json.url)).status, 404);
  const again = await api.call('DELETE', `/videos/${APP}/c1/captions/en`, { key: API_KEY, headers: ip() });
  assert.equal(again.status, 404);
});

test("a private video's caption track is served through a playback token only", async () => {
  const done = await stack.transcoded('c2', { require_signed_urls: true }, { size: '320x180', seconds: 3 });
  const put = await api.post(`/videos/${APP}/c2/captions/fr?label=Fran%C3%A7ais`, SRT, { key: API_KEY, headers: ip() });
  assert.equal(put.status, 200, put.text);
  assert.equal(put.json.label, 'Français');
  // The public routes refuse the master and the track's files alike.
  for (const url of [done.playback_url, put.json.url, put.json.url.replace('index.m3u8', '00000.vtt')]) {
    assert.equal((await text(url)).status, 403, url);
  }
  const minted = await api.post('/playback-tokens', { app_id: APP, video_id: 'c2' }, { key: API_KEY, headers: ip() });
  assert.equal(minted.status, 200, minted.text);
  const master = await text(minted.json.playback_url);
  assert.equal(master.status, 200, master.body);
  assert.match(master.body, /TYPE=SUBTITLES,GROUP-ID="subs",NAME="Français",LANGUAGE="fr",[^\n]*URI="subs\/fr\/index\.m3u8"/, master.body);
  const signed = minted.json.playback_url.replace(/master\.m3u8$/, '');
  const playlist = await text(`${signed}subs/fr/index.m3u8`);
  assert.equal(playlist.status, 200, playlist.body);
  assert.match(playlist.body, /#EXTINF:3\.0\d*,\n00000\.vtt\n#EXT-X-ENDLIST/, playlist.body);
  const segment = await text(`${signed}subs/fr/00000.vtt`);
  assert.equal(segment.status, 200);
  assert.equal(segment.type, 'text/vtt; charset=utf-8');
  assert.match(segment.body, /^WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00\.000\n\n00:00:00\.500 --> 00:00:02\.000\nHello &amp; <i>welcome<\/i>/, segment.body);
  assert.equal((await text(`${signed}subs/de/index.m3u8`)).status, 404, 'no such track');
});
