// Measuring processes and media for the benchmarks: wall/CPU/peak memory of
// a command (GNU time), medians, generated sources (cached under
// bench/work/), and HLS ladders read back from disk.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync } from 'node:fs';
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

/** The medians of repeated `measure()` results, with every run's wall and CPU. */
export const medianRun = (rs) => ({
  wall: median(rs.map((r) => r.wall)), cpu: median(rs.map((r) => r.cpu)), rssMb: median(rs.map((r) => r.rssMb)),
  walls: rs.map((r) => r.wall), cpus: rs.map((r) => r.cpu),
});

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

/**
 * Kinds of generated 1080p30 content (lavfi video graphs; `S` is the duration).
 * `noise`: section 1's source, testsrc2 with temporal noise (mostly static
 * picture, noise that changes every frame). `motion`: a busier one, a
 * scrolling 1440p testsrc2 cropped to 1080p, averaged with an upscaled Game
 * of Life (blocks that change every frame) and lighter noise, so motion
 * search and intra decisions matter.
 */
export const CONTENTS = {
  noise: (s) => `testsrc2=size=1920x1080:rate=30:duration=${s},noise=alls=6:allf=t`,
  motion: (s) => `testsrc2=size=2560x1440:rate=30:duration=${s},scroll=h=0.002:v=0.001,crop=1920:1080:0:0,format=yuv420p[a];`
    + `life=size=240x135:rate=30:mold=10:ratio=0.3:random_seed=7:life_color=#40e080:death_color=#302010:mold_color=#a04020,scale=1920:1080:flags=neighbor,format=yuv420p[b];`
    + `[a][b]blend=all_mode=average:shortest=1,noise=alls=3:allf=t`,
};

/** One line on each kind of CONTENTS, for reports. */
export const CONTENT_NOTES = {
  noise: 'testsrc2 with temporal noise: a mostly static picture, noise changing every frame',
  motion: 'a scrolling testsrc2 averaged with an upscaled Game of Life and lighter noise: motion search and intra decisions matter',
};

/** A 1080p30 source with audio, `seconds` long, of a `kind` of CONTENTS, made once and kept in bench/work. */
export function source(seconds, { preset = 'veryfast', bitrate = '8M', kind = 'noise' } = {}) {
  // The noise source keeps its old name, so section 1's cached file is reused.
  const file = join(WORK, kind === 'noise' ? `src-1080p30-${seconds}s.mp4` : `src-${kind}-1080p30-${seconds}s.mp4`);
  if (!existsSync(file)) {
    const graph = CONTENTS[kind];
    if (!graph) throw new Error(`unknown content kind ${kind} (known: ${Object.keys(CONTENTS).join(', ')})`);
    console.log(`bench: generating a ${seconds} s 1080p30 ${kind} source (once; kept in bench/work)…`);
    execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', graph(seconds),
      '-f', 'lavfi', '-i', `sine=frequency=440:duration=${seconds}`, '-t', String(seconds), '-c:v', 'libx264', '-preset', preset, '-b:v', bitrate, '-maxrate', '10M', '-bufsize', '16M',
      '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '128k', `${file}.tmp.mp4`], { stdio: 'inherit' });
    renameSync(`${file}.tmp.mp4`, file);
  }
  return file;
}

export const TRANSCODER = join(ROOT, 'target', 'release', 'transcoder');

/**
 * The ladder the transcoder plans for `src` (up to 4 rungs, 1080p top).
 * Without a release build, `fallback` (a plan recorded for a source of the
 * same size and rate) is used if given.
 */
export function planFor(src, { fallback } = {}) {
  if (!existsSync(TRANSCODER) && fallback) return fallback;
  return JSON.parse(execFileSync(TRANSCODER, ['plan', src, '--max-rung', '1080', '--max-rungs', '4']).toString());
}

/**
 * The ffmpeg CLI producing the same ladder with the same settings: decode once, split, scale, x264, HLS.
 * `x264Params[i]`, when set, is passed to rung i as `-x264-params:v:i` (candidate settings).
 */
export function ffmpegLadderArgs(src, plan, outDir, { hasAudio = true, playlistType = 'vod', x264Params = [], loglevel = 'error' } = {}) {
  const n = plan.rungs.length;
  const split = `[0:v]split=${n}${plan.rungs.map((_, i) => `[s${i}]`).join('')}`;
  const scales = plan.rungs.map((r, i) => `[s${i}]scale=${r.width}:${r.height}:flags=bicubic[o${i}]`).join(';');
  const args = ['-loglevel', loglevel, '-y', '-i', src, '-filter_complex', `${split};${scales}`];
  for (let i = 0; i < n; i++) args.push('-map', `[o${i}]`);
  if (hasAudio) for (let i = 0; i < n; i++) args.push('-map', '0:a');
  args.push('-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high', '-pix_fmt', 'yuv420p',
    '-g', String(plan.gop_frames), '-keyint_min', String(plan.gop_frames), '-sc_threshold', '0', '-forced-idr', '1');
  plan.rungs.forEach((r, i) => args.push(`-b:v:${i}`, String(r.bitrate), `-maxrate:v:${i}`, String(r.max_bitrate), `-bufsize:v:${i}`, String(r.buffer_size)));
  x264Params.forEach((p, i) => p && args.push(`-x264-params:v:${i}`, p));
  if (hasAudio) args.push('-c:a', 'aac', '-b:a', '128k', '-ar', '48000', '-ac', '2');
  args.push('-f', 'hls', '-hls_time', '4', '-hls_playlist_type', playlistType, '-hls_segment_type', 'fmp4', '-hls_flags', 'independent_segments',
    '-var_stream_map', plan.rungs.map((_, i) => (hasAudio ? `v:${i},a:${i}` : `v:${i}`)).join(' '), '-master_pl_name', 'master.m3u8', join(outDir, '%v', 'index.m3u8'));
  return args;
}

/** The CPU model, logical cores and vector extensions (from /proc/cpuinfo), for every report. */
export function cpuInfo() {
  const text = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = text.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? 'unknown';
  const flags = (text.match(/^flags\s*:\s*(.+)$/m)?.[1] ?? '').split(/\s+/);
  const vector = flags.filter((f) => /^(sse4_2|avx|avx2|fma|avx512(f|bw|vl|dq|cd|_vnni|_fp16|_bf16|vbmi|ifma)?)$/.test(f));
  const cores = (text.match(/^processor\s*:/gm) ?? []).length;
  return { model, cores, vector, avx2: flags.includes('avx2'), avx512: flags.includes('avx512f') };
}

/**
 * CPU seconds (user + system, with reaped children) used so far by every
 * process group, from /proc: a Map of group id → seconds, plus the machine's
 * busy and idle seconds over all cores. The platform starts each of its
 * processes (Garage, each wrangler dev with its workerd, each transcoder) as
 * a group of its own, so two snapshots tell who used the cores in between.
 */
export function cpuSnapshot() {
  const hz = 100; // USER_HZ: 100 on every Linux ABI node runs on
  const groups = new Map();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let f;
    try { f = statFields(pid); } catch { continue; } // exited meanwhile
    const pgrp = Number(f[2]);
    const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    groups.set(pgrp, (groups.get(pgrp) ?? 0) + ticks / hz);
  }
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = (cpu[3] + cpu[4]) / hz; // idle + iowait
  return { groups, idle, busy: cpu.reduce((a, b) => a + b, 0) / hz - idle };
}

/** The process group of this process (the bench's own CPU in `cpuSnapshot`). */
export const ownProcessGroup = () => Number(statFields('self')[2]);

/** The fields of /proc/`pid`/stat after the command name (which may hold spaces): [0] is the state. */
function statFields(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU seconds between two `cpuSnapshot()`s: per group in `names` ({ name: group id }), the machine's busy and idle, and the rest. */
export function cpuBetween(before, after, names) {
  const used = (g) => (after.groups.get(g) ?? 0) - (before.groups.get(g) ?? 0);
  const by = Object.fromEntries(Object.entries(names).map(([name, g]) => [name, used(g)]));
  const busy = after.busy - before.busy;
  return { by, busy, idle: after.idle - before.idle, other: busy - Object.values(by).reduce((a, b) => a + b, 0) };
}

/** `cpuInfo()` as one line: model, logical cores, vector flags. */
export const cpuText = (c = cpuInfo()) => `${c.model}, ${c.cores} logical cores; vector flags: ${c.vector.join(' ')}`;

/** `xs` rotated by `round` (round 1 starts with the second): the order of configurations in a round, so warm caches favour none. */
export const rotated = (xs, round) => xs.map((_, i) => xs[(i + round) % xs.length]);

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

const qualityArgs = (dir, src, width, height, seconds) => {
  const graph = `[0:v]setpts=PTS-STARTPTS,format=yuv420p,split[d1][d2];[1:v]setpts=PTS-STARTPTS,scale=${width}:${height}:flags=bicubic,format=yuv420p,split[r1][r2];[d1][r1]ssim;[d2][r2]psnr`;
  return ['-hide_banner', '-t', String(seconds), '-i', join(dir, 'index.m3u8'), '-t', String(seconds), '-i', src, '-lavfi', graph, '-f', 'null', '-'];
};
const parseQuality = (out) => ({ ssim: Number(out.match(/SSIM .*All:([0-9.]+)/)?.[1]), psnr: Number(out.match(/PSNR .*average:([0-9.inf]+)/)?.[1]) });

/** SSIM (all) and PSNR (average) of the first `seconds` of a rung against the source scaled to its size. */
export function quality(dir, src, width, height, seconds = 20) {
  // The figures are on stderr.
  const run = spawnSync('ffmpeg', qualityArgs(dir, src, width, height, seconds), { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`ffmpeg ssim/psnr on ${dir}: ${run.stderr.slice(-500)}`);
  return parseQuality(run.stderr);
}

/** `quality`, without blocking (so that several can run at once when nothing is being timed). */
export function qualityAsync(dir, src, width, height, seconds = 20) {
  return new Promise((resolve, reject) => {
    const child = spawn('ffmpeg', qualityArgs(dir, src, width, height, seconds), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => (code === 0 ? resolve(parseQuality(stderr)) : reject(new Error(`ffmpeg ssim/psnr on ${dir}: ${stderr.slice(-500)}`))));
  });
}

/** A rung's video packets (audio excluded): sizes, keyframe times, and its bitrate over `fps`. */
export function videoPackets(dir, fps) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'packet=pts_time,size,flags', '-of', 'csv=p=0', join(dir, 'index.m3u8')], { maxBuffer: 64 << 20 }).toString();
  const packets = out.split('\n').filter(Boolean).map((l) => {
    const [pts, size, flags] = l.split(',');
    return { pts: Number(pts), size: Number(size), key: flags.includes('K') };
  });
  const bytes = packets.reduce((a, p) => a + p.size, 0);
  return { frames: packets.length, bytes, bitrate: (bytes * 8 * fps) / packets.length, keyframes: packets.filter((p) => p.key).map((p) => p.pts.toFixed(3)) };
}
