// Reliability and security, measured against the real platform (Garage,
// both Workers in wrangler dev, the transcoder): bad media, crashes and
// faults, hostile requests and load. Prints one table; exits 1 if any row
// fails.
//
//   node reliability/run.mjs           the quick part (also run by scripts/test.sh)
//   node reliability/run.mjs --soak    longer: more generated requests, longer load
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startPlatform, ROOT } from '../devkit/platform.mjs';
import { startPurgeStandin } from '../devkit/purge-standin.mjs';
import { startReceiver } from '../devkit/webhook-receiver.mjs';
import { HOOKS_APP } from './events.mjs';

const soak = process.argv.includes('--soak');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');
const groups = [
  ['bad media', () => import('./media.mjs').then((m) => m.badMedia)],
  ['crashes and faults', () => import('./faults.mjs').then((m) => m.faults)],
  ['hostile requests', () => import('./hostile.mjs').then((m) => m.hostile)],
  ['load', () => import('./load.mjs').then((m) => m.load)],
  ['events', () => import('./events.mjs').then((m) => m.events)],
  ['deletion', () => import('./deletion.mjs').then((m) => m.deletion)],
  ['transforms', () => import('./transforms.mjs').then((m) => m.transforms)],
  ['signed playback', () => import('./signed.mjs').then((m) => m.signed)],
  ['encrypted HLS', () => import('./encrypted.mjs').then((m) => m.encrypted)],
].filter(([name]) => !only || only.some((o) => name.startsWith(o)));

const scratch = mkdtempSync(join(tmpdir(), 'reliability-'));
const rows = [];
const say = (m) => console.log(`reliability: ${m}`);
let platform;
// The webhook receiver of the events group: down (connections dropped) for
// the first 3 attempts of each event, then up.
const receiver = await startReceiver({ failFirst: 3, failStatus: 'reset' });
// Cloudflare's zone purge API, stood in for: the deletion group counts the purges its deletes send.
const purge = await startPurgeStandin();
const purgeVars = { CF_API_BASE: purge.apiBase, CF_ZONE_ID: 'reliability-zone', CF_PURGE_TOKEN: `purge-${randomBytes(8).toString('hex')}` };
try {
  platform = await startPlatform({
    dir: join(scratch, 'platform'),
    transcoderBin: process.env.TRANSCODER_BIN ?? join(ROOT, 'target', 'debug', 'transcoder'),
    // Short leases so crash recovery is seen in seconds; short upload URLs so expiry can be tested.
    videoVars: {
      LEASE_TTL_MS: '5000',
      // Sources of 40 s and more are split into chunks (the faults group's
      // 60-s clip); every other clip here is shorter and stays single-pass.
      CHUNK_FROM_S: '40',
      CHUNK_S: '10',
      FIRST_CHUNK_S: '5',
      RETRY_BACKOFF_MS: '1000',
      UPLOAD_URL_TTL_S: '20',
      IV_WEBHOOKS: JSON.stringify({ [HOOKS_APP]: { url: `${receiver.url}/hook`, secret: `whsec_${randomBytes(16).toString('hex')}` } }),
      WEBHOOK_RETRY_BASE_MS: '500',
      // The app's endpoints (its IV_WEBHOOKS url among them) retry from its hub on this schedule.
      WEBHOOK_RETRY_SCHEDULE_MS: '500,1000,1500,2000',
      ...purgeVars,
    },
    // Presigned images are checked 5 s after their URL expires (hostile: junk nobody reads is removed).
    imageVars: { UPLOAD_URL_TTL_S: '20', UPLOAD_CHECK_GRACE_S: '5', ...purgeVars },
    transcoderEnv: { LEASE_WAIT_MS: '2000' },
    // Two tenants' keys, each tied to its apps, for the tenant matrix of the hostile group.
    tenantKeys: {
      [`tenant-${randomBytes(16).toString('hex')}`]: ['tenant-a', 'tenant-b'],
      [`tenant-${randomBytes(16).toString('hex')}`]: ['tenant-c'],
    },
    log: say,
  });
  for (const [name, loadGroup] of groups) {
    say(`${name}…`);
    const started = Date.now();
    try {
      const group = await loadGroup();
      for (const row of await group({ platform, scratch, soak, say, receiver, purge, purgeVars })) rows.push({ group: name, ...row });
    } catch (e) {
      rows.push({ group: name, check: 'group ran to the end', ok: false, detail: e.stack?.split('\n').slice(0, 3).join(' ') ?? String(e) });
    }
    say(`${name}: ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
} finally {
  await platform?.stop();
  await receiver.stop();
  await purge.stop();
  if (process.env.KEEP_SCRATCH) say(`kept ${scratch}`);
  else rmSync(scratch, { recursive: true, force: true });
}

const width = (k) => Math.max(k.length, ...rows.map((r) => String(r[k] ?? '').length));
const [g, c] = [width('group'), width('check')];
const lines = [
  `| ${'group'.padEnd(g)} | ${'check'.padEnd(c)} | result | detail |`,
  `|${'-'.repeat(g + 2)}|${'-'.repeat(c + 2)}|--------|--------|`,
  ...rows.map((r) => `| ${r.group.padEnd(g)} | ${r.check.padEnd(c)} | ${r.ok ? 'pass  ' : 'FAIL  '} | ${r.detail ?? ''} |`),
];
console.log(`\n${lines.join('\n')}\n`);
const failed = rows.filter((r) => !r.ok).length;
console.log(`reliability: ${rows.length - failed} of ${rows.length} checks pass${soak ? ' (soak)' : ''}`);
mkdirSync(join(ROOT, '.dev'), { recursive: true });
writeFileSync(join(ROOT, '.dev', `reliability-${soak ? 'soak' : 'quick'}.md`), lines.join('\n') + '\n');
process.exit(failed || rows.length === 0 ? 1 : 0);
