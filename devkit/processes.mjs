// Child processes of the local platform and of tests: each started in its own
// process group with its output in a log file, and stopped by PID (the whole
// group) — on request, on exit, and on Ctrl-C.
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';

const running = new Set();

/** Starts `cmd args` with output appended to `log` (discarded without one). */
export function start(name, cmd, args, { env = {}, cwd, log }) {
  const out = log ? openSync(log, 'a') : 'ignore';
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', out, out], detached: true });
  const proc = { name, pid: child.pid, log, child, exited: null };
  child.on('exit', (code, signal) => {
    proc.exited = { code, signal };
    running.delete(proc);
  });
  running.add(proc);
  proc.stop = (graceMs = 5000) => stopProc(proc, graceMs);
  return proc;
}

function stopProc(proc, graceMs) {
  return new Promise((resolve) => {
    if (proc.exited) return resolve();
    proc.child.once('exit', () => resolve());
    const group = (sig) => { try { process.kill(-proc.pid, sig); } catch { /* gone */ } };
    group('SIGTERM');
    setTimeout(() => { if (!proc.exited) group('SIGKILL'); }, graceMs).unref();
  });
}

/** Stops everything still running, newest first. */
export async function stopAll() {
  for (const p of [...running].reverse()) await p.stop();
}

// Never leave children behind, whatever ends this process: a normal exit,
// or Ctrl-C / SIGTERM when nothing else (like the platform's own graceful
// shutdown) handles them. Node skips 'exit' handlers on an unhandled signal.
process.on('exit', () => {
  for (const p of running) { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ } }
});
for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15]]) {
  process.on(signal, () => {
    if (process.listenerCount(signal) === 1) process.exit(128 + number);
  });
}
