import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';

const CONFIG = `
channels:
  box: { kind: inbox }
triggers:
  big-orders:
    filter: { sql: "type = 'order.created' AND INT(amount) > 100 AND subject LIKE 'orders/%'" }
    actions: [{ channel: box, text: "big order {{ event.subject }}" }]
`;

describe('sql filters route events end to end', () => {
  let herald: TestHerald;
  before(async () => {
    herald = await startTestHerald(CONFIG);
  });
  after(() => herald.close());

  const send = (id: string, ext: Record<string, unknown>) =>
    herald.post(
      '/events',
      { specversion: '1.0', id, source: 'shop', type: 'order.created', subject: `orders/${id}`, ...ext },
      {
        'content-type': 'application/cloudevents+json',
      },
    );

  it('matching events are delivered, others are not, and evaluation errors are recorded and counted', async () => {
    assert.equal((await send('1', { amount: 500 })).status, 202);
    assert.equal((await send('2', { amount: 5 })).status, 202);
    assert.equal((await send('3', { amount: 'lots' })).status, 202);
    assert.equal((await send('4', {})).status, 202);
    const routed = async (id: string) => {
      const body = (await (await herald.get(`/api/events/${id}`)).json()) as {
        routedAt: number | null;
        routing: { matched: string[]; errors: { trigger: string; kind: string }[] };
        deliveries: unknown[];
      };
      return body.routedAt ? body : undefined;
    };
    const [one, two, three, four] = await Promise.all(
      ['1', '2', '3', '4'].map((id) => eventually(() => routed(id))),
    );
    assert.deepEqual(one.routing.matched, ['big-orders']);
    assert.equal(one.deliveries.length, 1);
    assert.deepEqual(two.routing.matched, []);
    assert.deepEqual(two.routing.errors, []);
    assert.deepEqual(
      three.routing.errors.map((e) => [e.trigger, e.kind]),
      [['big-orders', 'cast']],
    );
    assert.deepEqual(
      four.routing.errors.map((e) => e.kind),
      ['missingAttribute'],
    );
    assert.equal(three.deliveries.length + four.deliveries.length, 0);
    const inbox = (await (await herald.get('/api/inbox')).json()) as {
      messages: { message: { text: string } }[];
    };
    await eventually(async () => {
      const m = (await (await herald.get('/api/inbox')).json()) as { messages: unknown[] };
      return m.messages.length === 1;
    });
    assert.ok(inbox.messages.length <= 1);
    const metrics = await (await herald.get('/metrics')).text();
    assert.match(metrics, /herald_filter_errors_total\{trigger="big-orders",kind="cast"\} 1/);
    assert.match(metrics, /herald_filter_errors_total\{trigger="big-orders",kind="missingAttribute"\} 1/);
  });

  it('a bad expression stops the start with the trigger path and the position inside', async () => {
    await assert.rejects(
      startTestHerald(
        `channels: { box: { kind: inbox } }\ntriggers:\n  t:\n    filter: { sql: "type = " }\n    actions: [{ channel: box }]\n`,
      ),
      /triggers\.t\.filter\.sql: CESQL: unexpected end of the expression at line 1, column 8 \(.*herald\.yaml:4:\d+\)/,
    );
  });
});
