import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createClient, HeraldApiError, HeraldUnreachableError } from '../../src/client/index.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';
import { freePort } from '../support/ports.js';

const ADMIN = 'client-admin-token';
const INGEST = 'client-ingest-token';

/** Forwards every request to `target`, but answers the first `failFirst` POSTs to /events with 503. */
async function startFlakyProxy(target: string, failFirst: number) {
  const seen: { path: string; status: number; body: string }[] = [];
  let failures = 0;
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    if (req.method === 'POST' && req.url === '/events' && failures < failFirst) {
      failures++;
      seen.push({ path: req.url, status: 503, body });
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'Herald is stopping', code: 'UNAVAILABLE' }));
      return;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (typeof v === 'string' && k !== 'host' && k !== 'content-length') headers[k] = v;
    const answer = await fetch(`${target}${req.url}`, {
      method: req.method,
      headers,
      body: body === '' ? undefined : body,
    });
    const text = await answer.text();
    seen.push({ path: req.url ?? '', status: answer.status, body });
    res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' });
    res.end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('herald/client against a running Herald', () => {
  let herald: TestHerald;
  let sink: HttpSink;
  before(async () => {
    sink = await startHttpSink();
    sink.setDefault({ status: 200 });
    herald = await startTestHerald(
      [
        'sources:',
        '  bot:',
        '    kind: http',
        '    routes:',
        '      - path: /notify',
        '        schema: { type: object, required: [topic] }',
        '        event: { type: notification.created, subject: "{{ body.topic }}" }',
        'channels:',
        `  hook: { kind: webhook, url: "${sink.url}" }`,
        '  box: { kind: inbox }',
        'triggers:',
        '  hooked:',
        '    filter: { exact: { type: client.hooked } }',
        '    actions: [{ channel: hook }]',
        '    delivery: { maxAttempts: 1 }',
        '  boxed:',
        '    filter: { exact: { type: notification.created } }',
        '    actions: [{ channel: box, text: "{{ event.subject }}" }]',
        '',
      ].join('\n'),
      { env: { HERALD_ADMIN_TOKEN: ADMIN, HERALD_INGEST_TOKEN: INGEST } },
    );
  });
  after(async () => {
    await herald.close();
    await sink.close();
  });

  const client = () => createClient({ url: herald.url, token: ADMIN, ingestToken: INGEST, retryDelayMs: 1 });

  it('sends one event, filling its id, and finds it through the admin API', async () => {
    const accepted = await client().send({ source: 'test/client', type: 'client.single', data: { n: 1 } });
    assert.equal(accepted.duplicate, false);
    assert.match(accepted.id, /^[0-9a-f-]{36}$/);
    const detail = await client().events.get(accepted.id, { source: 'test/client' });
    assert.equal(detail.event.type, 'client.single');
    assert.deepEqual(detail.event.data, { n: 1 });
    const page = await client().events.list({ type: 'client.single' });
    assert.deepEqual(
      page.events.map((e) => e.event.id),
      [accepted.id],
    );
    assert.equal((await client().events.bySeq(detail.seq)).event.id, accepted.id);
  });

  it('sends a batch in one request; sending it again is all duplicates', async () => {
    const events = [
      { id: 'batch-1', source: 'test/client', type: 'client.batch' },
      { id: 'batch-2', source: 'test/client', type: 'client.batch', subject: 'two' },
    ];
    assert.deepEqual(await client().send(events), { accepted: 2, duplicates: 0 });
    assert.deepEqual(await client().send(events), { accepted: 0, duplicates: 2 });
    assert.equal((await client().events.list({ type: 'client.batch' })).events.length, 2);
  });

  it('retries a 503 with the same id, so the event is stored once', async () => {
    const proxy = await startFlakyProxy(herald.url, 1);
    try {
      const flaky = createClient({ url: proxy.url, ingestToken: INGEST, retries: 2, retryDelayMs: 1 });
      const accepted = await flaky.send({ source: 'test/client', type: 'client.retried' });
      assert.deepEqual(
        proxy.seen.map((s) => s.status),
        [503, 202],
      );
      const ids = proxy.seen.map((s) => JSON.parse(s.body).id);
      assert.equal(ids[0], ids[1], 'the retry carries the id of the first attempt');
      assert.equal(accepted.id, ids[0]);
      const stored = await client().events.list({ type: 'client.retried' });
      assert.equal(stored.events.length, 1);
    } finally {
      await proxy.close();
    }
  });

  it('gives up after its retries and reports the last 503 as an error', async () => {
    const proxy = await startFlakyProxy(herald.url, 10);
    try {
      const flaky = createClient({ url: proxy.url, ingestToken: INGEST, retries: 2, retryDelayMs: 1 });
      const err = await flaky.send({ source: 'test/client', type: 'client.refused' }).catch((e) => e);
      assert.ok(err instanceof HeraldApiError, String(err));
      assert.equal(err.status, 503);
      assert.equal(err.code, 'UNAVAILABLE');
      assert.equal(proxy.seen.length, 3, 'one attempt and two retries');
    } finally {
      await proxy.close();
    }
  });

  it('stops reading an endless chunked answer at its limit instead of filling memory', async () => {
    // A broken or hostile peer: 200, no Content-Length, and bytes for as long as anyone reads.
    let written = 0;
    const server: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(1 << 20, 0x20);
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) written += chunk.length;
        if (!res.destroyed) res.once('drain', pump);
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const peer = createClient({ url: `http://127.0.0.1:${port}`, token: ADMIN, retries: 0 });
      const err = await peer.status().catch((e) => e);
      assert.ok(err instanceof HeraldApiError, String(err));
      assert.equal(err.code, 'ANSWER_TOO_LARGE');
      assert.match(err.message, /over 67108864 bytes/);
      assert.ok(written < 256 * (1 << 20), `the peer wrote ${written} bytes before the client stopped`);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('reports an unreachable Herald after its retries', async () => {
    const closedPort = await freePort();
    const lost = createClient({ url: `http://127.0.0.1:${closedPort}`, retries: 1, retryDelayMs: 1 });
    const err = await lost.send({ source: 'test/client', type: 'x' }).catch((e) => e);
    assert.ok(err instanceof HeraldUnreachableError, String(err));
    assert.equal(err.attempts, 2);
    assert.match(err.message, /cannot reach Herald .*ECONNREFUSED/);
  });

  it('notify posts to an http route; the event reaches its trigger', async () => {
    const accepted = await client().notify('/notify', { topic: 'sales', description: 'hi' });
    assert.equal(accepted.duplicate, false);
    const message = await eventually(async () => {
      const page = await client().inbox.list({ channel: 'box' });
      return page.messages.find((m) => m.eventId === accepted.id);
    });
    assert.equal(message.channel, 'box');
    assert.deepEqual(message.message, { text: 'sales' });
  });

  it('maps a 400 to its status, code and message', async () => {
    const err = await client()
      .notify('/notify', { description: 'no topic' })
      .catch((e) => e);
    assert.ok(err instanceof HeraldApiError);
    assert.equal(err.status, 400);
    assert.equal(err.code, 'REQUEST_INVALID');
    assert.match(err.message, /body\.topic is required/);

    const bad = await client()
      .send({ source: 'test/client', type: 'client.bad', id: '' })
      .catch((e) => e);
    assert.ok(bad instanceof HeraldApiError);
    assert.equal(bad.status, 400);
    assert.equal(bad.code, 'EVENT_INVALID');
    assert.equal(bad.body.attribute, 'id');
  });

  it('admin calls need the token: without it 401, and no retry', async () => {
    const anonymous = createClient({ url: herald.url, retryDelayMs: 1 });
    const err = await anonymous.status().catch((e) => e);
    assert.ok(err instanceof HeraldApiError);
    assert.equal(err.status, 401);
    assert.equal(err.code, 'UNAUTHORIZED');
    const noIngest = await anonymous.send({ source: 'test/client', type: 'x' }).catch((e) => e);
    assert.equal(noIngest.status, 401);
    const status = await client().status();
    assert.equal(status.state, 'running');
    assert.deepEqual(status.channels.map((c) => c.name).sort(), ['box', 'hook']);
  });

  it('lists dead letters, replays one, and the delivery is sent again', async () => {
    sink.setDefault({ status: 422, body: 'refused' });
    const { id } = await client().send({ source: 'test/client', type: 'client.hooked' });
    const dead = await eventually(async () => {
      const page = await client().dlq.list({ channel: 'hook' });
      return page.deadLetters.find((d) => d.eventId === id);
    });
    assert.match(dead.lastError ?? '', /HTTP 422/);
    const delivery = await client().deliveries.get(dead.id);
    assert.equal(delivery.status, 'dead');
    assert.equal(delivery.attemptLog.length, 1);

    sink.setDefault({ status: 200 });
    const before = sink.requests.length;
    const replayed = await client().dlq.replay(dead.id);
    assert.deepEqual([replayed.replayed, replayed.mode], [[dead.id], 're-rendered']);
    await sink.waitFor(before + 1);
    await eventually(async () => (await client().deliveries.get(dead.id)).status === 'delivered');

    const notDead = await client()
      .dlq.replay(dead.id)
      .catch((e) => e);
    assert.equal(notDead.status, 409);
    const none = await client().dlq.replayMatching({ channel: 'hook' });
    assert.deepEqual(none, { replayed: 0, ids: [], mode: 're-rendered', skipped: [] });
    const sourceLetters = await client().dlq.source.list('bot');
    assert.deepEqual(sourceLetters.sourceDeadLetters, []);
  });

  it('manages subscribers and what they follow', async () => {
    const saved = await client().subscribers.save({ id: 'ada', email: 'ada@example.com' });
    assert.equal(saved.id, 'ada');
    assert.deepEqual(await client().subscribers.subscribe('ada', 'product:1'), {
      subscriber: 'ada',
      key: 'product:1',
      created: true,
    });
    assert.deepEqual((await client().subscribers.get('ada')).keys, ['product:1']);
    assert.deepEqual(
      (await client().subscribers.of('product:1')).subscribers.map((s) => s.id),
      ['ada'],
    );
    await client().subscribers.unsubscribe('ada', 'product:1');
    await client().subscribers.delete('ada');
    const gone = await client()
      .subscribers.get('ada')
      .catch((e) => e);
    assert.equal(gone.status, 404);
    assert.equal(gone.code, 'NOT_FOUND');
  });

  it('views are absent without projections: a 404 naming the route', async () => {
    const err = await client()
      .views.list()
      .catch((e) => e);
    assert.ok(err instanceof HeraldApiError);
    assert.equal(err.status, 404);
  });
});
