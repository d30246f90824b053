// Fails when the modules of any crate of the workspace import each other in
// a cycle (a -> b -> ... -> a), and prints each cycle with the lines that
// close it. Run by the lint part of scripts/test.sh:
//
//   node scripts/check-import-cycles.mjs [crates/<name> ...]
//
// Why a script and not cargo-modules (`cargo modules dependencies --acyclic`,
// the maintained tool, which reads crates with rust-analyzer), measured on
// this 2-core machine (Intel Xeon, 2026-12-06) with cargo-modules 0.27.0
// (0.28 needs rustc 1.98; this machine has 1.95):
//   - installing it compiles rust-analyzer's crates: 1,020 CPU-seconds
//     (35 min of wall clock here beside other builds; at least 8.5 min on
//     two idle cores), added to scripts/bootstrap.sh on every fresh machine
//     and CI run, where a fresh clone reaches a running platform in about
//     20 minutes;
//   - each run loads a crate in 12-29 s and 0.7-1.1 GB, per crate;
//   - `--acyclic` judges items, not modules: with functions, types, traits
//     and "owns" edges filtered out it still fails every crate on an enum
//     and its own method (`media_core::error::ErrorCode` <->
//     `ErrorCode::status`), so it cannot say "no module cycles".
// This script answers that question for the whole workspace in under a second.
//
// What it reads: the module tree from `mod x;` (files) and `mod x { }`
// (inline, e.g. tests), from each crate's src/lib.rs and src/main.rs; and
// in each module every path to another module of the same crate: `use`
// trees (groups expanded), and paths written in place (`crate::a::b`,
// `super::x`, `self::x`, or a child module's name). Comments and string
// literals are skipped. An edge a -> b means a names an item of b (or b).
// A module using its ancestors' items (`tests` and `super::*`, handlers and
// the root's helpers) is not an edge: a child is part of its parent, as
// Rust's privacy has it. A parent using its child is an edge, and so is
// every use between two modules of which neither contains the other.

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Source text with comments, strings and char literals blanked (lines kept). */
export function strip(src) {
  let out = '';
  let i = 0;
  const n = src.length;
  const blank = (s) => s.replace(/[^\n]/g, ' ');
  while (i < n) {
    const c = src[i];
    const d = src[i + 1];
    if (c === '/' && d === '/') {
      const end = src.indexOf('\n', i);
      const j = end < 0 ? n : end;
      out += blank(src.slice(i, j));
      i = j;
    } else if (c === '/' && d === '*') {
      let depth = 1;
      let j = i + 2;
      while (j < n && depth > 0) {
        if (src[j] === '/' && src[j + 1] === '*') (depth++, (j += 2));
        else if (src[j] === '*' && src[j + 1] === '/') (depth--, (j += 2));
        else j++;
      }
      out += blank(src.slice(i, j));
      i = j;
    } else if ((c === 'r' || (c === 'b' && d === 'r')) && /^b?r#*"/.test(src.slice(i, i + 40)) && !/\w/.test(src[i - 1] ?? '')) {
      const m = /^b?r(#*)"/.exec(src.slice(i));
      const close = '"' + m[1];
      const end = src.indexOf(close, i + m[0].length);
      const j = end < 0 ? n : end + close.length;
      out += blank(src.slice(i, j));
      i = j;
    } else if (c === '"') {
      let j = i + 1;
      while (j < n && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      out += blank(src.slice(i, j + 1));
      i = j + 1;
    } else if (c === "'") {
      const m = /^'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'/u.exec(src.slice(i, i + 14));
      if (m) {
        out += blank(m[0]);
        i += m[0].length;
      } else {
        out += c;
        i++;
      }
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** The full paths a `use` tree names: `a::{b, c::{d, self}}` -> a::b, a::c::d, a::c. */
export function expandUse(tree) {
  tree = tree.replace(/\s+as\s+\w+/g, '').replace(/\s+/g, '');
  const out = [];
  const walk = (prefix, t) => {
    const brace = t.indexOf('{');
    if (brace < 0) {
      const name = t.replace(/::\*$/, '');
      const path = name === 'self' ? prefix : prefix ? `${prefix}::${name}` : name;
      if (path) out.push(path.replace(/::self$/, ''));
      return;
    }
    const head = t.slice(0, brace).replace(/::$/, '');
    const inner = t.slice(brace + 1, t.lastIndexOf('}'));
    const base = prefix && head ? `${prefix}::${head}` : prefix || head;
    let depth = 0;
    let start = 0;
    for (let k = 0; k <= inner.length; k++) {
      const ch = inner[k];
      if (ch === '{') depth++;
      else if (ch === '}') depth--;
      else if ((ch === ',' || k === inner.length) && depth === 0) {
        const part = inner.slice(start, k);
        if (part) walk(base, part);
        start = k + 1;
      }
    }
  };
  walk('', tree);
  return out;
}

/** One crate root's modules: name (`crate::a::b`) -> { file, children:Set, refs:[{path, line, file}] }. */
function readCrate(rootFile) {
  const modules = new Map();
  const lineOf = (text, index) => text.slice(0, index).split('\n').length;

  const readFile = (file, modPath, isDirOwner) => {
    const text = strip(readFileSync(file, 'utf8'));
    const dir = isDirOwner ? dirname(file) : join(dirname(file), file.replace(/^.*\//, '').replace(/\.rs$/, ''));
    // Scopes: inline modules open at `mod x {` and close at their brace.
    const stack = [{ path: modPath, depth: 0 }];
    const ensure = (p) => {
      if (!modules.has(p)) modules.set(p, { file, children: new Set(), refs: [] });
      return modules.get(p);
    };
    ensure(modPath);
    let depth = 0;
    const token = /\bmod\s+(r#)?(\w+)\s*([;{])|\buse\s+([^;]+);|(\$?\b(?:crate|super|self)(?:\s*::\s*\w+)+)|\b(\w+)\s*::\s*\w+|[{}]/g;
    let m;
    while ((m = token.exec(text))) {
      const here = stack[stack.length - 1].path;
      if (m[0] === '{') {
        depth++;
      } else if (m[0] === '}') {
        if (stack.length > 1 && stack[stack.length - 1].depth === depth) stack.pop();
        depth--;
      } else if (m[2]) {
        const child = `${here}::${m[2]}`;
        ensure(here).children.add(m[2]);
        if (m[3] === '{') {
          depth++;
          stack.push({ path: child, depth });
          ensure(child).file = file;
        } else {
          // A file module: <dir>/<inline path>/<name>.rs or .../<name>/mod.rs.
          const inline = stack.slice(1).map((s) => s.path.split('::').pop());
          const base = join(dir, ...inline);
          const flat = join(base, `${m[2]}.rs`);
          const nested = join(base, m[2], 'mod.rs');
          if (existsSync(flat)) readFile(flat, child, false);
          else if (existsSync(nested)) readFile(nested, child, true);
        }
      } else if (m[4] !== undefined) {
        for (const p of expandUse(m[4])) ensure(here).refs.push({ path: p, line: lineOf(text, m.index), file, use: true });
      } else if (m[5]) {
        if (!m[5].startsWith('$')) ensure(here).refs.push({ path: m[5].replace(/\s+/g, ''), line: lineOf(text, m.index), file });
      } else if (m[6]) {
        ensure(here).refs.push({ path: m[0].replace(/\s+/g, ''), line: lineOf(text, m.index), file, bare: true });
      }
    }
  };
  readFile(rootFile, 'crate', true);
  return modules;
}

/** The module a path from module `from` lands in, or null when it leaves the crate. */
function resolve(modules, from, path, bare) {
  const parts = path.split('::');
  let cur;
  if (parts[0] === 'crate') (cur = 'crate'), parts.shift();
  else if (parts[0] === 'self') (cur = from), parts.shift();
  else if (parts[0] === 'super') {
    cur = from;
    while (parts[0] === 'super') {
      cur = cur.includes('::') ? cur.slice(0, cur.lastIndexOf('::')) : cur;
      parts.shift();
    }
  } else {
    // A bare path starts at a child module of `from` (2018 uniform paths), or is external.
    if (!modules.get(from)?.children.has(parts[0])) return null;
    cur = from;
  }
  if (bare && parts.length === 0) return null;
  while (parts.length && modules.get(cur)?.children.has(parts[0])) cur = `${cur}::${parts.shift()}`;
  return cur;
}

/** Strongly connected components of more than one module (Tarjan). */
function cycles(nodes, edges) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of edges.get(v)?.keys() ?? []) {
      if (!idx.has(w)) (visit(w), low.set(v, Math.min(low.get(v), low.get(w))));
      else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do (w = stack.pop()), on.delete(w), scc.push(w);
      while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of nodes) if (!idx.has(v)) visit(v);
  return out;
}

/** Every import cycle of the crate in `crateDir`, as text; empty when there is none. */
export function checkCrate(crateDir) {
  const report = [];
  for (const rootName of ['lib.rs', 'main.rs']) {
    const rootFile = join(crateDir, 'src', rootName);
    if (!existsSync(rootFile)) continue;
    const modules = readCrate(rootFile);
    const edges = new Map();
    for (const [name, mod] of modules) {
      for (const ref of mod.refs) {
        const to = resolve(modules, name, ref.path, ref.bare);
        // A child may use its ancestors' items (Rust's own layout: tests
        // use `super::*`, handlers use the root's helpers); not an edge.
        if (!to || to === name || name.startsWith(`${to}::`)) continue;
        if (!edges.has(name)) edges.set(name, new Map());
        if (!edges.get(name).has(to)) edges.get(name).set(to, ref);
      }
    }
    for (const scc of cycles([...modules.keys()], edges)) {
      const members = new Set(scc);
      report.push(`error: import cycle in ${relative(root, rootFile)} among ${scc.join(', ')}`);
      for (const from of scc) {
        for (const [to, ref] of edges.get(from) ?? []) {
          if (members.has(to)) report.push(`    ${from} -> ${to}  (${relative(root, ref.file)}:${ref.line})`);
        }
      }
    }
  }
  return report;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const crates = args.length
    ? args
    : readdirSync(join(root, 'crates'), { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => join('crates', d.name));
  let failed = false;
  for (const c of crates) {
    const report = checkCrate(resolvePath(root, c));
    if (report.length) {
      failed = true;
      console.log(report.join('\n'));
    } else {
      console.log(`${c}: no import cycles`);
    }
  }
  process.exit(failed ? 1 : 0);
}
