import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Dispatcher } from '../../src/engine/dispatcher.js';
import type { EngineHooks } from '../../src/engine/engine.js';
import {
  type Channel,
  type ChannelKind,
  type ChannelResult,
  type DeliveryRequest,
  SendTimeoutError,
} from '../../src/engine/types.js';
import type { CloudEvent } from '../../src/events/types.js';
import { createLogger } from '../../src/logger.js';
import { combineHooks, HeraldMetrics } from '../../src/observability/metrics.js';
import { channelKinds } from '../../src/plugins.js';
import { createSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/types.js';
import { eventually } from '../support/herald.js';
import {
  type Arrange,
  type ChannelFixture,
  type ChannelHarness,
  channelFixtures,
  isNotApplicable,
  type NotApplicable,
  type SendSetup,
} from './fixtures/channels.js';
import { describeFixtureCoverage } from './fixtures/coverage.js';

type RetryAfterScenarios = Exclude<ChannelHarness['retryAfter'], NotApplicable>;

/**
 * The channel contract, run against every kind `src/plugins.ts` registers, each with a real far
 * end (test/contracts/fixtures/channels.ts): what a send answers for success, for a failure worth
 * retrying (with the far end's time to come back), for one that is not; that it ends promptly
 * when its signal is aborted at the deadline or at shutdown; that the dispatcher keeps it to its
 * concurrency and counts each attempt in the metrics; that no credential shows in what it answers.
 */

const DEADLINE_MS = 300;
/** An aborted send must answer well within the dispatcher's own 1 s grace. */
const PROMPT_MS = 800;
/** How long after its signal was aborted a send is taken as never answering. */
const IGNORED_MS = 3000;
const logger = createLogger({ level: 'silent' });

/** Far beyond what any case takes: only a send or a read that never ends reaches it. */
const CASE_TIMEOUT_MS = 60_000;

const unique = () => randomBytes(6).toString('hex');

function event(): CloudEvent {
  return {
    specversion: '1.0',
    id: `contract-${unique()}`,
    source: 'urn:herald:contract',
    type: 'order.shipped',
    data: { order: 'A-17' },
  };
}

const reasonOf = (result: ChannelResult) => (result.outcome === 'delivered' ? '' : result.reason);

/** A channel of `kind` built as config loading builds it: both blocks parsed by the kind's schemas. */
async function build(kind: ChannelKind, harness: ChannelHarness, setup: SendSetup) {
  const config = kind.configSchema.parse(setup.config);
  const action = kind.actionSchema.parse(setup.action);
  const problem = kind.checkAction?.(config, action);
  assert.equal(problem ?? null, null, `the fixture's action is valid: ${problem}`);
  await kind.prepare?.(config);
  const channel = kind.create(`contract-${kind.kind}`, config, harness.context);
  return { channel, action };
}

/** Sends once; the signal is aborted with a SendTimeoutError after `deadlineMs`, as the dispatcher does. */
async function sendOnce(
  built: { channel: Channel; action: unknown },
  setup: SendSetup,
  deadlineMs = 10_000,
): Promise<{ result: ChannelResult; ms: number; abortedAt: number | null }> {
  const controller = new AbortController();
  let abortedAt: number | null = null;
  const timer = setTimeout(() => {
    abortedAt = Date.now();
    controller.abort(new SendTimeoutError(deadlineMs));
  }, deadlineMs);
  const request: DeliveryRequest = {
    deliveryId: 1,
    idempotencyKey: `key-${unique()}`,
    attempt: 1,
    event: event(),
    trigger: 'contract',
    action: built.action,
    recipient: setup.recipient,
    signal: controller.signal,
  };
  const started = Date.now();
  // A channel that ignores its signal fails here, and the case cleans up, rather than hanging.
  let ignored: NodeJS.Timeout | undefined;
  const unanswered = new Promise<never>((_, reject) => {
    ignored = setTimeout(
      () => reject(new Error(`no answer ${IGNORED_MS} ms after the send's signal was aborted`)),
      deadlineMs + IGNORED_MS,
    );
  });
  try {
    const result = await Promise.race([built.channel.send(request), unanswered]);
    return { result, ms: Date.now() - started, abortedAt };
  } finally {
    clearTimeout(timer);
    clearTimeout(ignored);
  }
}

/** Runs `body` against a fresh far end and the channel built for `arrange`'s setup, then cleans up. */
async function withChannel<T>(
  kind: ChannelKind,
  fixture: ChannelFixture,
  arrange: ((harness: ChannelHarness) => Partial<SendSetup> | undefined) | null,
  body: (
    built: { channel: Channel; action: unknown },
    harness: ChannelHarness,
    setup: SendSetup,
  ) => Promise<T>,
): Promise<T> {
  const started = await fixture.start();
  // A case may take the far end away itself; closing it once is enough.
  let closing: Promise<void> | null = null;
  const harness: ChannelHarness = { ...started, close: () => (closing ??= started.close()) };
  let built: { channel: Channel; action: unknown } | null = null;
  try {
    const arranged = arrange?.(harness) ?? {};
    const setup: SendSetup = {
      action: harness.action,
      recipient: harness.recipient,
      ...arranged,
      // A case changes some keys of the channel block; the rest stay the fixture's.
      config: { ...harness.config, ...arranged.config },
    };
    built = await build(kind, harness, setup);
    return await body(built, harness, setup);
  } finally {
    await built?.channel.close?.();
    await harness.close();
  }
}

/** Stores `count` events, each with one delivery due now on `channel`. */
async function plan(store: Store, channel: string, recipient: string | null, count: number) {
  const events = Array.from({ length: count }, event);
  const appended = await store.events.append(events, Date.now());
  await store.routing.commit(
    appended.map((a, i) => ({
      seq: a.seq,
      record: { matched: ['contract'], errors: [], deliveries: 1 },
      deliveries: [
        {
          eventSeq: a.seq,
          trigger: 'contract',
          action: 0,
          channel,
          recipient,
          idempotencyKey: `key-${events[i]!.id}`,
          maxAttempts: 3,
          notBefore: 0,
        },
      ],
    })),
    Date.now(),
  );
}

type Trigger = ConstructorParameters<typeof Dispatcher>[2][number];

/**
 * A dispatcher over an in-memory store sending through `built.channel` (wrapped to count the sends
 * under way), with Herald's Prometheus metrics on its hooks.
 */
function dispatch(name: string, built: { channel: Channel; action: unknown }) {
  const store = createSqliteStore({ path: ':memory:' });
  const metrics = new HeraldMetrics();
  const results: ChannelResult[] = [];
  const recorder: EngineHooks = { onAttempt: (_d, _o, result) => results.push(result) };
  let sending = 0;
  let mostAtOnce = 0;
  const counted: Channel = {
    concurrency: built.channel.concurrency,
    timeoutMs: built.channel.timeoutMs,
    async send(request) {
      sending++;
      mostAtOnce = Math.max(mostAtOnce, sending);
      try {
        return await built.channel.send(request);
      } finally {
        sending--;
      }
    },
  };
  const trigger: Trigger = {
    name: 'contract',
    matcher: () => true,
    actions: [{ index: 0, channel: name, to: { kind: 'none' }, params: built.action }],
    policy: {
      maxAttempts: 3,
      backoff: { kind: 'fixed', initialMs: 60_000, maxMs: 60_000, multiplier: 1, jitter: 0 },
    },
  } as Trigger;
  const dispatcher = new Dispatcher(
    store,
    new Map([[name, counted]]),
    [trigger],
    { leaseMs: 60_000, pollIntervalMs: 50, rateLimits: new Map() },
    logger,
    combineHooks(metrics.hooks, recorder),
  );
  return {
    store,
    dispatcher,
    results,
    get sending() {
      return sending;
    },
    get mostAtOnce() {
      return mostAtOnce;
    },
    /** herald_delivery_attempts_total for this channel, by outcome. */
    async attempts(): Promise<Record<string, number>> {
      const counts: Record<string, number> = {};
      for (const v of (await metrics.attempts.get()).values)
        if (v.labels.channel === name) counts[String(v.labels.outcome)] = v.value;
      return counts;
    },
  };
}

const registered = new Map(channelKinds.map((kind) => [kind.kind, kind]));

describeFixtureCoverage('channel', [...registered.keys()], channelFixtures);

for (const fixture of channelFixtures) {
  const kind = registered.get(fixture.kind);
  if (!kind) continue;
  const title = fixture.variant ? `${fixture.kind} (${fixture.variant})` : fixture.kind;
  const name = `contract-${fixture.kind}`;

  describe(`channel contract: ${title}`, async () => {
    // Which cases apply is the fixture's to say; it is read once, from a harness started and closed.
    const probe = await fixture.start();
    const { retryable, retryAfter, permanent, stall, secrets } = probe;
    await probe.close();
    // A case that does not apply is skipped with the fixture's reason; one that hangs fails.
    const options = (value?: unknown) => ({
      timeout: CASE_TIMEOUT_MS,
      ...(isNotApplicable(value) ? { skip: value.notApplicable } : {}),
    });

    it('a good send answers delivered, and the far end has it', options(), async () => {
      await withChannel(kind, fixture, null, async (built, harness, setup) => {
        const before = harness.received();
        const { result } = await sendOnce(built, setup);
        assert.equal(result.outcome, 'delivered', reasonOf(result));
        await harness.settle?.();
        assert.equal(harness.received(), before + 1, 'the far end took one send');
      });
    });

    it('a failure worth retrying answers retry', options(retryable), async () => {
      if (isNotApplicable(retryable)) return;
      await withChannel(
        kind,
        fixture,
        (h) => (h.retryable as Arrange)(),
        async (built, _h, setup) => {
          const { result } = await sendOnce(built, setup);
          assert.equal(result.outcome, 'retry', reasonOf(result));
          assert.ok(reasonOf(result).length > 0, 'a retry says why');
        },
      );
    });

    if (isNotApplicable(retryAfter)) {
      it('Retry-After becomes the not-before time', options(retryAfter), () => undefined);
    } else {
      for (const scenario of retryAfter) {
        it(`Retry-After becomes the not-before time: ${scenario.name}`, options(), async () => {
          await withChannel(
            kind,
            fixture,
            (h) => {
              const own = (h.retryAfter as RetryAfterScenarios).find((s) => s.name === scenario.name)!;
              return own.arrange();
            },
            async (built, _h, setup) => {
              const sentAt = Date.now();
              const { result } = await sendOnce(built, setup);
              assert.equal(result.outcome, 'retry', reasonOf(result));
              assert.ok(result.outcome === 'retry' && result.notBefore !== undefined, 'a not-before time');
              const wait = result.notBefore - sentAt;
              assert.ok(
                wait >= scenario.seconds * 1000 - 1000 && wait <= scenario.seconds * 1000 + 2000,
                `not before ${scenario.seconds} s from now, got ${wait} ms`,
              );
            },
          );
        });
      }
    }

    it('a permanent failure answers failed', options(permanent), async () => {
      if (isNotApplicable(permanent)) return;
      await withChannel(
        kind,
        fixture,
        (h) => (h.permanent as Arrange)(),
        async (built, _h, setup) => {
          const { result } = await sendOnce(built, setup);
          assert.equal(result.outcome, 'failed', reasonOf(result));
          assert.ok(reasonOf(result).length > 0, 'a failure says why');
        },
      );
    });

    it('a send still waiting at its deadline stops at once and answers retry', options(stall), async () => {
      if (isNotApplicable(stall)) return;
      await withChannel(
        kind,
        fixture,
        (h) => (h.stall as Arrange)(),
        async (built, _h, setup) => {
          const { result, abortedAt } = await sendOnce(built, setup, DEADLINE_MS);
          assert.ok(abortedAt !== null, 'the far end stalled until the deadline');
          const late = Date.now() - abortedAt;
          assert.equal(result.outcome, 'retry', reasonOf(result));
          assert.ok(late < PROMPT_MS, `answered ${late} ms after its signal was aborted`);
          assert.match(reasonOf(result), new RegExp(`${DEADLINE_MS} ms`), 'the reason names the deadline');
        },
      );
    });

    it(
      'through the dispatcher: sends run `concurrency` at once, no more, and every attempt is counted in the metrics',
      options(),
      async () => {
        await withChannel(
          kind,
          fixture,
          (h) => h.slow(),
          async (built, harness, setup) => {
            // A kind without the key (log) sends one at a time.
            const configured = (setup.config.concurrency as number | undefined) ?? 1;
            assert.equal(
              built.channel.concurrency,
              configured,
              'the channel takes its configured concurrency',
            );
            const count = configured * 3 + 1;
            const run = dispatch(name, built);
            try {
              const before = harness.received();
              await plan(run.store, name, harness.recipient, count);
              run.dispatcher.start();
              await eventually(() => run.results.length === count, 15_000, `${count} attempts`);
              assert.ok(
                run.results.every((r) => r.outcome === 'delivered'),
                run.results.map(reasonOf).join('; '),
              );
              await harness.settle?.();
              assert.equal(harness.received(), before + count, 'the far end took every send');
              assert.equal(run.mostAtOnce, configured, `at most and at best ${configured} sends at once`);
              assert.deepEqual(await run.attempts(), { delivered: count });
            } finally {
              await run.dispatcher.stop(1000);
              await run.store.close();
            }
          },
        );
      },
    );

    it(
      'shutdown mid-send: the send is stopped, answers retry before the deadline’s grace, and the attempt is counted',
      options(stall),
      async () => {
        if (isNotApplicable(stall)) return;
        await withChannel(
          kind,
          fixture,
          (h) => (h.stall as Arrange)(),
          async (built, harness) => {
            const run = dispatch(name, built);
            let stopped = false;
            try {
              await plan(run.store, name, harness.recipient, 1);
              run.dispatcher.start();
              await eventually(() => run.sending === 1, 15_000, 'the send to start');
              await new Promise((r) => setTimeout(r, 100));
              const stopping = Date.now();
              stopped = true;
              await run.dispatcher.stop(200);
              const took = Date.now() - stopping;
              // The dispatcher answers for a channel that ignores its signal only after 200 + 1000 ms.
              assert.ok(took < 200 + PROMPT_MS, `stop took ${took} ms`);
              assert.equal(run.results.length, 1);
              assert.equal(run.results[0]!.outcome, 'retry', reasonOf(run.results[0]!));
              assert.match(reasonOf(run.results[0]!), /shutdown deadline passed/);
              assert.deepEqual(await run.attempts(), { retry: 1 });
              const [pending] = await run.store.deliveries.list({ limit: 10 });
              assert.equal(pending?.status, 'pending', 'it is sent again on the next start');
              assert.equal(pending?.attempts, 1, 'the stopped send counts as an attempt');
            } finally {
              if (!stopped) await run.dispatcher.stop(0);
              await run.store.close();
            }
          },
        );
      },
    );

    it(
      'no credential from the config shows in any answer, however the send ends',
      options(secrets),
      async () => {
        if (isNotApplicable(secrets)) return;
        // Each far end is started afresh with credentials of its own: each answer is checked
        // against those of the harness it came from.
        const answers: { result: ChannelResult; secrets: string[] }[] = [];
        const record = (harness: ChannelHarness, result: ChannelResult) =>
          answers.push({ result, secrets: harness.secrets as string[] });
        const arrangements = [
          null,
          isNotApplicable(retryable) ? undefined : (h: ChannelHarness) => (h.retryable as Arrange)(),
          isNotApplicable(permanent) ? undefined : (h: ChannelHarness) => (h.permanent as Arrange)(),
          isNotApplicable(retryAfter)
            ? undefined
            : (h: ChannelHarness) => (h.retryAfter as RetryAfterScenarios)[0]!.arrange(),
        ].filter((a) => a !== undefined);
        for (const arrange of arrangements) {
          await withChannel(kind, fixture, arrange, async (built, harness, setup) => {
            record(harness, (await sendOnce(built, setup)).result);
          });
        }
        if (!isNotApplicable(stall)) {
          await withChannel(
            kind,
            fixture,
            (h) => (h.stall as Arrange)(),
            async (built, harness, setup) => {
              record(harness, (await sendOnce(built, setup, DEADLINE_MS)).result);
            },
          );
        }
        // The far end gone: connection errors carry addresses, which must come without credentials.
        await withChannel(kind, fixture, null, async (built, harness, setup) => {
          await harness.close();
          record(harness, (await sendOnce(built, setup, 2000)).result);
        });
        assert.ok(
          answers.some((a) => a.result.outcome !== 'delivered'),
          'failures were provoked',
        );
        for (const { result, secrets: own } of answers) {
          const shown = JSON.stringify(result);
          for (const secret of own)
            for (const form of new Set([secret, encodeURIComponent(secret)]))
              assert.ok(!shown.includes(form), `a credential (${secret.slice(0, 4)}…) shows in ${shown}`);
        }
      },
    );
  });
}
