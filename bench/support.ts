import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export const repoRoot = new URL('..', import.meta.url).pathname;

/**
 * A webhook sink that records receive times and the latency carried in each body (data.t or t, a
 * Date.now() in ms). Bodies that carry `benchSeq` are also counted per sequence number (first
 * receipt, duplicates), and when they carry `benchAtUs` too (a `nowUs()` of this process, the time the
 * send was scheduled for), the latency from that instant to this receipt, in µs.
 */
export interface LatencySink {
  url: string;
  received: number;
  latencies: number[];
  firstAt: number;
  lastAt: number;
  /** benchSeq → µs from the scheduled send to the first receipt (-1 when the body had no benchAtUs). */
  firstReceipt: Map<number, number>;
  /** Receipts of a benchSeq already received, in all and per benchSeq. */
  duplicates: number;
  duplicatesOf: Map<number, number>;
  waitFor(count: number, timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export async function startLatencySink(): Promise<LatencySink> {
  const sink: LatencySink = {
    url: '',
    received: 0,
    latencies: [],
    firstAt: 0,
    lastAt: 0,
    firstReceipt: new Map(),
    duplicates: 0,
    duplicatesOf: new Map(),
    waitFor: async () => false,
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      const atUs = nowUs();
      const now = Date.now();
      if (sink.received === 0) sink.firstAt = now;
      sink.lastAt = now;
      sink.received++;
      const match = /"t":"?(\d{13})/.exec(body);
      if (match) sink.latencies.push(now - Number(match[1]));
      const seq = /"benchSeq":"?(\d+)/.exec(body);
      if (seq) {
        const n = Number(seq[1]);
        if (sink.firstReceipt.has(n)) {
          sink.duplicates++;
          sink.duplicatesOf.set(n, (sink.duplicatesOf.get(n) ?? 0) + 1);
        } else {
          const sentAt = /"benchAtUs":"?(\d+)/.exec(body);
          sink.firstReceipt.set(n, sentAt ? atUs - Number(sentAt[1]) : -1);
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  sink.waitFor = async (count, timeoutMs) => {
    const deadline = Date.now() + timeoutMs;
    while (sink.received < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return sink.received >= count;
  };
  sink.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return sink;
}

/** This process's monotonic clock in whole µs: the sender stamps bodies with it, the sink reads them. */
export function nowUs(): number {
  return Math.round(performance.now() * 1000);
}

export interface Child {
  child: ChildProcess;
  url: string;
  peakRssMb(): number;
  stop(): Promise<void>;
}

/**
 * A live process's memory from /proc/PID/status, in MB (0 once it is gone): `VmRSS` is resident
 * now, `VmHWM` the peak so far.
 */
export function processMemoryMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

const OUTPUT_TAIL = 16_384;

async function waitForListening(child: ChildProcess, pattern: RegExp): Promise<string> {
  // The child's output is read for as long as it runs (a full pipe would stall it), but only its
  // tail is kept, for the error if it exits, and only the start is searched for the address: a
  // system under load that logs must not cost the bench process (which sends and receives) CPU.
  let output = '';
  let listening = false;
  const keep = (c: Buffer) => {
    output = (output + c.toString()).slice(-OUTPUT_TAIL);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`did not start:\n${output}`)), 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      keep(c);
      if (listening) return;
      const m = pattern.exec(output);
      if (m) {
        listening = true;
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.stderr!.on('data', keep);
    child.on('exit', (code) => reject(new Error(`exited with ${code}:\n${output}`)));
  });
}

function wrap(child: ChildProcess, url: string, cleanup = () => {}): Child {
  let peak = 0;
  const sampler = setInterval(() => {
    if (child.pid) peak = Math.max(peak, processMemoryMb(child.pid, 'VmHWM'));
  }, 200);
  return {
    child,
    url,
    peakRssMb: () => Math.max(peak, child.pid ? processMemoryMb(child.pid, 'VmHWM') : 0),
    stop: () =>
      new Promise((resolve) => {
        clearInterval(sampler);
        if (child.pid) peak = Math.max(peak, processMemoryMb(child.pid, 'VmHWM'));
        if (child.exitCode !== null) {
          cleanup();
          return resolve();
        }
        child.once('exit', () => {
          cleanup();
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

/** Row 1's config: `/notify` → one trigger → a webhook to the sink (`extraTriggers` before it). */
export const notifyConfig = (sinkUrl: string, extraTriggers = '') => `
sources:
  bot:
    kind: http
    routes:
      - path: /notify
        event: { type: notification.created, subject: "{{ body.topic }}" }
channels:
  hook: { kind: webhook, url: ${sinkUrl}, concurrency: 32 }
triggers:
${extraTriggers}
  sales:
    filter: { exact: { subject: sales } }
    actions: [{ channel: hook }]
`;

/**
 * Starts the compiled Herald (`dist/`) with a config, on a free port and a fresh data dir.
 * `nodeArgs` go before the script (e.g. `--cpu-prof`, which writes its profile when Herald exits).
 */
export async function startHerald(
  configYaml: string,
  nodeArgs: string[] = [],
  /** The checkout whose bin/herald.js and dist/ run (another build, to compare). */
  root = repoRoot,
): Promise<Child> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-'));
  writeFileSync(join(dir, 'herald.yaml'), configYaml);
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      join(root, 'bin/herald.js'),
      'start',
      '--config',
      join(dir, 'herald.yaml'),
      '--data',
      dir,
      '--port',
      '0',
    ],
    {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, HERALD_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const url = await waitForListening(child, /Herald listening on (http:\/\/[^\s;"]+)/);
  return wrap(child, url, () => rmSync(dir, { recursive: true, force: true }));
}

/** The limit: a bare Node server that answers 202 and forwards the body to the sink (no durability). */
export async function startBaseline(sinkUrl: string): Promise<Child> {
  const child = spawn(process.execPath, [join(repoRoot, 'bench/baseline.mjs'), sinkUrl], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await waitForListening(child, /listening on (http:\/\/\S+)/);
  return wrap(child, url);
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** A CLI number, checked: a bench that runs with NaN would measure nothing and say so late. */
export function positiveOption(option: string, text: string, max: number): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || n > max) {
    console.error(`bench: --${option} must be a number above 0 and at most ${max}, got "${text}"`);
    process.exit(2);
  }
  return n;
}
