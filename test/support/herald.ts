import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type RunningHerald, type StartOptions, startHerald } from '../../src/app.js';
import type { SourceDeadLetter, Store } from '../../src/engine/store.js';
import { createLogger } from '../../src/logger.js';

export const repoRoot = new URL('../..', import.meta.url).pathname;

export function tempDir(prefix = 'herald-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Log lines a test can read; nothing reaches the console unless HERALD_TEST_LOG is set. */
export function captureLogger() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) {
        if (!line) continue;
        lines.push(JSON.parse(line));
        if (process.env.HERALD_TEST_LOG) process.stderr.write(`${line}\n`);
      }
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines };
}

export interface TestHerald extends RunningHerald {
  dir: string;
  logs: Record<string, unknown>[];
  /** Stops Herald and removes its data directory. */
  close(): Promise<void>;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
  get(path: string, headers?: Record<string, string>): Promise<Response>;
}

/** Starts Herald in this process on a free port with the given YAML config and a fresh data dir. */
export async function startTestHerald(
  configYaml: string,
  options: Partial<StartOptions> = {},
): Promise<TestHerald> {
  const dir = tempDir();
  const configFile = join(dir.path, 'herald.yaml');
  writeFileSync(configFile, configYaml);
  const { logger, lines } = captureLogger();
  const running = await startHerald({
    configFile,
    port: 0,
    host: '127.0.0.1',
    dataDir: dir.path,
    logger,
    env: {},
    ...options,
  });
  return {
    ...running,
    dir: dir.path,
    logs: lines,
    async close() {
      await running.stop();
      dir.remove();
    },
    post: (path, body, headers = {}) =>
      fetch(`${running.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    get: (path, headers = {}) => fetch(`${running.url}${path}`, { headers }),
  };
}

/** Polls until `check` returns a value that is not undefined/false, or fails after timeoutMs. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 5000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * An event's deliveries as `GET /api/events/:id` shows them, once the event is routed; undefined
 * before (unknown yet, or not routed yet), so it composes with `eventually`.
 */
export async function routedDeliveries<D>(herald: { url: string }, id: string): Promise<D[] | undefined> {
  const res = await fetch(`${herald.url}/api/events/${encodeURIComponent(id)}`);
  if (res.status !== 200) return undefined;
  const body = (await res.json()) as { routedAt: number | null; deliveries: D[] };
  return body.routedAt ? body.deliveries : undefined;
}

/** The messages a stream source set aside, as `GET /api/dlq?source=` lists them (newest first). */
export async function sourceDeadLetters(
  herald: { url: string },
  source: string,
): Promise<SourceDeadLetter[]> {
  const res = await fetch(`${herald.url}/api/dlq?source=${encodeURIComponent(source)}`);
  if (res.status !== 200) throw new Error(`GET /api/dlq?source=${source}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { sourceDeadLetters: SourceDeadLetter[] }).sourceDeadLetters;
}

/** `POST /api/dlq/source/:id/replay`: the status and the JSON answer. */
export async function replaySourceDeadLetter(
  herald: { url: string },
  id: number,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${herald.url}/api/dlq/source/${id}/replay`, {
    method: 'POST',
    // The admin API takes writes only as JSON (docs/security.md).
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A sample of a Prometheus metric from `GET /metrics`, e.g. `herald_x_total{source="a"}`; 0 when absent. */
export async function metricValue(herald: { url: string }, sample: string): Promise<number> {
  const text = await (await fetch(`${herald.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

export interface HeraldProcess {
  child: ChildProcess;
  url: string;
  output: string[];
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs `herald start` as a child process and waits until it listens: the sources through tsx, or
 * with `compiled`, bin/herald.js and the build as users run it.
 */
export async function spawnHerald(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  /** Node options before the script (e.g. `--import` a module-load hook). */
  nodeArgs: string[] = [],
  { compiled = false } = {},
): Promise<HeraldProcess> {
  const script = compiled
    ? [...nodeArgs, join(repoRoot, 'bin/herald.js')]
    : ['--import', 'tsx', ...nodeArgs, join(repoRoot, 'src/cli/main.ts')];
  const child = spawn(process.execPath, [...script, 'start', ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, HERALD_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    // Generous: CI machines can be very busy. A child that never starts is killed, never left behind.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`herald did not start within 60 s:\n${output.join('')}`));
    }, 60_000);
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      output.push(text);
      const m = text.match(/Herald listening on (http:\/\/[^\s;]+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`herald exited with ${code}:\n${output.join('')}`));
    });
  });
  return {
    child,
    url,
    output,
    kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
      return new Promise((resolve) => {
        child.once('exit', (code) => resolve(code));
        child.kill(signal);
      });
    },
  };
}

/**
 * `store` with every way of appending to its log (plain, and already routed where the store
 * offers it) passed through `around`: a disk that fails or is slow, for `wrapStore`.
 */
export function wrapAppends(store: Store, around: <T>(write: () => Promise<T>) => Promise<T>): Store {
  const events = Object.create(store.events) as Store['events'];
  events.append = (list, at) => around(() => store.events.append(list, at));
  const appendRouted = store.events.appendRouted;
  if (appendRouted)
    events.appendRouted = (list, plans, at, routedAt) =>
      around(() => appendRouted.call(store.events, list, plans, at, routedAt));
  const appendCommitted = store.events.appendCommitted;
  if (appendCommitted)
    events.appendCommitted = (list, at, routing) =>
      around(() => appendCommitted.call(store.events, list, at, routing));
  return { ...store, events };
}
