// Starts a single-node Garage (a real S3-compatible store) on loopback, with
// one bucket and one access key created at start-up. Used by the local
// platform (persistent under .dev/) and by tests (a temporary directory).
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitFor } from './ports.mjs';
import { start } from './processes.mjs';
import { s3 } from './sigv4.mjs';

const hex = (n) => randomBytes(n).toString('hex');

/**
 * Starts Garage in `dir`. Keys are generated once and kept in `dir/keys.json`
 * (dev-only credentials for a store on 127.0.0.1), so a restart reuses them.
 */
export async function startGarage({ dir, bucket = 'media', s3Port, rpcPort, log } = {}) {
  mkdirSync(dir, { recursive: true });
  const keysFile = join(dir, 'keys.json');
  const keys = existsSync(keysFile)
    ? JSON.parse(readFileSync(keysFile, 'utf8'))
    : { accessKey: 'GK' + hex(12), secretKey: hex(32), rpcSecret: hex(32) };
  writeFileSync(keysFile, JSON.stringify(keys, null, 2), { mode: 0o600 });
  s3Port ??= await freePort();
  rpcPort ??= await freePort();
  const config = join(dir, 'garage.toml');
  writeFileSync(config, [
    `metadata_dir = "${join(dir, 'meta')}"`,
    `data_dir = "${join(dir, 'data')}"`,
    'db_engine = "sqlite"',
    'replication_factor = 1',
    `rpc_bind_addr = "127.0.0.1:${rpcPort}"`,
    `rpc_public_addr = "127.0.0.1:${rpcPort}"`,
    `rpc_secret = "${keys.rpcSecret}"`,
    '',
    '[s3_api]',
    's3_region = "us-east-1"',
    `api_bind_addr = "127.0.0.1:${s3Port}"`,
    'root_domain = ".s3.garage.localhost"',
    '',
  ].join('\n'));
  const proc = start('garage', 'garage', ['-c', config, 'server', '--single-node', '--default-bucket'], {
    env: { GARAGE_DEFAULT_ACCESS_KEY: keys.accessKey, GARAGE_DEFAULT_SECRET_KEY: keys.secretKey, GARAGE_DEFAULT_BUCKET: bucket, RUST_LOG: process.env.GARAGE_LOG ?? 'warn' },
    log,
  });
  const store = { endpoint: `http://127.0.0.1:${s3Port}`, bucket, region: 'us-east-1', accessKey: keys.accessKey, secretKey: keys.secretKey, pid: proc.pid, s3Port, rpcPort };
  await waitFor('Garage', async () => {
    if (proc.exited) throw new Error(`garage exited (${JSON.stringify(proc.exited)}); see ${log ?? 'its output'}`);
    const r = await s3(store, 'HEAD', '');
    return r.status === 200;
  }, 60000);
  store.stop = () => proc.stop();
  return store;
}
