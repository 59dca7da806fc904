import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CloudEvent } from '../../events/types.js';
import { createSqliteStore } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'herald-checkpoint-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const event = (i: number): CloudEvent => ({
  specversion: '1.0',
  id: `e-${i}`,
  source: '/checkpoint',
  type: 'test.checkpoint',
  data: { text: 'x'.repeat(2000) },
});

describe('SQLite checkpoints off the event loop', () => {
  it('copies what was committed into the database file while the store stays open', async () => {
    const path = join(dir, 'open.db');
    const store = createSqliteStore({ path });
    try {
      const before = statSync(path).size;
      // About 200 pages of WAL: far below any threshold at which the writer checkpoints itself,
      // so only the checkpointing thread can have moved them into the database file.
      for (let i = 0; i < 300; i++) {
        await store.events.append([event(i)], Date.now());
        if (i % 50 === 0) await sleep(60);
      }
      const deadline = Date.now() + 5000;
      while (statSync(path).size <= before + 300 * 2000 && Date.now() < deadline) {
        await store.events.append([event(1000 + Math.floor(Math.random() * 1e9))], Date.now());
        await sleep(50);
      }
      assert.ok(
        statSync(path).size > before + 300 * 2000,
        `database file grew from ${before} to only ${statSync(path).size} bytes`,
      );
      assert.equal((await store.events.get(1))?.event.id, 'e-0');
    } finally {
      await store.close();
    }
  });

  it('closes its connection before the store, so closing removes the WAL', async () => {
    const path = join(dir, 'closed.db');
    const store = createSqliteStore({ path });
    for (let i = 0; i < 20; i++) {
      await store.events.append([event(i)], Date.now());
      await sleep(20);
    }
    assert.ok(existsSync(`${path}-wal`));
    await store.close();
    assert.equal(existsSync(`${path}-wal`), false, 'the WAL is left behind');
    const reopened = createSqliteStore({ path });
    try {
      assert.equal((await reopened.events.list({ limit: 100 })).length, 20);
    } finally {
      await reopened.close();
    }
  });
});
