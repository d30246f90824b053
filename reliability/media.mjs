// Bad media through the whole platform: every kind of upload a user can
// send ends either `done` with a correct ladder or `error` with a specific,
// readable message; the transcoder process stays up throughout, within
// bounded memory, and the next queued job succeeds. Uploads that point at
// other URLs (playlists, manifests, lists) make no request at all. Streams
// in codecs off the whitelist are refused by name; a short video carrying
// minutes of audio publishes only the video's length of it.
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeClip, uploadVideo, pollJob } from '../devkit/client.mjs';
import { s3 } from '../devkit/sigv4.mjs';

const ffmpeg = (...args) => execFileSync('ffmpeg', ['-loglevel', 'error', '-y', ...args]);

/** Overwrites the first `from` after the `stsd` box of an MP4 with `to` (same length). */
function patchAfterStsd(file, from, to) {
  const b = readFileSync(file);
  const stsd = b.indexOf('stsd');
  const at = b.indexOf(from, stsd);
  if (stsd < 0 || at < 0) throw new Error(`${file}: ${from} not found after stsd`);
  to.copy(b, at);
  writeFileSync(file, b);
}

/** An Ogg file with OGM's old-style headers (ffmpeg cannot write one): a
 *  video stream whose header names `fourcc`, then `frames` pages of opaque
 *  data. Ogg pages carry a CRC-32 (polynomial 0x04c11db7, not reflected). */
export function ogm(fourcc, frames) {
  const crc = (bytes) => {
    let c = 0;
    for (const b of bytes) {
      c = (c ^ (b << 24)) >>> 0;
      for (let i = 0; i < 8; i++) c = (c & 0x80000000 ? ((c << 1) ^ 0x04c11db7) : c << 1) >>> 0;
    }
    return c;
  };
  const page = (flags, granule, seq, packet) => {
    const lacing = [...Array(Math.floor(packet.length / 255)).fill(255), packet.length % 255];
    const head = Buffer.alloc(27);
    head.write('OggS', 0, 'latin1');
    head[5] = flags;
    head.writeBigUInt64LE(BigInt(granule), 6);
    head.writeUInt32LE(0x4f474d31, 14);
    head.writeUInt32LE(seq, 18);
    head[26] = lacing.length;
    const p = Buffer.concat([head, Buffer.from(lacing), packet]);
    p.writeUInt32LE(crc(p), 22);
    return p;
  };
  const header = Buffer.alloc(1 + 8 + 4 + 4 + 8 + 8 + 4 + 8 + 8);
  header.write('\x01video', 0, 'latin1');
  header.write(fourcc, 9, 'latin1');
  header.writeUInt32LE(56, 13); // header size
  header.writeBigUInt64LE(1000000n, 17); // time unit: 0.1 s in 100 ns units
  header.writeBigUInt64LE(1n, 25); // samples per unit
  header.writeUInt32LE(1, 33); // default length (then buffer size, bits per sample, padding)
  header.writeUInt32LE(64, 45);
  header.writeUInt32LE(64, 49);
  const pages = [page(2, 0, 0, header), page(0, 0, 1, Buffer.from([3, 0, 0, 0, 0, 0, 0, 0, 0]))];
  for (let i = 0; i < frames; i++) pages.push(page(i + 1 === frames ? 4 : 0, i, 2 + i, Buffer.concat([Buffer.from([8]), Buffer.alloc(200, i)])));
  return Buffer.concat(pages);
}

/** Bytes stored under `prefix` (ListObjectsV2, every page). */
async function storedBytes(store, prefix) {
  let [bytes, objects, token] = [0, 0, undefined];
  for (;;) {
    const r = await s3(store, 'GET', '', { query: { 'list-type': '2', prefix, ...(token ? { 'continuation-token': token } : {}) } });
    const xml = await r.text();
    if (r.status !== 200) throw new Error(`ListObjectsV2 ${prefix}: ${r.status} ${xml}`);
    for (const m of xml.matchAll(/<Size>(\d+)<\/Size>/g)) (bytes += Number(m[1])), objects++;
    token = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1];
    if (!token) return { bytes, objects };
  }
}

/** 2 s of 320x240 video, then `seconds` of 8 kHz mono 8-bit PCM noise, in
 *  Matroska whose Segment Duration is patched to 3 s (the issue's file). */
function audioTail(file, seconds) {
  ffmpeg('-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=10:duration=2', '-f', 'lavfi', '-i', `anoisesrc=duration=${seconds}:sample_rate=8000:amplitude=0.5`, '-map', '0', '-map', '1', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'pcm_u8', '-ac', '1', '-f', 'matroska', file);
  const b = readFileSync(file);
  const at = b.indexOf(Buffer.from([0x44, 0x89, 0x88]));
  if (at < 0) throw new Error(`${file}: no Segment Duration`);
  b.writeDoubleBE(3000, at + 3);
  writeFileSync(file, b);
  return file;
}

/** The kinds of upload, how to make each, and what must become of it.
 *  `listener` is a URL on this machine that no upload may make the transcoder fetch. */
function kinds(dir, listener) {
  const f = (name) => join(dir, name);
  const text = (name, body) => (writeFileSync(f(name), body), f(name));
  // A 2 s clip whose 11th frame is stamped `jump` s late (ffmpeg drops the frames after it).
  const videoBomb = (name, jump) => (ffmpeg('-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=10:duration=2', '-vf', `setpts='if(eq(N,10),PTS+${jump}/TB,PTS)'`, '-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'matroska', f(name)), f(name));
  const audioBomb = (name, offset) => (ffmpeg('-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=10:duration=2', '-itsoffset', String(offset), '-f', 'lavfi', '-i', 'sine=duration=2', '-map', '0', '-map', '1', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', '-f', 'matroska', f(name)), f(name));
  const small = { size: '320x240', seconds: 3 };
  return [
    // Refused at notify time: the client learns at once, and no job is made.
    { kind: 'empty file', make: () => (writeFileSync(f('empty.mp4'), ''), f('empty.mp4')), refused: /upload is empty|size is empty/ },
    {
      kind: 'truncated MP4 (index lost)',
      make: () => {
        const p = makeClip(f('cut.mp4'), small);
        const b = readFileSync(p);
        writeFileSync(p, b.subarray(0, b.length >> 1));
        return p;
      },
      error: /not a video file/,
    },
    {
      kind: 'truncated MP4 (data cut short)',
      make: () => {
        const p = makeClip(f('cutdata.mp4'), { ...small, seconds: 6, args: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-movflags', '+faststart'] });
        const b = readFileSync(p);
        writeFileSync(p, b.subarray(0, Math.floor(b.length / 3)));
        return p;
      },
      error: /truncated/,
    },
    { kind: 'MP4 with its index at the end', make: () => makeClip(f('moov-last.mp4'), small), done: { rungs: ['240p:320x240'], duration: 3, audio: true } },
    { kind: 'text file named .mp4', make: () => (writeFileSync(f('notes.mp4'), 'meeting notes, not a video\n'.repeat(500)), f('notes.mp4')), error: /not a video file/ },
    {
      kind: 'image named .mp4',
      make: () => (ffmpeg('-f', 'lavfi', '-i', 'testsrc2=size=320x240', '-frames:v', '1', '-c:v', 'png', '-f', 'image2', f('photo.mp4')), f('photo.mp4')),
      error: /still image/,
    },
    { kind: 'audio only', make: () => (ffmpeg('-f', 'lavfi', '-i', 'sine=duration=3', '-c:a', 'aac', f('song.mp4')), f('song.mp4')), error: /no video stream.*audio only/ },
    {
      kind: 'video codec libav cannot decode',
      make: () => {
        const p = makeClip(f('unknown-codec.mp4'), small);
        patchAfterStsd(p, Buffer.from('avc1'), Buffer.from('qq99'));
        return p;
      },
      error: /cannot decode|cannot be decoded/,
    },
    {
      // MJPEG frames in a MOV whose sample entry and every frame's SOF0
      // header claim 12000x12000: a size libav accepts, and the transcoder
      // must refuse before decoding whole frames of it. (PNG, used before
      // the codec whitelist, is now refused by its codec.)
      kind: 'huge declared dimensions',
      make: () => {
        const p = f('huge.mov');
        ffmpeg('-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=10:duration=2', '-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p', '-f', 'mov', p);
        const b = readFileSync(p);
        const entry = b.indexOf('jpeg', b.indexOf('stsd')) + 4 + 24;
        b.writeUInt16BE(12000, entry);
        b.writeUInt16BE(12000, entry + 2);
        const sof = Buffer.from([0xff, 0xc0]);
        for (let at = b.indexOf(sof); at >= 0; at = b.indexOf(sof, at + 2)) {
          b.writeUInt16BE(12000, at + 5);
          b.writeUInt16BE(12000, at + 7);
        }
        writeFileSync(p, b);
        return p;
      },
      type: 'video/quicktime',
      error: /12000x12000.*largest accepted|no usable picture size/,
    },
    {
      kind: 'zero-length video',
      make: () => (ffmpeg('-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30', '-frames:v', '0', '-c:v', 'libx264', '-f', 'mp4', f('zero.mp4')), f('zero.mp4')),
      error: /no video|empty|not a video file|no frame/,
    },
    {
      kind: 'variable frame rate',
      make: () => makeClip(f('vfr.mp4'), { ...small, audio: false, args: ['-vf', "setpts='PTS+0.015*sin(N)/TB'", '-vsync', 'vfr', '-c:v', 'libx264', '-preset', 'ultrafast'] }),
      done: { rungs: ['240p:320x240'], duration: 3, audio: false },
    },
    {
      kind: '10-bit HEVC',
      make: () => makeClip(f('hevc10.mp4'), { ...small, args: ['-pix_fmt', 'yuv420p10le', '-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error', '-c:a', 'aac'] }),
      done: { rungs: ['240p:320x240'], duration: 3, audio: true },
    },
    { kind: 'odd dimensions', make: () => makeClip(f('odd.mp4'), { ...small, size: '321x241' }), done: { rungs: ['240p:320x240'], duration: 3, audio: true } },
    {
      kind: 'rotated phone video',
      make: () => {
        const plain = makeClip(f('plain.mp4'), { ...small, size: '640x360' });
        ffmpeg('-i', plain, '-c', 'copy', '-metadata:s:v:0', 'rotate=90', f('rotated.mp4'));
        return f('rotated.mp4');
      },
      done: { rungs: ['360p:360x640', '240p:240x426'], duration: 3, audio: true },
    },
    // Codecs off the whitelist, in containers that are accepted: refused by name.
    { kind: 'Cinepak in Matroska', make: () => (ffmpeg('-f', 'lavfi', '-i', 'testsrc2=size=64x64:rate=10:duration=1', '-c:v', 'cinepak', '-f', 'matroska', f('cinepak.mkv')), f('cinepak.mkv')), type: 'video/x-matroska', error: /Cinepak \(cinepak\), which is not accepted/ },
    // Smacker cannot be named in Matroska by this libav (no Matroska, RIFF or
    // QuickTime tag maps to it), and ffmpeg cannot encode it: Microsoft
    // Video 1, another game-era decoder ffmpeg can encode, stands in.
    { kind: 'Microsoft Video 1 in Matroska (for Smacker)', make: () => (ffmpeg('-f', 'lavfi', '-i', 'testsrc2=size=64x64:rate=10:duration=1', '-c:v', 'msvideo1', '-f', 'matroska', f('msvideo1.mkv')), f('msvideo1.mkv')), type: 'video/x-matroska', error: /Microsoft Video 1 \(msvideo1\), which is not accepted/ },
    { kind: 'OGM file (DivX 3 in old-style Ogg headers)', make: () => (writeFileSync(f('divx3.ogv'), ogm('DIV3', 20)), f('divx3.ogv')), type: 'video/ogg', error: /\(msmpeg4v3\), which is not accepted/ },
    // Uploads that point elsewhere (SSRF): refused by what they are, nothing fetched.
    { kind: 'HLS media playlist named .mp4', make: () => text('hls-media.mp4', `#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n${listener}/segment0.ts\n#EXT-X-ENDLIST\n`), error: /HLS playlist.*never fetched/, ssrf: true },
    { kind: 'HLS master playlist named .mp4', make: () => text('hls-master.mp4', `#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\n${listener}/variant.m3u8\n`), error: /HLS playlist.*never fetched/, ssrf: true },
    {
      kind: 'DASH manifest named .mp4',
      make: () => text('dash.mp4', `<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT4S" minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011"><BaseURL>${listener}/</BaseURL><Period><AdaptationSet mimeType="video/mp4"><Representation id="v" bandwidth="800000" width="640" height="360"><SegmentTemplate initialization="init.mp4" media="s-$Number$.m4s" duration="2" timescale="1"/></Representation></AdaptationSet></Period></MPD>\n`),
      error: /DASH manifest.*never fetched/,
      ssrf: true,
    },
    { kind: 'ffconcat list named .mp4', make: () => text('concat.mp4', `ffconcat version 1.0\nfile '${listener}/part1.mp4'\n`), error: /ffconcat list.*never fetched/, ssrf: true },
    // Timestamp bombs: a few KB asking for days of output, or gigabytes of silence.
    { kind: 'timestamp bomb: frame 11 at +10^6 s (MKV)', make: () => videoBomb('bomb-1e6.mkv', 1000000), type: 'video/x-matroska', error: /longest accepted is 6 h/, bomb: true },
    { kind: 'timestamp bomb: frame 11 at +5000 s (MKV)', make: () => videoBomb('bomb-5000.mkv', 5000), type: 'video/x-matroska', error: /timestamps jump 1 h 23 min/, bomb: true },
    { kind: 'timestamp bomb: audio at +5000 s (MKV)', make: () => audioBomb('bomb-audio.mkv', 5000), type: 'video/x-matroska', error: /audio starts 1 h 23 min 20 s after the video/, bomb: true },
  ];
}

/** A listener on this machine that counts the requests made to it. */
async function startListener() {
  let hits = 0;
  const server = createServer((req, res) => { hits++; res.end(); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, hits: () => hits, close: () => new Promise((r) => server.close(r)) };
}

/** The peak resident memory of a process so far, in MB (Linux's VmHWM). */
function peakRssMb(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmHWM:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Resets a process's peak resident memory (Linux: `5` to clear_refs); false when not allowed. */
function resetPeakRss(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** The audio-tail file alone, so that the transcoder's peak memory is its own. */
async function audioTailRow(platform, scratch) {
  const pid = platform.transcoders[0].pid;
  const seconds = 1200;
  const file = audioTail(join(scratch, 'audio-tail.mkv'), seconds);
  const size = readFileSync(file).length;
  const reset = resetPeakRss(pid);
  const notify = await uploadVideo(platform, 'reliability', 'media-audio-tail', file, 'video/x-matroska');
  const last = notify.status === 202 ? (await pollJob(platform, 'reliability', 'media-audio-tail')).at(-1) : {};
  const rss = peakRssMb(pid);
  const { bytes, objects } = await storedBytes(platform.garage, 'hls/reliability/media-audio-tail/');
  // A 2 s 240p ladder with 2 s of AAC and its 2 s tail, poster and sprite: well under 1 MB (20 min of AAC alone is 19 MB).
  const limit = 1_000_000;
  return [
    {
      check: `audio tail: 2 s of video, ${seconds / 60} min of PCM, declared 3 s (MKV)`,
      ok: last.status === 'done' && Math.abs(last.duration_s - 2) < 0.2 && bytes > 0 && bytes < limit,
      detail: `${last.status ?? `notify ${notify.status}`}${last.error ? `: ${last.error}` : ''}, ${last.duration_s ?? '?'} s; ${(size / 1e6).toFixed(1)} MB upload, ${objects} objects published, ${bytes} bytes (limit ${limit})`,
    },
    {
      check: 'audio tail: transcoder peak RSS during that job',
      ok: reset && rss < 1024,
      detail: reset ? `${rss.toFixed(0)} MB (limit 1024 MB; peak reset before the job)` : 'could not reset the peak (clear_refs)',
    },
  ];
}

export async function badMedia({ platform, scratch }) {
  const pidBefore = platform.transcoders[0].pid;
  const tail = await audioTailRow(platform, scratch);
  const listener = await startListener();
  const list = kinds(scratch, listener.url);
  // Queue them all at once, as users would; then the good job that must still succeed.
  const submitted = [];
  for (const [i, k] of list.entries()) {
    const video = `media-${i}`;
    let notify;
    try {
      notify = await uploadVideo(platform, 'reliability', video, k.make(), k.type);
    } catch (e) {
      // Refused before any byte is stored: an empty file cannot be presigned (size must be at least 1).
      const presign = /^presign: (\d+) (.*)$/s.exec(e.message);
      if (!k.refused || !presign) throw e;
      notify = { status: Number(presign[1]), json: JSON.parse(presign[2]), text: presign[2] };
    }
    submitted.push({ ...k, video, notify });
  }
  const after = await uploadVideo(platform, 'reliability', 'media-after', makeClip(join(scratch, 'after.mp4'), { size: '320x240', seconds: 2 }));
  const rows = [...tail];
  for (const s of submitted) {
    if (s.refused) {
      const message = s.notify.json?.error?.message ?? '';
      rows.push({ check: s.kind, ok: s.notify.status === 400 && s.refused.test(message), detail: `notify ${s.notify.status}: ${message}` });
      continue;
    }
    const last = s.notify.status === 202 ? (await pollJob(platform, 'reliability', s.video)).at(-1) : {};
    let ok;
    let detail;
    if (s.notify.status !== 202) {
      ok = false;
      detail = `notify answered ${s.notify.status}: ${s.notify.text.slice(0, 120)}`;
    } else if (s.error) {
      ok = last.status === 'error' && s.error.test(last.error ?? '');
      const took = last.started_at && last.finished_at ? ` (in ${((Date.parse(last.finished_at) - Date.parse(last.started_at)) / 1000).toFixed(1)} s)` : '';
      if (s.bomb && !took) ok = false;
      detail = `${last.status}${s.bomb ? took : ''}: ${last.error ?? last.last_error ?? ''}`;
    } else {
      const rungs = (last.renditions ?? []).map((r) => `${r.name}:${r.width}x${r.height}`);
      ok = last.status === 'done' && JSON.stringify(rungs) === JSON.stringify(s.done.rungs) && Math.abs(last.duration_s - s.done.duration) < 0.2 && last.has_audio === s.done.audio;
      detail = last.status === 'done' ? `done: ${rungs.join(' ')}, ${last.duration_s} s, audio ${last.has_audio}` : `${last.status}: ${last.error ?? ''}`;
    }
    rows.push({ check: s.kind, ok, detail });
  }
  const next = (await pollJob(platform, 'reliability', 'media-after')).at(-1);
  rows.push({ check: 'the next queued job succeeds', ok: after.status === 202 && next.status === 'done', detail: `${next.status}` });
  const fetched = listener.hits();
  await listener.close();
  rows.push({ check: 'uploads pointing at a local listener: requests it saw', ok: fetched === 0, detail: `${fetched} requests from ${list.filter((k) => k.ssrf).length} playlists, manifests and lists` });
  const rss = peakRssMb(pidBefore);
  rows.push({ check: 'transcoder peak RSS through every bad upload', ok: rss < 1024, detail: `${rss.toFixed(0)} MB (limit 1024 MB), ${list.filter((k) => k.bomb).length} timestamp bombs among them` });
  const alive = (() => { try { process.kill(pidBefore, 0); return true; } catch { return false; } })();
  rows.push({ check: 'the transcoder stayed up through all of them', ok: alive && platform.transcoders[0].pid === pidBefore && !platform.transcoders[0].exited, detail: `pid ${pidBefore} ${alive ? 'alive' : 'gone'}` });
  return rows;
}
