// bench/report.mjs: a run replaces the sections it measured in the one
// current report and keeps the others with their own date and machine.
// Run with `node --test bench/report.test.mjs` (no build, no platform).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeInto } from './report.mjs';

test('a run of one section replaces that section and keeps the others', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-report-'));
  try {
    mergeInto(dir, {
      date: '2026-11-30T10:00:00.000Z', machine: { text: 'Intel Xeon, 2 cores' },
      sections: { throughput: { speedup: 1.41 }, imageTransforms: { n: 84 } },
      reports: { 1: ['## 1. Transcode throughput', '', 'ratio **1.41x**'], 7: ['## 7. Image transforms', '', 'p50 220.8 ms'] },
    });
    mergeInto(dir, {
      date: '2026-12-06T10:00:00.000Z', machine: 'AMD EPYC, 2 cores',
      sections: { imageTransforms: { n: 90 } },
      reports: { 7: ['## 7. Image transforms', '', 'p50 200.0 ms'] },
    });
    const md = readFileSync(join(dir, 'latest.md'), 'utf8');
    assert.match(md, /## 1\. Transcode throughput\n\nMeasured 2026-11-30 on Intel Xeon, 2 cores\.\n\nratio \*\*1\.41x\*\*/);
    assert.match(md, /## 7\. Image transforms\n\nMeasured 2026-12-06 on AMD EPYC, 2 cores\.\n\np50 200\.0 ms/);
    assert.doesNotMatch(md, /220\.8/);
    assert.ok(md.indexOf('## 1.') < md.indexOf('## 7.'), 'sections in number order');
    const json = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8'));
    assert.deepEqual(json.sections, { throughput: { speedup: 1.41 }, imageTransforms: { n: 90 } });
    assert.equal(json.updated, '2026-12-06T10:00:00.000Z');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the committed report has every section once, each with its date and machine', () => {
  const md = readFileSync(new URL('./results/latest.md', import.meta.url), 'utf8');
  const sections = [...md.matchAll(/^## (\d)\. .*\n\nMeasured (\d{4}-\d\d-\d\d) on (.+)\.$/gm)].map((m) => Number(m[1]));
  assert.deepEqual(sections, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
});
