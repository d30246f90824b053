// Bad media through the whole platform: every kind of upload a user can
// send ends either `done` with a correct ladder or `error` with a specific,
// readable message; the transcoder process stays up throughout, within
// bounded memory, and the next queued job succeeds. Uploads that point at
// other URLs (playlists, manifests, lists) make no request at all.
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeClip, uploadVideo, pollJob } from '../devkit/client.mjs';

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
    { kind: 'empty file', make: () => (writeFileSync(f('empty.mp4'), ''), f('empty.mp4')), refused: /upload is empty/ },
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
      // PNG frames in a MOV whose sample entry and every frame's IHDR claim
      // 12000x12000: a size libav accepts, and the transcoder must refuse
      // before decoding whole frames of it.
      kind: 'huge declared dimensions',
      make: () => {
        const p = f('huge.mov');
        ffmpeg('-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=10:duration=2', '-c:v', 'png', '-f', 'mov', p);
        const b = readFileSync(p);
        const entry = b.indexOf('png ', b.indexOf('stsd')) + 4 + 24;
        b.writeUInt16BE(12000, entry);
        b.writeUInt16BE(12000, entry + 2);
        for (let at = b.indexOf('IHDR'); at >= 0; at = b.indexOf('IHDR', at + 4)) {
          b.writeUInt32BE(12000, at + 4);
          b.writeUInt32BE(12000, at + 8);
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

export async function badMedia({ platform, scratch }) {
  const pidBefore = platform.transcoders[0].pid;
  const listener = await startListener();
  const list = kinds(scratch, listener.url);
  // Queue them all at once, as users would; then the good job that must still succeed.
  const submitted = [];
  for (const [i, k] of list.entries()) {
    const video = `media-${i}`;
    const notify = await uploadVideo(platform, 'reliability', video, k.make(), k.type);
    submitted.push({ ...k, video, notify });
  }
  const after = await uploadVideo(platform, 'reliability', 'media-after', makeClip(join(scratch, 'after.mp4'), { size: '320x240', seconds: 2 }));
  const rows = [];
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
