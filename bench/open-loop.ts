// An open-loop sender: requests leave on a fixed schedule whatever the answers do, so a slow system
// under test cannot slow the sender down and hide its own queueing (coordinated omission). Each body
// carries its sequence number and the instant it was scheduled for; the sink (same process, same
// clock) measures latency from that instant, so a late send counts against the latency too.
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { type LatencySink, nowUs } from './support.js';

export interface OpenLoopOptions {
  /** Sockets to the system under test, from `senderPool`; kept open across phases (warm-up, measured). */
  pool: Pool;
  path: string;
  contentType: string;
  /** Requests per second. */
  rate: number;
  durationMs: number;
  /** The first request's sequence number; the next ones follow it. */
  firstSeq: number;
  body(seq: number, scheduledAtUs: number): string;
  /** Waiting for the last answers stops after this (the pool's own timeout plus a margin). */
  timeoutMs: number;
  /**
   * When the next send is due sooner than this, the sender yields with setImmediate instead of a
   * timer: Node's timers fire up to a millisecond late, which would show as sender lag.
   */
  spinBelowMs: number;
}

export type Outcome = 0 | 1 | 2 | 3;
export const PENDING: Outcome = 0;
export const ACCEPTED: Outcome = 1;
export const REJECTED: Outcome = 2;
export const FAILED: Outcome = 3;

export interface SendReport {
  firstSeq: number;
  sent: number;
  /** Per request (index = seq − firstSeq): PENDING, ACCEPTED (2xx), REJECTED (other status), FAILED. */
  outcomes: Uint8Array;
  statuses: Record<string, number>;
  /** How late each request left, µs past its scheduled instant. */
  lagUs: { p50: number; p99: number; max: number };
  maxInFlight: number;
  /** Requests that waited for a free socket in the sender's pool at the worst moment (0 = never). */
  maxQueuedAtSender: number;
  /** CPU time of the bench process (sender and sink) per second of sending, in %. */
  benchCpuPercent: number;
  sendSeconds: number;
}

/**
 * A pool with enough sockets that requests never wait for one (see `maxQueuedAtSender`); a request
 * without an answer after `timeoutMs` counts as failed.
 */
export function senderPool(origin: string, connections: number, timeoutMs: number): Pool {
  return new Pool(origin, {
    connections,
    pipelining: 1,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    keepAliveTimeout: 60_000,
  });
}

export async function sendOpenLoop(o: OpenLoopOptions): Promise<SendReport> {
  const total = Math.max(1, Math.round((o.rate * o.durationMs) / 1000));
  const intervalUs = 1e6 / o.rate;
  const outcomes = new Uint8Array(total);
  const lags = new Float64Array(total);
  const statuses: Record<string, number> = {};
  const pool = o.pool;
  let inFlight = 0;
  let maxInFlight = 0;
  let maxQueued = 0;
  let answered = 0;
  const headers = { 'content-type': o.contentType };
  const cpuBefore = process.cpuUsage();
  const startUs = nowUs() + 2000;
  let next = 0;

  const fire = (i: number, scheduledUs: number) => {
    const seq = o.firstSeq + i;
    const body = o.body(seq, Math.round(scheduledUs));
    lags[i] = nowUs() - scheduledUs;
    inFlight++;
    if (inFlight > maxInFlight) maxInFlight = inFlight;
    pool
      .request({ path: o.path, method: 'POST', headers, body })
      .then(
        async (res) => {
          await res.body.dump();
          const ok = res.statusCode >= 200 && res.statusCode < 300;
          outcomes[i] = ok ? ACCEPTED : REJECTED;
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        },
        (err: Error & { code?: string }) => {
          outcomes[i] = FAILED;
          const key = err.code ?? err.name;
          statuses[key] = (statuses[key] ?? 0) + 1;
        },
      )
      .finally(() => {
        inFlight--;
        answered++;
      });
  };

  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = nowUs();
      while (next < total && startUs + next * intervalUs <= now) {
        fire(next, startUs + next * intervalUs);
        next++;
      }
      const queued = pool.stats.queued;
      if (queued > maxQueued) maxQueued = queued;
      if (next >= total) return resolve();
      const waitMs = (startUs + next * intervalUs - nowUs()) / 1000;
      if (waitMs < o.spinBelowMs) setImmediate(tick);
      else setTimeout(tick, Math.max(0, Math.floor(waitMs - o.spinBelowMs)));
    };
    setTimeout(tick, 1);
  });
  const sendSeconds = (nowUs() - startUs) / 1e6;
  const cpu = process.cpuUsage(cpuBefore);
  const deadline = performance.now() + o.timeoutMs + 5000;
  while (answered < total && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const sortedLags = Array.from(lags).sort((a, b) => a - b);
  return {
    firstSeq: o.firstSeq,
    sent: total,
    outcomes,
    statuses,
    lagUs: {
      p50: Math.round(quantile(sortedLags, 0.5)),
      p99: Math.round(quantile(sortedLags, 0.99)),
      max: Math.round(sortedLags[sortedLags.length - 1] ?? 0),
    },
    maxInFlight,
    maxQueuedAtSender: maxQueued,
    benchCpuPercent: Math.round(((cpu.user + cpu.system) / 1e6 / Math.max(sendSeconds, 1e-3)) * 100),
    sendSeconds,
  };
}

/** Waits until the sink has every accepted request, or nothing new arrived for `idleMs`, or `maxMs`. */
export async function drain(sink: LatencySink, sent: SendReport, idleMs: number, maxMs: number) {
  const want: number[] = [];
  sent.outcomes.forEach((o, i) => {
    if (o === ACCEPTED) want.push(sent.firstSeq + i);
  });
  const deadline = performance.now() + maxMs;
  let lastCount = -1;
  let lastProgress = performance.now();
  for (;;) {
    let have = 0;
    for (const seq of want) if (sink.firstReceipt.has(seq)) have++;
    const now = performance.now();
    if (sink.received !== lastCount) {
      lastCount = sink.received;
      lastProgress = now;
    }
    if (have === want.length || now > deadline || now - lastProgress > idleMs) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every request sent accounted for, and the latency of the delivered ones (ms, scheduled → sink). */
export interface Accounting {
  sent: number;
  accepted: number;
  rejected: number;
  failed: number;
  /** Distinct sequence numbers the sink received, whatever their answer was. */
  delivered: number;
  duplicates: number;
  /** Accepted (2xx) but never delivered. */
  lost: number;
  /** Delivered although the answer was not a 2xx (e.g. it timed out at the sender). */
  deliveredUnacknowledged: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

export function account(sent: SendReport, sink: LatencySink): Accounting {
  const a: Accounting = {
    sent: sent.sent,
    accepted: 0,
    rejected: 0,
    failed: 0,
    delivered: 0,
    duplicates: 0,
    lost: 0,
    deliveredUnacknowledged: 0,
    p50Ms: 0,
    p99Ms: 0,
    p999Ms: 0,
    maxMs: 0,
  };
  const latencies: number[] = [];
  for (let i = 0; i < sent.sent; i++) {
    const outcome = sent.outcomes[i];
    if (outcome === ACCEPTED) a.accepted++;
    else if (outcome === REJECTED) a.rejected++;
    else a.failed++;
    const seq = sent.firstSeq + i;
    a.duplicates += sink.duplicatesOf.get(seq) ?? 0;
    const latencyUs = sink.firstReceipt.get(seq);
    if (latencyUs === undefined) {
      if (outcome === ACCEPTED) a.lost++;
      continue;
    }
    a.delivered++;
    if (outcome !== ACCEPTED) a.deliveredUnacknowledged++;
    if (latencyUs >= 0) latencies.push(latencyUs / 1000);
  }
  latencies.sort((x, y) => x - y);
  a.p50Ms = round2(quantile(latencies, 0.5));
  a.p99Ms = round2(quantile(latencies, 0.99));
  a.p999Ms = round2(quantile(latencies, 0.999));
  a.maxMs = round2(latencies[latencies.length - 1] ?? 0);
  return a;
}

/** The nearest-rank quantile of sorted values (0 for none). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round2 = (n: number) => Math.round(n * 100) / 100;
