import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import type { Store } from '../../src/engine/store.js';
import { HeraldError } from '../../src/errors.js';
import type { CloudEvent } from '../../src/events/types.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { PG_URL, uniqueSuffix } from '../support/postgres.js';

const NEIGHBOURS = 40;
const STRUCTURED = { 'content-type': 'application/cloudevents+json' };

const event = (id: string, data: unknown = { n: id }): CloudEvent => ({
  specversion: '1.0',
  id,
  source: 'isolation',
  type: 'isolation.test',
  data,
});

/** A CloudEvent whose data nests 20,000 arrays: it parses, but JSON.stringify overflows on it. */
const deepBody = `{"specversion":"1.0","id":"deep","source":"isolation","type":"isolation.test","data":${'['.repeat(20_000)}${']'.repeat(20_000)}}`;

// The door is opened wide on purpose: these tests are about what happens behind it.
const config = (store: string) => `
limits: { jsonDepth: 100000 }
store: ${store}
channels:
  box: { kind: inbox }
triggers:
  all:
    actions: [{ channel: box, text: "{{ event.id }}" }]
`;

/** `store` whose appends are refused for what they hold whenever they carry an event with that id. */
function refusing(store: Store, id: string): Store & { appends: number } {
  const events = Object.create(store.events) as Store['events'];
  const wrapped = { ...store, events, appends: 0 };
  const refuse = (list: CloudEvent[]) => {
    wrapped.appends++;
    if (list.some((e) => e.id === id))
      throw new HeraldError('EVENT_UNSTORABLE', 'constraint "no_refused_ids" is violated');
  };
  events.append = async (list, at) => {
    refuse(list);
    return store.events.append(list, at);
  };
  const appendRouted = store.events.appendRouted;
  if (appendRouted)
    events.appendRouted = async (list, plans, at, routedAt) => {
      refuse(list);
      return appendRouted.call(store.events, list, plans, at, routedAt);
    };
  const appendCommitted = store.events.appendCommitted;
  if (appendCommitted)
    events.appendCommitted = async (list, at, routing) => {
      refuse(list);
      return appendCommitted.call(store.events, list, at, routing);
    };
  return wrapped;
}

async function storedIds(herald: TestHerald, ids: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const id of ids) if (await herald.engine.store.events.findById(id, 'isolation')) found.push(id);
  return found;
}

const neighbourIds = (prefix: string) => Array.from({ length: NEIGHBOURS }, (_, i) => `${prefix}-${i}`);

/** The same checks against each store. */
function isolationSuite(name: string, storeBlock: () => string, cleanup: () => Promise<void>) {
  describe(`group commit isolates a bad event (${name})`, () => {
    after(cleanup);

    it('the deep-JSON request gets 422 and its 40 concurrent neighbours get 202 and are stored', async () => {
      const herald = await startTestHerald(config(storeBlock()));
      try {
        const ids = neighbourIds('http');
        const [deep, ...neighbours] = await Promise.all([
          herald.post('/events', deepBody, STRUCTURED),
          ...ids.map((id) => herald.post('/events', event(id), STRUCTURED)),
        ]);
        assert.equal(deep!.status, 422);
        const body = (await deep!.json()) as { code: string; error: string };
        assert.equal(body.code, 'EVENT_UNSTORABLE');
        assert.match(body.error, /does not serialise as JSON/);
        assert.deepEqual(
          neighbours.map((r) => r.status),
          ids.map(() => 202),
        );
        assert.deepEqual(await storedIds(herald, ids), ids);
        assert.equal(await storedIds(herald, ['deep']).then((f) => f.length), 0);
      } finally {
        await herald.close();
      }
    });

    it('callers sharing one transaction with an event the log refuses are all stored; that caller gets 422', async () => {
      let store: (Store & { appends: number }) | undefined;
      const herald = await startTestHerald(config(storeBlock()), {
        wrapStore: (s) => {
          store = refusing(s, 'refused');
          return store;
        },
      });
      try {
        const ids = neighbourIds('tx');
        // Called in one tick, so all of them join one group commit.
        const outcomes = await Promise.allSettled([
          ...ids.slice(0, 20).map((id) => herald.engine.ingest([event(id)])),
          herald.engine.ingest([event('refused')]),
          ...ids.slice(20).map((id) => herald.engine.ingest([event(id)])),
        ]);
        const refused = outcomes[20]!;
        assert.equal(refused.status, 'rejected');
        const err = (refused as PromiseRejectedResult).reason as HeraldError;
        assert.equal(err.code, 'EVENT_UNSTORABLE');
        assert.equal(err.status, 422);
        assert.match(err.message, /no_refused_ids/);
        const others = outcomes.filter((_, i) => i !== 20);
        assert.deepEqual(
          others.map((o) => o.status),
          ids.map(() => 'fulfilled'),
        );
        assert.deepEqual(await storedIds(herald, ids), ids);
        // One batch, then halves down to the refused caller: a handful of writes, not one per caller.
        assert.ok(store!.appends <= 15, `${store!.appends} appends`);
      } finally {
        await herald.close();
      }
    });

    it('a store outage still answers 503 to every caller, without retrying each alone', async () => {
      let appends = 0;
      const herald = await startTestHerald(config(storeBlock()), {
        wrapStore: (s) => {
          const events = Object.create(s.events) as Store['events'];
          const down = async (): Promise<never> => {
            appends++;
            throw new HeraldError('STORE_UNAVAILABLE', 'SQLite: disk I/O error');
          };
          events.append = down;
          events.appendRouted = undefined;
          events.appendCommitted = s.events.appendCommitted && down;
          return { ...s, events };
        },
      });
      try {
        const outcomes = await Promise.allSettled(
          neighbourIds('down').map((id) => herald.engine.ingest([event(id)])),
        );
        for (const o of outcomes) {
          assert.equal(o.status, 'rejected');
          assert.equal(((o as PromiseRejectedResult).reason as HeraldError).status, 503);
        }
        assert.equal(appends, 1);
      } finally {
        await herald.close();
      }
    });
  });
}

isolationSuite(
  'sqlite',
  () => '{ kind: sqlite }',
  async () => {},
);

const schema = `herald_isolation_${uniqueSuffix()}`;
isolationSuite(
  'postgres',
  () => `{ kind: postgres, url: "${PG_URL}", schema: ${schema}, poolSize: 4 }`,
  async () => {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  },
);

describe('group commit isolates what only PostgreSQL refuses', () => {
  const own = `herald_isolation_nul_${uniqueSuffix()}`;
  after(async () => {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${own} CASCADE`);
    await client.end();
  });

  it('a NUL character in data (jsonb refuses it) gets 422; its 40 neighbours get 202 and are stored', async () => {
    const herald = await startTestHerald(
      config(`{ kind: postgres, url: "${PG_URL}", schema: ${own}, poolSize: 4 }`),
    );
    try {
      const ids = neighbourIds('nul');
      const [nul, ...neighbours] = await Promise.all([
        herald.post('/events', event('nul', { text: 'a\u0000b' }), STRUCTURED),
        ...ids.map((id) => herald.post('/events', event(id), STRUCTURED)),
      ]);
      assert.equal(nul!.status, 422);
      const body = (await nul!.json()) as { code: string; error: string };
      assert.equal(body.code, 'EVENT_UNSTORABLE');
      assert.match(body.error, /unsupported Unicode escape sequence/);
      assert.deepEqual(
        neighbours.map((r) => r.status),
        ids.map(() => 202),
      );
      assert.deepEqual(await storedIds(herald, ids), ids);
      // The engine's own ingest, all in one transaction: the same.
      const more = neighbourIds('nul-tx');
      const outcomes = await Promise.allSettled([
        herald.engine.ingest([event('nul-tx', { text: '\u0000' })]),
        ...more.map((id) => herald.engine.ingest([event(id)])),
      ]);
      assert.equal(outcomes[0]!.status, 'rejected');
      assert.deepEqual(
        outcomes.slice(1).map((o) => o.status),
        more.map(() => 'fulfilled'),
      );
      assert.deepEqual(await storedIds(herald, more), more);
    } finally {
      await herald.close();
    }
  });
});
