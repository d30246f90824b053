// wrk (Debian's, installed by scripts/bootstrap.sh): one bounded run against
// a URL, and its `--latency` output read into figures. Used by the
// reliability load group and the benchmarks' Worker latency section.
import { spawn } from 'node:child_process';

/** Milliseconds from a wrk duration (`812.00us`, `1.53ms`, `2.01s`, `1.2m`). */
function ms(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? '');
  if (!m) return NaN;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60000 }[m[2]];
}

/** The figures of `wrk --latency` output; `errors` counts non-2xx/3xx answers and socket errors. */
export function parseWrk(out) {
  const num = (re) => Number(re.exec(out)?.[1] ?? NaN);
  const pct = (p) => ms(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1]);
  const s = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socket = s ? { connect: +s[1], read: +s[2], write: +s[3], timeout: +s[4] } : { connect: 0, read: 0, write: 0, timeout: 0 };
  const non2xx3xx = num(/Non-2xx or 3xx responses: (\d+)/) || 0;
  return {
    requests: num(/(\d+) requests in/),
    seconds: ms(/requests in ([\d.]+\w+),/.exec(out)?.[1]) / 1000,
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50: pct(50),
    p90: pct(90),
    p99: pct(99),
    non2xx3xx,
    socket,
    errors: non2xx3xx + socket.connect + socket.read + socket.write + socket.timeout,
  };
}

/** Runs wrk on `url` (localhost becomes 127.0.0.1) and resolves to its figures. */
export function runWrk(url, { seconds = 10, connections = 4, threads = 2, timeoutS = 5, script } = {}) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--timeout', `${timeoutS}s`, '--latency', ...(script ? ['-s', script] : []), url.replace('localhost', '127.0.0.1')];
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('error', (e) => reject(new Error(`wrk: ${e.message} (scripts/bootstrap.sh installs it)`)));
    child.on('close', (code) => (code === 0 ? resolve(parseWrk(out)) : reject(new Error(`wrk exited ${code}: ${out.slice(0, 500)}`))));
  });
}
