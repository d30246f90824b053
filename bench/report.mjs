// The one current benchmark report, bench/results/latest.md (+ latest.json):
// one section per part of bench/run.mjs, each with the date and machine it
// was measured on. A run replaces the sections it measured and keeps the
// others, so `--only=7` updates section 7 of the same report instead of
// writing a report of its own, and the docs quote one file.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The machine's description, from a report's `machine` (an object with `text`, or older: a string). */
export const machineText = (machine) => (typeof machine === 'string' ? machine : machine?.text ?? 'unknown machine');

/** The report as Markdown: a header, then every section in number order with when and where it was measured. */
export function render(current) {
  const lines = [
    '# Benchmarks',
    '',
    'The current figures, one section per part of `bench/run.mjs`. Each section says when and on which machine it was measured: '
      + '`bash bench/run.sh --only=N` measures section N again and replaces it here, and the others stay as they were. '
      + 'Compare figures only within a section: every figure there is next to a baseline measured in the same session.',
    '',
    'Reproduce with `bash bench/run.sh` (about 33 minutes on 2 cores for sections 1-6, 22 of them for section 1 (three configurations, two contents; '
      + 'measured on an Intel Xeon), and about 2 more for section 7, plus about 5 the first time to generate the sources into bench/work/).',
  ];
  for (const n of Object.keys(current.reports).map(Number).sort((a, b) => a - b)) {
    const { date, machine, lines: body } = current.reports[n];
    const [heading, ...rest] = body;
    lines.push('', heading, '', `Measured ${date.slice(0, 10)} on ${machineText(machine)}.`, ...rest);
  }
  return lines.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n';
}

/**
 * Merges a run into the current report in `dir` and writes it: `run.reports`
 * maps a section number to its lines (the first is its `## N. Title`
 * heading), `run.sections` its data by name; `run.date` and `run.machine`
 * say when and where. Returns the file names written.
 */
export function mergeInto(dir, run) {
  const file = join(dir, 'latest.json');
  const current = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  const reports = { ...(current.reports ?? {}) };
  for (const [n, lines] of Object.entries(run.reports)) reports[n] = { date: run.date, machine: run.machine, lines };
  const merged = { updated: run.date, sections: { ...(current.sections ?? {}), ...run.sections }, reports };
  writeFileSync(file, JSON.stringify(merged, null, 2) + '\n');
  writeFileSync(join(dir, 'latest.md'), render(merged));
  return ['latest.md', 'latest.json'];
}
