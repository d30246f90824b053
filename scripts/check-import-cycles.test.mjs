// The import-cycle check (scripts/check-import-cycles.mjs) on small crates
// written at test time: it finds a cycle between siblings, through a
// parent that uses its child, and through `use` groups and paths written
// in place; it lets a child use its parent (tests, `super::*`), and it
// skips what comments and strings say. Run: node --test scripts/check-import-cycles.test.mjs

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test, { after } from 'node:test';

import { checkCrate, expandUse, strip } from './check-import-cycles.mjs';

// Every crate written here is removed when the file's tests end.
const made = [];
after(() => made.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function crate(files) {
  const dir = mkdtempSync(join(tmpdir(), 'cycles-'));
  made.push(dir);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

const cycleIn = (report) => report.filter((l) => l.startsWith('error:'));

test('use trees expand to every path they name', () => {
  assert.deepEqual(expandUse('crate::a::{b, c::{d, self}, e as f}'), ['crate::a::b', 'crate::a::c::d', 'crate::a::c', 'crate::a::e']);
  assert.deepEqual(expandUse('super::*'), ['super']);
  assert.deepEqual(expandUse('self::x::Y'), ['self::x::Y']);
});

test('comments, strings and char literals are blanked, lifetimes kept', () => {
  const s = strip(`let a = "crate::x"; // crate::y\n/* crate::z /* nested */ */ let b: &'a str = r#"crate::w"#; let c = '"';`);
  assert.doesNotMatch(s, /crate::/);
  assert.match(s, /&'a str/);
  assert.equal(s.split('\n').length, 2);
});

test('a cycle between siblings is found, with the lines that close it', () => {
  const dir = crate({
    'src/lib.rs': 'pub mod job;\npub mod webhook;\n',
    'src/job.rs': 'use crate::webhook::{CallbackState, Other};\npub struct Job;\n',
    'src/webhook.rs': 'pub struct CallbackState;\npub fn f() -> crate::job::Job { todo!() }\n',
  });
  const report = checkCrate(dir);
  assert.equal(cycleIn(report).length, 1, report.join('\n'));
  assert.match(report[0], /among crate::job, crate::webhook/);
  assert.ok(report.some((l) => /crate::job -> crate::webhook .*job\.rs:1\)/.test(l)), report.join('\n'));
  assert.ok(report.some((l) => /crate::webhook -> crate::job .*webhook\.rs:2\)/.test(l)), report.join('\n'));
});

test('a folder module, a parent that uses its child and paths from a child module name count', () => {
  const dir = crate({
    'src/lib.rs': 'mod store;\nmod reply;\n',
    'src/store/mod.rs': 'mod s3;\npub fn f() { s3::g(); }\n',
    'src/store/s3.rs': 'use crate::reply::Reply;\npub fn g() {}\n',
    'src/reply.rs': 'use crate::store;\npub struct Reply;\n',
  });
  const report = checkCrate(dir);
  assert.equal(cycleIn(report).length, 1, report.join('\n'));
  assert.match(report[0], /among crate::reply, crate::store, crate::store::s3/);
});

test('a child using its parent, tests using super::*, and words in comments are no cycle', () => {
  const dir = crate({
    'src/lib.rs': 'pub mod other;\npub mod pipeline;\npub struct Shared;\n',
    'src/other.rs': 'pub fn x() { crate::pipeline::run(); }\n',
    'src/pipeline/mod.rs': 'mod rung;\npub struct Frame;\npub fn run() { rung::go(crate::Shared); }\n',
    'src/pipeline/rung.rs': 'use super::Frame;\nuse crate::Shared;\n// crate::other::x() is what calls us\npub fn go(_: Shared) { let _ = "crate::other::x"; }\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::pipeline::run;\n}\n',
  });
  assert.deepEqual(cycleIn(checkCrate(dir)), []);
});

test('an inline module is its own module: a cycle through it is found', () => {
  const dir = crate({
    'src/lib.rs': 'mod a {\n    pub fn f() { crate::b::g() }\n}\nmod b {\n    pub fn g() { super::a::f() }\n}\n',
  });
  assert.equal(cycleIn(checkCrate(dir)).length, 1);
});
