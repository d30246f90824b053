// What the Workers cost to ship and to start: the size of each Worker's wasm
// (raw and gzip, as Cloudflare counts it against the script size limit) and
// its cold start, the first request to a freshly started `wrangler dev`.
//
// Cold start is measured on the built Worker (crates/*/build, from
// scripts/build-workers.sh) with wrangler's build step left out, so that the
// figure is workerd loading the module and answering, not cargo:
//   ready  = from spawning `wrangler dev` until the port accepts connections
//   first  = the first GET /health once it does (module evaluation and wasm
//            instantiation land here or in `ready`, depending on workerd)
//   warm   = the median of the next 20 GET /health, for comparison
// With a second checkout (`before`, its Workers built there), both are
// measured in the same session, starts alternating, so load and caches
// favour neither.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ROOT, WORK, median } from './lib.mjs';
import { freePort } from '../devkit/ports.mjs';
import { start } from '../devkit/processes.mjs';

export const WORKERS = [['image-service', 'wrangler-image.toml'], ['video-service', 'wrangler-video.toml']];

export function wasmSizes(root = ROOT) {
  return Object.fromEntries(WORKERS.map(([crate]) => {
    const wasm = readFileSync(join(root, 'crates', crate, 'build', 'index_bg.wasm'));
    return [crate, { raw: wasm.length, gzip: gzipSync(wasm, { level: 9 }).length }];
  }));
}

/** The Worker's wrangler config without its [build] section, its paths made absolute. */
function configWithoutBuild(root, config, tag) {
  const text = readFileSync(join(root, config), 'utf8');
  const withoutBuild = text.replace(/\n\[build\][\s\S]*?(?=\n\[)/, '\n');
  const file = join(WORK, `cold-${tag}-${config}`);
  writeFileSync(file, withoutBuild.replace(/^main = "(.*)"$/m, `main = "${join(root, '$1')}"`));
  return file;
}

const portOpen = (port) => new Promise((resolve) => {
  const s = connect(port, '127.0.0.1');
  s.once('connect', () => { s.destroy(); resolve(true); });
  s.once('error', () => resolve(false));
});

async function timed(url) {
  const t = performance.now();
  const r = await fetch(url);
  await r.arrayBuffer();
  if (!r.ok) throw new Error(`${url} answered ${r.status}`);
  return performance.now() - t;
}

/** One cold start of `crate`: ms to a listening port, ms for the first request, median warm ms. */
async function coldStartOnce(root, tag, crate, config) {
  const port = await freePort();
  const inspector = await freePort();
  const stateDir = join(WORK, `cold-state-${crate}-${Date.now()}`);
  const t0 = performance.now();
  const proc = start(`cold-${crate}`, 'npx', ['wrangler', 'dev', '-c', configWithoutBuild(root, config, tag), '-e', 'dev', '--ip', '127.0.0.1',
    '--port', String(port), '--inspector-port', String(inspector), '--persist-to', stateDir, '--show-interactive-dev-session=false',
    '--log-level', 'warn'], { cwd: ROOT, log: join(WORK, `cold-${crate}.log`) });
  try {
    while (!(await portOpen(port))) {
      if (proc.exited) throw new Error(`wrangler dev for ${crate} exited; see ${proc.log}`);
      if (performance.now() - t0 > 120000) throw new Error(`wrangler dev for ${crate} did not listen within 120 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const ready = performance.now() - t0;
    const first = await timed(`http://127.0.0.1:${port}/health`);
    const warm = [];
    for (let i = 0; i < 20; i++) warm.push(await timed(`http://127.0.0.1:${port}/health`));
    return { ready, first, warm: median(warm) };
  } finally {
    await proc.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/**
 * Cold starts of both Workers, `runs` each, as medians, of each checkout in
 * `roots` ({ tag: directory }), the checkouts alternating within each run.
 */
export async function coldStarts(runs, say = () => {}, roots = { after: ROOT }) {
  const tags = Object.keys(roots);
  const result = Object.fromEntries(tags.map((t) => [t, {}]));
  for (const [crate, config] of WORKERS) {
    const rs = Object.fromEntries(tags.map((t) => [t, []]));
    for (let i = 0; i < runs; i++) {
      for (const tag of i % 2 ? [...tags].reverse() : tags) {
        const r = await coldStartOnce(roots[tag], tag, crate, config);
        rs[tag].push(r);
        say(`cold start ${tag} ${crate} ${i + 1}/${runs}: listening after ${r.ready.toFixed(0)} ms, first request ${r.first.toFixed(1)} ms, warm ${r.warm.toFixed(1)} ms`);
      }
    }
    for (const tag of tags) {
      const xs = rs[tag];
      result[tag][crate] = { ready: median(xs.map((r) => r.ready)), first: median(xs.map((r) => r.first)), warm: median(xs.map((r) => r.warm)), firsts: xs.map((r) => r.first) };
    }
  }
  return result;
}
