import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const CONFIG = `
server: { bodyLimit: 2048 }
sources:
  bot:
    kind: http
    routes:
      - path: /notify
        schema:
          type: object
          required: [topic, description]
          properties: { topic: { type: string }, description: { type: string } }
        event: { type: notification.created, subject: "{{ body.topic }}" }
channels:
  box: { kind: inbox }
triggers:
  all:
    actions: [{ channel: box, text: "{{ event.type }}" }]
`;

describe('bad input gets a clear 4xx and writes nothing', () => {
  let herald: TestHerald;
  before(async () => {
    herald = await startTestHerald(CONFIG);
  });
  after(() => herald.close());

  const eventCount = async () => herald.engine.store.events.count();

  async function expectError(res: Response, status: number, pattern: RegExp) {
    assert.equal(res.status, status);
    const body = (await res.json()) as { error: string; code: string };
    assert.match(body.error, pattern);
    assert.ok(body.code);
    return body;
  }

  it('malformed JSON → 400 naming the JSON problem', async () => {
    await expectError(await herald.post('/notify', '{"topic": "sales",'), 400, /not valid JSON/);
    await expectError(
      await herald.post('/events', '{"specversion":', { 'content-type': 'application/cloudevents+json' }),
      400,
      /JSON/,
    );
    assert.equal(await eventCount(), 0);
  });

  it('a body that does not fit the route schema → 400 naming the field', async () => {
    const body = await expectError(
      await herald.post('/notify', { topic: 'sales' }),
      400,
      /description is required/,
    );
    assert.equal(body.code, 'REQUEST_INVALID');
    await expectError(
      await herald.post('/notify', { topic: 3, description: 'x' }),
      400,
      /body\.topic must be string/,
    );
    assert.equal(await eventCount(), 0);
  });

  it('wrong content type → 415', async () => {
    await expectError(
      await herald.post('/notify', 'topic=sales', { 'content-type': 'text/plain' }),
      415,
      /content-type/,
    );
    await expectError(
      await herald.post('/events', 'hello', { 'content-type': 'text/plain' }),
      415,
      /CloudEvent/i,
    );
    assert.equal(await eventCount(), 0);
  });

  it('an invalid CloudEvent → 400 naming the attribute', async () => {
    const body = await expectError(
      await herald.post(
        '/events',
        { specversion: '1.0', id: 'x', source: 's' },
        { 'content-type': 'application/cloudevents+json' },
      ),
      400,
      /type/,
    );
    assert.equal((body as { attribute?: string }).attribute, 'type');
    const batch = await expectError(
      await herald.post(
        '/events',
        [
          { specversion: '1.0', id: 'a', source: 's', type: 't' },
          { specversion: '1.0', id: 'b', source: 's' },
        ],
        {
          'content-type': 'application/cloudevents-batch+json',
        },
      ),
      400,
      /type/,
    );
    assert.equal((batch as { attribute?: string }).attribute, '[1].type');
    assert.equal(await eventCount(), 0, 'a batch with one bad event stores none of it');
  });

  it('oversized body → 413', async () => {
    await expectError(
      await herald.post('/notify', { topic: 'sales', description: 'x'.repeat(4000) }),
      413,
      /larger than/,
    );
    assert.equal(await eventCount(), 0);
  });

  it('unknown route → 404', async () => {
    await expectError(await herald.post('/nope', {}), 404, /no route POST \/nope/);
  });

  it('bad admin query → 400', async () => {
    await expectError(await herald.get('/api/events?limit=abc'), 400, /limit/);
    await expectError(await herald.get('/api/deliveries?status=lost'), 400, /status/);
  });

  it('headers larger than Node accepts → 431 with the same JSON error body', async () => {
    const res = await fetch(`${herald.url}/notify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-padding': 'x'.repeat(20_000) },
      body: JSON.stringify({ topic: 'a', description: 'b' }),
    });
    const body = await expectError(res, 431, /headers are larger/);
    assert.equal(body.code, 'HEADERS_TOO_LARGE');
    assert.equal(await eventCount(), 0);
  });

  it('stays healthy and accepts good input afterwards', async () => {
    assert.equal((await herald.get('/healthz')).status, 200);
    assert.equal((await herald.get('/readyz')).status, 200);
    assert.equal((await herald.post('/notify', { topic: 'sales', description: 'fine' })).status, 202);
    assert.equal(await eventCount(), 1);
  });
});

describe('admin token', () => {
  let herald: TestHerald;
  before(async () => {
    herald = await startTestHerald(CONFIG, { env: { HERALD_ADMIN_TOKEN: 's3cret-token' } });
  });
  after(() => herald.close());

  it('refuses /api/* without the bearer token and accepts it with', async () => {
    const denied = await herald.get('/api/events');
    assert.equal(denied.status, 401);
    const body = await denied.text();
    assert.doesNotMatch(body, /s3cret-token/);
    assert.equal((await herald.get('/api/events', { authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await herald.get('/api/events', { authorization: 'Bearer s3cret-token' })).status, 200);
    // Ingest is not an admin endpoint.
    assert.equal((await herald.post('/notify', { topic: 'a', description: 'b' })).status, 202);
  });
});
