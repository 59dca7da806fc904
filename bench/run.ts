// `npm run bench [-- --quick] [--only TEXT]... [--profile] [--root CHECKOUT] [--node-options '--flag …']`:
// every scenario on this machine, each with its own freshly started system under test (Herald as a
// child process with a fresh data dir, or the limit: a bare Node.js forwarder), its own sink and
// load, one at a time.
// Closed-loop rows (autocannon) measure throughput; open-loop rows send at fixed rates and measure
// latency from each request's scheduled send to the sink, accounting for every event.
// Writes bench/results/<timestamp>.json and prints the tables; a full run (no --quick, --only or
// --profile) also writes bench/results/latest.json and the README's bench block.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { benchCesql } from './cesql.js';
import { account, drain, senderPool, sendOpenLoop } from './open-loop.js';
import { type CpuProfile, formatSummary, summarizeProfile } from './profile-top.js';
import {
  type OpenLoopRow,
  type ProfileRecord,
  type Results,
  replaceBenchBlock,
  resultsMarkdown,
  type System,
  type ThroughputRow,
} from './report.js';
import { benchSlackAck } from './slack-ack.js';
import {
  type Child,
  notifyConfig,
  percentile,
  positiveOption,
  repoRoot,
  startBaseline,
  startHerald,
  startLatencySink,
} from './support.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    // Runs only the rows whose label (`scenario [system]`) contains one of these, case-insensitive.
    only: { type: 'string', multiple: true, default: [] },
    profile: { type: 'boolean', default: false },
    'open-loop-seconds': { type: 'string' },
    rates: { type: 'string' },
    'sender-connections': { type: 'string', default: '512' },
    // 0: the sender sleeps on timers and sends what is due when one fires (up to a millisecond
    // late, which counts in the latency). Above 0 it spins that close to the next send, which keeps
    // a core busy at 1,000 ev/s and more: on two cores that starves the system it measures.
    'sender-spin-ms': { type: 'string', default: '0' },
    'no-readme': { type: 'boolean', default: false },
    // Runs Herald from another checkout (its bin/herald.js and dist/, built), to compare builds
    // with the same harness; such a run leaves the README and latest.json alone.
    root: { type: 'string' },
    // Node/V8 options for the Herald of rows 1-4 (e.g. '--max-semi-space-size=64' to compare V8's
    // default young generation with the one bin/herald.js sets).
    'node-options': { type: 'string', default: '' },
  },
});

const quick = args.quick;
const DURATION = quick ? 3 : 15;
const CONNECTIONS = 32;
const OPEN_LOOP_SECONDS = positiveOption(
  'open-loop-seconds',
  args['open-loop-seconds'] ?? (quick ? '2' : '10'),
  600,
);
const WARM_UP_MS = quick ? 500 : 2000;
const RATES = (args.rates ?? '200,1000,3000')
  .split(',')
  .map((r) => Math.round(positiveOption('rates', r, 100_000)));
const SENDER_CONNECTIONS = Math.round(
  positiveOption('sender-connections', args['sender-connections'], 10_000),
);
const SENDER_SPIN_MS =
  args['sender-spin-ms'] === '0' ? 0 : positiveOption('sender-spin-ms', args['sender-spin-ms'], 10);
// How long the sink may stay quiet before the accepted events it lacks count as lost.
const DRAIN_IDLE_MS = quick ? 3000 : 10_000;
const startedAt = new Date().toISOString();
const profileDir = join(repoRoot, 'bench/results/profiles', startedAt.replaceAll(':', '-'));
const only = args.only.map((o) => o.toLowerCase());
const nodeOptions = args['node-options'].split(/\s+/).filter(Boolean);
const wanted = (scenario: string, system: System) =>
  only.length === 0 || only.some((o) => `${scenario} [${system}]`.toLowerCase().includes(o));

let seq = 0;
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);
const slug = (label: string) =>
  label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');

/** Herald, with a CPU profile when --profile is on (written when it exits). */
function heraldStarter(label: string, config: (sinkUrl: string) => string) {
  const name = `${slug(label)}.cpuprofile`;
  const nodeArgs = [
    ...nodeOptions,
    ...(args.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}`] : []),
  ];
  return {
    start: (sinkUrl: string) => startHerald(config(sinkUrl), nodeArgs, args.root ?? repoRoot),
    profileFile: args.profile ? join(profileDir, name) : undefined,
  };
}

/** Reads the profile Herald wrote on exit and prints where the measured window's CPU went. */
function summarize(file: string | undefined, events: number, fromUs: number, toUs: number) {
  if (!file) return undefined;
  let profile: CpuProfile;
  try {
    profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  } catch (err) {
    // Herald writes its profile only when it exits cleanly; a crash leaves none.
    console.error(`  no CPU profile at ${file}: ${(err as Error).message}`);
    return undefined;
  }
  const summary = summarizeProfile(profile, { events, fromUs, toUs, root: repoRoot, top: 20 });
  console.error(`  profile ${file}\n${formatSummary(summary, events).replace(/^/gm, '  ')}`);
  return { file, events, summary } satisfies ProfileRecord;
}

async function load(url: string, path: string, body: () => string, contentType: string) {
  const result = await autocannon({
    url: `${url}${path}`,
    connections: CONNECTIONS,
    duration: DURATION,
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

/** A system under test: how to start it on a sink, and where its CPU profile lands (Herald, --profile). */
interface Target {
  system: System;
  start: (sinkUrl: string) => Promise<Child>;
  profileFile?: string | undefined;
}

const limit: Target = { system: 'limit', start: startBaseline };
const herald = (label: string, config: (sinkUrl: string) => string): Target => ({
  system: 'herald',
  ...heraldStarter(label, config),
});

/** A closed-loop row: throughput with CONNECTIONS requests always in flight. */
async function measure(
  scenario: string,
  target: Target,
  path: string,
  body: () => string,
  contentType: string,
  eventsPerRequest = 1,
): Promise<ThroughputRow> {
  const loadAverage = loadavg()[0]!;
  const sink = await startLatencySink();
  const proc = await target.start(sink.url);
  const t0 = Date.now();
  const fromUs = monotonicUs();
  const { accepted, errors, seconds } = await load(proc.url, path, body, contentType);
  const expected = accepted * eventsPerRequest;
  await sink.waitFor(expected, 60_000);
  const toUs = monotonicUs();
  const deliverSeconds = Math.max(0.001, (sink.lastAt - t0) / 1000);
  const delivered = sink.firstReceipt.size;
  const row: ThroughputRow = {
    scenario,
    system: target.system,
    acceptedPerSec: Math.round((accepted * eventsPerRequest) / seconds),
    deliveredPerSec: Math.round(delivered / deliverSeconds),
    p50Ms: percentile(sink.latencies, 50),
    p99Ms: percentile(sink.latencies, 99),
    peakRssMb: Math.round(proc.peakRssMb()),
    errors,
    delivered,
    duplicates: sink.duplicates,
    // Requests still in flight when the load stops may be delivered without being counted as
    // accepted, so this is a lower bound on what went missing.
    lost: Math.max(0, expected - delivered),
    loadAverage,
  };
  await proc.stop();
  await sink.close();
  const profile = summarize(target.profileFile, delivered, fromUs, toUs);
  return profile ? { ...row, profile } : row;
}

/** An open-loop row: a warm-up, then RATE requests/s for OPEN_LOOP_SECONDS, each event accounted for. */
async function openLoop(scenario: string, target: Target, rate: number): Promise<OpenLoopRow> {
  const loadAverage = loadavg()[0]!;
  const sink = await startLatencySink();
  const proc = await target.start(sink.url);
  const timeoutMs = 30_000;
  const pool = senderPool(proc.url, SENDER_CONNECTIONS, timeoutMs);
  const common = {
    pool,
    path: '/notify',
    contentType: 'application/json',
    rate,
    body: openLoopNotifyBody,
    timeoutMs,
    spinBelowMs: SENDER_SPIN_MS,
  };
  // A fresh process compiles its hot paths during the first requests; those are not measured.
  const warmUp = await sendOpenLoop({ ...common, durationMs: WARM_UP_MS, firstSeq: 0 });
  await drain(sink, warmUp, 2000, 30_000);
  const fromUs = monotonicUs();
  const sent = await sendOpenLoop({ ...common, durationMs: OPEN_LOOP_SECONDS * 1000, firstSeq: 1e9 });
  await drain(sink, sent, DRAIN_IDLE_MS, 120_000);
  const toUs = monotonicUs();
  const counts = account(sent, sink);
  await pool.destroy();
  const row: OpenLoopRow = {
    scenario,
    system: target.system,
    rate,
    seconds: OPEN_LOOP_SECONDS,
    ...counts,
    senderLagP50Ms: sent.lagUs.p50 / 1000,
    senderLagP99Ms: sent.lagUs.p99 / 1000,
    senderLagMaxMs: sent.lagUs.max / 1000,
    maxInFlight: sent.maxInFlight,
    maxQueuedAtSender: sent.maxQueuedAtSender,
    benchCpuPercent: sent.benchCpuPercent,
    peakRssMb: Math.round(proc.peakRssMb()),
    statuses: sent.statuses,
    loadAverage,
  };
  await proc.stop();
  await sink.close();
  const profile = summarize(target.profileFile, counts.delivered, fromUs, toUs);
  return profile ? { ...row, profile } : row;
}

const notifyBody = () =>
  JSON.stringify({ topic: 'sales', description: 'bench', t: Date.now(), benchSeq: ++seq });
const openLoopNotifyBody = (benchSeq: number, benchAtUs: number) =>
  JSON.stringify({ topic: 'sales', description: 'bench', benchSeq, benchAtUs });
const batchBody = () => {
  const t = Date.now();
  return JSON.stringify(
    Array.from({ length: 100 }, () => ({
      specversion: '1.0',
      id: `b${++seq}`,
      source: 'bench',
      type: 'bench.batch',
      data: { t, benchSeq: seq },
    })),
  );
};

const batchConfig = (sinkUrl: string) => `
channels:
  hook: { kind: webhook, url: ${sinkUrl}, concurrency: 64 }
triggers:
  all:
    actions: [{ channel: hook, body: { t: "{{ event.data.t }}", benchSeq: "{{ event.data.benchSeq }}" } }]
`;

const sqlTriggers = Array.from(
  { length: 99 },
  (_, i) =>
    `  other-${i}:\n    filter: { sql: "type = 'notification.created' AND subject = 'topic-${i}'" }\n    actions: [{ channel: hook }]\n`,
).join('');
const manyTriggersConfig = (sinkUrl: string) =>
  notifyConfig(sinkUrl, sqlTriggers).replace(
    'filter: { exact: { subject: sales } }',
    `filter: { sql: "type = 'notification.created' AND subject = 'sales'" }`,
  );

async function fanOut(recipients: number, label: string): Promise<ThroughputRow & { planMs: number }> {
  const loadAverage = loadavg()[0]!;
  const sink = await startLatencySink();
  const urls = Array.from({ length: recipients }, (_, i) => `${sink.url}?r=${i}`).join(',');
  const { start, profileFile } = heraldStarter(
    label,
    () => `
channels:
  # The recipients' URLs come from event data, and the sink is on loopback: allow it by name.
  hook: { kind: webhook, concurrency: 64, allowHosts: [127.0.0.1] }
triggers:
  everyone:
    actions: [{ channel: hook, to: "{{ event.data.to }}", body: { t: "{{ event.data.t }}" } }]
`,
  );
  const proc = await start(sink.url);
  const t0 = Date.now();
  const fromUs = monotonicUs();
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
  const toUs = monotonicUs();
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
    loadAverage,
    note: `planned ${recipients} deliveries in ${planMs} ms (${Math.round((recipients / Math.max(planMs, 1)) * 1000).toLocaleString('en-US')}/s)`,
  };
  await proc.stop();
  await sink.close();
  const profile = summarize(profileFile, sink.received, fromUs, toUs);
  return profile ? { ...row, profile } : row;
}

async function main() {
  const rows: ThroughputRow[] = [];
  const openLoopRows: OpenLoopRow[] = [];
  const say = (r: ThroughputRow) => {
    rows.push(r);
    console.error(
      `  ${r.scenario} [${r.system}]: ${r.acceptedPerSec}/s accepted, ${r.deliveredPerSec}/s delivered, p99 ${r.p99Ms} ms, lost ${r.lost ?? '?'} (load ${r.loadAverage?.toFixed(1)})`,
    );
  };
  const sayOpen = (r: OpenLoopRow) => {
    openLoopRows.push(r);
    console.error(
      `  ${r.scenario} [${r.system}]: sent ${r.sent}, accepted ${r.accepted}, delivered ${r.delivered}, lost ${r.lost}, duplicates ${r.duplicates}; p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms; sender lag p50 ${r.senderLagP50Ms} ms, p99 ${r.senderLagP99Ms} ms, queued at sender ≤ ${r.maxQueuedAtSender}; bench process ${r.benchCpuPercent}% CPU (load ${r.loadAverage.toFixed(1)})`,
    );
  };
  const closed = async (
    scenario: string,
    target: Target,
    path: string,
    body: () => string,
    contentType: string,
    eventsPerRequest = 1,
  ) => {
    if (wanted(scenario, target.system))
      say(await measure(scenario, target, path, body, contentType, eventsPerRequest));
  };
  console.error(
    `bench: ${quick ? 'quick' : 'full'} run, closed loop ${DURATION}s × ${CONNECTIONS} connections, open loop ${OPEN_LOOP_SECONDS}s at ${RATES.join(', ')} ev/s${only.length ? `, only rows matching ${only.join(' | ')}` : ''}${args.profile ? `, CPU profiles in ${profileDir}` : ''}${args.root ? `, Herald from ${args.root}` : ''}${nodeOptions.length ? `, Herald with ${nodeOptions.join(' ')}` : ''}`,
  );

  const s1 = '1. /notify → 1 trigger → webhook';
  await closed(s1, limit, '/notify', notifyBody, 'application/json');
  await closed(
    s1,
    herald(`${s1} herald`, (u) => notifyConfig(u)),
    '/notify',
    notifyBody,
    'application/json',
  );

  for (const rate of RATES) {
    const scenario = `1b. /notify open loop at ${rate} ev/s`;
    for (const target of [limit, herald(scenario, (u) => notifyConfig(u))])
      if (wanted(scenario, target.system)) sayOpen(await openLoop(scenario, target, rate));
  }

  const s2 = '2. CloudEvents batch of 100 → /events (durable) → webhook';
  const batchType = 'application/cloudevents-batch+json';
  await closed(s2, limit, '/events', batchBody, batchType, 100);
  await closed(s2, herald(`${s2} herald`, batchConfig), '/events', batchBody, batchType, 100);

  const s3 = '3. fan-out';
  if (wanted(s3, 'herald')) say(await fanOut(quick ? 1000 : 10_000, s3));

  const s4 = '4. 100 sql triggers, one matching';
  await closed(s4, limit, '/notify', notifyBody, 'application/json');
  await closed(s4, herald(`${s4} herald`, manyTriggersConfig), '/notify', notifyBody, 'application/json');

  if (wanted('5. /herald subscribe ack', 'herald')) say(await benchSlackAck(quick ? 100 : 500));

  const cesql = wanted('6. CESQL', 'herald') ? await benchCesql(quick ? 500 : 3000) : undefined;
  const results: Results = {
    at: startedAt,
    quick,
    only,
    durationSeconds: DURATION,
    openLoopSeconds: OPEN_LOOP_SECONDS,
    connections: CONNECTIONS,
    machine: {
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      memoryGb: Math.round(totalmem() / 2 ** 30),
      node: process.version,
    },
    rows,
    openLoop: openLoopRows,
    ...(cesql ? { cesqlEvalsPerSecond: cesql.evalsPerSecond } : {}),
  };
  const dir = join(repoRoot, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${startedAt.replaceAll(':', '-')}.json`);
  const json = `${JSON.stringify(results, null, 2)}\n`;
  writeFileSync(file, json);
  const markdown = resultsMarkdown(results);
  console.log(`\nHerald benchmark\n\n${markdown}\n`);
  console.log(`results: ${file}`);
  // Only a complete, unprofiled run of full length speaks for the project; partial runs stay local.
  if (
    !quick &&
    only.length === 0 &&
    !args.profile &&
    !args['no-readme'] &&
    !args.root &&
    nodeOptions.length === 0
  ) {
    writeFileSync(join(dir, 'latest.json'), json);
    const readme = join(repoRoot, 'README.md');
    writeFileSync(readme, replaceBenchBlock(readFileSync(readme, 'utf8'), markdown));
    console.log(`README.md's bench block and bench/results/latest.json rewritten`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
