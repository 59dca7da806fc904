// The bench's tables (markdown) and the README block they are written into.
import type { Accounting } from './open-loop.js';
import type { ProfileSummary } from './profile-top.js';

export type System = 'herald' | 'limit';

/** A closed-loop row: as many requests as the connections carry, for throughput. */
export interface ThroughputRow {
  scenario: string;
  system: System;
  acceptedPerSec: number;
  deliveredPerSec: number;
  p50Ms: number;
  p99Ms: number;
  peakRssMb: number;
  /** Requests answered with an error or not at all. */
  errors: number;
  /** Distinct events the sink received (rows whose bodies carry a sequence number). */
  delivered?: number;
  duplicates?: number;
  /** Accepted events the sink never received after the drain wait. */
  lost?: number;
  note?: string;
  loadAverage?: number;
  profile?: ProfileRecord;
}

/** An open-loop row: a fixed rate, latency from each request's scheduled send to the sink. */
export interface OpenLoopRow extends Accounting {
  scenario: string;
  system: System;
  rate: number;
  seconds: number;
  senderLagP50Ms: number;
  senderLagP99Ms: number;
  senderLagMaxMs: number;
  maxInFlight: number;
  maxQueuedAtSender: number;
  benchCpuPercent: number;
  peakRssMb: number;
  statuses: Record<string, number>;
  loadAverage: number;
  profile?: ProfileRecord;
}

export interface ProfileRecord {
  file: string;
  events: number;
  summary: ProfileSummary;
}

export interface Machine {
  cpus: number;
  cpu: string | undefined;
  memoryGb: number;
  node: string;
}

export interface Results {
  at: string;
  quick: boolean;
  only: string[];
  durationSeconds: number;
  openLoopSeconds: number;
  connections: number;
  machine: Machine;
  rows: ThroughputRow[];
  openLoop: OpenLoopRow[];
  cesqlEvalsPerSecond?: number;
}

const fmt = (n: number) => n.toLocaleString('en-US');
const ms = (n: number) => (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : fmt(Math.round(n)));
const percent = (part: number, whole: number) => `${Math.round((part / whole) * 100)}%`;
const SINGLE_TRIGGER = '1. ';
const MANY_TRIGGERS = '4. ';

export function throughputTable(rows: ThroughputRow[]): string {
  const limitOf = (scenario: string) => rows.find((r) => r.scenario === scenario && r.system === 'limit');
  const singleTrigger = rows.find((r) => r.scenario.startsWith(SINGLE_TRIGGER) && r.system === 'herald');
  const lines = [
    '| scenario | system | accepted ev/s | delivered ev/s | delivered vs limit | p50 ms | p99 ms | peak RSS MB | errors | duplicates | lost |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const limit = limitOf(r.scenario);
    const ratio =
      r.system === 'herald' && limit?.deliveredPerSec
        ? percent(r.deliveredPerSec, limit.deliveredPerSec)
        : '';
    const notes = [r.note];
    if (r.scenario.startsWith(MANY_TRIGGERS) && r.system === 'herald' && singleTrigger?.deliveredPerSec)
      notes.push(`${percent(r.deliveredPerSec, singleTrigger.deliveredPerSec)} of the single-trigger row`);
    const note = notes.filter(Boolean).join('; ');
    lines.push(
      `| ${r.scenario}${note ? ` (${note})` : ''} | ${r.system} | ${fmt(r.acceptedPerSec)} | ${fmt(r.deliveredPerSec)} | ${ratio} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${r.peakRssMb} | ${r.errors} | ${r.duplicates ?? ''} | ${r.lost ?? ''} |`,
    );
  }
  return lines.join('\n');
}

export function openLoopTable(rows: OpenLoopRow[]): string {
  const lines = [
    '| open loop | system | rate ev/s | sent | accepted | rejected | delivered | duplicates | lost | p50 ms | p99 ms | p99.9 ms | max ms | sender lag p99 ms | peak RSS MB |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.scenario} | ${r.system} | ${fmt(r.rate)} | ${fmt(r.sent)} | ${fmt(r.accepted)} | ${fmt(r.rejected + r.failed)} | ${fmt(r.delivered)} | ${r.duplicates} | ${r.lost} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${ms(r.p999Ms)} | ${ms(r.maxMs)} | ${ms(r.senderLagP99Ms)} | ${r.peakRssMb} |`,
    );
  }
  return lines.join('\n');
}

/** The whole generated block: where it ran, both tables, the CESQL figure. */
export function resultsMarkdown(results: Results): string {
  const m = results.machine;
  const loads = [...results.rows, ...results.openLoop]
    .map((r) => r.loadAverage)
    .filter((l): l is number => l !== undefined);
  // Other work on the machine shows in every figure; the load average at each row's start says how much.
  const load =
    loads.length > 0
      ? `; 1-minute load average ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} as rows started`
      : '';
  const parts = [
    `Run of ${results.at.slice(0, 10)} on ${m.cpus} cores (${m.cpu ?? 'unknown CPU'}), ${m.memoryGb} GB, Node ${m.node}` +
      `${results.quick ? ', quick mode' : ''}; closed loop ${results.durationSeconds} s at ${results.connections} connections, ` +
      `open loop ${results.openLoopSeconds} s per rate after a warm-up${load}.`,
  ];
  if (results.rows.length > 0) parts.push(throughputTable(results.rows));
  if (results.openLoop.length > 0) parts.push(openLoopTable(results.openLoop));
  if (results.cesqlEvalsPerSecond !== undefined)
    parts.push(`CESQL filter evaluation: ${fmt(results.cesqlEvalsPerSecond)} evaluations/s on one core.`);
  return parts.join('\n\n');
}

export const README_START = '<!-- bench:start -->';
export const README_END = '<!-- bench:end -->';

/** Replaces what lies between the bench markers; the markers must be there, once each, in order. */
export function replaceBenchBlock(readme: string, block: string): string {
  const start = readme.indexOf(README_START);
  const end = readme.indexOf(README_END);
  if (start < 0 || end < 0 || end < start || readme.indexOf(README_START, start + 1) >= 0)
    throw new Error(`README must hold ${README_START} then ${README_END}, once each`);
  return `${readme.slice(0, start + README_START.length)}\n${block.trim()}\n${readme.slice(end)}`;
}
