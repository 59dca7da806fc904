// CPU time and fsyncs per event of `herald start` under a short open-loop load: figures that stay
// meaningful on a shared machine, where wall-clock latency is noise. Herald's own utime+stime
// (from /proc/PID/stat) and its fsync/fdatasync calls (counted by `perf stat` on syscall
// tracepoints, which needs perf and permission to use them) are read over the measured window only.
//
//   node --import tsx bench/cpu-per-event.ts [--rate 1000] [--seconds 10] [--root DIR] [--node-options '…']
//
// `--root` is a checkout whose bin/herald.js and dist/ are measured (default: this one), so two
// builds can be compared in alternating runs.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { account, drain, senderPool, sendOpenLoop } from './open-loop.js';
import { notifyConfig, processMemoryMb, repoRoot, startHerald, startLatencySink } from './support.js';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    root: { type: 'string', default: repoRoot },
    // Node/V8 options for Herald, e.g. '--max-semi-space-size=64' (V8's default on a large machine).
    'node-options': { type: 'string', default: '' },
  },
});
const rate = Number(args.rate);
const seconds = Number(args.seconds);
const CLK_TCK = 100;

function cpuTicks(pid: number): number {
  // Fields after the command name (which may hold spaces) start at `state`; utime and stime are the
  // 14th and 15th fields of the whole line.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

function countSyscalls(pid: number): { stop(): Promise<Record<string, number>> } {
  const events = ['fsync', 'fdatasync', 'pwrite64'].map((s) => `syscalls:sys_enter_${s}`);
  const perf = spawn('perf', ['stat', '-x', ',', '-e', events.join(','), '-p', String(pid)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let out = '';
  perf.stderr.on('data', (c: Buffer) => {
    out += c.toString();
  });
  return {
    stop: () =>
      new Promise((resolve) => {
        perf.once('exit', () => {
          const counts: Record<string, number> = {};
          for (const line of out.split('\n')) {
            const [value, , name] = line.split(',');
            if (name?.startsWith('syscalls:sys_enter_')) counts[name.slice(19)] = Number(value);
          }
          resolve(counts);
        });
        perf.kill('SIGINT');
      }),
  };
}

const sink = await startLatencySink();
const herald = await startHerald(
  notifyConfig(sink.url),
  args['node-options'].split(/\s+/).filter(Boolean),
  args.root,
);
const pid = herald.child.pid!;
const pool = senderPool(herald.url, 512, 30_000);
const common = {
  pool,
  path: '/notify',
  contentType: 'application/json',
  rate,
  timeoutMs: 30_000,
  spinBelowMs: 0,
  body: (benchSeq: number, benchAtUs: number) =>
    JSON.stringify({ topic: 'sales', description: 'bench', benchSeq, benchAtUs }),
};
const idleRssMb = Math.round(processMemoryMb(pid, 'VmRSS'));
const warm = await sendOpenLoop({ ...common, durationMs: 3000, firstSeq: 0 });
await drain(sink, warm, 2000, 30_000);
const counter = countSyscalls(pid);
await new Promise((r) => setTimeout(r, 300)); // perf attaches
const before = cpuTicks(pid);
const sent = await sendOpenLoop({ ...common, durationMs: seconds * 1000, firstSeq: 1e9 });
await drain(sink, sent, 2000, 60_000);
const ticks = cpuTicks(pid) - before;
const syscalls = await counter.stop();
const a = account(sent, sink);
const events = a.delivered;
console.log(
  JSON.stringify({
    root: args.root,
    rate,
    seconds,
    sent: a.sent,
    accepted: a.accepted,
    delivered: a.delivered,
    lost: a.lost,
    duplicates: a.duplicates,
    cpuMs: (ticks * 1000) / CLK_TCK,
    cpuUsPerEvent: Math.round((ticks * 1e6) / CLK_TCK / events),
    fsyncPer1000: Math.round((((syscalls.fsync ?? 0) + (syscalls.fdatasync ?? 0)) * 1000) / events),
    pwritePerEvent: Math.round(((syscalls.pwrite64 ?? 0) / events) * 100) / 100,
    p50Ms: a.p50Ms,
    p99Ms: a.p99Ms,
    idleRssMb,
    peakRssMb: Math.round(processMemoryMb(pid, 'VmHWM')),
  }),
);
await pool.destroy();
await herald.stop();
await sink.close();
