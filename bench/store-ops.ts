// CPU cost of the embedded store's work per event, without HTTP: appendRouted of one event with
// one delivery, a claim, an outcome; one event per commit (a steady low rate) or in batches (a busy
// one). The figure is the process's CPU time: with `full`, fsyncs run as in production (a libuv
// thread) and their kernel time counts; with `normal` there are none and it is the event loop's.
//
//   node --import tsx bench/store-ops.ts [--events 20000] [--batch 1] [--prefill 50000]
//     [--synchronous full|normal]   (normal: no fsync, the event loop's own work alone)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createSqliteStore } from '../src/store/sqlite/index.js';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    batch: { type: 'string', default: '1' },
    prefill: { type: 'string', default: '50000' },
    synchronous: { type: 'string', default: 'full' },
  },
});
const total = Number(args.events);
const batch = Number(args.batch);
const dir = mkdtempSync(join(tmpdir(), 'herald-store-ops-'));
const store = createSqliteStore({
  path: join(dir, 'herald.db'),
  synchronous: args.synchronous === 'normal' ? 'normal' : 'full',
});
let n = 0;
const event = () => ({
  specversion: '1.0' as const,
  id: `ev-${++n}`,
  source: '/bench',
  type: 'notification.created',
  subject: 'sales',
  data: { topic: 'sales', description: 'bench', n },
});
const plan = () => ({
  record: { matched: ['sales'], errors: [], deliveries: 1 },
  deliveries: [
    {
      eventSeq: 0,
      trigger: 'sales',
      action: 0,
      channel: 'hook',
      recipient: null,
      idempotencyKey: `k-${n}`,
      maxAttempts: 5,
      notBefore: Date.now(),
    },
  ],
});

async function round(size: number): Promise<void> {
  const events = Array.from({ length: size }, event);
  const now = Date.now();
  const committed = await store.events.appendCommitted!(events, now, {
    plans: events.map(plan),
    routedAt: now,
  });
  await committed.durable;
  const claimed = await store.deliveries.claim({
    channel: 'hook',
    limit: 128,
    now: Date.now(),
    leaseMs: 60_000,
  });
  const done = await store.deliveries.recordCommitted!(
    claimed.map((d) => ({
      deliveryId: d.id,
      status: 'delivered' as const,
      attempt: {
        deliveryId: d.id,
        number: 1,
        startedAt: now,
        durationMs: 1,
        outcome: 'delivered' as const,
        error: null,
        nextAttemptAt: null,
      },
    })),
  );
  await done.durable;
}

for (let i = 0; i < Number(args.prefill); i += 500) await round(500);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < total; i += batch) await round(batch);
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
console.log(
  JSON.stringify({
    batch,
    events: total,
    cpuUsPerEvent: Math.round(((cpu.user + cpu.system) / total) * 10) / 10,
    wallUsPerEvent: Math.round(((wall * 1000) / total) * 10) / 10,
  }),
);
await store.close();
rmSync(dir, { recursive: true, force: true });
