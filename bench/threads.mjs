// Thread layouts of the transcoder (issue 16; not part of the test command):
// runs the release transcoder on generated sources with several `Tuning`
// flag sets (x264 threads per rung, decoder threads, frames queued, the
// cores it is allowed), each on the cores it names (`taskset`), and reports
// wall, CPU and peak RSS, medians of alternating runs, so the defaults that
// `Tuning::for_machine` picks per core count are measured, not guessed.
// Threads change x264's rate-control decisions only slightly; quality is
// compared in sections 1 and 3 of bench/run.mjs for the chosen defaults.
//
//   node bench/threads.mjs [--content=noise,motion] [--seconds=20] [--runs=2] [--layouts=a,b] [--report=NAME]
//
// Writes bench/results/threads-<date>.md (+ .json), or NAME.md.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH, TRANSCODER, WORK, cpuInfo, cpuText, fmt, measure, medianRun, rotated, source } from './lib.mjs';

const arg = (name, dflt) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const contents = arg('content', 'noise,motion').split(',');
const seconds = Number(arg('seconds', 20));
const RUNS = Number(arg('runs', 2));

/** name → [cores to run on (taskset list), transcoder flags, what it is]. */
const LAYOUTS = {
  'default-2c': ['0,1', [], 'defaults on 2 cores: x264 threads 2,1,1,1; decoder 1; queue 4'],
  'top1-2c': ['0,1', ['--x264-threads-top', '1'], 'x264 threads 1,1,1,1'],
  'top3-2c': ['0,1', ['--x264-threads-top', '3'], 'x264 threads 3,1,1,1'],
  'all2-2c': ['0,1', ['--x264-threads', '2'], 'x264 threads 2,2,2,2'],
  'dec2-2c': ['0,1', ['--decoder-threads', '2'], 'decoder 2 threads'],
  'queue8-2c': ['0,1', ['--frame-queue', '8'], '8 frames queued per rung'],
  'default-1c': ['0', [], 'defaults on 1 core: x264 threads 1,1,1,1'],
  'top2-1c': ['0', ['--x264-threads-top', '2'], 'the 2-core layout on 1 core: 2,1,1,1'],
};
const chosen = arg('layouts', Object.keys(LAYOUTS).join(',')).split(',');
for (const l of chosen) if (!LAYOUTS[l]) throw new Error(`unknown layout ${l} (known: ${Object.keys(LAYOUTS).join(', ')})`);

const cpu = cpuInfo();
const lines = [];
const out = (l = '') => { lines.push(l); console.log(l); };
const results = {};
for (const kind of contents) {
  const src = source(seconds, { kind });
  const runs = Object.fromEntries(chosen.map((l) => [l, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const l of rotated(chosen, i)) {
      const [cores, flags] = LAYOUTS[l];
      const dir = join(WORK, `threads-${kind}-${l}`);
      rmSync(dir, { recursive: true, force: true });
      const r = await measure('taskset', ['-c', cores, TRANSCODER, 'transcode', src, dir, '--max-rung', '1080', '--max-rungs', '4', ...flags], { env: { RUST_LOG: 'warn' } });
      rmSync(dir, { recursive: true, force: true });
      runs[l].push(r);
      console.log(`threads: ${kind} round ${i + 1}/${RUNS} ${l}: wall ${fmt(r.wall)} s, CPU ${fmt(r.cpu)} s, ${fmt(r.rssMb, 0)} MB`);
    }
  }
  results[kind] = Object.fromEntries(chosen.map((l) => [l, medianRun(runs[l])]));
}

out(`# Transcoder thread layouts (${new Date().toISOString().slice(0, 10)})`);
out();
out(`Machine: ${cpuText(cpu)}. Sources: ${seconds} s 1080p30 (${contents.join(', ')}), 4-rung ladder to 1080p, the transcoder's defaults otherwise (tuned x264 options on). Median of ${RUNS} rotating runs; each layout pinned with taskset to the cores it names.`);
for (const kind of contents) {
  out();
  out(`## ${kind}`);
  out();
  out('| layout | cores | what | wall (s) | CPU (s) | peak RSS (MB) | wall vs default on those cores |');
  out('|---|---|---|---|---|---|---|');
  for (const l of chosen) {
    const [cores, , what] = LAYOUTS[l];
    const base = results[kind][cores === '0' ? 'default-1c' : 'default-2c'];
    const r = results[kind][l];
    out(`| ${l} | ${cores.split(',').length} | ${what} | ${fmt(r.wall)} | ${fmt(r.cpu)} | ${fmt(r.rssMb, 0)} | ${base ? `${fmt((r.wall / base.wall - 1) * 100, 1)}%` : '-'} |`);
  }
}
const name = arg('report', `threads-${new Date().toISOString().slice(0, 10)}`);
writeFileSync(join(BENCH, 'results', `${name}.md`), `${lines.join('\n')}\n`);
writeFileSync(join(BENCH, 'results', `${name}.json`), `${JSON.stringify({ machine: cpu, seconds, runs: RUNS, results }, null, 2)}\n`);
console.log(`threads: wrote bench/results/${name}.md`);
