// The workerd harness's own helpers, where they meet files workerd writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storedTables } from './harness.mjs';

test('storedTables waits for a writer holding the lock instead of failing with "database is locked"', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'harness-'));
  try {
    const file = join(dir, 'object.sqlite');
    // Another process (as workerd is) makes a table, then holds an exclusive lock for 500 ms.
    const writer = spawn(process.execPath, ['--no-warnings', '-e', `
      const { DatabaseSync } = require('node:sqlite');
      const db = new DatabaseSync(${JSON.stringify(file)});
      db.exec('CREATE TABLE jobs (id TEXT)');
      db.exec('BEGIN EXCLUSIVE');
      db.exec("INSERT INTO jobs VALUES ('a')");
      console.log('locked');
      setTimeout(() => { db.exec('COMMIT'); db.close(); }, 500);
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve, reject) => {
      writer.stdout.on('data', (d) => String(d).includes('locked') && resolve());
      writer.on('exit', (code) => reject(new Error(`writer exited ${code} before locking`)));
    });
    assert.deepEqual(await storedTables(file), ['jobs']);
    await new Promise((resolve) => (writer.exitCode === null ? writer.on('exit', resolve) : resolve()));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
