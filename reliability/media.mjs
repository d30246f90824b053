// Bad media through the whole platform: every kind of upload a user can
// send ends either `done` with a correct ladder or `error` with a specific,
// readable message; the transcoder process stays up throughout, and the
// next queued job succeeds.
import { execFileSync } from 'node:child_process';
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

/** The kinds of upload, how to make each, and what must become of it. */
function kinds(dir) {
  const f = (name) => join(dir, name);
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
  ];
}

export async function badMedia({ platform, scratch }) {
  const pidBefore = platform.transcoders[0].pid;
  const list = kinds(scratch);
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
      detail = `${last.status}: ${last.error ?? last.last_error ?? ''}`;
    } else {
      const rungs = (last.renditions ?? []).map((r) => `${r.name}:${r.width}x${r.height}`);
      ok = last.status === 'done' && JSON.stringify(rungs) === JSON.stringify(s.done.rungs) && Math.abs(last.duration_s - s.done.duration) < 0.2 && last.has_audio === s.done.audio;
      detail = last.status === 'done' ? `done: ${rungs.join(' ')}, ${last.duration_s} s, audio ${last.has_audio}` : `${last.status}: ${last.error ?? ''}`;
    }
    rows.push({ check: s.kind, ok, detail });
  }
  const next = (await pollJob(platform, 'reliability', 'media-after')).at(-1);
  rows.push({ check: 'the next queued job succeeds', ok: after.status === 202 && next.status === 'done', detail: `${next.status}` });
  const alive = (() => { try { process.kill(pidBefore, 0); return true; } catch { return false; } })();
  rows.push({ check: 'the transcoder stayed up through all of them', ok: alive && platform.transcoders[0].pid === pidBefore && !platform.transcoders[0].exited, detail: `pid ${pidBefore} ${alive ? 'alive' : 'gone'}` });
  return rows;
}
