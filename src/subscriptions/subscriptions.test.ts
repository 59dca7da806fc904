import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileFilter } from '../filters/index.js';
import { createLogger } from '../logger.js';
import { createSqliteStore } from '../store/sqlite/index.js';
import { compileTemplate } from '../templates/index.js';
import type { CompiledFeed } from './config.js';
import { Subscriptions } from './index.js';

const feed = (name: string, type: string, maxItems: number): CompiledFeed => ({
  name,
  key: compileTemplate(`${name}:{{ event.subject }}`),
  matcher: compileFilter({ exact: { type } }, ['feed']),
  maxItems,
  maxAgeMs: 86_400_000,
});

describe('subscriptions: feeds', () => {
  it('each feed keeps its own number of items, and listeners hear the keys that changed', async () => {
    const store = createSqliteStore({ path: ':memory:' });
    const subs = new Subscriptions(
      store.subscriptions,
      { preferences: {}, feeds: [feed('short', 'a', 2), feed('long', 'b', 5)] },
      new Map(),
      createLogger({ level: 'silent' }),
    );
    const heard: string[][] = [];
    subs.onFeedChanged((keys) => heard.push(keys));
    for (let seq = 1; seq <= 12; seq++) {
      subs.recordRouted({
        seq,
        event: { specversion: '1.0', id: `e${seq}`, source: 's', type: seq % 2 ? 'a' : 'b', subject: 'x' },
        receivedAt: 0,
        routedAt: 0,
        routing: null,
      });
    }
    await subs.settled();
    assert.deepEqual(
      (await store.subscriptions.feed('short:x', { limit: 50 })).map((i) => i.eventSeq),
      [11, 9],
    );
    assert.deepEqual(
      (await store.subscriptions.feed('long:x', { limit: 50 })).map((i) => i.eventSeq),
      [12, 10, 8, 6, 4],
    );
    assert.deepEqual(new Set(heard.flat()), new Set(['short:x', 'long:x']));
    await store.close();
  });
});
