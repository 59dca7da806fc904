import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EventExplanation } from '../../src/server/api-types.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';

function config(sinkUrl: string) {
  return `
sources:
  bot:
    kind: http
    routes:
      - path: /notify
        event: { type: notification.created, subject: "{{ body.topic }}" }
channels:
  box: { kind: inbox }
  hook: { kind: webhook, url: ${sinkUrl}, timeoutMs: 2000 }
subscriptions:
  preferences:
    notify_failures: { type: boolean, default: true }
triggers:
  sales-to-slack:
    filter: { exact: { type: notification.created, subject: sales } }
    actions:
      - channel: box
        to: "#sales"
        text: "New sales request"
  big-orders:
    filter: { sql: "type = 'notification.created' AND subject LIKE 'order%' AND INT(amount) > 100" }
    actions:
      - channel: box
        to: "#orders"
  failures-to-followers:
    filter: { exact: { type: ci.failed } }
    actions:
      - channel: box
        to: { subscribersOf: "repo:{{ event.subject }}", where: notify_failures }
        text: "CI failed"
  ci-hook:
    filter: { exact: { type: ci.failed } }
    actions:
      - channel: hook
    delivery: { maxAttempts: 1 }
`;
}

describe('explain: why an event did or did not notify', () => {
  let herald: TestHerald;
  let sink: HttpSink;
  before(async () => {
    sink = await startHttpSink();
    sink.setDefault({ status: 410, body: 'gone' });
    herald = await startTestHerald(config(sink.url));
  });
  after(async () => {
    await herald.close();
    await sink.close();
  });

  const send = async (event: Record<string, unknown>) => {
    const res = await herald.post(
      '/events',
      { specversion: '1.0', source: 'test/explain', ...event },
      { 'content-type': 'application/cloudevents+json' },
    );
    assert.equal(res.status, 202, await res.text());
  };
  const explain = async (id: string, query = ''): Promise<EventExplanation> => {
    const res = await herald.get(`/api/events/${id}/explain${query}`);
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as EventExplanation;
  };
  const trigger = (x: EventExplanation, name: string) => x.triggers.find((t) => t.trigger === name)!;

  it('an event no trigger matched: each trigger with the clause that failed and the values compared', async () => {
    await send({ id: 'ex-1', type: 'notification.created', subject: 'pricing', amount: '50' });
    const x = await eventually(async () => {
      const e = await explain('ex-1');
      return e.event.routedAt !== null && e;
    });
    assert.deepEqual(x.matched, []);
    assert.equal(x.evaluatedAgainst, 'current-config');
    assert.match(x.note, /current config/);
    assert.deepEqual(x.configChanges, []);
    const sales = trigger(x, 'sales-to-slack');
    assert.equal(sales.matched, false);
    assert.equal(sales.matchedWhenRouted, false);
    assert.equal(sales.filter.message, 'exact.subject: wanted "sales", got "pricing"');
    const orders = trigger(x, 'big-orders');
    assert.equal(orders.filter.message, `sql: subject LIKE 'order%' is false (subject is "pricing")`);
  });

  it('a CESQL filter false deeper in: the sub-expression and its operands', async () => {
    await send({ id: 'ex-2', type: 'notification.created', subject: 'order-7', amount: '42' });
    const x = await eventually(async () => {
      const e = await explain('ex-2');
      return e.event.routedAt !== null && e;
    });
    const orders = trigger(x, 'big-orders');
    assert.equal(orders.matched, false);
    const why = orders.filter.sql!.because![0]!;
    assert.equal(why.expression, 'INT(amount) > 100');
    assert.deepEqual(why.operands, [{ expression: 'INT(amount)', value: 42 }]);
  });

  it('a subscriber muted by preference is left out, with the preference; a delivered and a dead-lettered delivery show their fate', async () => {
    for (const [id, name] of [
      ['ann', 'Ann'],
      ['bob', 'Bob'],
    ]) {
      assert.equal((await herald.post('/api/subscribers', { id, name })).status, 201);
      assert.equal(
        (await herald.post(`/api/subscribers/${id}/subscriptions`, { key: 'repo:web' })).status,
        201,
      );
    }
    const patched = await fetch(`${herald.url}/api/subscribers/bob/preferences`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ notify_failures: false }),
    });
    assert.equal(patched.status, 200);
    await send({ id: 'ex-3', type: 'ci.failed', subject: 'web' });
    const x = await eventually(async () => {
      const e = await explain('ex-3');
      const fates = e.triggers.flatMap((t) =>
        t.actions.flatMap((a) => a.recipients.map((r) => r.delivery?.fate)),
      );
      return fates.length === 2 && fates.every((f) => f === 'delivered' || f === 'dead') && e;
    }, 10_000);
    assert.deepEqual(x.matched, ['failures-to-followers', 'ci-hook']);
    const followers = trigger(x, 'failures-to-followers').actions[0]!;
    assert.deepEqual(followers.to, { kind: 'subscribersOf', key: 'repo:web', where: 'notify_failures' });
    assert.deepEqual(
      followers.recipients.map((r) => [r.recipient, r.subscriber, r.delivery?.fate]),
      [['ann', 'ann', 'delivered']],
    );
    const bob = followers.subscribers!.find((s) => s.id === 'bob')!;
    assert.equal(bob.included, false);
    assert.equal(bob.preference, 'notify_failures');
    assert.equal(bob.reason, 'muted by preference: notify_failures is false (where: notify_failures)');
    const hook = trigger(x, 'ci-hook').actions[0]!.recipients[0]!.delivery!;
    assert.equal(hook.fate, 'dead');
    assert.equal(hook.attempts, 1);
    assert.match(hook.summary, /^dead-lettered after 1 attempt: .*410/);

    // The event itself records who was left out, as routed (not as the config is now).
    const detail = (await (await herald.get('/api/events/ex-3')).json()) as {
      routing: { muted?: { trigger: string; action: number; subscriber: string; reason: string }[] };
    };
    assert.deepEqual(detail.routing.muted, [
      {
        trigger: 'failures-to-followers',
        action: 0,
        subscriber: 'Bob (bob)',
        reason: 'muted by preference: notify_failures is false (where: notify_failures)',
      },
    ]);

    const forBob = await explain('ex-3', '?recipient=bob');
    assert.deepEqual(forBob.recipient!.verdict, [
      'trigger failures-to-followers action 0 (box) leaves bob out: muted by preference: notify_failures is false (where: notify_failures)',
    ]);
    const forAnn = await explain('ex-3', '?recipient=Ann');
    assert.match(
      forAnn.recipient!.verdict[0]!,
      /^trigger failures-to-followers action 0 \(box\) notifies Ann: delivered/,
    );
  });

  it('an unknown event is a 404 naming the id', async () => {
    const res = await herald.get('/api/events/nope/explain');
    assert.equal(res.status, 404);
    assert.match(((await res.json()) as { error: string }).error, /no event with id "nope"/);
  });
});
