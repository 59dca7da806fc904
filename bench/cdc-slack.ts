// `node --import tsx bench/cdc-slack.ts [--rate 500] [--seconds 20] [--warmup S] [--users 2000] [--concurrency 32]`:
// a commit in PostgreSQL → a Slack DM at the local Slack-compatible server, at a steady rate of
// single-row commits. Herald runs as its own process (postgres-cdc source, SQLite store at
// synchronous=FULL, slack channel); the writer and the Slack server share this process and clock,
// so latency = the server's receipt of chat.postMessage − the moment the COMMIT returned.
// Needs the local PostgreSQL (wal_level=logical); removes its slot, publication and table.
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type pg from 'pg';
import { type HeraldProcess, spawnHerald, tempDir } from '../test/support/herald.js';
import { cdcNames, PG_URL, pgClient } from '../test/support/postgres.js';
import { startSlackServer } from '../test/support/slack/index.js';
import { percentile } from './support.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  const value = i > 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value < 0)
    throw new Error(`${name} needs a number, got ${process.argv[i + 1]}`);
  return value;
};
const RATE = arg('--rate', 500);
const SECONDS = arg('--seconds', 20);
const USERS = arg('--users', 2000);
// A user's first DM also opens the DM channel (one more Web API call, then remembered): by
// default the warm-up reaches every user once, so the figures are the steady state. `--warmup 0`
// measures the first DMs too.
const WARMUP_SECONDS = arg('--warmup', Math.ceil(USERS / RATE) + 1);
/** Connections committing at once: one PostgreSQL commit (an fsync) can take longer than 1/RATE. */
const WRITERS = 8;
const PACING_MS = 1000;
const CONCURRENCY = arg('--concurrency', 32);

const warmupChanges = Math.round(RATE * WARMUP_SECONDS);
const totalChanges = warmupChanges + Math.round(RATE * SECONDS);
const userId = (i: number) => `U${String(i).padStart(7, '0')}`;

const n = cdcNames();
const table = n.table('bench_dm');
const db = await pgClient();
const dir = tempDir('herald-bench-cdc-slack-');
const slack = await startSlackServer();
for (let i = 0; i < USERS; i++) slack.addUser({ id: userId(i), name: `user${i}` });
await db.query(
  `CREATE TABLE ${table} (id int PRIMARY KEY, seq int NOT NULL, owner text NOT NULL, note text)`,
);
await db.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
writeFileSync(
  join(dir.path, 'herald.yaml'),
  `
sources:
  db:
    kind: postgres-cdc
    url: ${PG_URL}
    tables: [${table}]
    slot: ${n.slot}
    publication: ${n.publication}
channels:
  dm:
    kind: slack
    token: ${slack.token}
    apiUrl: ${slack.url}
    perChannelIntervalMs: ${PACING_MS}
    concurrency: ${CONCURRENCY}
triggers:
  owner-dm:
    filter: { sql: "iodebeziumop = 'c' OR iodebeziumop = 'u'" }
    actions:
      - channel: dm
        to: "{{ event.data.after.owner }}"
        text: "change {{ event.data.after.seq }} on row {{ event.data.after.id }}"
`,
);

/**
 * Where a thread's wall time went (Linux /proc/<pid>/schedstat, the main thread: Node's event
 * loop): on a CPU, or runnable but waiting for one. The rest is idle or blocked (e.g. in fsync).
 */
function schedstat(pid: number | undefined): { runMs: number; waitMs: number } {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number);
    return { runMs: run! / 1e6, waitMs: wait! / 1e6 };
  } catch {
    return { runMs: 0, waitMs: 0 };
  }
}

const committedAt = new Float64Array(totalChanges).fill(Number.NaN);
const behindSchedule: number[] = [];
let noRowUpdated = 0;

let inserted = 0;

/**
 * Commits changes [from, to) each on its due time (`start` + its place at RATE), one statement per
 * transaction. The first changes insert rows; later ones alternate between inserting and updating
 * a row inserted long enough ago to be committed. DMs go round-robin over the users, so each user
 * gets one every USERS / RATE seconds.
 */
async function write(from: number, to: number, start: number): Promise<void> {
  const writers: pg.Client[] = await Promise.all(Array.from({ length: WRITERS }, () => pgClient()));
  let next = from;
  try {
    await Promise.all(
      writers.map(async (w) => {
        while (next < to) {
          const seq = next++;
          const due = start + ((seq - from) * 1000) / RATE;
          const wait = due - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          if (seq >= warmupChanges) behindSchedule.push(Math.max(0, Date.now() - due));
          const owner = userId(seq % USERS);
          const update = inserted > 2 * RATE && seq % 2 === 1;
          if (update) {
            const id = 1 + ((seq * 7919) % (inserted - RATE));
            const r = await w.query(`UPDATE ${table} SET seq = $1, owner = $2 WHERE id = $3`, [
              seq,
              owner,
              id,
            ]);
            if (r.rowCount === 0) {
              noRowUpdated++;
              continue;
            }
          } else {
            const id = ++inserted;
            await w.query(`INSERT INTO ${table} (id, seq, owner, note) VALUES ($1, $2, $3, 'bench')`, [
              id,
              seq,
              owner,
            ]);
          }
          committedAt[seq] = Date.now();
        }
      }),
    );
  } finally {
    await Promise.all(writers.map((w) => w.end()));
  }
}

const firstSeen = new Float64Array(totalChanges).fill(Number.NaN);
let duplicates = 0;
let scanned = 0;
/** Matches the DMs the Slack server has received so far back to their changes. */
function scan(): void {
  const posts = slack.calls;
  for (; scanned < posts.length; scanned++) {
    const call = posts[scanned]!;
    if (call.method !== 'chat.postMessage') continue;
    const m = /^change (\d+) /.exec(String(call.args.text));
    if (!m) continue;
    const seq = Number(m[1]);
    if (Number.isNaN(firstSeen[seq]!)) firstSeen[seq] = call.at;
    else duplicates++;
  }
}

/** Waits until every committed change in [from, to) has its DM, or a minute has passed. */
async function received(from: number, to: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    scan();
    let missing = 0;
    for (let seq = from; seq < to; seq++)
      if (!Number.isNaN(committedAt[seq]!) && Number.isNaN(firstSeen[seq]!)) missing++;
    if (missing === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

let herald: HeraldProcess | undefined;
try {
  herald = await spawnHerald(['--config', join(dir.path, 'herald.yaml'), '--data', dir.path, '--port', '0'], {
    HERALD_LOG_LEVEL: 'info',
  });
  const heraldPid = herald.child.pid;
  // The source is ready once it has created its slot.
  for (let i = 0; ; i++) {
    const r = await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [n.slot]);
    if (r.rowCount) break;
    if (i > 600) throw new Error(`the source did not create slot ${n.slot} within 60 s`);
    await new Promise((r) => setTimeout(r, 100));
  }

  // Warm-up at the same rate (a fresh process compiles its code as it goes), then a pause until
  // every warm-up DM is in, so its queue does not spill into the measured window.
  await write(0, warmupChanges, Date.now());
  const warmedAt = Date.now();
  await received(0, warmupChanges);
  const warmupDrainMs = Date.now() - warmedAt;

  const measureFrom = Date.now();
  const atMeasure = schedstat(heraldPid);
  const ownAtMeasure = schedstat(process.pid);
  await write(warmupChanges, totalChanges, measureFrom);
  const writtenAt = Date.now();
  const atWritten = schedstat(heraldPid);
  // Every DM that will come comes well within a minute of the last commit on any machine.
  await received(warmupChanges, totalChanges);
  const drainedAt = Date.now();
  const atDrained = schedstat(heraldPid);
  const ownAtDrained = schedstat(process.pid);
  const share = (
    from: { runMs: number; waitMs: number },
    to: { runMs: number; waitMs: number },
    wallMs: number,
  ) => {
    const pct = (ms: number) => Math.round((ms / Math.max(1, wallMs)) * 100);
    return `on a CPU ${pct(to.runMs - from.runMs)}%, waiting for a CPU ${pct(to.waitMs - from.waitMs)}%`;
  };

  const latencies: number[] = [];
  let measured = 0;
  let lost = 0;
  let firstCommit = Number.POSITIVE_INFINITY;
  let lastCommit = 0;
  // Latency over the run: flat when Herald keeps up, rising when a queue grows.
  const SLICE_SECONDS = Math.max(1, Math.round(SECONDS / 10));
  const bySlice: number[][] = [];
  for (let seq = warmupChanges; seq < totalChanges; seq++) {
    const t = committedAt[seq]!;
    if (Number.isNaN(t)) continue;
    measured++;
    firstCommit = Math.min(firstCommit, t);
    lastCommit = Math.max(lastCommit, t);
    const at = firstSeen[seq]!;
    if (Number.isNaN(at)) lost++;
    else {
      latencies.push(at - t);
      const slice = Math.floor((seq - warmupChanges) / (RATE * SLICE_SECONDS));
      if (!bySlice[slice]) bySlice[slice] = [];
      bySlice[slice].push(at - t);
    }
  }
  // Where the time goes, per change, from Herald's own log: PostgreSQL's commit timestamp
  // (source.ts_ms), the event's append to the log, its routing commit, and the first attempt.
  const stages = {
    commitToLog: [] as number[],
    logToRouted: [] as number[],
    routedToSend: [] as number[],
    sendToSlack: [] as number[],
    pgCommitToReturn: [] as number[],
    attempt: [] as number[],
  };
  const log = new Database(join(dir.path, 'herald.db'), { readonly: true, fileMustExist: true });
  const rows = log
    .prepare(
      `SELECT json_extract(e.event, '$.data.after.seq') AS seq, json_extract(e.event, '$.data.source.ts_ms') AS pgCommit,
              e.received_at AS receivedAt, e.routed_at AS routedAt, MIN(a.started_at) AS sentAt, MIN(a.duration_ms) AS attemptMs
         FROM events e JOIN deliveries d ON d.event_seq = e.seq JOIN attempts a ON a.delivery_id = d.id
        GROUP BY e.seq`,
    )
    .all() as {
    seq: number;
    pgCommit: number;
    receivedAt: number;
    routedAt: number;
    sentAt: number;
    attemptMs: number;
  }[];
  // Sends in flight on average while Slack calls were being made, against the channel's limit.
  const span = log
    .prepare(
      'SELECT SUM(duration_ms) AS busy, MIN(started_at) AS first, MAX(started_at + duration_ms) AS last FROM attempts',
    )
    .get() as { busy: number; first: number; last: number };
  const sendsInFlight = Math.round((span.busy / Math.max(1, span.last - span.first)) * 10) / 10;
  log.close();
  for (const r of rows) {
    if (r.seq < warmupChanges) continue;
    const committed = committedAt[r.seq]!;
    const at = firstSeen[r.seq]!;
    if (Number.isNaN(committed) || Number.isNaN(at)) continue;
    stages.pgCommitToReturn.push(committed - r.pgCommit);
    stages.commitToLog.push(r.receivedAt - committed);
    stages.logToRouted.push(r.routedAt - r.receivedAt);
    stages.routedToSend.push(r.sentAt - r.routedAt);
    stages.sendToSlack.push(at - r.sentAt);
    stages.attempt.push(r.attemptMs);
  }
  const spread = (v: number[]) =>
    `p50 ${percentile(v, 50)} / p99 ${percentile(v, 99)} / max ${percentile(v, 100)}`;

  const users = new Set<string>();
  for (const c of slack.callsTo('chat.postMessage')) users.add(String(c.args.channel));

  const result = {
    scenario: 'PostgreSQL commit → Slack DM (chat.postMessage at the local Slack-compatible server)',
    targetRate: RATE,
    seconds: SECONDS,
    warmupSeconds: WARMUP_SECONDS,
    achievedCommitsPerSec: Math.round((measured / Math.max(1, lastCommit - firstCommit)) * 1000),
    committed: measured,
    received: latencies.length,
    // No DM within a minute of the last commit.
    lost,
    duplicates,
    p50Ms: percentile(latencies, 50),
    p95Ms: percentile(latencies, 95),
    p99Ms: percentile(latencies, 99),
    maxMs: percentile(latencies, 100),
    [`p99MsPer${SLICE_SECONDS}s`]: bySlice.map((v) => percentile(v, 99)).join(' '),
    stagesMs: {
      'PostgreSQL commit time → COMMIT returned to the writer': spread(stages.pgCommitToReturn),
      'COMMIT returned → in Herald’s log (CDC stream + durable append)': spread(stages.commitToLog),
      'in the log → routed (deliveries planned, committed)': spread(stages.logToRouted),
      'routed → first send started (dispatcher)': spread(stages.routedToSend),
      'send started → chat.postMessage received (conversations.open + postMessage)': spread(
        stages.sendToSlack,
      ),
      'whole attempt (both Slack calls and their answers)': spread(stages.attempt),
    },
    sendsInFlightOnAverage: `${sendsInFlight} of ${CONCURRENCY} (the slack channel's concurrency)`,
    writerBehindScheduleP99Ms: Math.round(percentile(behindSchedule, 99)),
    updatesThatMatchedNoRow: noRowUpdated,
    mainThreads: {
      heraldWhileWriting: share(atMeasure, atWritten, writtenAt - measureFrom),
      heraldWhileDraining: share(atWritten, atDrained, drainedAt - writtenAt),
      writerAndSlackServer: share(ownAtMeasure, ownAtDrained, drainedAt - measureFrom),
    },
    drainMs: drainedAt - writtenAt,
    warmupDrainMs,
    slack: `${USERS.toLocaleString('en-US')} users, DMs round-robin (each user one DM every ${USERS / RATE} s); the slack channel paces ${PACING_MS} ms per Slack channel and each user's DM is its own channel, so ${(USERS / RATE) * 1000 >= PACING_MS ? 'pacing never waits here' : 'DMs wait for their user’s turn'}; ${users.size} DM channels got messages`,
    writer: `${WRITERS} connections, one single-row INSERT or UPDATE per transaction, on a fixed schedule`,
    machine: `${cpus().length} cores; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(', ')} (1, 5, 15 min) at the end`,
  };
  console.log(JSON.stringify(result, null, 2));
  if (lost > 0) process.exitCode = 1;
} finally {
  await herald?.kill();
  await slack.close();
  await n.cleanup(db);
  await db.end();
  dir.remove();
}
