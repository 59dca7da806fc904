import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import type { CloudEvent } from '../../src/events/types.js';
import { eventually, startTestHerald, type TestHerald, tempDir } from '../support/herald.js';
import { freePort } from '../support/ports.js';
import { runServer, stopServer } from '../support/servers.js';

async function eventsOf(herald: TestHerald): Promise<CloudEvent[]> {
  const res = await herald.get('/api/events?limit=1000');
  return ((await res.json()) as { events: { event: CloudEvent }[] }).events.map((e) => e.event);
}

const ce = (id: string) =>
  JSON.stringify({ specversion: '1.0', id, source: 'urn:test', type: 'test.reconnect' });

// Private servers on their own ports, so stopping them disturbs no other test.
describe('sources reconnect', () => {
  const children: ChildProcess[] = [];
  after(() => {
    for (const child of children) child.kill('SIGKILL');
  });

  it('nats: check() reports the outage while it lasts, and messages flow again after it', async () => {
    const port = await freePort();
    const args = ['-a', '127.0.0.1', '-p', String(port)];
    let server = await runServer('nats-server', args, port);
    children.push(server);
    const herald = await startTestHerald(`
sources:
  bus: { kind: nats, url: "nats://127.0.0.1:${port}", subjects: [reconnect.test] }
`);
    try {
      const source = herald.engine.sources.get('bus')!;
      assert.equal((await source.check!()).ok, true);
      await stopServer(server, port);
      const down = await eventually(async () => {
        const result = await source.check!();
        return result.ok ? undefined : result;
      });
      assert.match(down.detail, /disconnected from nats:\/\/127\.0\.0\.1:\d+; reconnecting/);
      server = await runServer('nats-server', args, port);
      children.push(server);
      await eventually(async () => (await source.check!()).ok, 10_000, 'the reconnect');
      const nc = await connect({ servers: `127.0.0.1:${port}` });
      await eventually(
        async () => {
          nc.publish('reconnect.test', ce(`after-${Date.now()}`));
          await nc.flush();
          return (await eventsOf(herald)).length > 0;
        },
        10_000,
        'a message after the reconnect',
      );
      await nc.close();
      assert.ok(herald.logs.some((l) => String(l.msg).includes('lost the NATS connection')));
      assert.ok(herald.logs.some((l) => String(l.msg).includes('reconnected to NATS')));
    } finally {
      await herald.close();
      await stopServer(server, port);
    }
  });

  it('redis: a stream keeps being read across a Redis restart, and nothing is lost', async () => {
    const port = await freePort();
    const dir = tempDir('herald-redis-');
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir.path,
      '--appendonly',
      'yes',
      '--save',
      '',
    ];
    let server = await runServer('redis-server', args, port);
    children.push(server);
    const herald = await startTestHerald(`
sources:
  q: { kind: redis, url: "redis://127.0.0.1:${port}", streams: [{ key: s, blockMs: 200 }] }
`);
    const client = () => new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
    try {
      let redis = client();
      await redis.connect();
      await redis.xadd('s', '*', 'event', ce('before'));
      await eventually(async () => (await eventsOf(herald)).some((e) => e.id === 'before'));
      redis.disconnect();
      await stopServer(server, port);
      const source = herald.engine.sources.get('q')!;
      assert.equal((await source.check!()).ok, false);
      server = await runServer('redis-server', args, port);
      children.push(server);
      redis = client();
      await redis.connect();
      await redis.xadd('s', '*', 'event', ce('after'));
      await eventually(async () => (await eventsOf(herald)).some((e) => e.id === 'after'), 10_000);
      assert.equal((await source.check!()).ok, true);
      // The entry is acked once its event is durable, which may be just after it can be read.
      await eventually(
        async () => ((await redis.call('XPENDING', ['s', 'herald'])) as [number])[0] === 0,
        5_000,
      );
      redis.disconnect();
      assert.ok(herald.logs.some((l) => String(l.msg).includes('lost the Redis connection')));
    } finally {
      await herald.close();
      await stopServer(server, port);
      dir.remove();
    }
  });
});
