import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';

const CONFIG = `
channels:
  follow-up: { kind: emit, maxHops: 3 }
  box: { kind: inbox }
triggers:
  order-to-invoice:
    filter: { exact: { type: order.created } }
    actions:
      - channel: follow-up
        event: { type: invoice.requested, subject: "{{ event.subject }}" }
  invoice-to-inbox:
    filter: { exact: { type: invoice.requested } }
    actions: [{ channel: box, text: "invoice for {{ event.subject }} ({{ event.data.total }})" }]
  echo:
    filter: { exact: { type: loop } }
    actions:
      - channel: follow-up
        event: { type: loop, id: "{{ event.id }}-again" }
`;

describe('emit channel', () => {
  let herald: TestHerald;
  before(async () => {
    herald = await startTestHerald(CONFIG);
  });
  after(() => herald.close());

  const send = (event: Record<string, unknown>) =>
    herald.post(
      '/events',
      { specversion: '1.0', source: 'shop', ...event },
      { 'content-type': 'application/cloudevents+json' },
    );

  it('a follow-up event routes onward, carrying the data and a hop count', async () => {
    assert.equal(
      (await send({ id: 'o1', type: 'order.created', subject: 'order-1', data: { total: 42 } })).status,
      202,
    );
    const message = await eventually(async () => {
      const inbox = (await (await herald.get('/api/inbox')).json()) as {
        messages: { message: { text: string } }[];
      };
      return inbox.messages[0];
    });
    assert.equal(message.message.text, 'invoice for order-1 (42)');
    const events = (await (await herald.get('/api/events?type=invoice.requested')).json()) as {
      events: { event: Record<string, unknown> }[];
    };
    assert.equal(events.events.length, 1);
    assert.equal(events.events[0]!.event.heraldhops, 1);
    assert.equal(events.events[0]!.event.source, 'herald://emit/follow-up');
  });

  it('a trigger that emits the event it matches stops at the hop limit with a DLQ entry', async () => {
    assert.equal((await send({ id: 'l', type: 'loop' })).status, 202);
    const dead = await eventually(async () => {
      const dlq = (await (await herald.get('/api/dlq?trigger=echo')).json()) as {
        deadLetters: { lastError: string; eventId: string }[];
      };
      return dlq.deadLetters[0];
    });
    assert.match(dead.lastError, /hop limit of 3 reached/);
    assert.equal(dead.eventId, 'l-again-again-again');
    const loops = (await (await herald.get('/api/events?type=loop')).json()) as { events: unknown[] };
    assert.equal(loops.events.length, 4, 'the original and three re-emits');
  });
});
