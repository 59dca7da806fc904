import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { eventually, type HeraldProcess, routedDeliveries, spawnHerald, tempDir } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';

const DATABASE_URL = process.env.HERALD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const NATS_URL = process.env.HERALD_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

const unique = (prefix: string) => `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;

async function post(url: string, events: unknown[]): Promise<void> {
  const res = await fetch(`${url}/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents-batch+json' },
    body: JSON.stringify(events),
  });
  assert.equal(res.status, 202, await res.text());
}

const deliveriesOf = (url: string, id: string) =>
  routedDeliveries<{ status: string; lastError: string | null }>({ url }, id);

const received = (sink: HttpSink, type: string) =>
  sink.requests.map((r) => JSON.parse(r.body) as { id: string; type: string }).filter((e) => e.type === type);

describe('a delayed delivery survives SIGKILL (embedded store)', () => {
  let sink: HttpSink;
  const dir = tempDir('herald-keys-crash-');
  before(async () => {
    sink = await startHttpSink();
    writeFileSync(
      join(dir.path, 'herald.yaml'),
      `
channels:
  hook: { kind: webhook, url: ${sink.url} }
triggers:
  later:
    actions:
      - channel: hook
        dedupe: { key: "{{ event.subject }}", window: 1h }
        delay: 3s
`,
    );
  });
  after(async () => {
    await sink.close();
    dir.remove();
  });

  it('is sent once after the restart, and its dedupe key still holds', async () => {
    const args = ['--config', join(dir.path, 'herald.yaml'), '--data', join(dir.path, 'data'), '--port', '0'];
    const first = await spawnHerald(args);
    let second: HeraldProcess | undefined;
    try {
      await post(first.url, [
        { specversion: '1.0', id: 'held-1', source: 'crash', type: 'keys.crash', subject: 's1' },
      ]);
      const pending = await eventually(() => deliveriesOf(first.url, 'held-1'));
      assert.equal(pending[0]!.status, 'pending');
      await first.kill('SIGKILL');
      assert.equal(received(sink, 'keys.crash').length, 0, 'nothing was sent before the kill');

      second = await spawnHerald(args);
      await sink.waitFor(1, 15_000);
      await eventually(async () => (await deliveriesOf(second!.url, 'held-1'))?.[0]?.status === 'delivered');
      await post(second.url, [
        { specversion: '1.0', id: 'held-2', source: 'crash', type: 'keys.crash', subject: 's1' },
      ]);
      const repeat = await eventually(() => deliveriesOf(second!.url, 'held-2'));
      assert.equal(repeat[0]!.status, 'suppressed');
      assert.match(repeat[0]!.lastError!, /^deduped by key "s1": event held-1/);
      assert.deepEqual(
        received(sink, 'keys.crash').map((e) => e.id),
        ['held-1'],
      );
    } finally {
      await first.kill('SIGKILL');
      await second?.kill();
    }
  });
});

describe('an open digest window survives SIGKILL (embedded store)', () => {
  let sink: HttpSink;
  const dir = tempDir('herald-digest-crash-');
  before(async () => {
    sink = await startHttpSink();
    writeFileSync(
      join(dir.path, 'herald.yaml'),
      `
channels:
  hook: { kind: webhook, url: ${sink.url} }
triggers:
  digest:
    actions:
      - channel: hook
        body: { type: keys.digest, ids: "{% for e in events %}{{ e.id }} {% endfor %}" }
        digest: { key: "{{ event.subject }}", window: 8s }
`,
    );
  });
  after(async () => {
    await sink.close();
    dir.remove();
  });

  it('events joined before the kill and after the restart arrive in one message', async () => {
    const args = ['--config', join(dir.path, 'herald.yaml'), '--data', join(dir.path, 'data'), '--port', '0'];
    const first = await spawnHerald(args);
    let second: HeraldProcess | undefined;
    const ev = (id: string) => ({
      specversion: '1.0',
      id,
      source: 'crash',
      type: 'keys.digest',
      subject: 'repo',
    });
    try {
      await post(first.url, [ev('d-1'), ev('d-2')]);
      assert.equal((await eventually(() => deliveriesOf(first.url, 'd-1')))[0]!.status, 'pending');
      assert.match(
        (await eventually(() => deliveriesOf(first.url, 'd-2')))[0]!.lastError!,
        /^digested into delivery msg_\S+ of event d-1 \(key "repo"\)$/,
      );
      await first.kill('SIGKILL');

      second = await spawnHerald(args);
      await post(second.url, [ev('d-3')]);
      const joined = await eventually(() => deliveriesOf(second!.url, 'd-3'));
      assert.equal(joined[0]!.status, 'suppressed', 'joined the digest opened before the kill');
      await sink.waitFor(1, 20_000);
      await eventually(async () => (await deliveriesOf(second!.url, 'd-1'))?.[0]?.status === 'delivered');
      assert.deepEqual(
        sink.requests.map((r) => JSON.parse(r.body)),
        [{ type: 'keys.digest', ids: 'd-1 d-2 d-3 ' }],
      );
    } finally {
      await first.kill('SIGKILL');
      await second?.kill();
    }
  });
});

describe('notification keys across two processes (PostgreSQL + JetStream)', () => {
  let sink: HttpSink;
  const dir = tempDir('herald-keys-dist-');
  const schema = unique('herald_keys');
  const stream = unique('HERALD_KEYS');
  const processes: HeraldProcess[] = [];
  before(async () => {
    sink = await startHttpSink();
    writeFileSync(
      join(dir.path, 'herald.yaml'),
      `
store: { kind: postgres, url: ${DATABASE_URL}, schema: ${schema}, poolSize: 4 }
bus:
  kind: jetstream
  url: ${NATS_URL}
  subject: ${stream.toLowerCase()}.events
  stream: { name: ${stream}, maxAgeMs: 3600000 }
  consumer: { ackWaitMs: 3000, batch: 50 }
dispatcher: { leaseMs: 5000, pollIntervalMs: 100 }
channels:
  hook: { kind: webhook, url: ${sink.url}, concurrency: 8 }
triggers:
  throttled:
    filter: { exact: { type: keys.throttle } }
    actions:
      - { channel: hook, throttle: { key: "everyone", limit: 5, per: 1h } }
  deduped:
    filter: { exact: { type: keys.dedupe } }
    actions:
      - { channel: hook, dedupe: { key: "{{ event.data.run }}", window: 1h } }
  digested:
    filter: { exact: { type: keys.digest } }
    actions:
      - channel: hook
        body: { type: keys.digest, ids: "{% for e in events %}{{ e.id }} {% endfor %}" }
        digest: { key: "all", window: 5s }
`,
    );
    const args = ['--config', join(dir.path, 'herald.yaml'), '--data', join(dir.path, 'data'), '--port', '0'];
    // One first, so the schema is migrated once; then the second joins.
    processes.push(await spawnHerald(args, { HERALD_PROCESS_NAME: 'a' }));
    processes.push(await spawnHerald(args, { HERALD_PROCESS_NAME: 'b' }));
  });
  after(async () => {
    for (const p of processes) await p.kill();
    await sink.close();
    dir.remove();
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
    const nc = await connect({ servers: NATS_URL, maxReconnectAttempts: 0 }).catch(() => null);
    if (nc) {
      await (await jetstreamManager(nc)).streams.delete(stream).catch(() => undefined);
      await nc.close();
    }
  });

  it('lets exactly the throttle limit and one deduped notification through, however the two route', async () => {
    const events = (type: string, from: number, count: number) =>
      Array.from({ length: count }, (_, k) => ({
        specversion: '1.0',
        id: `${type}-${from + k}`,
        source: 'keys-dist',
        type,
        data: { run: 'run-1', i: from + k },
      }));
    // Both processes take events at once, in small batches, so their routers contend for the keys.
    const posts: Promise<void>[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const url = processes[batch % 2]!.url;
      posts.push(post(url, events('keys.throttle', batch * 3, 3)));
      posts.push(post(url, events('keys.dedupe', batch * 3, 3)));
    }
    await Promise.all(posts);
    const ids = (type: string) => events(type, 0, 30).map((e) => e.id);
    const fates = async (type: string) => {
      const out: { status: string; lastError: string | null }[] = [];
      for (const id of ids(type)) {
        const list = await deliveriesOf(processes[0]!.url, id);
        if (!list || list.some((d) => d.status === 'pending')) return undefined;
        out.push(...list);
      }
      return out;
    };
    const throttled = await eventually(() => fates('keys.throttle'), 30_000, 'every throttle event settled');
    const deduped = await eventually(() => fates('keys.dedupe'), 30_000, 'every dedupe event settled');
    assert.equal(throttled.filter((d) => d.status === 'delivered').length, 5);
    assert.equal(throttled.filter((d) => d.lastError === 'throttled: 5/1h for key "everyone"').length, 25);
    assert.equal(deduped.filter((d) => d.status === 'delivered').length, 1);
    assert.equal(deduped.filter((d) => d.lastError?.startsWith('deduped by key "run-1"')).length, 29);
    assert.equal(received(sink, 'keys.throttle').length, 5);
    assert.equal(received(sink, 'keys.dedupe').length, 1);
  });

  it('one digest collects the events both processes route for a key', async () => {
    const events = Array.from({ length: 12 }, (_, k) => ({
      specversion: '1.0',
      id: `keys.digest-${k}`,
      source: 'keys-dist',
      type: 'keys.digest',
    }));
    const posts: Promise<void>[] = [];
    for (let batch = 0; batch < 6; batch++)
      posts.push(post(processes[batch % 2]!.url, events.slice(batch * 2, batch * 2 + 2)));
    await Promise.all(posts);
    const fates = async () => {
      const out: { status: string; lastError: string | null }[] = [];
      for (const e of events) {
        const list = await deliveriesOf(processes[1]!.url, e.id);
        if (!list || list.some((d) => d.status === 'pending')) return undefined;
        out.push(...list);
      }
      return out;
    };
    const settled = await eventually(fates, 30_000, 'the digest sent');
    assert.equal(settled.filter((d) => d.status === 'delivered').length, 1);
    assert.equal(settled.filter((d) => d.lastError?.startsWith('digested into delivery ')).length, 11);
    const sent = received(sink, 'keys.digest') as unknown as { ids: string }[];
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0]!.ids.trim().split(' ').sort(), events.map((e) => e.id).sort());
  });
});
