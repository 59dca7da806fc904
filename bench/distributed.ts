// `node --import tsx bench/distributed.ts [--events N] [--processes 1,2] [--runs N] [--concurrency N]
// [--node-options '--max-semi-space-size=64'] [--bus jetstream|embedded]`: distributed mode on this
// machine — Herald processes on one JetStream stream and one PostgreSQL, fed by a `nats` source that
// shares one durable JetStream consumer — events/s from the first NATS publish to the last webhook
// delivery, and the p50/p99 latency from publish to delivery. Each run gets its own PostgreSQL
// schema and streams and removes them afterwards. With `--runs N` each process count runs N times,
// alternating, and a median row follows: on a shared machine one run can be 20 % off the next.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { type HeraldProcess, spawnHerald, tempDir } from '../test/support/herald.js';
import { percentile, startLatencySink } from './support.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const EVENTS = Number(arg('--events', '20000'));
const PROCESSES = arg('--processes', '1,2').split(',').map(Number);
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const BUS = arg('--bus', 'jetstream');
const RUNS = Number(arg('--runs', '1'));
/** The webhook channel's `concurrency`: sends in flight at once. */
const CONCURRENCY = Number(arg('--concurrency', '64'));
/** NODE_OPTIONS for the Herald processes, as a user would set them (none by default). */
const NODE_OPTIONS = arg('--node-options', '');
const PUBLISH_WINDOW = 1000;

/** CPU time (user + system) a process has used so far, in ms: a figure other load does not skew much. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

async function run(processes: number) {
  const id = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const schema = `herald_bench_${id}`;
  const stream = `HERALD_BENCH_${id}`;
  const input = `HERALD_BENCH_IN_${id}`;
  const inputSubject = `bench.${id}.in`;
  const nc = await connect({ servers: NATS_URL });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: input, subjects: [inputSubject] });
  const dir = tempDir('herald-bench-dist-');
  const sink = await startLatencySink();
  writeFileSync(
    join(dir.path, 'herald.yaml'),
    `
store: { kind: postgres, url: ${DATABASE_URL}, schema: ${schema}, poolSize: 8 }
${
  BUS === 'jetstream'
    ? `bus:
  kind: jetstream
  url: ${NATS_URL}
  subject: bench.${id}.events
  stream: { name: ${stream}, maxAgeMs: 3600000 }`
    : 'bus: { kind: embedded }'
}
sources:
  bus-in:
    kind: nats
    url: ${NATS_URL}
    subjects: [${inputSubject}]
    jetstream: { stream: ${input}, consumer: herald, batch: 1000 }
channels:
  hook: { kind: webhook, url: ${sink.url}, concurrency: ${CONCURRENCY} }
triggers:
  everything: { actions: [{ channel: hook }] }
`,
  );
  const heralds: HeraldProcess[] = [];
  try {
    const args = ['--config', join(dir.path, 'herald.yaml'), '--port', '0'];
    const env = { HERALD_LOG_LEVEL: 'info', ...(NODE_OPTIONS ? { NODE_OPTIONS } : {}) };
    heralds.push(await spawnHerald(args, env));
    for (let i = 1; i < processes; i++) heralds.push(await spawnHerald(args, env));
    // Core NATS publishes into the input stream, flushed every thousand: the load generator shares
    // the two cores with Herald, so it spends as little CPU as it can (no per-message PubAck).
    const cpuBefore = heralds.map((h) => cpuMs(h.child.pid!));
    const ownCpuBefore = process.cpuUsage();
    const started = Date.now();
    for (let i = 0; i < EVENTS; i++) {
      const event = {
        specversion: '1.0',
        id: `e${i}`,
        source: 'bench',
        type: 'bench.distributed',
        data: { t: Date.now() },
      };
      nc.publish(inputSubject, JSON.stringify(event));
      if (i % PUBLISH_WINDOW === PUBLISH_WINDOW - 1) await nc.flush();
    }
    await nc.flush();
    const acceptedMs = Date.now() - started;
    const complete = await sink.waitFor(EVENTS, 300_000);
    const elapsed = (sink.lastAt - started) / 1000;
    const ownCpu = process.cpuUsage(ownCpuBefore);
    const heraldCpu = heralds.reduce((sum, h, i) => sum + cpuMs(h.child.pid!) - cpuBefore[i]!, 0);
    return {
      bus: BUS,
      processes,
      events: EVENTS,
      delivered: sink.received,
      complete,
      publishedPerSec: Math.round(EVENTS / (acceptedMs / 1000)),
      endToEndPerSec: Math.round(sink.received / elapsed),
      p50Ms: percentile(sink.latencies, 50),
      p99Ms: percentile(sink.latencies, 99),
      heraldCpuUsPerEvent: Math.round((heraldCpu * 1000) / EVENTS),
      // The publisher and the webhook receiver share the cores with Herald: their share, too.
      loadCpuUsPerEvent: Math.round((ownCpu.user + ownCpu.system) / EVENTS),
    };
  } finally {
    await Promise.all(heralds.map((h) => h.kill('SIGTERM')));
    await sink.close();
    await jsm.streams.delete(stream).catch(() => undefined);
    await jsm.streams.delete(input).catch(() => undefined);
    await nc.close();
    const db = new pg.Client({ connectionString: DATABASE_URL });
    await db.connect();
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
    dir.remove();
  }
}

type Row = Awaited<ReturnType<typeof run>>;
const rows: Record<string, unknown>[] = [];
const byProcesses = new Map<number, Row[]>(PROCESSES.map((n) => [n, []]));
for (let r = 0; r < RUNS; r++) {
  for (const n of PROCESSES) {
    const row = await run(n);
    byProcesses.get(n)!.push(row);
    rows.push(row);
  }
}
if (RUNS > 1) {
  // Each figure's middle value across the runs (the upper of the two middle ones for an even count).
  for (const [processes, runs] of byProcesses) {
    const median = Object.fromEntries(
      Object.entries(runs[0]!).map(([key, value]) => [
        key,
        typeof value === 'number'
          ? percentile(
              runs.map((run) => run[key as keyof Row] as number),
              50,
            )
          : value,
      ]),
    );
    rows.push({
      ...median,
      bus: `median of ${runs.length}`,
      processes,
      complete: runs.every((x) => x.complete),
    });
  }
}
console.log(
  `distributed mode: ${cpus().length} cores, load ${loadavg()[0]!.toFixed(2)}, webhook concurrency ${CONCURRENCY}` +
    (NODE_OPTIONS ? `, NODE_OPTIONS ${NODE_OPTIONS}` : ''),
);
console.table(rows);
