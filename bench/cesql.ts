// Evaluations per second of a typical `sql` filter, compiled once (one core).
// Run: node --import tsx bench/cesql.ts [durationMs]
import { pathToFileURL } from 'node:url';
import type { CloudEvent } from '../src/events/types.js';
import { compile } from '../src/filters/cesql/index.js';

export const TYPICAL_FILTER = "type = 'x' AND INT(seq) > 10 AND subject LIKE 'orders/%'";

export async function benchCesql(durationMs = 2000): Promise<{ evalsPerSecond: number; matched: number }> {
  const { evaluate } = compile(TYPICAL_FILTER);
  const events: CloudEvent[] = Array.from({ length: 64 }, (_, i) => ({
    specversion: '1.0',
    id: String(i),
    source: '/bench',
    type: i % 4 === 0 ? 'y' : 'x',
    subject: i % 3 === 0 ? `invoices/${i}` : `orders/${i}`,
    seq: String(i),
  }));
  const errors: never[] = [];
  let matched = 0;
  // Warm up the JIT before timing.
  for (let i = 0; i < 200_000; i++) evaluate(events[i & 63]!, errors);
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(durationMs) * 1_000_000n;
  while (process.hrtime.bigint() < end) {
    for (let i = 0; i < 10_000; i++) if (evaluate(events[(n + i) & 63]!, errors) === true) matched++;
    n += 10_000;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { evalsPerSecond: Math.round(n / seconds), matched };
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  const { evalsPerSecond } = await benchCesql(Number(process.argv[2] ?? 2000));
  console.log(
    `CESQL: ${TYPICAL_FILTER}\n${evalsPerSecond.toLocaleString('en-US')} evaluations/s on one core`,
  );
}
