// Measuring processes and media for the benchmarks: wall/CPU/peak memory of
// a command (GNU time), medians, generated sources (cached under
// bench/work/), and HLS ladders read back from disk.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(BENCH, '..');
export const WORK = join(BENCH, 'work');
mkdirSync(WORK, { recursive: true });

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');

/** Runs `cmd args` under GNU time; returns wall s, CPU s (user+sys), peak RSS MB and stdout. */
export function measure(cmd, args, { env = {} } = {}) {
  const timeFile = join(WORK, `time-${process.pid}.txt`);
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, cmd, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${cmd} exited ${code}: ${stderr.slice(-800)}`));
      const [wall, user, sys, rssKb] = readFileSync(timeFile, 'utf8').trim().split(/\s+/).map(Number);
      resolve({ wall, cpu: user + sys, rssMb: rssKb / 1024, stdout });
    });
  });
}

/** A 1080p30 source with audio, `seconds` long, made once and kept in bench/work. */
export function source(seconds, { preset = 'veryfast', bitrate = '8M' } = {}) {
  const file = join(WORK, `src-1080p30-${seconds}s.mp4`);
  if (!existsSync(file)) {
    console.log(`bench: generating a ${seconds} s 1080p30 source (once; kept in bench/work)…`);
    execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=1920x1080:rate=30:duration=${seconds},noise=alls=6:allf=t`,
      '-f', 'lavfi', '-i', `sine=frequency=440:duration=${seconds}`, '-c:v', 'libx264', '-preset', preset, '-b:v', bitrate, '-maxrate', '10M', '-bufsize', '16M',
      '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '128k', file], { stdio: 'inherit' });
  }
  return file;
}

/** A rung of an HLS ladder on disk: its segments' durations and sizes. */
export function readRung(dir) {
  const text = readFileSync(join(dir, 'index.m3u8'), 'utf8');
  const lines = text.split('\n');
  const segments = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith('#EXTINF:')) {
      const duration = parseFloat(lines[i].slice(8));
      const file = lines[i + 1];
      segments.push({ duration, bytes: statSync(join(dir, file)).size, file });
    }
  }
  const init = text.match(/#EXT-X-MAP:URI="([^"]+)"/)?.[1];
  return { dir, segments, initBytes: init && existsSync(join(dir, init)) ? statSync(join(dir, init)).size : 0 };
}

/** Rung folders of a ladder (those with an index.m3u8). */
export const rungDirs = (ladder) => readdirSync(ladder).map((d) => join(ladder, d)).filter((d) => existsSync(join(d, 'index.m3u8')));

/** Keyframe times of a rung. */
export function keyframes(dir) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'packet=pts_time,flags', '-of', 'csv=p=0', join(dir, 'index.m3u8')]).toString();
  return out.split('\n').filter((l) => l.includes(',K')).map((l) => Number(l.split(',')[0]).toFixed(3));
}

/** SSIM (all) and PSNR (average) of the first `seconds` of a rung against the source scaled to its size. */
export function quality(dir, src, width, height, seconds = 20) {
  const graph = `[0:v]setpts=PTS-STARTPTS,format=yuv420p,split[d1][d2];[1:v]setpts=PTS-STARTPTS,scale=${width}:${height}:flags=bicubic,format=yuv420p,split[r1][r2];[d1][r1]ssim;[d2][r2]psnr`;
  // The figures are on stderr.
  const run = spawnSync('ffmpeg', ['-hide_banner', '-t', String(seconds), '-i', join(dir, 'index.m3u8'), '-t', String(seconds), '-i', src, '-lavfi', graph, '-f', 'null', '-'], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`ffmpeg ssim/psnr on ${dir}: ${run.stderr.slice(-500)}`);
  const out = run.stderr;
  return { ssim: Number(out.match(/SSIM .*All:([0-9.]+)/)?.[1]), psnr: Number(out.match(/PSNR .*average:([0-9.inf]+)/)?.[1]) };
}
