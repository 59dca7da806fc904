import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../src/config/load.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';

interface Listed {
  events: { event: Record<string, unknown> }[];
}

describe('followUp: events after a delivery', () => {
  let herald: TestHerald;
  let sink: HttpSink;
  before(async () => {
    sink = await startHttpSink();
    herald = await startTestHerald(`
channels:
  supplier: { kind: webhook, url: "${sink.url}" }
  box: { kind: inbox }
triggers:
  order-swag:
    filter: { exact: { type: customer.saved } }
    actions:
      - channel: supplier
        body: { customer: "{{ event.subject }}" }
        followUp: { type: swag.ordered, subject: "{{ event.subject }}", data: { customer: "{{ event.subject }}" } }
    delivery: { maxAttempts: 5, backoff: { initialMs: 50, maxMs: 100, jitter: 0 } }
  after-swag:
    filter: { exact: { type: swag.ordered } }
    actions: [{ channel: box, text: "swag for {{ event.subject }}" }]
  loop:
    filter: { exact: { type: ping } }
    actions: [{ channel: box, text: "ping", followUp: { type: ping } }]
`);
  });
  after(async () => {
    await herald.close();
    await sink.close();
  });
  const send = (event: Record<string, unknown>) =>
    herald.post(
      '/events',
      { specversion: '1.0', source: 'crm', ...event },
      { 'content-type': 'application/cloudevents+json' },
    );
  const ofType = async (type: string) =>
    ((await (await herald.get(`/api/events?type=${type}`)).json()) as Listed).events.map((e) => e.event);

  it('emits the next event only once the action is delivered, and it routes onward', async () => {
    sink.respondWith({ status: 503 }, { status: 503 });
    assert.equal((await send({ id: 'c1', type: 'customer.saved', subject: 'cust-1' })).status, 202);
    const message = await eventually(async () => {
      const inbox = (await (await herald.get('/api/inbox')).json()) as {
        messages: { message: { text: string } }[];
      };
      return inbox.messages.find((m) => m.message.text === 'swag for cust-1');
    });
    assert.ok(message);
    const followUps = await ofType('swag.ordered');
    assert.equal(followUps.length, 1, 'two failed attempts emitted nothing, the third emitted once');
    assert.equal(followUps[0]!.source, 'herald://follow-up/order-swag');
    assert.equal(followUps[0]!.heraldhops, 1);
    assert.equal(sink.requests.length, 3);
  });

  it('a follow-up that triggers itself stops at the hop limit with a DLQ reason', async () => {
    await send({ id: 'p1', type: 'ping' });
    await eventually(async () => {
      const dlq = (await (await herald.get('/api/dlq')).json()) as { deadLetters: { lastError: string }[] };
      return dlq.deadLetters.find((d) => /followUp: hop limit of 16 reached/.test(d.lastError));
    });
    assert.equal((await ofType('ping')).length, 17);
  });

  it('a follow-up without a type is a config error naming the action', async () => {
    await assert.rejects(
      startTestHerald(`
channels: { box: { kind: inbox } }
triggers:
  t: { actions: [{ channel: box, text: x, followUp: { subject: y } }] }
`),
      (err: unknown) =>
        err instanceof ConfigError && /triggers\.t\.actions\[0\]\.followUp\.type/.test(err.message),
    );
  });
});
