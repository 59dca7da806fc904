import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { verifyWebhook } from '../../src/signing/standard-webhooks.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

function config(sinkUrl: string) {
  return `
sources:
  bot:
    kind: http
    routes:
      - path: /notify
        schema: { type: object, required: [topic, description] }
        event: { type: notification.created, subject: "{{ body.topic }}" }
channels:
  box: { kind: inbox }
  hook:
    kind: webhook
    url: ${sinkUrl}
    secret: ${SECRET}
    timeoutMs: 2000
triggers:
  notify-to-inbox:
    filter: { exact: { type: notification.created, subject: sales } }
    actions:
      - channel: box
        to: "#sales"
        text: "New sales request: {{ event.data.description }}"
  render-fails:
    filter: { exact: { type: render.fail } }
    actions:
      - channel: box
        text: "{{ event.subject | append }}"
  orders-to-hook:
    filter: { prefix: { type: com.example.order } }
    actions:
      - channel: hook
    delivery:
      maxAttempts: 4
      backoff: { kind: exponential, initialMs: 100, multiplier: 2, jitter: 0 }
`;
}

function cloudEvent(id: string, extra: Record<string, unknown> = {}) {
  return {
    specversion: '1.0',
    id,
    source: 'test/orders',
    type: 'com.example.order.created',
    data: { n: id },
    ...extra,
  };
}

async function postEvent(h: TestHerald, event: unknown) {
  const res = await h.post('/events', event, { 'content-type': 'application/cloudevents+json' });
  assert.equal(res.status, 202, await res.clone().text());
  return res.json();
}

async function deliveriesOf(h: TestHerald, id: string) {
  const res = await h.get(`/api/events/${encodeURIComponent(id)}`);
  if (res.status !== 200) return undefined;
  const body = (await res.json()) as {
    deliveries: {
      id: number;
      status: string;
      attempts: number;
      lastError: string | null;
      attemptLog: { startedAt: number; outcome: string }[];
    }[];
  };
  return body.deliveries;
}

describe('deliveries over real HTTP', () => {
  let sink: HttpSink;
  let herald: TestHerald;
  before(async () => {
    sink = await startHttpSink();
    herald = await startTestHerald(config(sink.url));
  });
  after(async () => {
    await herald.close();
    await sink.close();
  });

  it('POST /notify lands in the inbox within a second', async () => {
    const res = await herald.post('/notify', { topic: 'sales', description: 'Customer asks for a quote' });
    assert.equal(res.status, 202);
    const { id } = (await res.json()) as { id: string };
    assert.ok(id);
    const message = await eventually(
      async () => {
        const inbox = (await (await herald.get('/api/inbox')).json()) as {
          messages: { eventId: string; recipient: string; message: { text: string } }[];
        };
        return inbox.messages.find((m) => m.eventId === id);
      },
      1000,
      'the inbox message',
    );
    assert.equal(message.recipient, '#sales');
    assert.equal(message.message.text, 'New sales request: Customer asks for a quote');
  });

  it('POST /notify with another topic matches nothing and stores the event', async () => {
    const res = await herald.post('/notify', { topic: 'legal', description: 'x' });
    assert.equal(res.status, 202);
    const { id } = (await res.json()) as { id: string };
    const stored = await eventually(async () => {
      const body = (await (await herald.get(`/api/events/${id}`)).json()) as {
        routedAt: number | null;
        routing: { matched: string[] } | null;
        deliveries: unknown[];
      };
      return body.routedAt ? body : undefined;
    });
    assert.deepEqual(stored.routing?.matched, []);
    assert.equal(stored.deliveries.length, 0);
  });

  it('POST /notify gives events ids that grow with time (UUID version 7)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const before = Date.now();
      const res = await herald.post('/notify', { topic: 'legal', description: `ordered ${i}` });
      assert.equal(res.status, 202);
      const { id } = (await res.json()) as { id: string };
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const at = Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
      assert.ok(at >= before && at <= Date.now(), `the id's time ${at} is when it was posted`);
      ids.push(id);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    assert.deepEqual([...ids].sort(), ids);
  });
  it('/events reaches the webhook sink with a valid Standard Webhooks signature', async () => {
    const before = sink.requests.length;
    await postEvent(herald, cloudEvent('sig-1'));
    const [req] = (await sink.waitFor(before + 1)).slice(before);
    assert.ok(req);
    assert.match(String(req.headers['content-type']), /^application\/cloudevents\+json/);
    assert.match(String(req.headers['webhook-id']), /^msg_/);
    assert.deepEqual(verifyWebhook(SECRET, req.headers, req.body), { ok: true });
    assert.equal(JSON.parse(req.body).id, 'sig-1');
    // A tampered body does not verify: the check above is meaningful.
    assert.equal(verifyWebhook(SECRET, req.headers, `${req.body} `).ok, false);
  });

  it('a sink answering 500 twice then 200 gets the event on the third attempt', async () => {
    sink.respondWith({ status: 500 }, { status: 500 });
    const before = sink.requests.length;
    await postEvent(herald, cloudEvent('retry-1'));
    const reqs = (await sink.waitFor(before + 3)).slice(before);
    assert.equal(
      new Set(reqs.map((r) => r.headers['webhook-id'])).size,
      1,
      'same idempotency key on every attempt',
    );
    const deliveries = await eventually(async () => {
      const d = await deliveriesOf(herald, 'retry-1');
      return d?.[0]?.status === 'delivered' ? d : undefined;
    });
    assert.equal(deliveries[0]!.attempts, 3);
    assert.deepEqual(
      deliveries[0]!.attemptLog.map((a) => a.outcome),
      ['retry', 'retry', 'delivered'],
    );
  });

  it('429 with Retry-After: 1 delays the next attempt by at least a second', async () => {
    sink.respondWith({ status: 429, headers: { 'retry-after': '1' } });
    const before = sink.requests.length;
    await postEvent(herald, cloudEvent('rate-1'));
    const reqs = (await sink.waitFor(before + 2)).slice(before);
    assert.ok(
      reqs[1]!.receivedAt - reqs[0]!.receivedAt >= 1000,
      `second attempt after ${reqs[1]!.receivedAt - reqs[0]!.receivedAt} ms`,
    );
  });

  it('400 goes to the DLQ at once with the reason, and replay delivers it', async () => {
    sink.respondWith({ status: 400, body: '{"error":"unknown customer"}' });
    const before = sink.requests.length;
    await postEvent(herald, cloudEvent('bad-1'));
    const dead = await eventually(async () => {
      const d = await deliveriesOf(herald, 'bad-1');
      return d?.[0]?.status === 'dead' ? d[0] : undefined;
    });
    assert.equal(dead.attempts, 1);
    assert.match(dead.lastError ?? '', /HTTP 400.*unknown customer/);
    const dlq = (await (await herald.get('/api/dlq')).json()) as {
      deadLetters: { id: number; lastError: string }[];
    };
    assert.ok(dlq.deadLetters.some((d) => d.id === dead.id));
    assert.equal(sink.requests.length, before + 1);

    const replay = await herald.post(`/api/dlq/${dead.id}/replay`, '');
    assert.equal(replay.status, 200);
    await eventually(
      async () => (await deliveriesOf(herald, 'bad-1'))?.[0]?.status === 'delivered',
      5000,
      'redelivery',
    );
    const again = await herald.post(`/api/dlq/${dead.id}/replay`, '');
    assert.equal(again.status, 409, 'a delivered delivery is not in the DLQ');
  });

  it('bulk replay by filter replays only matching dead letters', async () => {
    sink.respondWith({ status: 410 }, { status: 410 });
    await postEvent(herald, cloudEvent('bulk-1'));
    await postEvent(herald, cloudEvent('bulk-2'));
    await eventually(async () => {
      const a = await deliveriesOf(herald, 'bulk-1');
      const b = await deliveriesOf(herald, 'bulk-2');
      return a?.[0]?.status === 'dead' && b?.[0]?.status === 'dead';
    });
    const none = (await (await herald.post('/api/dlq/replay', { channel: 'no-such-channel' })).json()) as {
      replayed: number;
    };
    assert.equal(none.replayed, 0);
    const res = (await (
      await herald.post('/api/dlq/replay', { channel: 'hook', reason: 'HTTP 410' })
    ).json()) as { replayed: number };
    assert.equal(res.replayed, 2);
    await eventually(async () => {
      const a = await deliveriesOf(herald, 'bulk-1');
      const b = await deliveriesOf(herald, 'bulk-2');
      return a?.[0]?.status === 'delivered' && b?.[0]?.status === 'delivered';
    });
  });

  it('a duplicate event (same source and id) is accepted but not delivered twice', async () => {
    const before = sink.requests.length;
    const first = await postEvent(herald, cloudEvent('dup-1'));
    const second = await postEvent(herald, cloudEvent('dup-1'));
    assert.deepEqual(first, { id: 'dup-1', duplicate: false });
    assert.deepEqual(second, { id: 'dup-1', duplicate: true });
    await sink.waitFor(before + 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sink.requests.slice(before).filter((r) => JSON.parse(r.body).id === 'dup-1').length, 1);
  });

  it('a template that fails to render fails the delivery permanently with the message', async () => {
    await postEvent(herald, {
      specversion: '1.0',
      id: 'render-1',
      source: 'test',
      type: 'render.fail',
      subject: 'x',
    });
    const dead = await eventually(async () => {
      const d = await deliveriesOf(herald, 'render-1');
      return d?.[0]?.status === 'dead' ? d[0] : undefined;
    });
    assert.equal(dead.attempts, 1);
    assert.match(dead.lastError ?? '', /template failed to render: append expect/);
  });

  it('retries exhausted → DLQ with "gave up" and the last reason', async () => {
    sink.respondWith({ status: 503 }, { status: 503 }, { status: 503 }, { status: 503 });
    await postEvent(herald, cloudEvent('exhaust-1'));
    const dead = await eventually(async () => {
      const d = await deliveriesOf(herald, 'exhaust-1');
      return d?.[0]?.status === 'dead' ? d[0] : undefined;
    }, 8000);
    assert.equal(dead.attempts, 4);
    assert.match(dead.lastError ?? '', /gave up after 4 attempts: HTTP 503/);
  });
});
