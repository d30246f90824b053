// The benchmark suite (not part of the test command): what users of a video
// platform care about, each figure next to a baseline run on this machine
// in the same session. Prints what it measured and puts it into the one
// current report, bench/results/latest.md (+ .json), replacing the sections it
// ran (bench/report.mjs); --out=NAME writes NAME.md/.json alone instead.
//
//   bash bench/run.sh              all seven sections
//   node bench/run.mjs --only=7    image transforms alone (no transcoder needed)
//   node bench/run.mjs --only=8    signed playback's cost per segment request (built video Worker; --requests=N, default 2000)
//   node bench/run.mjs --only=9    chunked jobs: time to done on 1 and 2 transcoders pinned to a core each, and stitched vs single-pass
//                                  (--chunked-seconds=N, default 1200; --stitch-seconds=N, default 180, 0 skips;
//                                   --stitch-content=noise|motion; --chunk-s=N, default 30)
//   node bench/run.mjs --only=10   covers and animated previews: transcoder extras against the ffmpeg CLI (release transcoder)
//   node bench/run.mjs --only=11   codecs: the ladder in H.264, HEVC and AV1 (speed, CPU, SSIM, bytes), and each encoder's bytes at H.264's SSIM
//                                  (--sweep-presets: also SVT-AV1 10-13 and x265 ultrafast/superfast, each codec's ladder alone)
//   --ttp-lengths=30,300,1200      section 2's source lengths
//   --only=5 --before=DIR          the Workers' size and cold start next to another checkout's (built there)
//   --only=5 --save-before=LABEL   or record this build's as the "before" of later reports
//   bash bench/run.sh --only=1,3   some of them
//   --runs=N (default 3) repetitions of each throughput/time-to-playable run
//   --seconds=N (default 60) section 1's source length (3 measures its first 20 s at most)
//   --contents=noise,motion (default both) the kinds of source of sections 1 and 3 (lib.mjs CONTENTS)
//   node bench/run.mjs --only=1,3 --seconds=4 --runs=1 --out=smoke   a smoke run of sections 1 and 3, kept out of latest.md
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BENCH, CONTENTS, CONTENT_NOTES, ROOT, TRANSCODER, WORK, cpuBetween, cpuInfo, cpuSnapshot, cpuText, ffmpegLadderArgs, fmt, measure, median, medianRun, ownProcessGroup, planFor, quality, readRung, rotated, rungDirs, source, videoPackets,
} from './lib.mjs';
import { runWrk } from '../devkit/wrk.mjs';
import { WORKERS, coldStarts, wasmSizes } from './workers-cost.mjs';
import { startPlatform } from '../devkit/platform.mjs';
import { mergeInto } from './report.mjs';
import { makeClip, postJson, pollJob, uploadVideo } from '../devkit/client.mjs';
import { openEvents } from '../devkit/sse.mjs';

const arg = (name, dflt) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const only = arg('only', '1,2,3,4,5,6,7,8,9,10,11').split(',').map(Number);
const RUNS = Number(arg('runs', 3));
const CORES = cpus().length;
const SECONDS = Number(arg('seconds', 60));
/** Section 11 also runs each codec's ladder at its neighbouring presets (long: about 15 min a source at 60 s). */
const SWEEP_PRESETS = process.argv.includes('--sweep-presets');
const CONTENT_KINDS = arg('contents', 'noise,motion').split(',').filter(Boolean);
for (const k of CONTENT_KINDS) if (!CONTENTS[k]) throw new Error(`unknown content ${k} (known: ${Object.keys(CONTENTS).join(', ')})`);
const CPU = cpuInfo();
const MACHINE = cpuText({ ...CPU, cores: CORES });
// The report, by section: they run in the order the platform needs (1, 2, 4, 3)
// and are written in number order.
const report = { 0: [] };
let section = 0;
const data = { date: new Date().toISOString(), machine: { ...CPU, cores: CORES, text: MACHINE }, sections: {} };
const say = (m) => console.log(`bench: ${m}`);
const out = (line = '') => { (report[section] ??= []).push(line); console.log(line); };
const begin = (n, title) => { section = n; out(`## ${n}. ${title}`); };

// ---- 1. transcode throughput: the transcoder vs one ffmpeg CLI run ----------

/** transcoder transcode with section 1's ladder (up to 1080p, 4 rungs) and `extra` flags. */
const transcode = (src, dir, extra = []) => measure(TRANSCODER, ['transcode', src, dir, '--max-rung', '1080', '--max-rungs', '4', ...extra], { env: { RUST_LOG: 'warn' } });

/**
 * Section 1's configurations, the baseline first: the CLI as a user would run
 * it; the transcoder with every rung on x264's veryfast preset, as the CLI
 * (the transcoder without issue 16's tuned x264 options); the transcoder's defaults.
 */
const CONFIGS = [
  { key: 'ffmpeg', name: 'ffmpeg CLI (baseline)', run: (src, plan, dir) => measure('ffmpeg', ffmpegLadderArgs(src, plan, dir)) },
  { key: 'presetOnly', dir: 'preset-only', name: 'transcoder, preset only', run: (src, plan, dir) => transcode(src, dir, ['--x264-preset-only']) },
  { key: 'transcoder', name: 'transcoder', run: (src, plan, dir) => transcode(src, dir) },
];

async function throughput() {
  const contents = {};
  for (const kind of CONTENT_KINDS) {
    const src = source(SECONDS, { kind });
    const plan = planFor(src);
    const dirs = Object.fromEntries(CONFIGS.map((c) => [c.key, join(WORK, `ladder-${kind}-${c.dir ?? c.key}`)]));
    const runs = {};
    for (let i = 0; i < RUNS; i++) {
      for (const c of rotated(CONFIGS, i)) {
        rmSync(dirs[c.key], { recursive: true, force: true });
        say(`throughput ${kind} run ${i + 1}/${RUNS}: ${c.name}…`);
        const r = await c.run(src, plan, dirs[c.key]);
        (runs[c.key] ??= []).push(r);
        say(`  wall ${fmt(r.wall)} s, CPU ${fmt(r.cpu)} s, peak ${fmt(r.rssMb, 0)} MB`);
      }
    }
    const summary = Object.fromEntries(CONFIGS.map(({ key }) => {
      const rs = runs[key];
      const m = medianRun(rs);
      return [key, { ...m, speed: SECONDS / m.wall, cpuLimit: m.cpu / CORES }];
    }));
    contents[kind] = { src, plan, dirs, summary };
  }
  const plan0 = contents[CONTENT_KINDS[0]].plan;
  begin(1, 'Transcode throughput');
  out();
  out(`Sources: ${SECONDS} s 1080p30 H.264 + AAC (x264 veryfast, 8 Mb/s), ${CONTENT_KINDS.map((k) => `**${k}** (${CONTENT_NOTES[k]})`).join('; ')}. `
    + `Ladder: ${plan0.rungs.map((r) => `${r.width}x${r.height}@${(r.bitrate / 1e6).toFixed(2)}M`).join(', ')}; ${plan0.gop_frames}-frame closed GOPs, VBV; AAC 128k stereo 48 kHz; fMP4 HLS. `
    + `Configurations: **ffmpeg CLI (baseline)**, one process (decode once, split, bicubic scale, 4 x libx264 veryfast High), as a user would run it; `
    + `**transcoder, preset only** (\`--x264-preset-only\`), every rung on x264's veryfast preset as the CLI (the transcoder without issue 16's tuned x264 options; threads as in its defaults); `
    + `**transcoder**, its defaults (tuned per-rung x264 options, machine-aware threads). Median of ${RUNS} run${RUNS === 1 ? '' : 's'} per content and configuration, the configurations' order rotated each round. Machine: ${MACHINE}.`);
  out();
  for (const kind of CONTENT_KINDS) {
    const { summary } = contents[kind];
    const ff = summary.ffmpeg;
    const po = summary.presetOnly;
    const tc = summary.transcoder;
    out(`### ${kind}`);
    out();
    out('| run | wall (s) | CPU (s) | peak RSS (MB) | speed (x realtime) | CPU-bound limit (s) | wall vs limit |');
    out('|---|---|---|---|---|---|---|');
    for (const c of CONFIGS) {
      const s = summary[c.key];
      out(`| ${c.name} | ${fmt(s.wall)} | ${fmt(s.cpu)} | ${fmt(s.rssMb, 0)} | ${fmt(s.speed, 2)} | ${fmt(s.cpuLimit)} | ${fmt((s.cpuLimit / s.wall) * 100, 0)}% |`);
    }
    const speedup = ff.wall / tc.wall;
    const tuned = { cpuSaved: po.cpu - tc.cpu, cpuSavedPct: (1 - tc.cpu / po.cpu) * 100, wallSaved: po.wall - tc.wall, wallSavedPct: (1 - tc.wall / po.wall) * 100 };
    out();
    out(`Wall-time ratio ffmpeg / transcoder: **${fmt(speedup, 2)}x** (target >= 1.25x: ${speedup >= 1.25 ? 'met' : 'NOT met'}); CPU ratio ${fmt(ff.cpu / tc.cpu, 2)}x; peak memory ${fmt(tc.rssMb, 0)} vs ${fmt(ff.rssMb, 0)} MB (target: no more: ${tc.rssMb <= ff.rssMb ? 'met' : 'NOT met'}).`);
    out();
    out(`Preset only: wall ratio ffmpeg / preset only ${fmt(ff.wall / po.wall, 2)}x, CPU ratio ${fmt(ff.cpu / po.cpu, 2)}x, peak memory ${fmt(po.rssMb, 0)} MB. `
      + `What the tuned options bought (transcoder vs preset only): **${fmt(tuned.cpuSaved)} CPU-s saved (${fmt(tuned.cpuSavedPct)}%)**, ${fmt(tuned.wallSaved)} s of wall saved (${fmt(tuned.wallSavedPct)}%)${tuned.cpuSaved < 0 ? ' (negative: the tuned options cost CPU here)' : ''}.`);
    out();
    Object.assign(contents[kind], { speedup, cpuRatio: ff.cpu / tc.cpu, tuned });
  }
  data.sections.throughput = Object.fromEntries(CONTENT_KINDS.map((k) => {
    const { plan, summary, speedup, cpuRatio, tuned } = contents[k];
    return [k, { seconds: SECONDS, plan, summary, speedup, cpuRatio, tuned }];
  }));
  return contents;
}

// ---- 3. output quality and accuracy, per rung -------------------------------

function ladderQuality(label, dir, src, plan, segmentTarget, firstSegment) {
  const fps = plan.frame_rate.num / plan.frame_rate.den;
  const rows = [];
  const keys = [];
  for (const r of plan.rungs) {
    const rungDir = rungDirs(dir).find((d) => {
      const probe = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', join(d, 'index.m3u8')]).toString().trim().split('\n')[0]; // HLS lists the stream twice (program, stream)
      return probe === `${r.width},${r.height}`;
    });
    const rung = readRung(rungDir);
    const total = rung.segments.reduce((a, s) => a + s.duration, 0);
    const bytes = rung.initBytes + rung.segments.reduce((a, s) => a + s.bytes, 0);
    const avg = (bytes * 8) / total;
    const peak = Math.max(...rung.segments.map((s, i) => ((s.bytes + (i === 0 ? rung.initBytes : 0)) * 8) / Math.max(s.duration, 1)));
    const full = rung.segments.slice(firstSegment ? 1 : 0, -1).map((s) => s.duration);
    const q = quality(rungDir, src, r.width, r.height);
    const targetAvg = r.bitrate + 128_000;
    const cap = r.max_bitrate + 128_000;
    const video = videoPackets(rungDir, fps);
    keys.push(video.keyframes.join(','));
    // As frame numbers from the first: the CLI's and the transcoder's muxers round timestamps differently (< 1 ms).
    const keyframeNumbers = video.keyframes.map((t) => Math.round((Number(t) - Number(video.keyframes[0])) * fps)).join(',');
    rows.push({ rung: `${r.width}x${r.height}`, ssim: q.ssim, psnr: q.psnr, avg, videoBitrate: video.bitrate, keyframeNumbers, targetAvg, peak, cap, segMin: Math.min(...full), segMax: Math.max(...full), first: rung.segments[0].duration, count: rung.segments.length });
  }
  const aligned = keys.every((k) => k === keys[0]);
  out(`**${label}** (keyframes aligned across rungs: ${aligned ? 'yes' : 'NO'}, ${keys[0].split(',').length} per rung)`);
  out();
  out('| rung | SSIM | PSNR (dB) | avg bitrate / target | within 10% | peak segment / cap | within 10% | segments (first, others) |');
  out('|---|---|---|---|---|---|---|---|');
  for (const x of rows) {
    // With a source shorter than two segments there is no full segment: the range is "-".
    const range = x.segMin <= x.segMax ? `${fmt(x.segMin, 3)}-${fmt(x.segMax, 3)} s` : '-';
    out(`| ${x.rung} | ${fmt(x.ssim, 4)} | ${fmt(x.psnr, 2)} | ${fmt(x.avg / 1e6, 2)} / ${fmt(x.targetAvg / 1e6, 2)} Mb/s | ${Math.abs(x.avg / x.targetAvg - 1) <= 0.1 ? 'yes' : 'NO'} | ${fmt(x.peak / 1e6, 2)} / ${fmt(x.cap / 1e6, 2)} Mb/s | ${x.peak <= x.cap * 1.1 ? 'yes' : 'NO'} | ${x.count}: ${fmt(x.first, 3)} s, ${range} (target ${segmentTarget} s) |`);
  }
  out();
  return { rows, aligned };
}

/** Issue 16's gate: SSIM within this of the CLI's, on every rung. */
const SSIM_GATE = 0.002;

function qualitySection(ladders) {
  begin(3, 'Output quality and accuracy');
  out();
  out(`SSIM and PSNR of the first ${Math.min(20, SECONDS)} s of each rung against the source scaled to the rung's size (bicubic); bitrates measured from the segments (video + 128k audio) against the planned target and VBV cap; segment durations from the playlists. `
    + `Per content: the three ladders of section 1 (the transcoder, the transcoder with \`--x264-preset-only\`, the ffmpeg CLI baseline, same settings), then side by side: ΔSSIM = transcoder - CLI (issue 16's gate: >= -${SSIM_GATE} on every rung), video bitrate from the video packets (audio and container excluded).`);
  out();
  const pct = (x) => `${x >= 0 ? '+' : ''}${fmt(x * 100, 1)}%`;
  const sgn = (x) => `${x >= 0 ? '+' : ''}${fmt(x, 4)}`;
  data.sections.quality = {};
  for (const kind of CONTENT_KINDS) {
    const { src, plan, dirs } = ladders[kind];
    out(`### ${kind}`);
    out();
    const tc = ladderQuality('transcoder', dirs.transcoder, src, plan, 4, true);
    const po = ladderQuality('transcoder, preset only', dirs.presetOnly, src, plan, 4, true);
    const ff = ladderQuality('ffmpeg CLI (baseline)', dirs.ffmpeg, src, plan, 4, false);
    const compare = plan.rungs.map((_, i) => {
      const [c, p, b] = [tc.rows[i], po.rows[i], ff.rows[i]];
      return { rung: b.rung, dSsim: c.ssim - b.ssim, dPsnr: c.psnr - b.psnr, dBitrate: c.videoBitrate / b.videoBitrate - 1, keyframes: c.keyframeNumbers === b.keyframeNumbers,
        presetOnly: { dSsim: p.ssim - b.ssim, dPsnr: p.psnr - b.psnr, dBitrate: p.videoBitrate / b.videoBitrate - 1 } };
    });
    out(`**${kind}: transcoder vs CLI, per rung**`);
    out();
    out('| rung | SSIM CLI | SSIM transcoder | ΔSSIM | PSNR CLI (dB) | PSNR transcoder (dB) | video bitrate Δ vs CLI | keyframes on the same frames |');
    out('|---|---|---|---|---|---|---|---|');
    compare.forEach((x, i) => {
      out(`| ${x.rung} | ${fmt(ff.rows[i].ssim, 4)} | ${fmt(tc.rows[i].ssim, 4)} | ${sgn(x.dSsim)}${x.dSsim < -SSIM_GATE ? ' (NOT within the gate)' : ''} | ${fmt(ff.rows[i].psnr, 2)} | ${fmt(tc.rows[i].psnr, 2)} | ${pct(x.dBitrate)} | ${x.keyframes ? 'yes' : 'NO'} |`);
    });
    const worst = (f) => Math.min(...compare.map(f));
    const gate = worst((x) => x.dSsim) >= -SSIM_GATE;
    out();
    out(`SSIM within ${SSIM_GATE} of the CLI's on every rung: ${gate ? 'met' : 'NOT met'} (worst ΔSSIM ${sgn(worst((x) => x.dSsim))}); preset only: worst ΔSSIM ${sgn(worst((x) => x.presetOnly.dSsim))}, video bitrate Δ ${compare.map((x) => pct(x.presetOnly.dBitrate)).join(', ')}.`);
    out();
    data.sections.quality[kind] = { transcoder: tc, presetOnly: po, ffmpeg: ff, compare, gate };
  }
}

// ---- 2 and 4: through the full local platform ---------------------------------

async function withPlatform(fn) {
  const dir = join(tmpdir(), `bench-platform-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  // Info: section 2 reads the transcoder's stage lines.
  const platform = await startPlatform({ dir, transcoderBin: TRANSCODER, transcoderEnv: { RUST_LOG: 'info' }, log: say });
  try {
    return await fn(platform);
  } finally {
    await platform.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Notify → /playback-url answers and the master, every rung's playlist, init and first segment are fetchable. */
async function timeToPlayable(platform, video) {
  const t0 = performance.now();
  const notify = await postJson(`${platform.video}/notify-upload-complete`, { app_id: 'bench', video_id: video.id, raw_key: video.raw_key, content_type: 'video/mp4' }, platform.apiKey);
  if (notify.status !== 202) throw new Error(`notify: ${notify.status} ${notify.text}`);
  const jobId = notify.json.job_id;
  let url;
  for (;;) {
    const r = await fetch(`${platform.video}/playback-url?app_id=bench&video_id=${video.id}`);
    if (r.status === 200) { url = (await r.json()).url; break; }
    await r.arrayBuffer();
    await new Promise((res) => setTimeout(res, 50));
  }
  const master = await (await fetch(url)).text();
  // Every variant, and the audio rendition of a chunked job (an EXT-X-MEDIA URI).
  const rungs = [...master.split('\n').filter((l) => l && !l.startsWith('#')), ...[...master.matchAll(/#EXT-X-MEDIA:[^\n]*URI="([^"]+)"/g)].map((m) => m[1])];
  await Promise.all(rungs.map(async (rung) => {
    const rungUrl = new URL(rung, url);
    const playlist = await (await fetch(rungUrl)).text();
    const first = playlist.split('\n').find((l) => l && !l.startsWith('#'));
    for (const f of ['init.mp4', first]) {
      const r = await fetch(new URL(f, rungUrl));
      if (r.status !== 200) throw new Error(`${rung} ${f}: ${r.status}`);
      await r.arrayBuffer();
    }
  }));
  return { seconds: (performance.now() - t0) / 1000, jobId };
}

/** The baseline: the ffmpeg CLI's time until every rung has listed its first segment (local disk, no upload).
 * An EVENT playlist, because ffmpeg writes a VOD one only at the end. */
async function ffmpegTimeToFirstSegments(src, plan) {
  const dir = join(WORK, 'ttp-ffmpeg');
  rmSync(dir, { recursive: true, force: true });
  const { spawn } = await import('node:child_process');
  const t0 = performance.now();
  const child = spawn('ffmpeg', ffmpegLadderArgs(src, plan, dir, { playlistType: 'event' }), { stdio: 'ignore' });
  // Killed with the bench too: a bench stopped by a signal skips `finally`, and an
  // ffmpeg left running took a core from the next run (2026-12-07).
  const orphan = () => child.kill('SIGKILL');
  process.once('exit', orphan);
  try {
    for (;;) {
      const ready = plan.rungs.every((_, i) => {
        const p = join(dir, String(i), 'index.m3u8');
        return existsSync(p) && readFileSync(p, 'utf8').includes('#EXTINF');
      });
      if (ready) return (performance.now() - t0) / 1000;
      await new Promise((res) => setTimeout(res, 20));
    }
  } finally {
    process.off('exit', orphan);
    child.kill('SIGKILL');
  }
}

/** The transcoder's stage lines (`stage`, `ms` since the lease) for `jobId`, from its JSON log. */
function stagesOf(platform, jobId) {
  const stages = {};
  for (const t of platform.transcoders) {
    const file = join(platform.logs, `${t.name}.log`);
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.startsWith('{') || !line.includes('"stage"')) continue;
      const e = JSON.parse(line);
      if (e.span?.job_id !== jobId || e.fields?.stage === undefined) continue;
      stages[e.fields.stage] ??= Number(e.fields.ms);
    }
  }
  return stages;
}

/** A source length as the tables name it: `30 s`, `5 min`. */
const lengthLabel = (seconds) => (seconds >= 60 ? `${seconds / 60} min` : `${seconds} s`);

const STAGES = ['source_open', 'probed', 'first_cut', 'all_cut', 'playable', 'playable_told'];

/**
 * `--first-segment-ab`: section 2 alternates, run by run, a transcoder with
 * the first segment's own encoder (`FIRST_SEGMENT_ENCODER=on`, the default)
 * and one without (`off`), in the same minutes, so that the machine's drift
 * falls on both alike. The main table is the `on` arm's.
 */
const FIRST_SEGMENT_AB = process.argv.includes('--first-segment-ab');

/** Makes the platform's running transcoder one with `FIRST_SEGMENT_ENCODER=arm`, ready to lease. */
async function transcoderWith(platform, arm) {
  const current = platform.transcoders.at(-1);
  if (current && current.arm === arm && !current.exited) return;
  if (current) {
    await current.stop();
    // A transcoder killed before it took its lease long poll back (withdraw)
    // leaves it in its queue shard until its wait ends, where it would lease
    // the next job for nobody (a lease that runs out: ~15 s and an attempt).
    // Wait until no request waits.
    for (let i = 0; ; i++) {
      const stats = await postJson(`${platform.video}/internal/dispatch/stats`, {}, null, { authorization: `Bearer ${platform.transcoderToken}` });
      if (stats.status !== 200) throw new Error(`dispatch stats: ${stats.status} ${stats.text}`);
      if (stats.json.shards.every((s) => s.waiters === 0)) break;
      if (i > 300) throw new Error('a stopped transcoder\'s lease request still waits after 30 s');
      await new Promise((res) => setTimeout(res, 100));
    }
  }
  const t = platform.addTranscoder(`transcoder-fse-${arm}-${platform.transcoders.length}`, { FIRST_SEGMENT_ENCODER: arm });
  t.arm = arm;
  const file = join(platform.logs, `${t.name}.log`);
  for (let i = 0; !(existsSync(file) && readFileSync(file, 'utf8').includes('transcoder started')); i++) {
    if (t.exited || i > 200) throw new Error(`${t.name} did not start (see ${file})`);
    await new Promise((res) => setTimeout(res, 50));
  }
  await new Promise((res) => setTimeout(res, 1000)); // its first lease long-poll is waiting
}

async function playableSection(platform) {
  const lengths = (arg('ttp-lengths', '30,300,1200')).split(',').map(Number);
  begin(2, 'Time to playable');
  out();
  out(`From the notify call until /playback-url answers and the master playlist, every rung's playlist, init segment and first segment are fetchable through the playback route, on the full local platform (wrangler dev, Garage, one release transcoder; the ladder up to 1080p; sources of 2 min and more go through the chunked path, CHUNK_FROM_S = 120). The upload itself is not timed. Median of ${RUNS} runs; each job is canceled once playable. Contents: ${CONTENT_KINDS.map((k) => `**${k}** (${CONTENT_NOTES[k]})`).join('; ')}. Baseline: the ffmpeg CLI ladder (section 1's command, with an EVENT playlist so that it lists segments as it goes) until every rung has listed its first segment, on local disk. Stages: the transcoder's own log lines, ms from its lease (median over the runs); "queue and polls" is the total less playable_told (the playable beat answered): the notify, dispatch and the lease long-poll, then the playback-url poll (every 50 ms) and the fetches of the first files.`);
  out();
  out(`| source | content | transcoder: median (runs) | stages, ms from the lease: ${STAGES.join(' / ')} | queue and polls | ffmpeg CLI to first segments | Mux published median for this length |`);
  out('|---|---|---|---|---|---|---|');
  const mux = { 30: '2.0 s (< 1 min)', 300: '3.3 s (1-5 min)', 1200: '9.0 s (5-20 min)' };
  const results = {};
  for (const seconds of lengths) {
    for (const kind of CONTENT_KINDS) {
      const src = source(seconds, seconds > 60 ? { preset: 'ultrafast', bitrate: '6M', kind } : { kind });
      const plan = JSON.parse(execFileSync(TRANSCODER, ['plan', src, '--max-rung', '1080']).toString());
      const arms = {};
      const times = [];
      const stageRuns = [];
      for (let i = 0; i < RUNS * (FIRST_SEGMENT_AB ? 2 : 1); i++) {
        // A/B: on, off, off, on, on, off, … so that neither arm always goes first.
        const arm = FIRST_SEGMENT_AB ? (['on', 'off', 'off', 'on'][i % 4]) : null;
        if (arm) await transcoderWith(platform, arm);
        const id = `ttp-${kind}-${seconds}-${i}-${Date.now().toString(36)}`;
        // Upload (not timed) with the README's steps, then time from the notify.
        const bytes = readFileSync(src);
        const presign = await postJson(`${platform.video}/generate-upload-url`, { app_id: 'bench', video_id: id, content_type: 'video/mp4', size: bytes.length }, platform.apiKey);
        const put = await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body: bytes });
        if (put.status !== 200) throw new Error(`upload: ${put.status}`);
        const { seconds: t, jobId } = await timeToPlayable(platform, { id, raw_key: presign.json.raw_key });
        await postJson(`${platform.video}/cancel-job`, { app_id: 'bench', video_id: id }, platform.apiKey);
        await new Promise((res) => setTimeout(res, 2500)); // the transcoder stops at its next heartbeat
        const stages = stagesOf(platform, jobId);
        if (arm === null || arm === 'on') {
          times.push(t);
          stageRuns.push(stages);
        }
        if (arm) (arms[arm] ??= []).push({ t, stages });
        say(`time to playable, ${seconds} s ${kind} source, run ${i + 1}${arm ? ` (first-segment encoder ${arm})` : ''}: ${fmt(t, 2)} s; stages ${JSON.stringify(stages)}`);
      }
      const stages = Object.fromEntries(STAGES.map((k) => [k, median(stageRuns.map((r) => r[k]).filter(Number.isFinite))]));
      const base = await ffmpegTimeToFirstSegments(src, plan);
      const queue = median(times) - (stages.playable_told ?? NaN) / 1000;
      results[`${kind}-${seconds}`] = { kind, seconds, times, median: median(times), stages, stageRuns, ffmpeg: base, ...(FIRST_SEGMENT_AB ? { firstSegmentAB: arms } : {}) };
      out(`| ${lengthLabel(seconds)} | ${kind} | **${fmt(median(times), 2)} s** (${times.map((x) => fmt(x, 2)).join(', ')}) | ${STAGES.map((k) => fmt(stages[k], 0)).join(' / ')} | ${fmt(queue, 2)} s | ${fmt(base, 2)} s | ${mux[seconds] ?? '-'} |`);
    }
  }
  const worst = Math.max(...Object.values(results).map((r) => r.median));
  out();
  out(`Target (issue 27): median under 1.5 s for every length and content: ${worst < 1.5 ? 'met' : 'NOT met'} (worst median ${fmt(worst, 2)} s).`);
  out();
  if (FIRST_SEGMENT_AB) {
    out(`The first segment's own encoder (\`FIRST_SEGMENT_ENCODER\`), on against off: the runs of each cell alternate between a transcoder with it and one without (on, off, off, on, …), ${RUNS} each, in the same minutes. Medians; all_cut is the last rung's first segment, ms from the lease.`);
    out();
    out('| source | content | on: median (runs) | off: median (runs) | on − off | all_cut on / off (ms) |');
    out('|---|---|---|---|---|---|');
    for (const r of Object.values(results)) {
      const [on, off] = ['on', 'off'].map((a) => r.firstSegmentAB[a] ?? []);
      const m = (runs) => median(runs.map((x) => x.t));
      const cut = (runs) => median(runs.map((x) => x.stages.all_cut).filter(Number.isFinite));
      out(`| ${lengthLabel(r.seconds)} | ${r.kind} | ${fmt(m(on), 2)} s (${on.map((x) => fmt(x.t, 2)).join(', ')}) | ${fmt(m(off), 2)} s (${off.map((x) => fmt(x.t, 2)).join(', ')}) | ${m(on) >= m(off) ? '+' : ''}${fmt(m(on) - m(off), 2)} s | ${fmt(cut(on), 0)} / ${fmt(cut(off), 0)} |`);
    }
    out();
  }
  data.sections.timeToPlayable = results;
}

async function workersSection(platform) {
  begin(4, 'The Workers');
  out();
  // A finished job to read.
  await uploadVideo(platform, 'bench', 'load', makeClip(join(WORK, 'load.mp4'), { size: '640x360', seconds: 6 }));
  const done = (await pollJob(platform, 'bench', 'load')).at(-1);
  const segment = new URL('00000.m4s', done.renditions[0].url).href;
  const lua = (body, path) => {
    const file = join(WORK, `${path}.lua`);
    writeFileSync(file, [
      'math.randomseed(os.time())',
      'wrk.method = "POST"',
      'wrk.headers["Content-Type"] = "application/json"',
      `wrk.headers["x-api-key"] = "${platform.apiKey}"`,
      `wrk.body = '${JSON.stringify(body)}'`,
      // A fresh client address per request, as many users would have (the per-IP limit would otherwise answer 429).
      'request = function() wrk.headers["cf-connecting-ip"] = "10." .. math.random(0,255) .. "." .. math.random(0,255) .. "." .. math.random(1,254); return wrk.format() end',
    ].join('\n'));
    return file;
  };
  const routes = [
    ['GET /health (baseline)', `${platform.video}/health`],
    ['POST /generate-upload-url', `${platform.video}/generate-upload-url`, lua({ app_id: 'bench', video_id: 'wrk', content_type: 'video/mp4', size: 1000000 }, 'presign')],
    ['POST /notify-upload-complete (done job)', `${platform.video}/notify-upload-complete`, lua({ app_id: 'bench', video_id: 'load', raw_key: 'raw/bench/load/source.mp4', content_type: 'video/mp4' }, 'notify')],
    ['GET /job-status', `${platform.video}/job-status?app_id=bench&video_id=load`],
    ['GET /playback-url', `${platform.video}/playback-url?app_id=bench&video_id=load`],
    ['GET HLS media segment', segment],
  ];
  out('wrk on 127.0.0.1 against the video service in wrangler dev (workerd), 2 threads, 8 connections, 10 s per route; the baseline is the Worker\'s /health.');
  out();
  out('| route | requests/s | p50 (ms) | p99 (ms) | errors |');
  out('|---|---|---|---|---|');
  const results = {};
  for (const [name, url, script] of routes) {
    const r = await runWrk(url, { connections: 8, script });
    results[name] = r;
    out(`| ${name} | ${fmt(r.rps, 0)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${r.errors} of ${r.requests} |`);
  }
  out();
  data.sections.workers = { latency: results };
}

// ---- 5. what the Workers cost: wasm size and cold start, before and after ---

const BEFORE = join(BENCH, 'results', 'workers-before.json');

/**
 * `--before=DIR`: a second checkout with its Workers built
 * (scripts/build-workers.sh there), measured in the same session as the
 * "before" column. Without it, the figures `--save-before=LABEL` recorded.
 */
async function workersCostSection() {
  begin(5, 'The Workers: wasm size and cold start');
  out();
  const beforeDir = arg('before');
  let before = null;
  let measured;
  if (beforeDir) {
    const label = `${execFileSync('git', ['-C', beforeDir, 'rev-parse', '--short', 'HEAD']).toString().trim()} (${beforeDir}), measured alongside`;
    measured = await coldStarts(RUNS, say, { before: beforeDir, after: ROOT });
    before = { label, date: data.date, sizes: wasmSizes(beforeDir), cold: measured.before };
  } else {
    measured = await coldStarts(RUNS, say);
    before = existsSync(BEFORE) ? JSON.parse(readFileSync(BEFORE, 'utf8')) : null;
  }
  const sizes = wasmSizes();
  const cold = measured.after;
  const label = arg('save-before');
  if (label) {
    writeFileSync(BEFORE, JSON.stringify({ label, date: data.date, sizes, cold }, null, 2) + '\n');
    say(`recorded this build as the "before" (${label}) in bench/results/workers-before.json`);
  }
  out('Sizes of crates/*/build/index_bg.wasm (gzip -9, as the script size limit counts). Cold start: `wrangler dev` started on the built Worker with its build step left out; '
    + '"listening" is spawn until the port accepts, "first" the first GET /health after that, "warm" the median of the next 20. '
    + `Median of ${RUNS} starts.` + (before ? ` Before: ${before.label} (${before.date.slice(0, 10)}).` : ''));
  out();
  const kb = (b) => fmt(b / 1024, 0);
  const pair = (b, a, f) => (before ? `${f(b)} → ${f(a)}` : f(a));
  out('| Worker | wasm raw (KB) | wasm gzip (KB) | listening (ms) | first request (ms) | warm request (ms) |');
  out('|---|---|---|---|---|---|');
  for (const [crate] of WORKERS) {
    const b = before && { ...before.sizes[crate], ...before.cold[crate] };
    const a = { ...sizes[crate], ...cold[crate] };
    out(`| ${crate} | ${pair(b?.raw, a.raw, kb)} | ${pair(b?.gzip, a.gzip, kb)} | ${pair(b?.ready, a.ready, (x) => fmt(x, 0))} | ${pair(b?.first, a.first, (x) => fmt(x, 1))} | ${pair(b?.warm, a.warm, (x) => fmt(x, 1))} |`);
  }
  out();
  data.sections.workersCost = { sizes, cold, before };
}

// ---- 6. from a transcoder's heartbeat to the SSE event ----------------------

/**
 * The time from a heartbeat being sent to the `job:progress` it causes
 * reaching an SSE client, on one clock (this process sends both and reads
 * the stream). A platform without a transcoder, so this script holds the
 * lease. Baseline: the heartbeat call's own round trip.
 */
async function eventLatencySection() {
  begin(6, 'Live events: heartbeat to SSE client');
  out();
  const dir = join(tmpdir(), `bench-events-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  const platform = await startPlatform({ dir, log: say });
  try {
    const n = 200;
    const video = `latency${Date.now()}`;
    const notified = await uploadVideo(platform, 'bench', video, new Uint8Array(1000).fill(1));
    if (notified.status !== 202) throw new Error(`notify: ${notified.status} ${notified.text}`);
    const internal = (path, body) => postJson(`${platform.video}/internal/jobs${path}`, body, undefined, { authorization: `Bearer ${platform.transcoderToken}` });
    const job = (await internal('/lease', { worker: 'bench', wait_ms: 5000 })).json.job;
    if (job?.video_id !== video) throw new Error(`leased ${JSON.stringify(job)}`);
    const stream = await openEvents(fetch, `${platform.video}/job-events?app_id=bench&video_id=${video}`);
    await stream.waitFor('job:started', 10_000);
    const toEvent = [];
    const roundTrip = [];
    for (let i = 1; i <= n; i++) {
      // A new stage each time, so every heartbeat is an event.
      const stage = `step-${i}`;
      const sent = performance.timeOrigin + performance.now();
      const r = await internal(`/${job.job_id}/heartbeat`, { lease_id: job.lease_id, progress: Math.min(99, i), stage });
      roundTrip.push(performance.timeOrigin + performance.now() - sent);
      if (r.status !== 200) throw new Error(`heartbeat ${i}: ${r.status} ${r.text}`);
      const e = await stream.waitFor((ev) => ev.event === 'job:progress' && ev.data.stage === stage, 10_000);
      toEvent.push(e.at - sent);
    }
    stream.close();
    const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
    out(`${n} heartbeats sent one after another through the internal API (\`POST /internal/jobs/{id}/heartbeat\`, found through its queue shard, then the video's object) to a job whose \`/job-events\` stream this script reads, on the full local platform (wrangler dev). Each time is from just before the heartbeat is sent to the \`job:progress\` frame being parsed, on one clock. Baseline: the heartbeat call's own round trip.`);
    out();
    out('| | p50 (ms) | p99 (ms) | max (ms) |');
    out('|---|---|---|---|');
    out(`| heartbeat call (baseline) | ${fmt(pct(roundTrip, 50), 1)} | ${fmt(pct(roundTrip, 99), 1)} | ${fmt(Math.max(...roundTrip), 1)} |`);
    out(`| heartbeat → SSE client | ${fmt(pct(toEvent, 50), 1)} | ${fmt(pct(toEvent, 99), 1)} | ${fmt(Math.max(...toEvent), 1)} |`);
    out();
    out(`The event reaches the client ${fmt(pct(toEvent, 50) / pct(roundTrip, 50), 2)}x the heartbeat call's median time after it is sent: the object writes the frame before it answers the heartbeat.`);
    out();
    data.sections.eventLatency = { n, roundTrip, toEvent };
  } finally {
    await platform.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- 7. image transforms: made once, then served from cache ---------------

/** Test images made with the ffmpeg CLI (kept in bench/work): a camera-like JPEG, a UI screenshot-like PNG, a noisy photo-like JPEG. */
function benchImages() {
  const make = (name, graph, args) => {
    const file = join(WORK, name);
    if (!existsSync(file)) execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', graph, '-frames:v', '1', ...args, file]);
    return file;
  };
  const ui = ['color=c=0xf4f5f7:s=1600x1000', 'drawbox=x=0:y=0:w=1600:h=64:color=0x1d2330:t=fill', 'drawbox=x=0:y=64:w=240:h=936:color=0xe6e9ef:t=fill',
    'drawbox=x=280:y=100:w=620:h=360:color=0x3b6ef5:t=fill', 'drawbox=x=940:y=100:w=620:h=360:color=0x2a9d5c:t=fill',
    'drawgrid=x=280:y=500:w=160:h=40:t=1:c=0xc8ccd4', 'drawbox=x=280:y=500:w=1280:h=480:color=0xffffff@0.6:t=fill'].join(',');
  return [
    { name: 'testsrc2 JPEG', file: make('img-testsrc2-1600x1200.jpg', 'testsrc2=size=1600x1200', ['-q:v', '3']), type: 'image/jpeg' },
    { name: 'screenshot-like PNG (flat colours, 1 px lines)', file: make('img-screenshot-1600x1000.png', ui, []), type: 'image/png' },
    { name: 'noisy photo-like JPEG', file: make('img-noisy-1600x1200.jpg', 'testsrc2=size=1600x1200,noise=alls=40:allf=t+u,gblur=sigma=0.6', ['-q:v', '2']), type: 'image/jpeg' },
  ];
}

/**
 * Latency of `/images/{app}/{image}/{options}` when the variant is made
 * (the Images binding, sharp locally), then when it is served from the edge
 * cache and from storage, next to `/assets/` serving the original; and the
 * bytes of each format at two widths next to the original's. A platform
 * without a transcoder.
 */
async function imageTransformsSection() {
  begin(7, 'Image transforms');
  out();
  const dir = join(tmpdir(), `bench-images-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  const platform = await startPlatform({ dir, log: say });
  const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
  const CHROMIUM = 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8';
  const get = async (url, accept = CHROMIUM) => {
    const t0 = performance.now();
    const r = await fetch(url, { headers: { accept } });
    const bytes = (await r.arrayBuffer()).byteLength;
    return { ms: performance.now() - t0, status: r.status, type: r.headers.get('content-type'), source: r.headers.get('x-image-variant'), bytes };
  };
  try {
    const images = benchImages();
    for (const img of images) {
      const form = new FormData();
      form.set('app_id', 'bench');
      form.set('file', new Blob([readFileSync(img.file)], { type: img.type }), img.file.split('/').pop());
      const r = await fetch(`${platform.image}/upload`, { method: 'POST', headers: { 'x-api-key': platform.apiKey }, body: form });
      if (r.status !== 201) throw new Error(`upload ${img.name}: ${r.status} ${await r.text()}`);
      Object.assign(img, await r.json());
    }
    // Latency: per image, distinct variants (every allowed width up to the source's x every quality, WebP),
    // one request after another. First request: created; again: the edge cache; the same stored object
    // through another cache key (f=auto from a WebP-only client resolves to it): stored.
    const sizes = [160, 320, 480, 640, 960, 1280, 1600];
    const qualities = [50, 65, 75, 85];
    const runs = { original: [], created: [], edge: [], stored: [] };
    const createdBy = {};
    const unexpected = [];
    const check = (a, want, what) => { if (a.status !== 200 || a.source !== want) unexpected.push(`${what}: ${a.status} ${a.source}`); };
    for (const img of images) {
      await get(img.asset_url); // the first read of the original (its record) is not the baseline's
      for (let i = 0; i < sizes.length * qualities.length; i++) runs.original.push((await get(img.asset_url)).ms);
      const base = img.transform_url.replace(/[^/]*$/, '');
      const variants = sizes.flatMap((w) => qualities.map((q) => `w=${w},q=${q}`));
      for (const v of variants) {
        const a = await get(`${base}${v},f=webp`);
        check(a, 'created', v);
        runs.created.push(a.ms);
        (createdBy[img.name] ??= []).push(a.ms);
      }
      for (const v of variants) {
        const a = await get(`${base}${v},f=webp`);
        check(a, 'edge', v);
        runs.edge.push(a.ms);
      }
      for (const v of variants) {
        const a = await get(`${base}${v},f=auto`, 'image/webp,*/*');
        check(a, 'stored', `${v},f=auto`);
        runs.stored.push(a.ms);
      }
      say(`image transforms: latency of ${img.name} done`);
    }
    out(`On the full local platform (wrangler dev, Garage; ${MACHINE}). Three generated images, uploaded with \`POST /upload\`: ${images.map((i) => `${i.name} (${i.width}x${i.height}, ${fmt(i.size / 1024, 0)} KB)`).join(', ')}. `
      + `**Locally the Images binding runs on sharp (Miniflare), which ignores quality: the byte sizes below are sharp's defaults, not Cloudflare's, and the "created" times are sharp's on this machine.**`);
    out();
    out(`Latency, one request after another: ${runs.created.length} distinct WebP variants (widths ${sizes.join(', ')} x qualities ${qualities.join(', ')}, of each image). `
      + '"created": the first request (the record, the original read from storage, one binding call, the variant stored); "edge": the same URL again (Cache API); '
      + '"stored": the same variant through another cache key (`f=auto` from a client that takes WebP), read from storage. Baseline: `GET /assets/` of the original (itself cached at the edge after its first read), the same number of requests.');
    out();
    out('| request | n | p50 (ms) | p99 (ms) | max (ms) | p50 vs baseline |');
    out('|---|---|---|---|---|---|');
    const b50 = pct(runs.original, 50);
    for (const [name, xs] of [['/assets/ original (baseline)', runs.original], ['variant, created', runs.created], ['variant, edge', runs.edge], ['variant, stored', runs.stored]]) {
      out(`| ${name} | ${xs.length} | ${fmt(pct(xs, 50), 1)} | ${fmt(pct(xs, 99), 1)} | ${fmt(Math.max(...xs), 1)} | ${fmt(pct(xs, 50) / b50, 2)}x |`);
    }
    out();
    out(`p99 of ${runs.created.length} requests is their largest. "created" p50 by image: ${images.map((i) => `${i.name} ${fmt(pct(createdBy[i.name], 50), 0)} ms`).join(', ')} (the original is read whole from storage and decoded each time).`);
    out();
    out(unexpected.length ? `**${unexpected.length} answers did not come from where expected**, e.g. ${unexpected.slice(0, 5).join('; ')}.` : 'Every answer came from where expected (`x-image-variant`).');
    out();

    // Bytes per format.
    const formats = ['avif', 'webp', 'jpeg', 'png'];
    const table = [];
    for (const img of images) {
      const base = img.transform_url.replace(/[^/]*$/, '');
      for (const w of [640, 1280]) {
        const row = { image: img.name, original: img.size, w, cells: {} };
        for (const f of formats) {
          if (f === 'avif' && w > 1200) continue; // AVIF is written at most 1200 px a side
          const a = await get(`${base}w=${w},f=${f}`);
          if (a.status !== 200 || a.type !== `image/${f}`) throw new Error(`${img.name} w=${w},f=${f}: ${a.status} ${a.type}`);
          row.cells[f] = a.bytes;
        }
        table.push(row);
      }
    }
    out('Bytes per format (`w=640` and `w=1280`, default quality, `fit=scale-down`), next to the original\'s bytes; % saved = 1 - variant / original. AVIF only up to 1200 px a side (the binding\'s limit).');
    out();
    out(`| image | original | width | ${formats.join(' | ')} |`);
    out(`|---|---|---|${formats.map(() => '---').join('|')}|`);
    const cell = (bytes, original) => (bytes === undefined ? 'n/a (> 1200 px)' : `${fmt(bytes / 1024, 1)} KB (${fmt((1 - bytes / original) * 100, 0)}%)`);
    for (const r of table) out(`| ${r.image} | ${fmt(r.original / 1024, 1)} KB | ${r.w} | ${formats.map((f) => cell(r.cells[f], r.original)).join(' | ')} |`);
    out();
    data.sections.imageTransforms = { images: images.map(({ name, width, height, size, content_type }) => ({ name, width, height, size, content_type })), runs, createdBy, unexpected, bytes: table };
  } finally {
    await platform.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- 8. signed playback: what a token costs per segment request -------------

/**
 * The same media segment of one done video, asked through its public route
 * and through `/hls/t/{token}/...` with RS256 and ES256 tokens (signed with
 * jose, as an app backend would), in the same session: the video Worker in
 * workerd (Miniflare, built by scripts/build-workers.sh) on 127.0.0.1.
 * Requests go one at a time, the three routes interleaved (rotated each
 * round), so load from anything else on the machine falls on all three
 * alike. Both routes share the edge-cached segment and the cached job read,
 * so the difference is the token's check: parse, the isolate's imported
 * key, crypto.subtle.verify.
 */
async function signedPlaybackSection() {
  begin(8, 'Signed playback: the cost of a token per segment request');
  out();
  const { videoService, API_KEY } = await import('../tests/workers/harness.mjs');
  const { SignJWT, importPKCS8, importJWK } = await import('jose');
  const port = await new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => { const p = srv.address().port; srv.close(() => resolve(p)); });
  });
  const store = { endpoint: 'http://127.0.0.1:9', bucket: 'media', region: 'us-east-1', accessKey: 'bench', secretKey: 'bench' };
  const mf = await videoService({ store, port, limits: { PUBLIC_RATE_LIMITER: 1_000_000_000 } });
  const base = `http://127.0.0.1:${port}`;
  const call = async (method, path, body, headers = {}) => {
    const res = await fetch(base + path, { method, headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, ...headers }, body: body && JSON.stringify(body) });
    return { status: res.status, json: await res.json().catch(() => undefined) };
  };
  try {
    const bucket = await mf.getR2Bucket('MEDIA_BUCKET');
    const raw = 'raw/bench/signed/source.mp4';
    await bucket.put(raw, new Uint8Array(1000).fill(1), { httpMetadata: { contentType: 'video/mp4' } });
    const notified = await call('POST', '/notify-upload-complete', { app_id: 'bench', video_id: 'signed', raw_key: raw, content_type: 'video/mp4' });
    if (notified.status !== 202) throw new Error(`notify: ${notified.status}`);
    const internal = { authorization: `Bearer ${(await import('../tests/workers/harness.mjs')).TRANSCODER_TOKEN}` };
    const job = (await call('POST', '/internal/jobs/lease', { worker: 'bench', wait_ms: 3000 }, internal)).json.job;
    const SEGMENT_BYTES = 64 * 1024;
    await bucket.put(`${job.output_prefix}360p/00000.m4s`, randomBytes(SEGMENT_BYTES), { httpMetadata: { contentType: 'video/iso.segment' } });
    const result = { duration_s: 4, has_audio: false, renditions: [], thumbnails: null };
    const done = await call('POST', `/internal/jobs/${job.job_id}/complete`, { lease_id: job.lease_id, result }, internal);
    if (done.status !== 200) throw new Error(`complete: ${done.status}`);
    const token = async (alg) => {
      const k = (await call('POST', '/signing-keys', { app_id: 'bench', alg })).json;
      const key = alg === 'RS256' ? await importPKCS8(k.pem, alg) : await importJWK(k.jwk, alg);
      return new SignJWT({ sub: 'signed' }).setProtectedHeader({ alg, kid: k.id, typ: 'JWT' }).setExpirationTime('2h').sign(key);
    };
    const routes = [
      ['public /hls/… (baseline)', `${base}/${job.output_prefix}360p/00000.m4s`],
      ['/hls/t/{RS256 token}/…', `${base}/hls/t/${await token('RS256')}/360p/00000.m4s`],
      ['/hls/t/{ES256 token}/…', `${base}/hls/t/${await token('ES256')}/360p/00000.m4s`],
    ];
    for (const [, url] of routes) {
      const warm = await fetch(url);
      await warm.arrayBuffer();
      if (warm.status !== 200) throw new Error(`${url}: ${warm.status}`);
    }
    const N = Number(arg('requests', 2000));
    const times = Object.fromEntries(routes.map(([name]) => [name, []]));
    let errors = 0;
    const t0 = Date.now();
    for (let i = 0; i < N; i++) {
      for (const [name, url] of rotated(routes, i)) {
        const start = performance.now();
        const res = await fetch(url);
        await res.arrayBuffer();
        times[name].push(performance.now() - start);
        if (res.status !== 200) errors += 1;
      }
      if (i % 500 === 499) say(`signed playback: ${i + 1}/${N} rounds`);
    }
    const pct = (xs, p) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
    const load = loadavg()[0];
    out(`The same ${SEGMENT_BYTES / 1024} KiB media segment of one done video, through the public route and through \`/hls/t/{token}/…\` (tokens signed offline with jose), on the video Worker in workerd (Miniflare; the release build of scripts/build-workers.sh) on 127.0.0.1: ${N} requests per route from one Node fetch client, one at a time, the three routes interleaved (order rotated each round) so that other load on the machine falls on all three alike (${fmt((Date.now() - t0) / 1000, 0)} s; 1-minute load average at the end ${fmt(load, 1)} on ${CORES} cores). Both routes answer from the same edge-cached segment and cached job read, so the difference is the token's check (parse, the isolate's imported key, \`crypto.subtle.verify\`). CPU: ${CPU.model}.`);
    out();
    out('| route | p50 (ms) | p99 (ms) | p50 / public | p99 / public | added p50 (ms) | added p99 (ms) |');
    out('|---|---|---|---|---|---|---|');
    const [pub] = routes[0];
    const results = {};
    for (const [name] of routes) {
      const r = { p50: pct(times[name], 50), p99: pct(times[name], 99), n: times[name].length };
      results[name] = r;
    }
    for (const [name] of routes) {
      const r = results[name];
      const b = results[pub];
      out(`| ${name} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.p50 / b.p50, 2)}x | ${fmt(r.p99 / b.p99, 2)}x | ${fmt(r.p50 - b.p50, 2)} | ${fmt(r.p99 - b.p99, 2)} |`);
    }
    out();
    out(`Errors (non-200): ${errors}. The p50 difference is the token's cost; a p99 is the slowest 1% of a route's own samples, which other load on the machine decides, so a p99 difference smaller than that noise can come out negative.`);
    out();
    data.sections.signedPlayback = { segmentBytes: SEGMENT_BYTES, requests: N, results, errors, load };
  } finally {
    await mf.dispose();
  }
}

// ---- 9. chunked jobs: time to done on 1 and 2 pinned transcoders; stitched vs single-pass ----

/** Chunk lines (`chunk started`, `chunk done`, `job planned`) of `jobId` in every transcoder's log, with the transcoder's name. */
function chunkEvents(platform, jobId) {
  const events = [];
  for (const t of platform.transcoders) {
    const file = join(platform.logs, `${t.name}.log`);
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      const e = JSON.parse(line);
      const msg = e.fields?.message;
      if (e.span?.job_id !== jobId || !['chunk started', 'chunk done', 'job planned'].includes(msg)) continue;
      events.push({ msg, by: t.name, t: Date.parse(e.timestamp), ...e.fields });
    }
  }
  return events.sort((a, b) => a.t - b.t);
}

/** Uploads `src` as `id`, notifies, and waits for done: seconds from the notify, and the final status. */
async function timeToDone(platform, id, src, { atNotify = () => {} } = {}) {
  const bytes = readFileSync(src);
  const presign = await postJson(`${platform.video}/generate-upload-url`, { app_id: 'bench', video_id: id, content_type: 'video/mp4', size: bytes.length }, platform.apiKey);
  const put = await fetch(presign.json.upload_url, { method: 'PUT', headers: presign.json.headers, body: bytes });
  if (put.status !== 200) throw new Error(`upload: ${put.status}`);
  atNotify();
  const t0 = performance.now();
  const notify = await postJson(`${platform.video}/notify-upload-complete`, { app_id: 'bench', video_id: id, raw_key: presign.json.raw_key, content_type: 'video/mp4' }, platform.apiKey);
  if (notify.status !== 202) throw new Error(`notify: ${notify.status} ${notify.text}`);
  const final = (await pollJob(platform, 'bench', id, { timeoutMs: 4 * 3600_000, everyMs: 250 })).at(-1);
  if (final.status !== 'done') throw new Error(`${id}: ${final.status} ${final.error}`);
  return { seconds: (performance.now() - t0) / 1000, final, jobId: notify.json.job_id };
}

/** Copies a done job's ladder (every rung and the audio rendition) from the playback route into `dir/{rung}/index.m3u8` + files. */
async function downloadLadder(status, dir) {
  const master = await (await fetch(status.playback_url)).text();
  const uris = [...master.split('\n').filter((l) => l && !l.startsWith('#')), ...[...master.matchAll(/#EXT-X-MEDIA:[^\n]*URI="([^"]+)"/g)].map((m) => m[1])];
  for (const uri of uris) {
    const url = new URL(uri, status.playback_url);
    const playlist = await (await fetch(url)).text();
    const rungDir = join(dir, uri.split('/')[0]);
    mkdirSync(rungDir, { recursive: true });
    writeFileSync(join(rungDir, 'index.m3u8'), playlist);
    const map = playlist.match(/#EXT-X-MAP:URI="([^"]+)"/)?.[1];
    for (const f of [map, ...playlist.split('\n').filter((l) => l && !l.startsWith('#'))].filter(Boolean)) {
      const r = await fetch(new URL(f, url));
      if (r.status !== 200) throw new Error(`${uri} ${f}: ${r.status}`);
      writeFileSync(join(rungDir, f), Buffer.from(await r.arrayBuffer()));
    }
  }
}

/** ffmpeg reads `playlist` end to end with no error: '' or the errors. */
function decodeErrors(playlist) {
  const run = spawnSync('ffmpeg', ['-v', 'error', '-xerror', '-i', playlist, '-f', 'null', '-'], { encoding: 'utf8' });
  return run.status === 0 ? run.stderr.trim() : `exit ${run.status}: ${run.stderr.trim().slice(-300)}`;
}

/** Stitched against single-pass on a `stitchSeconds` source of `content`: SSIM per rung, keyframes, continuity, decoding. */
async function stitchedVsSinglePass(platform, stitchSeconds, content) {
  // The same ladder from one transcoder chunked, and from `transcoder transcode`, on a shorter source.
  const qsrc = source(stitchSeconds, { preset: 'ultrafast', bitrate: '6M', kind: content });
  platform.addTranscoder('stitch', { RUST_LOG: 'info' });
  const run = await timeToDone(platform, `stitch-${Date.now().toString(36)}`, qsrc);
  const stitched = join(WORK, 'stitched');
  const single = join(WORK, 'single-pass');
  rmSync(stitched, { recursive: true, force: true });
  rmSync(single, { recursive: true, force: true });
  await downloadLadder(run.final, stitched);
  await measure(TRANSCODER, ['transcode', qsrc, single, '--max-rung', '1080'], { env: { RUST_LOG: 'warn' } });
  const plan = planFor(qsrc);
  const fps = plan.frame_rate.num / plan.frame_rate.den;
  out(`Stitched against single-pass: a ${stitchSeconds / 60}-min ${content} source (${run.final.job_id ? 'chunked on one transcoder' : ''}, ${chunkEvents(platform, run.jobId).filter((e) => e.msg === 'chunk done').length} chunks) and the same source through \`transcoder transcode\` (single pass). SSIM of each against the source scaled, over the first ${Math.min(stitchSeconds, 120)} s; keyframe times from ffprobe; "continuous": every video packet follows the previous by one frame; "decodes": \`ffmpeg -v error -xerror\` reads the rung end to end with nothing on stderr.`);
  out();
  out('| rung | SSIM single-pass | SSIM stitched | Δ (gate ≤ 0.002) | keyframes = single-pass | continuous | decodes |');
  out('|---|---|---|---|---|---|---|');
  const rows = [];
  const stitchedKeys = [];
  for (const r of plan.rungs) {
    const name = `${r.height}p`;
    const a = join(single, name);
    const b = join(stitched, name);
    const qa = quality(a, qsrc, r.width, r.height, Math.min(stitchSeconds, 120));
    const qb = quality(b, qsrc, r.width, r.height, Math.min(stitchSeconds, 120));
    const pa = videoPackets(a, fps);
    const pb = videoPackets(b, fps);
    stitchedKeys.push(pb.keyframes.join(','));
    const pts = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'packet=dts_time', '-of', 'csv=p=0', join(b, 'index.m3u8')], { maxBuffer: 64 << 20 }).toString().split('\n').filter(Boolean).map(Number);
    const continuous = pts.every((t, i) => i === 0 || Math.abs(t - pts[i - 1] - 1 / fps) < 0.002);
    const errors = decodeErrors(join(b, 'index.m3u8'));
    const row = { rung: name, single: qa.ssim, stitched: qb.ssim, delta: qb.ssim - qa.ssim, keys: pa.keyframes.join(',') === pb.keyframes.join(','), continuous, errors };
    rows.push(row);
    out(`| ${name} | ${fmt(qa.ssim, 4)} | ${fmt(qb.ssim, 4)} | ${fmt(row.delta, 4)} | ${row.keys ? 'yes' : 'NO'} | ${continuous ? 'yes' : 'NO'} | ${errors ? `NO: ${errors.slice(0, 80)}` : 'yes'} |`);
  }
  const audioErrors = existsSync(join(stitched, 'audio', 'index.m3u8')) ? decodeErrors(join(stitched, 'audio', 'index.m3u8')) : 'no audio rendition';
  const aligned = stitchedKeys.every((k) => k === stitchedKeys[0]);
  const gate = rows.every((x) => Math.abs(x.delta) <= 0.002 && x.keys && x.continuous && !x.errors) && aligned && !audioErrors;
  out();
  out(`Keyframes aligned across the stitched rungs: ${aligned ? 'yes' : 'NO'}. Audio rendition decodes: ${audioErrors ? `NO (${audioErrors.slice(0, 100)})` : 'yes'}. Gate: ${gate ? 'met' : 'NOT met'}.`);
  out();
  data.sections.stitched = { seconds: stitchSeconds, content, rows, aligned, audioErrors, gate };
}

async function chunkedSection() {
  const seconds = Number(arg('chunked-seconds', 1200));
  const stitchSeconds = Number(arg('stitch-seconds', 180)); // 0: skip the stitched-vs-single-pass part
  const stitchContent = arg('stitch-content', 'noise');
  const chunkS = arg('chunk-s', '30');
  begin(9, 'Chunked jobs: one video on many transcoders');
  out();
  const vars = { CHUNK_FROM_S: '120', CHUNK_S: chunkS };
  const dir = join(tmpdir(), `bench-chunked-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  const platform = await startPlatform({ dir, transcoderBin: TRANSCODER, transcoderEnv: { RUST_LOG: 'info' }, videoVars: vars, log: say });
  const results = {};
  try {
    for (const t of platform.transcoders) await t.stop();
    const src = source(seconds, { preset: 'ultrafast', bitrate: '6M' });
    // Time to done: one transcoder on core 0, then two on cores 0 and 1 (taskset), the same source.
    for (const n of [1, 2]) {
      const pinned = Array.from({ length: n }, (_, i) => platform.addTranscoder(`pinned-${n}-${i}`, { RUST_LOG: 'info' }, ['taskset', '-c', String(i)]));
      await new Promise((res) => setTimeout(res, 1500));
      const id = `chunked-${n}-${Date.now().toString(36)}`;
      say(`time to done, ${seconds} s source, ${n} pinned transcoder(s)…`);
      let before;
      const run = await timeToDone(platform, id, src, { atNotify: () => { before = cpuSnapshot(); } });
      const [garagePid, videoPid, imagePid] = platform.pids();
      const { by, other, idle } = cpuBetween(before, cpuSnapshot(), {
        ...Object.fromEntries(pinned.map((t) => [t.name, t.pid])), 'video service (wrangler dev + workerd)': videoPid,
        'image service': imagePid, Garage: garagePid, bench: ownProcessGroup(),
      });
      // The transcoders' CPU, and everything else the local platform runs.
      const cpu = { transcoders: pinned.map((t) => by[t.name]), services: Object.fromEntries(Object.entries(by).filter(([k]) => !pinned.some((t) => t.name === k))), other, idle };
      const events = chunkEvents(platform, run.jobId);
      const done = events.filter((e) => e.msg === 'chunk done');
      const planned = events.find((e) => e.msg === 'job planned');
      const chunkTimes = done.filter((e) => e.chunk !== 0).map((e) => Number(e.elapsed_ms) / 1000);
      const first = done.find((e) => e.chunk === 0);
      // Idle between a transcoder's chunk done and its next chunk started: the lease round trip.
      const gaps = [];
      for (const t of pinned) {
        const own = events.filter((e) => e.by === t.name && (e.msg === 'chunk done' || e.msg === 'chunk started'));
        for (let i = 1; i < own.length; i++) if (own[i - 1].msg === 'chunk done' && own[i].msg === 'chunk started') gaps.push((own[i].t - own[i - 1].t) / 1000);
      }
      results[n] = {
        seconds: run.seconds, chunks: Number(planned?.chunks ?? done.length), chunkMedian: median(chunkTimes), chunk0: first ? Number(first.elapsed_ms) / 1000 : NaN,
        planS: planned ? Number(planned.elapsed_ms) / 1000 : NaN, gap: gaps.length ? median(gaps) : NaN,
        byTranscoder: Object.fromEntries(pinned.map((t) => [t.name, done.filter((e) => e.by === t.name).length])),
        cpu,
      };
      say(`${n} transcoder(s): done in ${fmt(run.seconds, 1)} s (${JSON.stringify(results[n])})`);
      for (const t of pinned) await t.stop();
    }
    const speedup = results[1].seconds / results[2].seconds;
    out(`A ${seconds / 60}-min 1080p30 noise source (x264 ultrafast 6 Mb/s, as section 2's long ones), chunked (CHUNK_FROM_S 120, CHUNK_S ${chunkS}, FIRST_CHUNK_S default), through the full local platform (wrangler dev, Garage, release transcoders, each pinned to one core with \`taskset -c\`). Notify → \`done\`. CPU: ${CPU.model}, ${CORES} cores.`);
    out();
    out('| transcoders | time to done | chunks | median chunk (not task 0) | task 0 (first chunk + whole audio) | lease→plan | idle between chunks (median) | chunks done per transcoder |');
    out('|---|---|---|---|---|---|---|---|');
    for (const n of [1, 2]) {
      const r = results[n];
      out(`| ${n} × 1 core | **${fmt(r.seconds, 1)} s** (${fmt(seconds / r.seconds, 2)}x real time) | ${r.chunks} | ${fmt(r.chunkMedian, 1)} s | ${fmt(r.chunk0, 1)} s | ${fmt(r.planS, 2)} s | ${fmt(r.gap, 2)} s | ${Object.values(r.byTranscoder).join(' / ')} |`);
    }
    out();
    // Who used the two cores from notify to done: the transcoders against everything else the local platform runs.
    out('CPU seconds from notify to done, from /proc (user + system, per process group; "rest" is the machine\'s other busy time, "idle" its unused core-seconds):');
    out();
    const parts = Object.keys(results[1].cpu.services);
    out(`| transcoders | wall | transcoders' CPU | ${parts.join(' | ')} | rest | idle |`);
    out(`|---|---|---|${parts.map(() => '---|').join('')}---|---|`);
    for (const n of [1, 2]) {
      const { transcoders, services, other, idle } = results[n].cpu;
      out(`| ${n} × 1 core | ${fmt(results[n].seconds, 0)} s | ${transcoders.map((v) => fmt(v, 0)).join(' + ')} s | ${parts.map((k) => `${fmt(services[k], 1)} s`).join(' | ')} | ${fmt(other, 1)} s | ${fmt(idle, 0)} s |`);
    }
    out();
    out(`Speed-up with 2: **${fmt(speedup, 2)}x** (target ≥ 1.8x: ${speedup >= 1.8 ? 'met' : 'NOT met'}).`);
    // Projection to N cores (one task per core): T(N) ≈ plan + max(task 0, ceil((C-1)/N) · (chunk + idle)).
    const r1 = results[1];
    const per = r1.chunkMedian + (Number.isFinite(r1.gap) ? r1.gap : 0);
    const project = (cores) => r1.planS + Math.max(r1.chunk0, Math.ceil((r1.chunks - 1) / cores) * per);
    out();
    out(`Projection, from the one-core run: T(N cores) ≈ lease→plan + max(task 0, ⌈(C − 1) / N⌉ × (chunk + idle)) = ${fmt(r1.planS, 2)} + max(${fmt(r1.chunk0, 1)}, ⌈${r1.chunks - 1} / N⌉ × ${fmt(per, 1)}) s: ${[2, 4, 8, 16, 32, 64].map((c) => `${c} cores ${fmt(project(c), 0)} s`).join(', ')}. The floor is task 0 (its chunk and the whole audio track) and one chunk's time: with ${chunkS}-s chunks no fleet goes below ${fmt(Math.max(r1.chunk0, per) + r1.planS, 0)} s; Mux's median for 20-60 min is 46 s, which needs chunks of about ${fmt((46 - r1.planS) / per * Number(chunkS), 0)} s or shorter at this per-core speed (and task 0's audio in a task of its own).`);
    out();
    data.sections.chunked = { seconds, chunkS, results, speedup };

    if (stitchSeconds > 0) await stitchedVsSinglePass(platform, stitchSeconds, stitchContent);
  } finally {
    await platform.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- 10. covers and previews ------------------------------------------------

/**
 * What the extras cost (issue 28): `transcoder extras` (a second, short read
 * of the source after the ladder: seek, decode a few seconds, encode) against
 * the ffmpeg CLI making the same files from the same input seek, on the
 * 60-s 1080p noise source. Runs alternate between the two, the order turned
 * each round, so the machine's drift falls on both.
 */
async function extrasSection() {
  begin(10, 'Covers and animated previews: what they cost');
  out();
  const src = source(SECONDS);
  const dir = join(WORK, `extras-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const at = String(SECONDS / 2);
  const window = ['-ss', at, '-t', '3', '-i', src];
  const cases = [
    {
      name: `cover at ${at} s (JPEG + WebP, 1920×1080)`,
      extras: { cover: { time_s: Number(at) } },
      ffmpeg: ['-ss', at, '-i', src, '-map', '0:v', '-frames:v', '1', '-q:v', '3', join(dir, 'cli-cover.jpg'), '-map', '0:v', '-frames:v', '1', join(dir, 'cli-cover.webp')],
    },
    {
      name: `preview, animated WebP: 3 s from ${at} s, 480 px, 10 fps`,
      extras: { preview: { start_s: Number(at), duration_s: 3, width: 480, fps: 10, format: 'webp' } },
      ffmpeg: [...window, '-an', '-vf', 'fps=10,scale=480:-2', '-loop', '0', '-c:v', 'libwebp_anim', join(dir, 'cli-preview.webp')],
    },
    {
      name: `preview, GIF (one palette): 3 s from ${at} s, 480 px, 10 fps`,
      extras: { preview: { start_s: Number(at), duration_s: 3, width: 480, fps: 10, format: 'gif' } },
      ffmpeg: [...window, '-an', '-filter_complex', 'fps=10,scale=480:-2,split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=sierra2_4a', '-loop', '0', join(dir, 'cli-preview.gif')],
    },
  ];
  const runs = Math.max(RUNS, 5);
  const ours = cases.map(() => []);
  const cli = cases.map(() => []);
  let made = cases.map(() => null);
  try {
    for (let round = 0; round < runs; round++) {
      for (const [i, c] of cases.entries()) {
        const mine = async () => {
          const r = await measure(TRANSCODER, ['extras', src, join(dir, `ours-${i}`), '--extras', JSON.stringify(c.extras)], { env: { RUST_LOG: 'warn' } });
          ours[i].push(r);
          made[i] = JSON.parse(r.stdout);
        };
        const theirs = async () => cli[i].push(await measure('ffmpeg', ['-loglevel', 'error', '-y', ...c.ffmpeg]));
        for (const run of rotated([mine, theirs], round)) await run();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  out(`The ${SECONDS}-s 1080p30 noise source (section 1's). Wall and CPU seconds, median of ${runs} runs each; every run of \`transcoder extras\` alternates with the ffmpeg CLI making the same files from the same input seek (\`-ss\` before \`-i\`), order turned each round. In a job these run once, after the ladder (after \`playable\`). CPU: ${MACHINE}.`);
  out();
  out('| output | transcoder: wall (CPU) | ffmpeg CLI: wall (CPU) | wall ratio | what was made |');
  out('|---|---|---|---|---|');
  const rows = [];
  for (const [i, c] of cases.entries()) {
    const a = medianRun(ours[i]);
    const b = medianRun(cli[i]);
    const m = made[i];
    const what = m.cover
      ? `${m.cover.width}×${m.cover.height} at ${m.cover.time_s} s; ${Object.entries(m.bytes).map(([k, v]) => `${k} ${(v / 1024).toFixed(0)} KiB`).join(', ')}`
      : `${m.preview.width}×${m.preview.height}, ${m.preview.frames} frames; ${Object.entries(m.bytes).map(([k, v]) => `${k} ${(v / 1024).toFixed(0)} KiB`).join(', ')}`;
    rows.push({ name: c.name, ours: a, cli: b, made: m });
    out(`| ${c.name} | ${fmt(a.wall, 2)} s (${fmt(a.cpu, 2)}) | ${fmt(b.wall, 2)} s (${fmt(b.cpu, 2)}) | ${fmt(a.wall / b.wall, 2)} | ${what} |`);
  }
  out();
  data.sections.extras = { seconds: SECONDS, runs, rows };
}

// ---- 11. codecs: H.264, HEVC and AV1 rungs ----------------------------------

/** Bytes of a rung's init and segments. */
const rungBytes = (dir) => {
  const r = readRung(dir);
  return r.initBytes + r.segments.reduce((a, x) => a + x.bytes, 0);
};

/** One top-rung encode of the first `seconds` of `src` with the CLI: its bytes and SSIM against the source. */
function cliTopRung(src, dir, encoder, bitrate, seconds) {
  const file = join(dir, `${encoder.name}-${bitrate}.mp4`);
  const rate = [`-b:v`, String(bitrate), '-maxrate', String(Math.round(bitrate * 1.5)), '-bufsize', String(bitrate * 3)];
  execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-t', String(seconds), '-i', src, '-an', '-c:v', encoder.lib, ...encoder.args, ...rate, '-g', '60', file]);
  const q = spawnSync('ffmpeg', ['-hide_banner', '-i', file, '-t', String(seconds), '-i', src, '-lavfi', '[0:v][1:v]ssim', '-f', 'null', '-'], { encoding: 'utf8' });
  const ssim = Number(q.stderr.match(/SSIM .*All:([0-9.]+)/)?.[1]);
  const bytes = statSync(file).size;
  rmSync(file, { force: true });
  return { bitrate, bytes, ssim };
}

async function codecsSection() {
  begin(11, 'Codecs: the ladder in H.264, HEVC and AV1');
  out();
  const kinds = CONTENT_KINDS;
  const dir = join(WORK, `codecs-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const ladders = [['h264'], ['hevc'], ['av1'], ['h264', 'av1']];
  const results = {};
  try {
    for (const kind of kinds) {
      const src = source(SECONDS, { kind });
      const rows = [];
      for (const codecs of ladders) {
        say(`codecs ${kind}: ${codecs.join('+')}…`);
        const outDir = join(dir, `${kind}-${codecs.join('-')}`);
        const r = await transcode(src, outDir, ['--codecs', codecs.join(',')]);
        const tops = codecs.map((c) => {
          const name = c === 'h264' ? '1080p' : `1080p-${c}`;
          const q = quality(join(outDir, name), src, 1920, 1080);
          return { codec: c, bytes: rungBytes(join(outDir, name)), ladderBytes: rungDirs(outDir).filter((d) => d.endsWith(c === 'h264' ? 'p' : `-${c}`)).reduce((a, d) => a + rungBytes(d), 0), ssim: q.ssim };
        });
        rows.push({ codecs: codecs.join('+'), wall: r.wall, cpu: r.cpu, rssMb: r.rssMb, tops });
        rmSync(outDir, { recursive: true, force: true });
      }
      // Each encoder's bytes at H.264's SSIM: the top rung (1080p, first 20 s) with the CLI and the
      // transcoder's presets, bisecting the bitrate until SSIM is within 0.005 of x264's at the rung's 5 Mb/s.
      const encoders = [
        { name: 'h264', lib: 'libx264', args: ['-preset', 'veryfast'] },
        { name: 'hevc', lib: 'libx265', args: ['-preset', 'ultrafast', '-x265-params', 'log-level=error'] },
        { name: 'av1', lib: 'libsvtav1', args: ['-preset', '10'] },
      ];
      const seconds = Math.min(20, SECONDS);
      say(`codecs ${kind}: bytes at equal SSIM…`);
      const ref = cliTopRung(src, dir, encoders[0], 5_000_000, seconds);
      const equal = [{ codec: 'h264', ...ref, ratio: 1 }];
      for (const enc of encoders.slice(1)) {
        let lo = 500_000;
        let hi = 5_000_000;
        let best = cliTopRung(src, dir, enc, hi, seconds);
        for (let i = 0; i < 5 && best.ssim >= ref.ssim - 0.005; i++) {
          const mid = Math.round((lo + hi) / 2);
          const m = cliTopRung(src, dir, enc, mid, seconds);
          if (m.ssim >= ref.ssim - 0.005) { best = m; hi = mid; } else { lo = mid; }
        }
        equal.push({ codec: enc.name, ...best, ratio: best.bytes / ref.bytes, met: best.ssim >= ref.ssim - 0.005 });
      }
      // The presets against their neighbours (--sweep-presets): each codec's ladder alone at each preset.
      const sweep = [];
      if (SWEEP_PRESETS) {
        for (const [codec, flag, presets] of [['av1', '--av1-preset', ['10', '11', '12', '13']], ['hevc', '--hevc-preset', ['ultrafast', 'superfast']]]) {
          for (const preset of presets) {
            say(`codecs ${kind}: ${codec} preset ${preset}…`);
            const outDir = join(dir, `${kind}-${codec}-${preset}`);
            const r = await transcode(src, outDir, ['--codecs', codec, flag, preset]);
            const q = quality(join(outDir, `1080p-${codec}`), src, 1920, 1080);
            sweep.push({ codec, preset, wall: r.wall, cpu: r.cpu, rssMb: r.rssMb, ssim: q.ssim, bytes: rungBytes(join(outDir, `1080p-${codec}`)) });
            rmSync(outDir, { recursive: true, force: true });
          }
        }
      }
      results[kind] = { rows, equal, sweep };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  out(`The ${SECONDS}-s 1080p30 sources of section 1, the ladder up to 1080p (4 sizes), one release \`transcoder transcode --codecs …\` run per ladder (each codec alone, then H.264 with AV1 as a job with \`"codecs": ["h264", "av1"]\` makes it). Presets: x264 \`veryfast\` (tuned), x265 \`ultrafast\`, SVT-AV1 10; bitrates: H.264's, HEVC 0.7x, AV1 0.6x. SSIM: the 1080p rung's first 20 s against the source. CPU: ${MACHINE}.`);
  for (const kind of kinds) {
    const { rows, equal } = results[kind];
    out();
    out(`**${kind}** (${CONTENT_NOTES[kind]})`);
    out();
    out('| ladder | wall | x real time | CPU-s | peak memory | 1080p rung: SSIM, MB (ratio to H.264) | whole ladder, MB |');
    out('|---|---|---|---|---|---|---|');
    const h = rows[0].tops[0];
    for (const r of rows) {
      const tops = r.tops.map((t) => `${t.codec} ${fmt(t.ssim, 4)}, ${fmt(t.bytes / 1e6, 1)} (${fmt(t.bytes / h.bytes, 2)})`).join('; ');
      const ladderMb = r.tops.map((t) => `${t.codec} ${fmt(t.ladderBytes / 1e6, 1)}`).join('; ');
      out(`| ${r.codecs} | ${fmt(r.wall, 1)} s | ${fmt(SECONDS / r.wall, 2)}x | ${fmt(r.cpu, 1)} | ${fmt(r.rssMb, 0)} MB | ${tops} | ${ladderMb} |`);
    }
    out();
    out(`Bytes at equal quality (the ffmpeg CLI, the same presets, the 1080p rung's first 20 s; the lowest bitrate found, by bisection from 5 Mb/s in 5 steps, whose SSIM is within 0.005 of x264's at 5 Mb/s, ${fmt(equal[0].ssim, 4)}):`);
    out();
    out('| encoder | bitrate | SSIM | bytes | bytes / H.264 |');
    out('|---|---|---|---|---|');
    for (const e of equal) out(`| ${e.codec} | ${fmt(e.bitrate / 1e6, 2)} Mb/s | ${fmt(e.ssim, 4)}${e.met === false ? ' (NOT within 0.005 even at 5 Mb/s)' : ''} | ${fmt(e.bytes / 1e6, 2)} MB | ${fmt(e.ratio, 2)} |`);
    const sweep = results[kind].sweep;
    if (sweep.length > 0) {
      out();
      out(`The presets against their neighbours (\`--sweep-presets\`): each codec's ladder alone, \`--av1-preset\` / \`--hevc-preset\`; the shipped ones are SVT-AV1 10 and x265 \`ultrafast\`; H.264 (above) is the baseline.`);
      out();
      out('| codec, preset | wall | CPU-s | CPU / H.264 ladder | peak memory | 1080p SSIM | 1080p MB |');
      out('|---|---|---|---|---|---|---|');
      for (const x of sweep) out(`| ${x.codec} ${x.preset} | ${fmt(x.wall, 1)} s | ${fmt(x.cpu, 1)} | ${fmt(x.cpu / rows[0].cpu, 2)} | ${fmt(x.rssMb, 0)} MB | ${fmt(x.ssim, 4)} | ${fmt(x.bytes / 1e6, 1)} |`);
    }
  }
  out();
  data.sections.codecs = { seconds: SECONDS, results };
}

// ---- main ------------------------------------------------------------------

out(`# Benchmarks (${data.date.slice(0, 10)}, ${MACHINE})`);
out();
out('Reproduce with `bash bench/run.sh` (about 33 minutes on 2 cores for sections 1-6, 22 of them for section 1 (three configurations, two contents; measured on an Intel Xeon), and about 2 more for section 7, plus about 5 the first time to generate the sources into bench/work/).');
out();
let ladders;
if (only.includes(1) || only.includes(3)) ladders = await throughput();
if (only.includes(2) || only.includes(4)) {
  await withPlatform(async (platform) => {
    if (only.includes(2)) await playableSection(platform);
    if (only.includes(4)) await workersSection(platform);
  });
}
if (only.includes(3)) qualitySection(ladders);
if (only.includes(5)) await workersCostSection();
if (only.includes(6)) await eventLatencySection();
if (only.includes(7)) await imageTransformsSection();
if (only.includes(8)) await signedPlaybackSection();
if (only.includes(9)) await chunkedSection();
if (only.includes(10)) await extrasSection();
if (only.includes(11)) await codecsSection();
mkdirSync(join(BENCH, 'results'), { recursive: true });
const OUT = arg('out', '');
if (OUT) {
  // A report of its own (a smoke run, an experiment): the current report stays as it is.
  writeFileSync(join(BENCH, 'results', `${OUT}.md`), Object.keys(report).sort().flatMap((k) => report[k]).join('\n') + '\n');
  writeFileSync(join(BENCH, 'results', `${OUT}.json`), JSON.stringify(data, null, 2) + '\n');
  say(`wrote bench/results/${OUT}.md and .json`);
} else {
  const measured = Object.fromEntries(Object.entries(report).filter(([n]) => n !== '0'));
  mergeInto(join(BENCH, 'results'), { date: data.date, machine: data.machine, sections: data.sections, reports: measured });
  say(`updated sections ${Object.keys(measured).join(', ')} of bench/results/latest.md and .json`);
}
