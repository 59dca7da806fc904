import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import pino, { type Logger } from 'pino';
import { watchEventReads } from '../../test/support/event-reads.js';
import { PG_URL, pgClient, uniqueSuffix } from '../../test/support/postgres.js';
import { createPostgresStore } from '../store/postgres/index.js';
import { createSqliteStore } from '../store/sqlite/index.js';
import { Dispatcher, RECENT_EVENT_CHARS } from './dispatcher.js';
import type { CompiledTrigger, RateLimit } from './model.js';
import type { Store } from './store.js';
import { type Channel, delivered, retry, SendTimeoutError } from './types.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A channel that records when each send started, and how many ran at once. */
function recordingChannel(concurrency: number, sendMs = 5) {
  const sends: { at: number; deliveryId: number }[] = [];
  let running = 0;
  let maxRunning = 0;
  const channel: Channel = {
    concurrency,
    timeoutMs: 10_000,
    async send(req) {
      sends.push({ at: Date.now(), deliveryId: req.deliveryId });
      running++;
      maxRunning = Math.max(maxRunning, running);
      await sleep(sendMs);
      running--;
      return delivered();
    },
  };
  return {
    channel,
    sends,
    get maxRunning() {
      return maxRunning;
    },
  };
}

const trigger = (channel: string): CompiledTrigger => ({
  name: `to-${channel}`,
  matcher: () => true,
  actions: [{ index: 0, channel, to: { kind: 'none' }, params: null }],
  policy: {
    maxAttempts: 3,
    backoff: { kind: 'fixed', initialMs: 100, maxMs: 100, multiplier: 1, jitter: 0 },
  },
});

/** A dispatcher with one catch-all trigger per channel. */
function newDispatcher(
  store: Store,
  channels: Record<string, Channel>,
  options: {
    pollIntervalMs?: number;
    rateLimits?: Record<string, RateLimit>;
    logger?: Logger;
    leaseMs?: number;
  } = {},
): Dispatcher {
  return new Dispatcher(
    store,
    new Map(Object.entries(channels)),
    Object.keys(channels).map(trigger),
    {
      leaseMs: options.leaseMs ?? 60_000,
      pollIntervalMs: options.pollIntervalMs ?? 50,
      rateLimits: new Map(Object.entries(options.rateLimits ?? {})),
    },
    options.logger ?? pino({ level: 'silent' }),
  );
}

/** Runs a dispatcher over `store` until `done` holds, then stops it (the store stays open). */
async function dispatchUntil(
  store: Store,
  channels: Record<string, Channel>,
  done: () => boolean,
  what: string,
  stopMs = 1000,
): Promise<void> {
  const d = newDispatcher(store, channels);
  try {
    d.start();
    await until(done, what);
  } finally {
    await d.stop(stopMs);
  }
}

let seq = 0;
/** Stores `count` events, each with one delivery due now on `channel`. */
async function plan(store: Store, channel: string, count: number): Promise<void> {
  const events = Array.from({ length: count }, () => ({
    specversion: '1.0' as const,
    id: `rl-${++seq}`,
    source: 'rate-limit-test',
    type: 'test.rate',
  }));
  const appended = await store.events.append(events, Date.now());
  await store.routing.commit(
    appended.map((a, i) => ({
      seq: a.seq,
      record: { matched: [`to-${channel}`], errors: [], deliveries: 1 },
      deliveries: [
        {
          eventSeq: a.seq,
          trigger: `to-${channel}`,
          action: 0,
          channel,
          recipient: null,
          idempotencyKey: `${channel}-${events[i]!.id}`,
          maxAttempts: 3,
          notBefore: 0,
        },
      ],
    })),
    Date.now(),
  );
}

/** The most sends in any window, beyond what `burst + perSecond × window` allows (≤ 0 is within). */
function worstExcess(times: number[], limit: RateLimit, jitterMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < sorted.length; i++) {
    for (let j = i; j < sorted.length; j++) {
      const window = (sorted[j]! - sorted[i]! + jitterMs) / 1000;
      worst = Math.max(worst, j - i + 1 - (limit.burst + limit.perSecond * window));
    }
  }
  return worst;
}

describe('dispatcher: a rate-limited channel (one process, SQLite)', () => {
  const stores: Store[] = [];
  const dispatchers: Dispatcher[] = [];
  afterEach(async () => {
    for (const d of dispatchers.splice(0)) await d.stop(1000);
    for (const s of stores.splice(0)) await s.close();
  });

  /** A store whose bucket statements are counted per channel. */
  function countingStore() {
    const store = createSqliteStore({ path: ':memory:' });
    stores.push(store);
    const takes = new Map<string, number>();
    const take = store.rateLimits.take.bind(store.rateLimits);
    store.rateLimits.take = (request) => {
      takes.set(request.channel, (takes.get(request.channel) ?? 0) + 1);
      return take(request);
    };
    return { store, takes };
  }

  function dispatcher(
    store: Store,
    channels: Record<string, Channel>,
    rateLimits: Record<string, RateLimit>,
    pollIntervalMs = 200,
  ) {
    const d = newDispatcher(store, channels, { pollIntervalMs, rateLimits });
    dispatchers.push(d);
    return d;
  }

  it('sends a burst, then one per token, never faster; an unlimited channel beside it never asks for tokens', async (t) => {
    const { store, takes } = countingStore();
    const limit = { perSecond: 20, burst: 5 };
    const slow = recordingChannel(4);
    const fast = recordingChannel(4);
    await plan(store, 'slow', 40);
    await plan(store, 'fast', 40);
    const started = Date.now();
    dispatcher(store, { slow: slow.channel, fast: fast.channel }, { slow: limit }).start();

    await until(() => fast.sends.length === 40, 'the unlimited channel to send everything');
    const fastDone = Date.now() - started;
    await until(() => slow.sends.length === 40, 'the limited channel to send everything');
    const elapsed = Date.now() - started;
    t.diagnostic(`unlimited: 40 in ${fastDone} ms; limited: 40 in ${elapsed} ms, ${takes.get('slow')} takes`);

    // 5 at once, then 35 more at 20/s: 1.75 s at the very least.
    assert.ok(elapsed >= 1700, `40 sends at 20/s with a burst of 5 took only ${elapsed} ms`);
    const excess = worstExcess(
      slow.sends.map((s) => s.at),
      limit,
      20,
    );
    assert.ok(excess <= 0, `a window held ${excess.toFixed(2)} sends more than the limit allows`);
    assert.equal(new Set(slow.sends.map((s) => s.deliveryId)).size, 40, 'each delivery sent once');
    assert.ok(slow.maxRunning <= 4);
    assert.equal(takes.get('fast'), undefined, 'the unlimited channel never touched a bucket');
    // About one take per token: the channel sleeps until the next token rather than asking again
    // on every wake-up and finished send.
    assert.ok((takes.get('slow') ?? 0) < 70, `${takes.get('slow')} takes for 40 sends`);
    await sleep(300);
    assert.equal(slow.sends.length, 40, 'nothing sent twice afterwards');
  });

  it('leaves deliveries it has no token for unclaimed, so other dispatchers can take them', async () => {
    const { store } = countingStore();
    const limit = { perSecond: 2, burst: 2 };
    const hook = recordingChannel(16);
    await plan(store, 'hook', 12);
    dispatcher(store, { hook: hook.channel }, { hook: limit }).start();
    await until(() => hook.sends.length >= 2, 'the burst to be sent');
    assert.ok(hook.sends.length <= 3, `${hook.sends.length} sent at once with a burst of 2`);
    // As another process would: everything not sent yet is still there to claim.
    const others = await store.deliveries.claim({
      channel: 'hook',
      limit: 100,
      now: Date.now(),
      leaseMs: 60_000,
    });
    assert.ok(others.length >= 12 - hook.sends.length - 1, `only ${others.length} left unclaimed`);
    await store.deliveries.release(others.map((d) => d.id));
  });

  it('idle polls give their tokens back: the burst is there when work arrives', async () => {
    const { store, takes } = countingStore();
    const limit = { perSecond: 1, burst: 6 };
    const hook = recordingChannel(8);
    const d = dispatcher(store, { hook: hook.channel }, { hook: limit }, 20);
    d.start();
    await until(() => (takes.get('hook') ?? 0) >= 10, 'ten idle polls');
    await plan(store, 'hook', 10);
    d.wake('hook');
    await until(() => hook.sends.length >= 6, 'the burst');
    await sleep(300);
    // At 1/s, a drained bucket would allow one or two sends in this time, not six.
    assert.ok(hook.sends.length <= 7, `${hook.sends.length} sent: more than the burst`);
    const first = hook.sends[0]!.at;
    assert.ok(
      hook.sends.slice(0, 6).every((s) => s.at - first < 900),
      'the six were sent back to back',
    );
  });
});

describe('dispatcher: a store outage while claiming', () => {
  it('logs one error per channel when claims start failing and one line when they work again, then sends', async () => {
    const store = createSqliteStore({ path: ':memory:' });
    let down = true;
    let failedClaims = 0;
    const claim = store.deliveries.claim.bind(store.deliveries);
    store.deliveries.claim = (request) => {
      if (down) {
        failedClaims++;
        return Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
      }
      return claim(request);
    };
    const lines: { level: number; msg: string; channel?: string }[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const plain = recordingChannel(4);
    const limited = recordingChannel(4);
    const d = newDispatcher(
      store,
      { plain: plain.channel, limited: limited.channel },
      { pollIntervalMs: 20, rateLimits: { limited: { perSecond: 100, burst: 10 } }, logger },
    );
    try {
      d.start();
      await until(() => failedClaims >= 20, 'claims to fail for a while');
      await plan(store, 'plain', 3);
      await plan(store, 'limited', 3);
      down = false;
      await until(() => plain.sends.length === 3 && limited.sends.length === 3, 'the sends once claims work');

      const errors = lines.filter((l) => l.msg === 'claiming deliveries failed');
      assert.deepEqual(errors.map((l) => l.channel).sort(), ['limited', 'plain'], 'one error per channel');
      assert.ok(errors.every((l) => l.level === 50));
      const recovered = lines.filter((l) => l.msg === 'claiming deliveries works again');
      assert.deepEqual(recovered.map((l) => l.channel).sort(), ['limited', 'plain']);
      assert.ok(
        lines.filter((l) => l.msg === 'claiming deliveries still failing').every((l) => l.level === 20),
        'repeats are debug lines',
      );
    } finally {
      await d.stop(1000);
      await store.close();
    }
  });
});

describe('dispatcher: many sends in flight', () => {
  it('share the shutdown signal without a listener-leak warning', async () => {
    const store = createSqliteStore({ path: ':memory:' });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    let sent = 0;
    const release: (() => void)[] = [];
    // Listens to the signal the way HTTP clients do, and holds every send open until all 32 run.
    const channel: Channel = {
      concurrency: 32,
      timeoutMs: 10_000,
      async send(req) {
        const onAbort = () => undefined;
        req.signal.addEventListener('abort', onAbort);
        await new Promise<void>((r) => {
          release.push(r);
          if (release.length === 32) for (const go of release) go();
        });
        req.signal.removeEventListener('abort', onAbort);
        sent++;
        return delivered();
      },
    };
    await plan(store, 'wide', 32);
    try {
      await dispatchUntil(
        store,
        { wide: channel },
        () => sent === 32,
        '32 sends in flight at once to finish',
      );
      await sleep(20); // process warnings are emitted on the next tick
      assert.deepEqual(warnings, []);
    } finally {
      process.off('warning', onWarning);
      await store.close();
    }
  });
});

describe('dispatcher: outcomes recorded while the next sends run', () => {
  it('a finished send frees its slot before its outcome is written, with at most `concurrency` outcomes waiting', async () => {
    const store = createSqliteStore({ path: ':memory:' });
    const hook = recordingChannel(4, 5);
    const record = store.deliveries.record.bind(store.deliveries);
    let sendsBeforeFirstWrite = -1;
    store.deliveries.record = async (outcomes) => {
      await sleep(300); // a slow store
      if (sendsBeforeFirstWrite < 0) sendsBeforeFirstWrite = hook.sends.length;
      await record(outcomes);
    };
    store.deliveries.recordCommitted = async (outcomes) => {
      await store.deliveries.record(outcomes);
      return { value: undefined, durable: Promise.resolve() };
    };
    await plan(store, 'hook', 20);
    await dispatchUntil(store, { hook: hook.channel }, () => hook.sends.length === 20, 'every send', 5000);
    // Four sending and four waiting for the slow write: twice the concurrency, neither one
    // concurrency (slots held until written) nor all twenty (outcomes piling up in memory).
    assert.equal(sendsBeforeFirstWrite, 8);
    assert.ok(hook.maxRunning <= 4, `${hook.maxRunning} sends ran at once`);
    const delivered = await store.deliveries.list({ status: 'delivered', limit: 100 });
    assert.equal(delivered.length, 20, 'every outcome written by the time the dispatcher stopped');
    await store.close();
  });

  it('counts as in flight only the sends running, not the outcomes waiting to be written', async () => {
    const store = createSqliteStore({ path: ':memory:' });
    const hook = recordingChannel(4, 5);
    const record = store.deliveries.record.bind(store.deliveries);
    store.deliveries.recordCommitted = async (outcomes) => {
      await sleep(300);
      await record(outcomes);
      return { value: undefined, durable: Promise.resolve() };
    };
    await plan(store, 'hook', 20);
    const d = newDispatcher(store, { hook: hook.channel });
    const counts: number[] = [];
    const sampler = setInterval(() => counts.push(d.inFlightCount), 2);
    try {
      d.start();
      await until(() => hook.sends.length === 20, 'every send');
    } finally {
      clearInterval(sampler);
      await d.stop(5000);
    }
    assert.ok(Math.max(...counts) > 0, 'the sampler saw sends running');
    assert.ok(Math.max(...counts) <= 4, `in flight reached ${Math.max(...counts)} with concurrency 4`);
    assert.equal(d.inFlightCount, 0);
    await store.close();
  });
});

describe('dispatcher: a retry claimed while its outcome waits for the disk', () => {
  it('is sent again at its retry time, not after the lease the early claim took runs out', async () => {
    const store = createSqliteStore({ path: ':memory:' });
    const record = store.deliveries.record.bind(store.deliveries);
    // As the embedded store does: the outcome is committed (and the retry visible) at once, and
    // durable only a while later.
    store.deliveries.record = async (outcomes) => {
      await record(outcomes);
      await sleep(200);
    };
    store.deliveries.recordCommitted = async (outcomes) => {
      await record(outcomes);
      return { value: undefined, durable: sleep(200).then(() => undefined) };
    };
    const sends: number[] = [];
    const flaky: Channel = {
      concurrency: 1,
      timeoutMs: 10_000,
      async send() {
        sends.push(Date.now());
        return sends.length === 1 ? retry('first attempt fails') : delivered();
      },
    };
    await plan(store, 'hook', 1);
    // A 60 s lease and a 100 ms retry: the second attempt waits for the backoff, not the lease.
    const started = Date.now();
    await dispatchUntil(store, { hook: flaky }, () => sends.length === 2, 'the retry', 5000);
    assert.ok(sends[1]! - started < 3000, `the retry went out after ${sends[1]! - started} ms`);
    const [d] = await store.deliveries.list({ limit: 1 });
    assert.equal(d?.status, 'delivered');
    await store.close();
  });
});

describe('dispatcher: claiming ahead', () => {
  it('a busy channel claims several sends ahead, so the store sees one claim per batch, never more than 4 × concurrency leased', async () => {
    const store = createSqliteStore({ path: ':memory:' });
    const asked: number[] = [];
    const claim = store.deliveries.claim.bind(store.deliveries);
    store.deliveries.claim = async (query) => {
      asked.push(query.limit);
      return claim(query);
    };
    await plan(store, 'hook', 200);
    const hook = recordingChannel(4, 2);
    try {
      await dispatchUntil(store, { hook: hook.channel }, () => hook.sends.length === 200, 'every send');
    } finally {
      await store.close();
    }
    assert.ok(Math.max(...asked) <= 16, `asked for ${Math.max(...asked)} at once`);
    // 32 claims here; with one concurrency ahead, refilled at half, it took about 100.
    assert.ok(asked.length <= 50, `${asked.length} claims for 200 sends`);
    assert.ok(hook.maxRunning <= 4, `${hook.maxRunning} sends ran at once`);
  });
});

describe('dispatcher: a retry time in fractions of a millisecond', () => {
  it('is rounded up, so a store keeping whole milliseconds takes the outcome', async () => {
    const store = createSqliteStore({ path: ':memory:' });
    let notBefore = 0;
    const channel: Channel = {
      concurrency: 1,
      timeoutMs: 10_000,
      async send() {
        notBefore = Date.now() + 60_000.25;
        return retry('busy', notBefore);
      },
    };
    await plan(store, 'late', 1);
    await dispatchUntil(store, { late: channel }, () => notBefore > 0, 'the send');
    const [delivery] = await store.deliveries.list({ limit: 1, channel: 'late' });
    await store.close();
    assert.equal(delivery?.status, 'pending');
    assert.equal(delivery?.attempts, 1);
    assert.ok(Number.isInteger(delivery?.nextAttemptAt), `next attempt at ${delivery?.nextAttemptAt}`);
    assert.ok(delivery!.nextAttemptAt >= notBefore);
  });
});

describe('dispatcher: deliveries another process routed', () => {
  it('reads their events in one query per claim, not one per send', async () => {
    const store = createSqliteStore({ path: ':memory:' });
    let singleReads = 0;
    const batchReads: number[] = [];
    watchEventReads(store, (seqs, single) => {
      if (single) singleReads++;
      else batchReads.push(seqs.length);
    });
    // Planned straight into the store: this dispatcher has none of the events in memory.
    await plan(store, 'hook', 10);
    const hook = recordingChannel(16);
    try {
      await dispatchUntil(store, { hook: hook.channel }, () => hook.sends.length === 10, 'every send');
    } finally {
      await store.close();
    }
    assert.deepEqual(batchReads, [10]);
    assert.equal(singleReads, 0);
  });
});

describe('dispatcher: the events it keeps for the sends to come', () => {
  it('keeps large events only up to its size bound: the oldest beyond it are read back from the store when sent', async () => {
    const store = createSqliteStore({ path: ':memory:' });
    const read = new Set<number>();
    watchEventReads(store, (seqs) => {
      for (const s of seqs) read.add(s);
    });
    // 20 events of half a MiB each: 10 MiB of JSON, more than two generations may hold.
    const events = Array.from({ length: 20 }, (_, i) => ({
      specversion: '1.0' as const,
      id: `big-${i}`,
      source: 'cache-test',
      type: 'test.big',
      data: { text: 'x'.repeat(512 * 1024) },
    }));
    const appended = await store.events.append(events, Date.now());
    await store.routing.commit(
      appended.map((a, i) => ({
        seq: a.seq,
        record: { matched: ['to-hook'], errors: [], deliveries: 1 },
        deliveries: [
          {
            eventSeq: a.seq,
            trigger: 'to-hook',
            action: 0,
            channel: 'hook',
            recipient: null,
            idempotencyKey: `hook-${events[i]!.id}`,
            maxAttempts: 3,
            notBefore: 0,
          },
        ],
      })),
      Date.now(),
    );
    const hook = recordingChannel(1);
    const d = newDispatcher(store, { hook: hook.channel });
    // As the engine does once the events are durable.
    appended.forEach((a, i) => {
      d.rememberEvent(a.seq, events[i]!);
    });
    try {
      d.start();
      await until(() => hook.sends.length === 20, 'every send');
    } finally {
      await d.stop(1000);
      await store.close();
    }
    const kept = Math.floor((2 * RECENT_EVENT_CHARS) / JSON.stringify(events[0]).length);
    const oldest = appended.slice(0, 20 - kept).map((a) => a.seq);
    assert.ok(oldest.length > 0);
    for (const seq of oldest) assert.ok(read.has(seq), `event ${seq} was still kept in memory`);
  });
});

/** The one delivery on `channel`, once it is no longer pending. */
async function finalDelivery(store: Store, channel: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [d] = await store.deliveries.list({ channel, limit: 1 });
    if (d && d.status !== 'pending') return d;
    if (Date.now() > deadline) throw new Error(`the delivery on ${channel} is still ${d?.status}`);
    await sleep(20);
  }
}

describe('dispatcher: send deadlines and leases', () => {
  it('cuts off a send that ignores its signal at timeoutMs, counts it, and dead-letters after maxAttempts; never two at once, though the lease is shorter', async () => {
    const store = createSqliteStore({ path: ':memory:' });
    const starts: number[] = [];
    const reasons: unknown[] = [];
    const hung: Channel = {
      concurrency: 4,
      timeoutMs: 400,
      send(req) {
        starts.push(Date.now());
        req.signal.addEventListener('abort', () => reasons.push(req.signal.reason));
        return new Promise(() => undefined); // Never answers, whatever the signal says.
      },
    };
    await plan(store, 'hung', 1);
    const d = newDispatcher(store, { hung }, { leaseMs: 300 });
    try {
      d.start();
      const delivery = await finalDelivery(store, 'hung');
      assert.equal(delivery.status, 'dead');
      assert.equal(delivery.lastError, 'gave up after 3 attempts: no answer within 400 ms');
      assert.equal(starts.length, 3, 'exactly maxAttempts sends');
      for (let i = 1; i < starts.length; i++) {
        // Each attempt holds its slot for the deadline and the grace, then the 100 ms backoff.
        const gap = starts[i]! - starts[i - 1]!;
        assert.ok(gap >= 400 + 1000 + 100 - 5, `attempt ${i + 1} started ${gap} ms after attempt ${i}`);
      }
      assert.equal(reasons.length, 3);
      assert.ok(reasons.every((r) => r instanceof SendTimeoutError && r.timeoutMs === 400));
      const attempts = await store.deliveries.attempts(delivery.id);
      assert.deepEqual(
        attempts.map((a) => [a.number, a.outcome, a.error]),
        [1, 2, 3].map((n) => [n, 'retry', 'no answer within 400 ms']),
      );
      assert.ok(attempts.every((a) => a.durationMs >= 1400 && a.durationMs < 3000));
    } finally {
      await d.stop(100);
      await store.close();
    }
  });

  it('a channel that honours its signal answers with its own reason and frees its slot at once', async () => {
    const store = createSqliteStore({ path: ':memory:' });
    const starts: number[] = [];
    const polite: Channel = {
      concurrency: 1,
      timeoutMs: 300,
      send(req) {
        starts.push(Date.now());
        return new Promise((resolve) =>
          req.signal.addEventListener('abort', () =>
            resolve(retry(`stopped: ${(req.signal.reason as Error).message}`)),
          ),
        );
      },
    };
    await plan(store, 'polite', 1);
    const d = newDispatcher(store, { polite });
    try {
      d.start();
      const delivery = await finalDelivery(store, 'polite');
      assert.equal(delivery.lastError, 'gave up after 3 attempts: stopped: no answer within 300 ms');
      const attempts = await store.deliveries.attempts(delivery.id);
      assert.ok(
        attempts.every((a) => a.durationMs >= 300 && a.durationMs < 900),
        `durations ${attempts.map((a) => a.durationMs)}`,
      );
    } finally {
      await d.stop(100);
      await store.close();
    }
  });
});

describe('dispatcher: leases on the shared PostgreSQL store', () => {
  const schema = `herald_leases_${uniqueSuffix()}`;
  const stores: Store[] = [];
  const dispatchers: Dispatcher[] = [];
  afterEach(async () => {
    for (const d of dispatchers.splice(0)) await d.stop(3000);
    for (const s of stores.splice(0)) await s.close();
    const db = await pgClient();
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
  });

  async function pgStore(): Promise<Store> {
    const store = createPostgresStore({ url: PG_URL, schema, poolSize: 4 });
    stores.push(store);
    await store.migrate();
    return store;
  }

  /** A channel whose sends take `sendMs` unless aborted, recording who sent what. */
  function slowChannel(
    who: string,
    sendMs: number,
    log: { who: string; deliveryId: number; signal: AbortSignal }[],
  ) {
    const channel: Channel = {
      concurrency: 2,
      timeoutMs: 10_000,
      send(req) {
        log.push({ who, deliveryId: req.deliveryId, signal: req.signal });
        return new Promise((resolve) => {
          const timer = setTimeout(() => resolve(delivered()), sendMs);
          req.signal.addEventListener('abort', () => {
            clearTimeout(timer);
            resolve(retry(`stopped: ${(req.signal.reason as Error).message}`));
          });
        });
      },
    };
    return channel;
  }

  it('renewal keeps a second dispatcher from claiming a delivery whose send outlives the first lease', async () => {
    const store = await pgStore();
    const sends: { who: string; deliveryId: number; signal: AbortSignal }[] = [];
    await plan(store, 'slow', 1);
    const first = newDispatcher(store, { slow: slowChannel('first', 2500, sends) }, { leaseMs: 600 });
    dispatchers.push(first);
    first.start();
    await until(() => sends.length === 1, 'the first dispatcher to start sending');
    const second = newDispatcher(store, { slow: slowChannel('second', 2500, sends) }, { leaseMs: 600 });
    dispatchers.push(second);
    second.start();
    const delivered = await finalDelivery(store, 'slow', 10_000);
    assert.equal(delivered.status, 'delivered');
    assert.equal(delivered.attempts, 1);
    assert.deepEqual(
      sends.map((s) => s.who),
      ['first'],
      'the second dispatcher never sent it, though the send lasted four leases',
    );
  });

  it('a renewal that finds the lease taken stops the send and leaves the outcome to the new holder', async () => {
    const store = await pgStore();
    const sends: { who: string; deliveryId: number; signal: AbortSignal }[] = [];
    await plan(store, 'taken', 1);
    const d = newDispatcher(store, { taken: slowChannel('first', 5000, sends) }, { leaseMs: 600 });
    dispatchers.push(d);
    d.start();
    await until(() => sends.length === 1, 'the send to start');
    // Another process whose clock is ahead: to it the lease has run out, and it takes the delivery.
    const [taken] = await store.deliveries.claim({
      channel: 'taken',
      limit: 1,
      now: Date.now() + 60_000,
      leaseMs: 60_000,
    });
    assert.equal(taken?.id, sends[0]!.deliveryId);
    await until(() => sends[0]!.signal.aborted, 'the send to be stopped', 3000);
    assert.equal(
      (sends[0]!.signal.reason as Error).message,
      'the lease on this delivery went to another dispatcher',
    );
    await sleep(200);
    const after = await store.deliveries.get(taken!.id);
    assert.equal(after?.status, 'pending');
    assert.equal(after?.attempts, 0, 'the stopped send wrote no attempt: the new holder makes it');
    assert.deepEqual(await store.deliveries.attempts(taken!.id), []);
    assert.equal(sends.length, 1, 'and this dispatcher did not claim it back');
  });
});
