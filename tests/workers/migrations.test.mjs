// The Durable Object migrations of each wrangler file against the Worker as
// built (crates/*/build/index.js, scripts/build-workers.sh): a first deploy
// applies every migration in order, and creating a class the Worker does not
// export fails it. Nothing is deployed yet, so the list must create exactly
// the classes the build exports, each once, and delete or rename nothing;
// and every binding (production and env.dev) must name one of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { experimental_readRawConfig } from 'wrangler';
import { ROOT } from './harness.mjs';

/** The Durable Object classes the built Worker exports: wasm-bindgen
 *  exports every `#[durable_object]` struct as a class whose methods call
 *  `{name in lower case}_webSocketMessage` and the like in the wasm (the
 *  other exported classes, streams and option types, have no such method). */
function exportedObjects(crate) {
  const js = readFileSync(join(ROOT, 'crates', crate, 'build', 'index.js'), 'utf8');
  const lists = [...js.matchAll(/export\s*\{([^}]*)\}/g)].map((m) => m[1]);
  assert.ok(lists.length > 0, `${crate}: no export list in build/index.js`);
  const names = lists.flatMap((l) => l.split(',')).map((e) => e.trim().split(/\s+as\s+/).pop()).filter(Boolean);
  return names.filter((n) => js.includes(`${n.toLowerCase()}_webSocketMessage(`)).sort();
}

function check(file, crate) {
  const { rawConfig: config } = experimental_readRawConfig({ config: join(ROOT, file) });
  const migrations = config.migrations ?? [];
  const created = migrations.flatMap((m) => [...(m.new_classes ?? []), ...(m.new_sqlite_classes ?? [])]);
  for (const m of migrations) {
    assert.deepEqual(m.deleted_classes ?? [], [], `${file} ${m.tag}: nothing is deployed, so nothing to delete`);
    assert.deepEqual(m.renamed_classes ?? [], [], `${file} ${m.tag}: nothing is deployed, so nothing to rename`);
    assert.deepEqual(m.transferred_classes ?? [], [], `${file} ${m.tag}: nothing to transfer`);
  }
  assert.equal(new Set(created).size, created.length, `${file}: a class is created twice`);
  const exported = exportedObjects(crate);
  assert.ok(exported.length > 0, `${crate}: the build exports no Durable Object class`);
  assert.deepEqual([...created].sort(), exported, `${file}: the migrations must create exactly the classes ${crate} exports`);
  const envs = [config, ...Object.values(config.env ?? {})];
  for (const env of envs) {
    for (const b of env.durable_objects?.bindings ?? []) {
      assert.ok(exported.includes(b.class_name), `${file}: binding ${b.name} names ${b.class_name}, which ${crate} does not export`);
    }
  }
}

test('the video service migrations create exactly the classes its build exports', () => {
  check('wrangler-video.toml', 'video-service');
});

test('the image service migrations create exactly the classes its build exports', () => {
  check('wrangler-image.toml', 'image-service');
});
