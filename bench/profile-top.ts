// The functions a V8 CPU profile (`node --cpu-prof`) spent the most self time in.
// Run: node --import tsx bench/profile-top.ts FILE.cpuprofile [--events N] [--top 20]
//        [--from-us T --to-us T]   (a window on the monotonic clock, as process.hrtime gives it)
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface TopEntry {
  /** `function url:line` (line 1-based); V8's own buckets keep their names, e.g. `(garbage collector)`. */
  name: string;
  selfUs: number;
  /** Of all sampled time in the window, idle included. */
  percent: number;
  /** Of the time the process was not idle. */
  busyPercent: number;
  /** Self time divided by the events delivered in the window (0 when not given). */
  usPerEvent: number;
}

export interface ProfileSummary {
  windowUs: number;
  busyUs: number;
  top: TopEntry[];
}

const IDLE = '(idle)';

function frameName(frame: CallFrame, root: string): string {
  if (!frame.url) return frame.functionName || '(anonymous)';
  const url = frame.url.startsWith('file://') ? relative(root, new URL(frame.url).pathname) : frame.url;
  return `${frame.functionName || '(anonymous)'} ${url}:${frame.lineNumber + 1}`;
}

/**
 * Sums each function's self time: a sample's time is the delta to the next sample, charged to the
 * node the sample landed in. Nodes of the same function (one per call path) add up.
 * `fromUs`/`toUs` keep only samples taken in that window (the profile's own clock is monotonic µs).
 */
export function summarizeProfile(
  profile: CpuProfile,
  options: { events?: number; top?: number; fromUs?: number; toUs?: number; root?: string } = {},
): ProfileSummary {
  const root = options.root ?? process.cwd();
  const nameOf = new Map<number, string>();
  for (const node of profile.nodes) nameOf.set(node.id, frameName(node.callFrame, root));
  const fromUs = options.fromUs ?? Number.NEGATIVE_INFINITY;
  const toUs = options.toUs ?? Number.POSITIVE_INFINITY;
  const selfUs = new Map<string, number>();
  let windowUs = 0;
  let idleUs = 0;
  // Sample i is taken at startTime + the deltas up to and including i; it covers the time until the next.
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    const span = i + 1 < profile.samples.length ? (profile.timeDeltas[i + 1] ?? 0) : profile.endTime - at;
    if (at < fromUs || at >= toUs || span <= 0) continue;
    const name = nameOf.get(profile.samples[i]!) ?? '(unknown)';
    selfUs.set(name, (selfUs.get(name) ?? 0) + span);
    windowUs += span;
    if (name === IDLE) idleUs += span;
  }
  const busyUs = windowUs - idleUs;
  const events = options.events ?? 0;
  const top = [...selfUs]
    .filter(([name]) => name !== IDLE)
    .sort((a, b) => b[1] - a[1])
    .slice(0, options.top ?? 20)
    .map(([name, us]) => ({
      name,
      selfUs: us,
      percent: windowUs > 0 ? (us / windowUs) * 100 : 0,
      busyPercent: busyUs > 0 ? (us / busyUs) * 100 : 0,
      usPerEvent: events > 0 ? us / events : 0,
    }));
  return { windowUs, busyUs, top };
}

export function formatSummary(summary: ProfileSummary, events = 0): string {
  const lines = [
    `CPU profile: ${(summary.windowUs / 1e6).toFixed(2)} s sampled, busy ${pct(summary.busyUs, summary.windowUs)}` +
      (events > 0
        ? `; ${events.toLocaleString('en-US')} events delivered, ${(summary.busyUs / events).toFixed(1)} µs busy per event`
        : ''),
    `  self %  of busy${events > 0 ? '  µs/event' : ''}  function`,
  ];
  for (const e of summary.top) {
    lines.push(
      `  ${e.percent.toFixed(1).padStart(6)}  ${e.busyPercent.toFixed(1).padStart(7)}` +
        `${events > 0 ? e.usPerEvent.toFixed(2).padStart(10) : ''}  ${e.name}`,
    );
  }
  return lines.join('\n');
}

const pct = (part: number, whole: number) => (whole > 0 ? `${((part / whole) * 100).toFixed(1)}%` : '0%');

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      events: { type: 'string' },
      top: { type: 'string' },
      'from-us': { type: 'string' },
      'to-us': { type: 'string' },
    },
  });
  if (positionals.length !== 1) {
    console.error('usage: profile-top FILE.cpuprofile [--events N] [--top 20] [--from-us T --to-us T]');
    process.exit(2);
  }
  const events = values.events ? Number(values.events) : 0;
  const profile = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as CpuProfile;
  const summary = summarizeProfile(profile, {
    events,
    top: values.top ? Number(values.top) : 20,
    ...(values['from-us'] ? { fromUs: Number(values['from-us']) } : {}),
    ...(values['to-us'] ? { toUs: Number(values['to-us']) } : {}),
  });
  console.log(formatSummary(summary, events));
}
