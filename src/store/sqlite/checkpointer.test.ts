import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { pino } from 'pino';
import type { CloudEvent } from '../../events/types.js';
import { WalCheckpointer } from './checkpointer.js';
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

/** A logger whose warnings the test reads. */
function warnings() {
  const lines: string[] = [];
  const logger = pino(
    { level: 'warn' },
    new Writable({
      write(chunk, _encoding, done) {
        lines.push(JSON.parse(String(chunk)).msg);
        done();
      },
    }),
  );
  return { logger, lines };
}

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

  it('a thread that cannot start leaves the commit answered, is tried once and logged once', async () => {
    const { logger, lines } = warnings();
    let spawns = 0;
    const checkpointer = new WalCheckpointer(join(dir, 'never.db'), logger, 0, () => {
      spawns++;
      throw new Error('too many threads');
    });
    // Runs after a commit: throwing here would turn an event already stored into a 503.
    assert.doesNotThrow(() => checkpointer.committed());
    assert.doesNotThrow(() => checkpointer.committed());
    assert.equal(spawns, 1);
    assert.deepEqual(lines, ['SQLite checkpoint thread failed; the writer checkpoints alone']);
    await checkpointer.close();
  });

  it('logs a checkpoint that keeps failing once, and keeps trying after later commits', async () => {
    const { logger, lines } = warnings();
    let checkpoints = 0;
    // No such database: every checkpoint the thread runs fails.
    const checkpointer = new WalCheckpointer(
      join(dir, 'missing', 'gone.db'),
      logger,
      0,
      (source, options) => {
        const worker = new Worker(source, options);
        const post = worker.postMessage.bind(worker);
        worker.postMessage = (message: unknown) => {
          if (message === 'checkpoint') checkpoints++;
          post(message);
        };
        return worker;
      },
    );
    try {
      const deadline = Date.now() + 5000;
      // A commit starts a checkpoint only once the one before has answered.
      while (checkpoints < 3 && Date.now() < deadline) {
        checkpointer.committed();
        await sleep(10);
      }
      await sleep(100);
      assert.equal(checkpoints, 3);
      assert.deepEqual(lines, ['SQLite checkpoint failed; retrying after the next commits']);
    } finally {
      await checkpointer.close();
    }
  });
});
