import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { HttpRoute, Source, SourceContext, SourceKind, SourceMessage } from '../../src/engine/types.js';
import { HeraldError } from '../../src/errors.js';
import type { CloudEvent } from '../../src/events/types.js';
import { sourceKinds } from '../../src/plugins.js';
import { createSqliteStore } from '../../src/store/sqlite/index.js';
import { gate } from '../support/gate.js';
import { captureLogger, eventually } from '../support/herald.js';
import { describeFixtureCoverage } from './fixtures/coverage.js';
import {
  isNotApplicable,
  REFUSED_MARK,
  type SourceFixture,
  type SourceHarness,
  sourceFixtures,
} from './fixtures/sources.js';

/**
 * The source contract, run against every kind `src/plugins.ts` registers, each reading a real
 * upstream (test/contracts/fixtures/sources.ts): a message becomes an event; it is acknowledged
 * upstream only once ingest resolved; a message that cannot become a stored event is set aside
 * (or refused to its caller) and the next one is ingested; a new start picks up what arrived
 * while stopped; reading goes on after the connection to the broker is lost.
 */

/** Far beyond what any case takes: only a send or a read that never ends reaches it. */
const CASE_TIMEOUT_MS = 60_000;

const unique = () => randomBytes(5).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Ingest and dead-letter table as the engine provides them, recording what they are given. */
function contractContext() {
  const store = createSqliteStore({ path: ':memory:' });
  const { logger, lines } = captureLogger();
  const ingested: CloudEvent[] = [];
  const seen = new Set<string>();
  const deadLetters: { message: SourceMessage; reason: string }[] = [];
  const routes: HttpRoute[] = [];
  let calls = 0;
  const held = gate();
  const context: SourceContext = {
    logger,
    kv: store.kv,
    env: {},
    http: { addRoute: (route) => routes.push(route) },
    async ingest(events) {
      calls++;
      await held.passed();
      if (events.some((e) => JSON.stringify(e).includes(REFUSED_MARK)))
        throw new HeraldError('EVENT_UNSTORABLE', 'the event log cannot store this event');
      return events.map((e) => {
        const key = `${e.source}\n${e.id}`;
        const duplicate = seen.has(key);
        if (!duplicate) {
          seen.add(key);
          ingested.push(e);
        }
        return { id: e.id, source: e.source, duplicate };
      });
    },
    async deadLetter(message, reason) {
      deadLetters.push({ message, reason });
    },
  };
  return {
    store,
    context,
    logs: lines,
    routes,
    ingested,
    deadLetters,
    get calls() {
      return calls;
    },
    has: (mark: string) => ingested.some((e) => JSON.stringify(e).includes(mark)),
    /** Ingest waits until the returned function is called. */
    hold: () => held.close(),
  };
}

type Contract = ReturnType<typeof contractContext>;

/** Starts `fixture`'s upstream and one source reading it; `body` may start more of the same config. */
async function withSource(
  kind: SourceKind,
  fixture: SourceFixture,
  body: (
    source: Source,
    harness: SourceHarness,
    contract: Contract,
    another: () => Promise<Source>,
  ) => Promise<void>,
): Promise<void> {
  const name = `contract-${fixture.kind}-${unique()}`;
  const contract = contractContext();
  const harness = await fixture.start(name, contract.routes);
  const sources: Source[] = [];
  const another = async () => {
    const config = kind.configSchema.parse(harness.config);
    await kind.prepare?.(config);
    const source = kind.create(name, config, contract.context);
    sources.push(source);
    await source.start();
    await harness.ready(contract.logs);
    return source;
  };
  try {
    await body(await another(), harness, contract, another);
  } finally {
    for (const source of sources) await source.stop().catch(() => undefined);
    await harness.close();
    await contract.store.close();
  }
}

const registered = new Map(sourceKinds.map((kind) => [kind.kind, kind]));

describeFixtureCoverage('source', [...registered.keys()], sourceFixtures);

for (const fixture of sourceFixtures) {
  const kind = registered.get(fixture.kind);
  if (!kind) continue;
  const title = fixture.variant ? `${fixture.kind} (${fixture.variant})` : fixture.kind;

  describe(`source contract: ${title}`, async () => {
    // Which cases apply is the fixture's to say; read from an upstream started and closed at once.
    const probe = await fixture.start(`contract-probe-${unique()}`, []);
    const { unacknowledged, resumes, dropConnections } = probe;
    await probe.close();
    // A case that does not apply is skipped with the fixture's reason; one that hangs fails.
    const options = (value?: unknown) => ({
      timeout: CASE_TIMEOUT_MS,
      ...(isNotApplicable(value) ? { skip: value.notApplicable } : {}),
    });

    it('a message becomes an event', options(), async () => {
      await withSource(kind, fixture, async (_source, harness, contract) => {
        const mark = `m-${unique()}`;
        await harness.send(mark);
        await eventually(() => contract.has(mark), 10_000, 'the event');
      });
    });

    it('a message is acknowledged only once ingest resolved', options(unacknowledged), async () => {
      await withSource(kind, fixture, async (_source, harness, contract) => {
        const waiting = harness.unacknowledged as () => Promise<number>;
        const release = contract.hold();
        const before = contract.calls;
        const mark = `m-${unique()}`;
        const sending = harness.send(mark);
        try {
          await eventually(() => contract.calls > before, 10_000, 'ingest to be called');
          await sleep(300);
          assert.ok((await waiting()) >= 1, 'not acknowledged while ingest has not resolved');
          assert.equal(contract.has(mark), false);
        } finally {
          release();
        }
        await sending;
        await eventually(async () => (await waiting()) === 0, 10_000, 'the acknowledgement');
        assert.ok(contract.has(mark));
      });
    });

    it(
      'a message that cannot become a stored event is set aside, and the next one is ingested',
      options(),
      async () => {
        await withSource(kind, fixture, async (_source, harness, contract) => {
          if (harness.poisonHandling === 'refused') {
            await assert.rejects(harness.poison(), (err: unknown) => {
              assert.ok(err instanceof HeraldError, String(err));
              assert.ok(err.status >= 400 && err.status < 500, `a 4xx, got ${err.status}`);
              return true;
            });
            assert.deepEqual(contract.deadLetters, [], 'the caller keeps it; nothing is set aside');
          } else {
            await harness.poison();
            await eventually(() => contract.deadLetters.length === 1, 10_000, 'the message set aside');
            const [letter] = contract.deadLetters;
            assert.ok(letter!.message.position, 'the dead letter names where the message sits upstream');
            assert.ok(letter!.reason.length > 0, 'and why it was set aside');
          }
          const mark = `m-${unique()}`;
          await harness.send(mark);
          await eventually(() => contract.has(mark), 10_000, 'the message behind it');
          assert.equal(contract.ingested.length, 1, 'only the good message became an event');
          if (!isNotApplicable(harness.unacknowledged)) {
            const waiting = harness.unacknowledged;
            await eventually(async () => (await waiting()) === 0, 10_000, 'both acknowledged');
          }
          assert.equal(contract.deadLetters.length, harness.poisonHandling === 'refused' ? 0 : 1);
        });
      },
    );

    it('stopped, then started again: what arrived meanwhile is ingested', options(resumes), async () => {
      await withSource(kind, fixture, async (source, harness, contract, another) => {
        const first = `m-${unique()}`;
        await harness.send(first);
        await eventually(() => contract.has(first), 10_000, 'the first event');
        await source.stop();
        const meanwhile = `m-${unique()}`;
        await harness.send(meanwhile);
        await sleep(500);
        assert.equal(contract.has(meanwhile), false, 'a stopped source reads nothing');
        await another();
        await eventually(() => contract.has(meanwhile), 15_000, 'what arrived while stopped');
      });
    });

    it('goes on reading after its connection to the broker is lost', options(dropConnections), async () => {
      await withSource(kind, fixture, async (_source, harness, contract) => {
        const first = `m-${unique()}`;
        await harness.send(first);
        await eventually(() => contract.has(first), 10_000, 'the first event');
        await (harness.dropConnections as () => Promise<void>)();
        // Sent again and again until one gets through: a message sent before the source is back
        // is kept by a durable upstream, and lost by a fire-and-forget one.
        const after = `after-${unique()}`;
        let n = 0;
        await eventually(
          async () => {
            await harness.send(`${after}-${n++}`).catch(() => undefined);
            await sleep(200);
            return contract.has(after);
          },
          30_000,
          'an event after the reconnect',
        );
      });
    });
  });
}
