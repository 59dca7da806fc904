// A long run of row 1 (`/notify` → 1 trigger → webhook) for memory: Herald's resident memory
// sampled as it goes, and every event accounted for at the sink at the end.
//
//   node --import tsx bench/soak.ts [--events 1000000] [--connections 32] [--sample-seconds 10] [--root DIR]
//
// Closed loop (the next request when one is answered), so the run is as short as Herald allows.
// Prints one line per sample (events accepted so far, RSS, heap) and writes the whole curve to
// bench/results/soak-<timestamp>.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import {
  notifyConfig,
  positiveOption,
  processMemoryMb,
  repoRoot,
  startHerald,
  startLatencySink,
} from './support.js';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    connections: { type: 'string', default: '32' },
    'sample-seconds': { type: 'string', default: '10' },
    root: { type: 'string', default: repoRoot },
  },
});
const events = Math.round(positiveOption('events', args.events, 100_000_000));
const connections = Math.round(positiveOption('connections', args.connections, 10_000));
const sampleMs = positiveOption('sample-seconds', args['sample-seconds'], 3600) * 1000;

async function heapMb(url: string): Promise<number | null> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const m = /^herald_nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
    return m ? Math.round(Number(m[1]) / 1048576) : null;
  } catch {
    return null;
  }
}

const sink = await startLatencySink();
const herald = await startHerald(notifyConfig(sink.url), [], args.root);
const pid = herald.child.pid!;
let seq = 0;
let accepted = 0;
const startedAt = Date.now();
const samples: {
  seconds: number;
  accepted: number;
  delivered: number;
  rssMb: number;
  heapMb: number | null;
}[] = [];
const sample = async () => {
  const s = {
    seconds: Math.round((Date.now() - startedAt) / 1000),
    accepted,
    delivered: sink.received,
    rssMb: Math.round(processMemoryMb(pid, 'VmRSS')),
    heapMb: await heapMb(herald.url),
  };
  samples.push(s);
  console.log(
    `${String(s.seconds).padStart(5)} s  accepted ${String(s.accepted).padStart(8)}  delivered ${String(s.delivered).padStart(8)}  RSS ${s.rssMb} MB  heap ${s.heapMb ?? '?'} MB`,
  );
};
const sampler = setInterval(() => void sample(), sampleMs);
await sample();
const result = await new Promise<autocannon.Result>((resolve, reject) => {
  const run = autocannon(
    {
      url: `${herald.url}/notify`,
      connections,
      amount: events,
      requests: [
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          setupRequest: (req) => ({
            ...req,
            body: JSON.stringify({ topic: 'sales', description: 'soak', benchSeq: ++seq }),
          }),
        },
      ],
    },
    (err, done) => (err ? reject(err) : resolve(done)),
  );
  run.on('response', (_client, statusCode) => {
    if (statusCode >= 200 && statusCode < 300) accepted++;
  });
});
const drained = await sink.waitFor(result['2xx'], 120_000);
clearInterval(sampler);
await sample();
const peakRssMb = herald.peakRssMb();
await herald.stop();
await sink.close();

const distinct = sink.firstReceipt.size;
const summary = {
  events,
  accepted: result['2xx'],
  errors: result.non2xx + result.errors + result.timeouts,
  delivered: sink.received,
  distinct,
  duplicates: sink.duplicates,
  lost: result['2xx'] - distinct,
  drained,
  seconds: Math.round((Date.now() - startedAt) / 1000),
  peakRssMb: Math.round(peakRssMb),
  samples,
};
console.log(
  `soak: ${summary.accepted} accepted, ${summary.distinct} delivered (distinct), ${summary.duplicates} duplicates, ${summary.lost} lost, ${summary.errors} errors; peak RSS ${summary.peakRssMb} MB; ${summary.seconds} s`,
);
const dir = join(repoRoot, 'bench/results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `soak-${new Date().toISOString().replace(/:/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
console.log(`results: ${file}`);
process.exit(summary.lost === 0 && summary.errors === 0 ? 0 : 1);
