// `npm run bench [-- --quick]`: every scenario on this machine, each with its own Herald (child
// process, fresh data dir), sink and load generator, against a bare Node.js forwarder as the limit.
// Writes bench/results/<timestamp>.json and prints a markdown table.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { benchCesql } from './cesql.js';
import { benchSlackAck } from './slack-ack.js';
import { type Child, percentile, repoRoot, startBaseline, startHerald, startLatencySink } from './support.js';

const quick = process.argv.includes('--quick');
const DURATION = quick ? 3 : 15;
const CONNECTIONS = 32;

interface Row {
  scenario: string;
  system: 'herald' | 'baseline';
  acceptedPerSec: number;
  deliveredPerSec: number;
  p50Ms: number;
  p99Ms: number;
  peakRssMb: number;
  errors: number;
  note?: string;
}

async function load(url: string, path: string, body: () => string, contentType: string, rate?: number) {
  const result = await autocannon({
    url: `${url}${path}`,
    connections: CONNECTIONS,
    duration: DURATION,
    ...(rate ? { overallRate: rate } : {}),
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': contentType },
        setupRequest: (req) => ({ ...req, body: body() }),
      },
    ],
  });
  const accepted = result['2xx'];
  return { accepted, errors: result.non2xx + result.errors + result.timeouts, seconds: result.duration };
}

async function measure(
  scenario: string,
  system: 'herald' | 'baseline',
  start: (sinkUrl: string) => Promise<Child>,
  path: string,
  body: () => string,
  contentType: string,
  eventsPerRequest = 1,
  rate?: number,
): Promise<Row> {
  const sink = await startLatencySink();
  const proc = await start(sink.url);
  const t0 = Date.now();
  const { accepted, errors, seconds } = await load(proc.url, path, body, contentType, rate);
  const expected = accepted * eventsPerRequest;
  await sink.waitFor(expected, 60_000);
  const deliverSeconds = Math.max(0.001, (sink.lastAt - t0) / 1000);
  const row: Row = {
    scenario,
    system,
    acceptedPerSec: Math.round((accepted * eventsPerRequest) / seconds),
    deliveredPerSec: Math.round(sink.received / deliverSeconds),
    p50Ms: percentile(sink.latencies, 50),
    p99Ms: percentile(sink.latencies, 99),
    peakRssMb: Math.round(proc.peakRssMb()),
    errors: errors + Math.max(0, expected - sink.received),
  };
  await proc.stop();
  await sink.close();
  return row;
}

const notifyBody = () => JSON.stringify({ topic: 'sales', description: 'bench', t: Date.now() });
let batchSeq = 0;
const batchBody = () => {
  const t = Date.now();
  return JSON.stringify(
    Array.from({ length: 100 }, () => ({
      specversion: '1.0',
      id: `b${++batchSeq}`,
      source: 'bench',
      type: 'bench.batch',
      data: { t },
    })),
  );
};

const notifyConfig = (sinkUrl: string, extraTriggers = '') => `
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

async function fanOut(recipients: number): Promise<Row & { planMs: number }> {
  const sink = await startLatencySink();
  const urls = Array.from({ length: recipients }, (_, i) => `${sink.url}?r=${i}`).join(',');
  const proc = await startHerald(`
channels:
  # The recipients' URLs come from event data, and the sink is on loopback: allow it by name.
  hook: { kind: webhook, concurrency: 64, allowHosts: [127.0.0.1] }
triggers:
  everyone:
    actions: [{ channel: hook, to: "{{ event.data.to }}", body: { t: "{{ event.data.t }}" } }]
`);
  const t0 = Date.now();
  await fetch(`${proc.url}/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents+json' },
    body: JSON.stringify({
      specversion: '1.0',
      id: 'fan',
      source: 'bench',
      type: 'fan',
      data: { to: urls, t: t0 },
    }),
  });
  let planMs = 0;
  for (;;) {
    const e = (await (await fetch(`${proc.url}/api/events/fan`)).json()) as {
      routedAt: number | null;
      receivedAt: number;
    };
    if (e.routedAt) {
      planMs = e.routedAt - e.receivedAt;
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await sink.waitFor(recipients, 120_000);
  const seconds = Math.max(0.001, (sink.lastAt - t0) / 1000);
  const row = {
    scenario: `3. fan-out 1 event → ${recipients.toLocaleString('en-US')} recipients`,
    system: 'herald' as const,
    acceptedPerSec: 0,
    deliveredPerSec: Math.round(sink.received / seconds),
    p50Ms: 0,
    p99Ms: 0,
    peakRssMb: Math.round(proc.peakRssMb()),
    errors: recipients - sink.received,
    planMs,
    note: `planned ${recipients} deliveries in ${planMs} ms (${Math.round((recipients / Math.max(planMs, 1)) * 1000).toLocaleString('en-US')}/s)`,
  };
  await proc.stop();
  await sink.close();
  return row;
}

async function main() {
  const rows: Row[] = [];
  const say = (r: Row) => {
    rows.push(r);
    console.error(
      `  ${r.scenario} [${r.system}]: ${r.acceptedPerSec}/s accepted, ${r.deliveredPerSec}/s delivered, p99 ${r.p99Ms} ms`,
    );
  };
  console.error(`bench: ${quick ? 'quick' : 'full'} run, ${DURATION}s per load, ${CONNECTIONS} connections`);

  const s1 = '1. /notify → 1 trigger → webhook';
  say(await measure(s1, 'baseline', startBaseline, '/notify', notifyBody, 'application/json'));
  say(
    await measure(
      s1,
      'herald',
      (u) => startHerald(notifyConfig(u)),
      '/notify',
      notifyBody,
      'application/json',
    ),
  );

  // Latency is measured at a steady rate both can carry, not at saturation (where it is queueing).
  const rate = quick ? 500 : 1000;
  const s1b = `1b. /notify at ${rate.toLocaleString('en-US')} ev/s (latency)`;
  say(await measure(s1b, 'baseline', startBaseline, '/notify', notifyBody, 'application/json', 1, rate));
  say(
    await measure(
      s1b,
      'herald',
      (u) => startHerald(notifyConfig(u)),
      '/notify',
      notifyBody,
      'application/json',
      1,
      rate,
    ),
  );

  const s2 = '2. CloudEvents batch (100/request) → webhook';
  say(
    await measure(
      s2,
      'baseline',
      startBaseline,
      '/events',
      batchBody,
      'application/cloudevents-batch+json',
      100,
    ),
  );
  say(
    await measure(
      s2,
      'herald',
      (u) =>
        startHerald(
          `channels:\n  hook: { kind: webhook, url: ${u}, concurrency: 64 }\ntriggers:\n  all:\n    actions: [{ channel: hook, body: { t: "{{ event.data.t }}" } }]\n`,
        ),
      '/events',
      batchBody,
      'application/cloudevents-batch+json',
      100,
    ),
  );

  say(await fanOut(quick ? 1000 : 10_000));

  const s4 = '4. 100 sql triggers, one matching';
  const sqlTriggers = Array.from(
    { length: 99 },
    (_, i) =>
      `  other-${i}:\n    filter: { sql: "type = 'notification.created' AND subject = 'topic-${i}'" }\n    actions: [{ channel: hook }]\n`,
  ).join('');
  say(await measure(s4, 'baseline', startBaseline, '/notify', notifyBody, 'application/json'));
  say(
    await measure(
      s4,
      'herald',
      (u) =>
        startHerald(
          notifyConfig(u, sqlTriggers).replace(
            'filter: { exact: { subject: sales } }',
            `filter: { sql: "type = 'notification.created' AND subject = 'sales'" }`,
          ),
        ),
      '/notify',
      notifyBody,
      'application/json',
    ),
  );

  say(await benchSlackAck(quick ? 100 : 500));

  const cesql = await benchCesql(quick ? 500 : 3000);
  const machine = {
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
  const results = {
    at: new Date().toISOString(),
    quick,
    durationSeconds: DURATION,
    connections: CONNECTIONS,
    machine,
    rows,
    cesqlEvalsPerSecond: cesql.evalsPerSecond,
  };
  const dir = join(repoRoot, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${results.at.replaceAll(':', '-')}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);

  const baselineOf = (scenario: string) =>
    rows.find((r) => r.scenario === scenario && r.system === 'baseline');
  const fmt = (n: number) => n.toLocaleString('en-US');
  console.log(
    `\nHerald benchmark — ${machine.cpus} cores, ${machine.memoryGb} GB, Node ${machine.node}${quick ? ' (quick)' : ''}\n`,
  );
  console.log(
    '| scenario | system | accepted ev/s | delivered ev/s | vs baseline | p50 ms | p99 ms | peak RSS MB | errors |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const base = baselineOf(r.scenario);
    const ratio =
      r.system === 'herald' && base ? `${Math.round((r.acceptedPerSec / base.acceptedPerSec) * 100)}%` : '';
    console.log(
      `| ${r.scenario}${r.note ? ` (${r.note})` : ''} | ${r.system} | ${fmt(r.acceptedPerSec)} | ${fmt(r.deliveredPerSec)} | ${ratio} | ${r.p50Ms} | ${r.p99Ms} | ${r.peakRssMb} | ${r.errors} |`,
    );
  }
  console.log(`\nCESQL filter evaluation: ${fmt(cesql.evalsPerSecond)} evaluations/s on one core`);
  console.log(`results: ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
