import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { busSchema } from '../../src/bus/config.js';
import type { Bus, RouteHandler } from '../../src/engine/bus.js';
import type { CloudEvent } from '../../src/events/types.js';
import { createSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store, StoredEvent } from '../../src/store/types.js';
import { gate } from '../support/gate.js';
import { eventually } from '../support/herald.js';
import { type BusFixture, busFixtures } from './fixtures/buses.js';
import { describeFixtureCoverage } from './fixtures/coverage.js';

/**
 * The bus contract, run against every bus kind the config accepts (`bus.kind`): every stored
 * event reaches a router at least once, also after a routing failure; an event published twice
 * is routed once; an event stored but never published is found by the recovery sweep; stopping
 * finishes the batch in hand. The store is a real one; the router commits its plan as Herald's does.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Stores `count` events received at `receivedAt`; returns them as the bus carries them. */
async function storeEvents(store: Store, count: number, receivedAt = Date.now()): Promise<StoredEvent[]> {
  const run = randomBytes(4).toString('hex');
  const events: CloudEvent[] = Array.from({ length: count }, (_, i) => ({
    specversion: '1.0',
    id: `bus-${run}-${i}`,
    source: 'urn:herald:bus-contract',
    type: 'bus.contract',
  }));
  const appended = await store.events.append(events, receivedAt);
  return appended.map((a, i) => ({
    seq: a.seq,
    receivedAt,
    event: events[i]!,
    routedAt: null,
    routing: null,
  }));
}

/** A router: commits each batch as routed (nothing matched) and counts how often it saw each event. */
function router(store: Store) {
  const routed = new Map<number, number>();
  let failures = 0;
  const held = gate();
  const handler: RouteHandler = async (batch) => {
    await held.passed();
    if (failures > 0) {
      failures--;
      throw new Error('routing failed');
    }
    await store.routing.commit(
      batch.map((e) => ({ seq: e.seq, record: { matched: [], errors: [], deliveries: 0 }, deliveries: [] })),
      Date.now(),
    );
    for (const e of batch) routed.set(e.seq, (routed.get(e.seq) ?? 0) + 1);
  };
  return {
    handler,
    routed,
    /** The next `n` batches fail before anything is committed. */
    failNext(n: number) {
      failures = n;
    },
    /** Batches wait until the returned function is called. */
    hold: () => held.close(),
    routedAll: (events: StoredEvent[]) => events.every((e) => routed.has(e.seq)),
  };
}

async function withBus(fixture: BusFixture, body: (store: Store, open: () => Bus) => Promise<void>) {
  const store = createSqliteStore({ path: ':memory:' });
  const harness = await fixture.start(store);
  try {
    await body(store, () => harness.open());
  } finally {
    await harness.close();
    await store.close();
  }
}

const configuredKinds = busSchema.options.map((option) => option.shape.kind.value as string);

describeFixtureCoverage('bus', configuredKinds, busFixtures);

for (const fixture of busFixtures) {
  describe(`bus contract: ${fixture.kind}`, () => {
    it('at least once: every published event reaches the router, and a batch whose routing failed is handed again', async () => {
      await withBus(fixture, async (store, open) => {
        const bus = open();
        await bus.start();
        const route = router(store);
        route.failNext(1);
        const events = await storeEvents(store, 20);
        bus.publish(events);
        bus.consume(route.handler);
        await eventually(() => route.routedAll(events), 15_000, 'every event routed');
        assert.equal((await store.events.unrouted(100)).length, 0, 'nothing is left unrouted in the store');
        assert.equal(bus.health().ok, true);
      });
    });

    it('de-duplication: events published twice are routed once', async () => {
      await withBus(fixture, async (store, open) => {
        const bus = open();
        await bus.start();
        const route = router(store);
        const events = await storeEvents(store, 10);
        bus.publish(events);
        bus.publish(events);
        bus.consume(route.handler);
        await eventually(() => route.routedAll(events), 15_000, 'every event routed');
        // Room for a second delivery to show up.
        await sleep(1500);
        const twice = [...route.routed].filter(([, n]) => n > 1).map(([seq]) => seq);
        assert.deepEqual(twice, [], 'no event routed twice');
      });
    });

    it('recovery sweep: an event stored but never published is routed', async () => {
      await withBus(fixture, async (store, open) => {
        const bus = open();
        await bus.start();
        const route = router(store);
        bus.consume(route.handler);
        // A process that stored these and died before publishing them.
        const events = await storeEvents(store, 5, Date.now() - 5000);
        await eventually(
          () => route.routedAll(events),
          10_000,
          'the sweep to route what was never published',
        );
      });
    });

    it('stopping finishes the batch in hand: its plan is committed before stopConsuming resolves', async () => {
      await withBus(fixture, async (store, open) => {
        const bus = open();
        await bus.start();
        const route = router(store);
        const release = route.hold();
        const events = await storeEvents(store, 3);
        bus.publish(events);
        bus.consume(route.handler);
        // The batch is in the router's hands once the bus has read it.
        await sleep(500);
        let stopped = false;
        const stopping = bus.stopConsuming().then(() => {
          stopped = true;
        });
        await sleep(300);
        assert.equal(stopped, false, 'stopConsuming waits for the batch in hand');
        release();
        await stopping;
        assert.ok(route.routedAll(events), 'the batch in hand was routed');
        assert.equal((await store.events.unrouted(100)).length, 0);
      });
    });
  });
}
