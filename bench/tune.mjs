// The x264 tuning harness (issue 16; not part of the test command): screens
// candidate x264 settings for the 4-rung ladder against the ffmpeg CLI
// baseline of bench section 1 (x264 veryfast, same rates, GOPs and HLS), on
// several kinds of generated content, and writes one report to
// bench/results/tune-<date>.md (+ .json).
//
// What it owns:
// - Screening, rung by rung in isolation: each rung's picture is scaled once
//   from the source (bicubic, as the CLI ladder does) into a y4m file in
//   bench/work/, then encoded alone by the ffmpeg CLI with the baseline's
//   options plus the candidate's `-x264-params`, under GNU time, so the CPU-s
//   of that process are that rung's x264 work (plus y4m reading and HLS
//   muxing, the same for every candidate). The CLI and the transcoder load
//   the same libx264, so what passes here carries over as it is. x264 threads
//   per rung follow the transcoder's layout (`--threads=2,1,1,1`).
//   x264 output is deterministic for one config and thread count, so quality
//   is read once; only the timings are repeated (`--runs`, medians, the
//   configs' order rotated every round).
// - Per rung and candidate: video bitrate from the packet sizes (audio
//   excluded), SSIM and PSNR against the source scaled to the rung
//   (lib.mjs `quality`, over the whole clip), encode CPU-s, peak RSS, and
//   whether keyframes and segment durations equal the baseline's and whether
//   the bits are identical.
// - The gate, per rung and on every content: SSIM >= baseline - 0.002,
//   |bitrate / baseline - 1| <= 5%, identical keyframes and segments.
// - `--stack=auto` (default): the candidates that pass on every content and
//   save CPU, merged (on a conflicting key the larger saving wins), screened
//   again next to a fresh baseline.
// - The full CLI ladder (section 1's command, one process, threads=auto)
//   for the baseline and the stack (`-x264-params:v:N` per rung): total wall,
//   CPU and peak RSS (medians of alternating runs), with per-rung bitrate,
//   SSIM, PSNR and keyframes, so the stack is also checked in a real ladder.
//
//   node bench/tune.mjs [--content=noise,motion] [--candidates=subme1,part-i8x8,...]
//     [--runs=N] [--seconds=S] [--threads=2,1,1,1] [--stack=auto|none] [--ladder=yes|no]
//     [--extra='label|*:subme=1|480p,360p:me=dia']   (more candidates: rungs by name, * = all)
//     [--report=NAME]   (bench/results/NAME.md and .json; default tune-<date>)
//
// Do not run it while another job holds the CPU: the timings would mean nothing.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BENCH, CONTENTS, TRANSCODER, WORK, cpuInfo, cpuText, ffmpegLadderArgs, fmt, measure, median, medianRun, planFor, qualityAsync, readRung, rotated, source, videoPackets,
} from './lib.mjs';

const args = process.argv.slice(2);
const arg = (name, dflt) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt;
const KINDS = arg('content', 'noise,motion').split(',');
const SECONDS = Number(arg('seconds', 20));
const RUNS = Number(arg('runs', 2));
const THREADS = arg('threads', '2,1,1,1').split(',').map(Number);
const STACK = arg('stack', 'auto');
const LADDER = arg('ladder', 'yes') === 'yes';
const GATE = { ssim: 0.002, bitrate: 0.05 };
const OUT = join(WORK, 'tune');
const say = (m) => console.log(`tune: ${m}`);

const machine = cpuInfo();

/** x264's "using cpu capabilities" line, with extra -x264-params (a tiny encode). */
function x264Caps(params) {
  const run = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'info', '-f', 'lavfi', '-i', 'testsrc2=size=128x72:rate=30:duration=0.2', '-c:v', 'libx264',
    ...(params ? ['-x264-params', params] : []), '-f', 'null', '-'], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`x264 probe (${params}): ${run.stderr.slice(-400)}`);
  return run.stderr.match(/using cpu capabilities: (.+)/)?.[1]?.trim() ?? 'unknown';
}
const CAPS = x264Caps();
const FFMPEG_VERSION = execFileSync('ffmpeg', ['-version']).toString().split('\n')[0];

// ---- candidates: label -> { rung name or '*': x264-params } ------------------

const CANDIDATES = {
  // x264 turns AVX-512 on when the CPU has it; this is everything it detected but AVX-512. asm is bit-exact.
  'asm-avx2': machine.avx512 && CAPS.includes('AVX512') ? { '*': `asm=${CAPS.split(/\s+/).filter((c) => !c.startsWith('AVX512')).join(',')}` } : null,
  subme1: { '*': 'subme=1' },
  'subme1-top': { '1080p': 'subme=1', '720p': 'subme=1' },
  'subme1-below-top': { '720p': 'subme=1', '480p': 'subme=1', '360p': 'subme=1' },
  'rcla5-top': { '1080p': 'rc-lookahead=5' },
  'part-i8x8': { '*': 'partitions=i8x8' },
  'part-none': { '*': 'partitions=none' },
  rcla5: { '*': 'rc-lookahead=5' },
  badapt0: { '*': 'b-adapt=0' },
  'dia-low': { '480p': 'me=dia', '360p': 'me=dia' },
  'dia-720-low': { '720p': 'me=dia', '480p': 'me=dia', '360p': 'me=dia' },
  'mbtree0-low': { '480p': 'mbtree=0', '360p': 'mbtree=0' },
  chromame0: { '*': 'chroma-me=0' },
  weightp0: { '*': 'weightp=0' },
};
const DEFAULT_CANDIDATES = ['asm-avx2', 'subme1', 'part-i8x8', 'part-none', 'rcla5', 'badapt0', 'dia-low'];

function parseExtra(spec) {
  const [label, ...parts] = spec.split('|');
  const map = {};
  for (const p of parts) {
    const i = p.indexOf(':');
    for (const rung of p.slice(0, i).split(',')) map[rung] = p.slice(i + 1);
  }
  return [label, map];
}
const chosen = arg('candidates', DEFAULT_CANDIDATES.join(',')).split(',').filter(Boolean);
for (const c of chosen) if (!(c in CANDIDATES)) throw new Error(`unknown candidate ${c} (known: ${Object.keys(CANDIDATES).join(', ')})`);
const candidates = chosen.filter((c) => CANDIDATES[c]).map((c) => [c, CANDIDATES[c]]);
for (const a of args.filter((x) => x.startsWith('--extra='))) candidates.push(parseExtra(a.slice(8)));
const skipped = chosen.filter((c) => !CANDIDATES[c]);

/** A candidate's x264-params for a rung, or '' (the rung is encoded as the baseline's). */
const paramsFor = (cand, rung) => [cand['*'], cand[rung.name]].filter(Boolean).join(':');

// ---- the plan and the per-rung inputs ----------------------------------------

function fallbackPlan() {
  const latest = join(BENCH, 'results', 'latest.json');
  // Section 1 keeps a plan per content (before: one plan); every content is 1080p30.
  const throughput = existsSync(latest) ? JSON.parse(readFileSync(latest, 'utf8')).sections?.throughput : undefined;
  return throughput?.plan ?? Object.values(throughput ?? {}).find((t) => t?.plan)?.plan;
}

/** The rung's picture, scaled from the source as the CLI ladder does, as y4m (made once). */
function rungInput(kind, src, rung) {
  const file = join(WORK, `tune-${kind}-${SECONDS}s-${rung.width}x${rung.height}.y4m`);
  if (!existsSync(file)) {
    say(`scaling the ${kind} source to ${rung.width}x${rung.height} (y4m, once)…`);
    execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-i', src, '-an', '-vf', `scale=${rung.width}:${rung.height}:flags=bicubic`, '-pix_fmt', 'yuv420p', '-f', 'yuv4mpegpipe', `${file}.tmp`]);
    renameSync(`${file}.tmp`, file);
  }
  return file;
}

/** The baseline's options for one rung (section 1's, without audio), plus threads and candidate params. */
function rungArgs(input, plan, rung, threads, params, outDir) {
  const g = String(plan.gop_frames);
  return ['-loglevel', 'error', '-y', '-f', 'yuv4mpegpipe', '-i', input,
    '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high', '-pix_fmt', 'yuv420p', '-g', g, '-keyint_min', g, '-sc_threshold', '0', '-forced-idr', '1',
    '-b:v', String(rung.bitrate), '-maxrate', String(rung.max_bitrate), '-bufsize', String(rung.buffer_size), '-threads', String(threads),
    ...(params ? ['-x264-params', params] : []),
    '-f', 'hls', '-hls_time', '4', '-hls_playlist_type', 'vod', '-hls_segment_type', 'fmp4', '-hls_flags', 'independent_segments', join(outDir, 'index.m3u8')];
}

/** What is read back from a rung on disk: bitrate, keyframes, segments, a hash of the media bytes. */
function readBack(dir, fps) {
  const v = videoPackets(dir, fps);
  const rung = readRung(dir);
  const hash = createHash('sha256');
  for (const s of rung.segments) hash.update(readFileSync(join(dir, s.file)));
  return { bitrate: v.bitrate, frames: v.frames, keyframes: v.keyframes.join(','), segments: rung.segments.map((s) => s.duration.toFixed(3)).join(','), hash: hash.digest('hex').slice(0, 16) };
}

/** Runs async jobs `n` at a time. */
async function pool(jobs, n) {
  const results = new Array(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  }));
  return results;
}

// ---- screening in isolation --------------------------------------------------

/**
 * Encodes `configs` ([label, candidate] with the baseline as ['base', {}]) rung by rung,
 * RUNS rounds; returns label -> rung name -> figures.
 */
async function screen(kind, src, plan, configs, known = {}) {
  const fps = plan.frame_rate.num / plan.frame_rate.den;
  const inputs = plan.rungs.map((r) => rungInput(kind, src, r));
  const timings = {};
  for (let round = 0; round < RUNS; round++) {
    for (const [label, cand] of rotated(configs, round)) {
      for (const [i, rung] of plan.rungs.entries()) {
        const params = paramsFor(cand, rung);
        if (label !== 'base' && !params) continue; // the same encode as the baseline's
        const dir = join(OUT, kind, label, rung.name);
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        const r = await measure('ffmpeg', rungArgs(inputs[i], plan, rung, THREADS[i] ?? 1, params, dir));
        ((timings[label] ??= {})[rung.name] ??= []).push(r);
        say(`${kind} round ${round + 1}/${RUNS} ${label} ${rung.name}: CPU ${fmt(r.cpu)} s, wall ${fmt(r.wall)} s`);
      }
    }
  }
  // Quality and read-back once (deterministic output), two at a time: nothing is timed now.
  const figures = {};
  const jobs = [];
  for (const [label] of configs) {
    for (const rung of plan.rungs) {
      const runs = timings[label]?.[rung.name];
      if (!runs) continue;
      const dir = join(OUT, kind, label, rung.name);
      const f = { params: paramsFor(configs.find((c) => c[0] === label)[1], rung), ...medianRun(runs), ...readBack(dir, fps) };
      (figures[label] ??= {})[rung.name] = f;
      const seen = known[label]?.[rung.name];
      if (seen && seen.hash === f.hash) { Object.assign(f, { ssim: seen.ssim, psnr: seen.psnr }); continue; } // the same bits
      jobs.push(async () => Object.assign(f, await qualityAsync(dir, src, rung.width, rung.height, SECONDS)));
    }
  }
  say(`${kind}: SSIM/PSNR of ${jobs.length} encodes…`);
  await pool(jobs, 2);
  return figures;
}

/** A candidate's figures against the baseline's on one content: per rung, and the gate. */
function compare(plan, base, cand) {
  const rows = plan.rungs.map((rung) => {
    const b = base[rung.name];
    const c = cand?.[rung.name] ?? { ...b, params: '', same: true };
    return {
      rung: rung.name, params: c.params, same: !!c.same, c, b,
      dSsim: c.ssim - b.ssim, dPsnr: c.psnr - b.psnr, dBitrate: c.bitrate / b.bitrate - 1, dCpu: c.cpu / b.cpu - 1,
      keyframes: c.keyframes === b.keyframes && c.segments === b.segments, identical: c.hash === b.hash,
    };
  });
  const baseCpu = rows.reduce((a, r) => a + r.b.cpu, 0);
  const candCpu = rows.reduce((a, r) => a + r.c.cpu, 0);
  const minDSsim = Math.min(...rows.map((r) => r.dSsim));
  const maxDBitrate = Math.max(...rows.map((r) => Math.abs(r.dBitrate)));
  const keyframes = rows.every((r) => r.keyframes);
  return { rows, baseCpu, candCpu, saved: 1 - candCpu / baseCpu, minDSsim, maxDBitrate, keyframes, identical: rows.every((r) => r.identical), pass: minDSsim >= -GATE.ssim && maxDBitrate <= GATE.bitrate && keyframes };
}

/** The candidates that pass everywhere and save CPU, merged; a key set by an earlier (larger-saving) candidate is kept. */
function stackOf(passing) {
  const owner = {};
  const merged = {};
  for (const [label, cand] of passing) {
    for (const [rung, params] of Object.entries(cand)) {
      for (const kv of params.split(':')) {
        const [k] = kv.split('=');
        if ((owner[k] ??= label) !== label) continue;
        (merged[rung] ??= []).push(kv);
      }
    }
  }
  return Object.fromEntries(Object.entries(merged).map(([rung, kvs]) => [rung, kvs.join(':')]));
}

// ---- the full CLI ladder -----------------------------------------------------

async function ladder(kind, src, plan, configs) {
  const fps = plan.frame_rate.num / plan.frame_rate.den;
  const runs = {};
  for (let round = 0; round < RUNS; round++) {
    for (const [label, cand] of rotated(configs, round)) {
      const dir = join(OUT, kind, `ladder-${label}`);
      rmSync(dir, { recursive: true, force: true });
      const r = await measure('ffmpeg', ffmpegLadderArgs(src, plan, dir, { x264Params: plan.rungs.map((rung) => paramsFor(cand, rung)) }));
      (runs[label] ??= []).push(r);
      say(`${kind} ladder round ${round + 1}/${RUNS} ${label}: wall ${fmt(r.wall)} s, CPU ${fmt(r.cpu)} s, peak ${fmt(r.rssMb, 0)} MB`);
    }
  }
  const out = {};
  const jobs = [];
  for (const [label] of configs) {
    const rs = runs[label];
    const rungs = {};
    for (const [i, rung] of plan.rungs.entries()) {
      const dir = join(OUT, kind, `ladder-${label}`, String(i));
      const f = { ...readBack(dir, fps) };
      rungs[rung.name] = f;
      jobs.push(async () => Object.assign(f, await qualityAsync(dir, src, rung.width, rung.height, SECONDS)));
    }
    out[label] = { ...medianRun(rs), rungs };
  }
  await pool(jobs, 2);
  return out;
}

// ---- the report --------------------------------------------------------------

let lines = [];
const out = (l = '') => { lines.push(l); };
const pct = (x, d = 1) => `${x >= 0 ? '+' : ''}${fmt(x * 100, d)}%`;
const sgn = (x, d = 4) => `${x >= 0 ? '+' : ''}${fmt(x, d)}`;
const paramText = (cand) => Object.entries(cand).map(([r, p]) => `${r === '*' ? 'all' : r}: \`${p}\``).join('; ');

function perRungTable(plan, label, cmp) {
  out(`| rung | x264-params | bitrate Mb/s (Δ) | SSIM (Δ) | PSNR dB (Δ) | CPU-s (Δ) | wall s | RSS MB | keyframes+segments equal | bits identical |`);
  out('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of cmp.rows) {
    if (label === 'base') {
      out(`| ${r.rung} | (veryfast) | ${fmt(r.b.bitrate / 1e6, 3)} | ${fmt(r.b.ssim, 4)} | ${fmt(r.b.psnr, 2)} | ${fmt(r.b.cpu, 2)} (${r.b.cpus.map((x) => fmt(x, 1)).join(', ')}) | ${fmt(r.b.wall, 1)} | ${fmt(r.b.rssMb, 0)} | - | - |`);
    } else if (r.same) {
      out(`| ${r.rung} | (as base) | = | = | = | = | | | yes | yes |`);
    } else {
      out(`| ${r.rung} | \`${r.params}\` | ${fmt(r.c.bitrate / 1e6, 3)} (${pct(r.dBitrate)}) | ${fmt(r.c.ssim, 4)} (${sgn(r.dSsim)}) | ${fmt(r.c.psnr, 2)} (${sgn(r.dPsnr, 2)}) | ${fmt(r.c.cpu, 2)} (${pct(r.dCpu)}) | ${fmt(r.c.wall, 1)} | ${fmt(r.c.rssMb, 0)} | ${r.keyframes ? 'yes' : 'NO'} | ${r.identical ? 'yes' : 'no'} |`);
    }
  }
  out();
}

const S = { date: new Date().toISOString(), contents: {}, phase1: {}, cmp1: null, stack: null, phase2: null, cmp2: null, ladders: {} };

async function main() {
  say(`${machine.model}, ${machine.cores} cores; x264 caps: ${CAPS}`);
  const { contents } = S;
  for (const kind of KINDS) {
    if (!CONTENTS[kind]) throw new Error(`unknown content ${kind}`);
    const src = source(SECONDS, { kind });
    const plan = planFor(src, { fallback: fallbackPlan() });
    contents[kind] = { src, plan };
  }
  // Phase 1: baseline and every candidate, content by content.
  const { phase1 } = S;
  for (const kind of KINDS) {
    const { src, plan } = contents[kind];
    phase1[kind] = await screen(kind, src, plan, [['base', {}], ...candidates]);
  }
  S.cmp1 = Object.fromEntries(candidates.map(([label]) => [label, Object.fromEntries(KINDS.map((k) => [k, compare(contents[k].plan, phase1[k].base, phase1[k][label])]))]));
  // Phase 2: the stack of what passed, next to a fresh baseline.
  const { cmp1 } = S;
  writeReport(false);
  if (STACK === 'auto') {
    const passing = candidates
      .filter(([label]) => KINDS.every((k) => cmp1[label][k].pass && cmp1[label][k].saved > 0.005))
      .sort((a, b) => median(KINDS.map((k) => cmp1[b[0]][k].saved)) - median(KINDS.map((k) => cmp1[a[0]][k].saved)));
    if (passing.length > 1) {
      S.stack = { label: 'stack', from: passing.map(([l]) => l), cand: stackOf(passing) };
      say(`stack of ${S.stack.from.join(', ')}: ${paramText(S.stack.cand)}`);
      S.phase2 = {};
      for (const kind of KINDS) {
        const { src, plan } = contents[kind];
        S.phase2[kind] = await screen(kind, src, plan, [['base', {}], ['stack', S.stack.cand]], phase1[kind]);
      }
      S.cmp2 = Object.fromEntries(KINDS.map((k) => [k, compare(contents[k].plan, S.phase2[k].base, S.phase2[k].stack)]));
      writeReport(false);
    } else if (passing.length === 1) {
      S.stack = { label: passing[0][0], from: [passing[0][0]], cand: passing[0][1] };
    }
  }
  // The full CLI ladder: the baseline (section 1's command) and the stack.
  if (LADDER) {
    for (const kind of KINDS) {
      const { src, plan } = contents[kind];
      S.ladders[kind] = await ladder(kind, src, plan, [['base', {}], ...(S.stack ? [[S.stack.label, S.stack.cand]] : [])]);
      writeReport(false);
    }
  }
  writeReport(true);
}

/** Writes bench/results/tune-<date>.md and .json with what has been measured so far. */
function writeReport(final) {
  lines = [];
  const { date, contents, phase1, cmp1, stack, phase2, cmp2, ladders } = S;

  // ---- write it out
  const command = `node bench/tune.mjs ${args.join(' ')}`.trim();
  out(`# x264 tuning screen (issue 16), ${date.slice(0, 16).replace('T', ' ')} UTC${final ? '' : ' (PARTIAL: still running)'}`);
  out();
  out(`Command: \`${command}\` (after \`source scripts/env.sh\`).`);
  out();
  out(`Machine: ${cpuText(machine)}. ${FFMPEG_VERSION}; x264 "using cpu capabilities: ${CAPS}".`
    + (candidates.some(([l]) => l === 'asm-avx2') ? ` asm-avx2 gives "${x264Caps(CANDIDATES['asm-avx2']['*'])}".` : '')
    + (skipped.length ? ` Skipped (not applicable here): ${skipped.join(', ')}.` : ''));
  out();
  const plan0 = contents[KINDS[0]].plan;
  out(`Contents (${SECONDS} s, 1080p30, made with lavfi and encoded as section 1's source, x264 veryfast 8 Mb/s): ${KINDS.map((k) => `**${k}** \`${CONTENTS[k](SECONDS)}\``).join('; ')}.`);
  out();
  out(`Ladder: ${plan0.rungs.map((r) => `${r.name} ${r.width}x${r.height}@${fmt(r.bitrate / 1e6, 2)}M`).join(', ')}; ${plan0.gop_frames}-frame closed GOPs, VBV (maxrate 1.5x, bufsize 3x)${existsSync(TRANSCODER) ? '' : ' (plan recorded in bench/results/latest.json: no release transcoder here)'}.`);
  out();
  out(`Method: each rung is scaled once from the source (bicubic, as the CLI ladder does) to y4m, then encoded alone by the ffmpeg CLI with section 1's options (x264 veryfast, High, same rates, VBV, GOPs, fMP4 HLS 4 s, no audio) plus the candidate's \`-x264-params\`, with x264 threads per rung ${THREADS.join('/')} (the transcoder's layout). CPU-s = user+sys of that process (GNU time), median of ${RUNS} rounds with the order rotated; SSIM (All) and PSNR (average) over the whole clip against the source scaled to the rung; bitrate from the video packets. Δ are against the baseline encoded the same way in the same session. Gate, per rung and on every content: ΔSSIM >= -${GATE.ssim}, |Δbitrate| <= ${GATE.bitrate * 100}%, keyframes and segment durations identical. Rungs a candidate does not touch are the baseline's encode.`);
  out();
  out('## Summary');
  out();
  out(`CPU saved = 1 - (sum of the candidate's per-rung CPU-s) / (the baseline's), all four rungs. min ΔSSIM = the worst rung; max |Δbitrate| = the worst rung.`);
  out();
  out(`| candidate | x264-params | ${KINDS.map((k) => `${k}: CPU saved | ${k}: min ΔSSIM | ${k}: max abs Δbitrate | ${k}: keyframes equal`).join(' | ')} | passes on all |`);
  out(`|---|---|${KINDS.map(() => '---|---|---|---|').join('')}---|`);
  const summaryRow = (label, cand, cmpByKind) => out(`| ${label} | ${paramText(cand)} | ${KINDS.map((k) => {
    const c = cmpByKind[k];
    return `${pct(c.saved)} | ${sgn(c.minDSsim)} | ${fmt(c.maxDBitrate * 100, 1)}% | ${c.keyframes ? 'yes' : 'NO'}${c.identical ? ' (bits identical)' : ''}`;
  }).join(' | ')} | ${KINDS.every((k) => cmpByKind[k].pass) ? '**yes**' : 'no'} |`);
  for (const [label, cand] of candidates) summaryRow(label, cand, cmp1[label]);
  if (cmp2) summaryRow(`**stack** (${stack.from.join(' + ')}; vs a fresh baseline)`, stack.cand, cmp2);
  out();
  for (const kind of KINDS) {
    const plan = contents[kind].plan;
    out(`## Per rung: ${kind}`);
    out();
    out('**base** (x264 veryfast, the CLI baseline\'s settings; CPU-s of every round in brackets)');
    out();
    perRungTable(plan, 'base', compare(plan, phase1[kind].base, phase1[kind].base));
    for (const [label] of candidates) {
      const c = cmp1[label][kind];
      out(`**${label}**: CPU ${fmt(c.candCpu, 1)} vs ${fmt(c.baseCpu, 1)} s (${pct(-c.saved)}); gate ${c.pass ? 'passed' : 'FAILED'}`);
      out();
      perRungTable(plan, label, c);
    }
    if (cmp2) {
      out(`**stack**, phase 2 (fresh baseline: ${compare(plan, phase2[kind].base, phase2[kind].base).rows.map((r) => `${r.rung} ${fmt(r.b.cpu, 2)} s`).join(', ')}): CPU ${fmt(cmp2[kind].candCpu, 1)} vs ${fmt(cmp2[kind].baseCpu, 1)} s (${pct(-cmp2[kind].saved)}); gate ${cmp2[kind].pass ? 'passed' : 'FAILED'}`);
      out();
      perRungTable(plan, 'stack', cmp2[kind]);
    }
  }
  if (LADDER && Object.keys(ladders).length) {
    out('## The full CLI ladder (section 1\'s command, one ffmpeg process, x264 threads=auto)');
    out();
    out(`Decode once, split, bicubic scale from the source, 4 x libx264, AAC, fMP4 HLS; the candidate as \`-x264-params:v:N\` per rung. Median of ${RUNS} alternating runs (all runs in brackets). Per rung: video bitrate, SSIM, PSNR; Δ against the baseline ladder.`);
    out();
    for (const kind of KINDS.filter((k) => ladders[k])) {
      const plan = contents[kind].plan;
      const L = ladders[kind];
      out(`**${kind}**`);
      out();
      out(`| config | wall s | CPU s | peak RSS MB | ${plan.rungs.map((r) => `${r.name} Mb/s, SSIM, PSNR`).join(' | ')} | keyframes equal to base |`);
      out(`|---|---|---|---|${plan.rungs.map(() => '---|').join('')}---|`);
      for (const [label, l] of Object.entries(L)) {
        const b = L.base;
        const cells = plan.rungs.map((r) => {
          const x = l.rungs[r.name];
          const y = b.rungs[r.name];
          return label === 'base' ? `${fmt(x.bitrate / 1e6, 3)}, ${fmt(x.ssim, 4)}, ${fmt(x.psnr, 2)}` : `${fmt(x.bitrate / 1e6, 3)} (${pct(x.bitrate / y.bitrate - 1)}), ${fmt(x.ssim, 4)} (${sgn(x.ssim - y.ssim)}), ${fmt(x.psnr, 2)} (${sgn(x.psnr - y.psnr, 2)})`;
        });
        const kf = plan.rungs.every((r) => l.rungs[r.name].keyframes === b.rungs[r.name].keyframes && l.rungs[r.name].segments === b.rungs[r.name].segments);
        const aligned = plan.rungs.every((r) => l.rungs[r.name].keyframes === l.rungs[plan.rungs[0].name].keyframes);
        out(`| ${label} | ${fmt(l.wall)} (${l.walls.map((x) => fmt(x)).join(', ')}) | ${fmt(l.cpu)} (${l.cpus.map((x) => fmt(x)).join(', ')})${label === 'base' ? '' : ` ${pct(l.cpu / b.cpu - 1)}`} | ${fmt(l.rssMb, 0)} | ${cells.join(' | ')} | ${label === 'base' ? `(aligned across rungs: ${aligned ? 'yes' : 'NO'})` : kf ? 'yes' : 'NO'} |`);
      }
      out();
    }
  }
  const name = arg('report', `tune-${date.slice(0, 10)}`);
  mkdirSync(join(BENCH, 'results'), { recursive: true });
  writeFileSync(join(BENCH, 'results', `${name}.md`), lines.join('\n') + '\n');
  writeFileSync(join(BENCH, 'results', `${name}.json`), JSON.stringify({ date, command, machine, caps: CAPS, seconds: SECONDS, runs: RUNS, threads: THREADS, candidates: Object.fromEntries(candidates), phase1, stack, phase2, ladders }, null, 2) + '\n');
  if (final) console.log(lines.join('\n'));
  say(`wrote bench/results/${name}.md and .json${final ? '' : ' (partial)'}`);
}

await main();
