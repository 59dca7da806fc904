import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, routedDeliveries, startTestHerald, type TestHerald } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';

// Notification keys end to end on the embedded store: events over HTTP, the router plans, the
// store decides the keys, the dispatcher sends to a real webhook receiver or the inbox.

function config(sinkUrl: string) {
  return `
channels:
  box: { kind: inbox }
  hook: { kind: webhook, url: ${sinkUrl}, timeoutMs: 2000 }
triggers:
  ci-dedupe:
    filter: { exact: { type: keys.dedupe } }
    actions:
      - channel: hook
        dedupe: { key: "{{ event.data.run }}:{{ event.data.status }}", window: 1h }
    delivery: { maxAttempts: 3, backoff: { kind: fixed, initialMs: 50, jitter: 0 } }
  ops-throttle:
    filter: { exact: { type: keys.throttle } }
    actions:
      - channel: box
        to: "#ops"
        text: "{{ event.data.n }}"
        throttle: { key: "{{ recipient }}", limit: 2, per: 1h }
  later:
    filter: { exact: { type: keys.delay } }
    actions:
      - { channel: box, to: "#later", text: "later", delay: 1500ms }
  at-time:
    filter: { exact: { type: keys.until } }
    actions:
      - { channel: box, to: "#at", text: "at", delay: { until: "{{ event.data.at }}" } }
  dedupe-delay:
    filter: { exact: { type: keys.dedupe-delay } }
    actions:
      - channel: box
        to: "#dd"
        text: "{{ event.data.run }}"
        dedupe: { key: "{{ event.data.run }}", window: 10m }
        delay: 1s
  newest-wins:
    filter: { exact: { type: keys.replace } }
    actions:
      - channel: box
        to: ["U1", "U2"]
        text: "run {{ event.data.run }} is {{ event.data.status }}"
        replace: { key: "{{ event.data.run }}" }
        delay: 2s
`;
}

interface DeliveryView {
  id: number;
  recipient: string | null;
  status: string;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
}

describe('notification keys on the embedded store', () => {
  let sink: HttpSink;
  let herald: TestHerald;
  let n = 0;
  before(async () => {
    sink = await startHttpSink();
    herald = await startTestHerald(config(sink.url));
  });
  after(async () => {
    await herald.close();
    await sink.close();
  });

  const send = async (type: string, data: Record<string, unknown>): Promise<string> => {
    const id = `${type}-${++n}`;
    const res = await herald.post(
      '/events',
      { specversion: '1.0', id, source: 'test/keys', type, data },
      { 'content-type': 'application/cloudevents+json' },
    );
    assert.equal(res.status, 202, await res.clone().text());
    return id;
  };
  /** The event's deliveries as `/api/events/:id` shows them, once it is routed. */
  const deliveries = (id: string) => eventually(() => routedDeliveries<DeliveryView>(herald, id));
  const settled = (id: string, status: string) =>
    eventually(
      async () => {
        const list = await deliveries(id);
        return list.every((d) => d.status === status) && list.length > 0 ? list : undefined;
      },
      8000,
      `${id} ${status}`,
    );
  const inbox = async (recipient: string) =>
    (
      (await (await herald.get('/api/inbox?limit=200')).json()) as {
        messages: { eventId: string; recipient: string; message: { text: string } }[];
      }
    ).messages.filter((m) => m.recipient === recipient);
  const received = (id: string) => sink.requests.filter((r) => JSON.parse(r.body).id === id).length;

  it('dedupe: a repeated run and status is suppressed with its reason; another status is sent', async () => {
    const first = await send('keys.dedupe', { run: 'r1', status: 'failed' });
    await settled(first, 'delivered');
    const repeat = await send('keys.dedupe', { run: 'r1', status: 'failed' });
    const other = await send('keys.dedupe', { run: 'r1', status: 'completed' });
    const [suppressed] = await deliveries(repeat);
    assert.equal(suppressed!.status, 'suppressed');
    assert.match(
      suppressed!.lastError!,
      new RegExp(`^deduped by key "r1:failed": event ${first} was notified`),
    );
    await settled(other, 'delivered');
    assert.equal(received(first), 1);
    assert.equal(received(repeat), 0);
    assert.equal(received(other), 1);
  });

  it('a retry inside the dedupe window is the same delivery, sent again, never suppressed', async () => {
    sink.respondWith({ status: 503 });
    const id = await send('keys.dedupe', { run: 'r2', status: 'failed' });
    const [d] = await settled(id, 'delivered');
    assert.equal(d!.attempts, 2);
    assert.equal(received(id), 2);
  });

  it('a DLQ replay is sent although the key is taken: the operator asked for it', async () => {
    sink.respondWith({ status: 400 });
    const id = await send('keys.dedupe', { run: 'r3', status: 'failed' });
    const [dead] = await settled(id, 'dead');
    const repeat = await send('keys.dedupe', { run: 'r3', status: 'failed' });
    assert.equal((await deliveries(repeat))[0]!.status, 'suppressed');
    const replay = await herald.post(`/api/dlq/${dead!.id}/replay`, '');
    assert.equal(replay.status, 200, await replay.text());
    await settled(id, 'delivered');
    assert.equal(received(id), 2);
    assert.equal((await deliveries(repeat))[0]!.status, 'suppressed');
  });

  it('throttle: two per hour for #ops; the third is recorded as throttled and never sent', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await send('keys.throttle', { n: i }));
    await settled(ids[0]!, 'delivered');
    await settled(ids[1]!, 'delivered');
    const [third] = await deliveries(ids[2]!);
    assert.equal(third!.status, 'suppressed');
    assert.equal(third!.lastError, 'throttled: 2/1h for key "#ops"');
    assert.deepEqual((await inbox('#ops')).map((m) => m.message.text).sort(), ['0', '1']);
    // "Why didn't #ops get this?" — explain names the throttle as the delivery's fate.
    const explained = (await (await herald.get(`/api/events/${ids[2]}/explain`)).json()) as {
      triggers: { actions: { recipients: { delivery?: { fate: string; summary: string } }[] }[] }[];
    };
    const fates = explained.triggers.flatMap((t) =>
      t.actions.flatMap((a) => a.recipients.map((r) => r.delivery)),
    );
    assert.deepEqual(fates, [
      { ...fates[0], fate: 'suppressed', summary: 'suppressed: throttled: 2/1h for key "#ops"' },
    ]);
  });

  it('delay: the delivery waits in the store, due later, and is then sent', async () => {
    const id = await send('keys.delay', {});
    const [pending] = await deliveries(id);
    const { receivedAt } = (await (await herald.get(`/api/events/${id}`)).json()) as { receivedAt: number };
    assert.equal(pending!.status, 'pending');
    assert.ok(pending!.nextAttemptAt >= receivedAt + 1500, 'due 1500 ms after it was routed');
    assert.equal((await inbox('#later')).length, 0);
    await settled(id, 'delivered');
    assert.equal((await inbox('#later')).length, 1);
  });

  it('delay until: due at the rendered time; a time not a time is sent at once and the routing says why', async () => {
    const at = new Date(Date.now() + 60_000).toISOString();
    const id = await send('keys.until', { at });
    const [d] = await deliveries(id);
    assert.equal(d!.status, 'pending');
    assert.equal(d!.nextAttemptAt, Date.parse(at));
    const bad = await send('keys.until', { at: 'tomorrow' });
    await settled(bad, 'delivered');
    const body = (await (await herald.get(`/api/events/${bad}`)).json()) as {
      routing: { errors: { message: string }[] };
    };
    assert.match(
      body.routing.errors[0]!.message,
      /delay\.until rendered "tomorrow", which is not an ISO 8601 time/,
    );
  });

  it('dedupe + delay: a repeat is suppressed while the first is still waiting to be sent', async () => {
    const first = await send('keys.dedupe-delay', { run: 'd1' });
    const repeat = await send('keys.dedupe-delay', { run: 'd1' });
    assert.equal((await deliveries(first))[0]!.status, 'pending');
    assert.equal((await deliveries(repeat))[0]!.status, 'suppressed');
    await settled(first, 'delivered');
    assert.deepEqual(
      (await inbox('#dd')).map((m) => m.eventId),
      [first],
    );
  });

  it('replace + delay: newest wins per recipient; the replaced ones say by which event', async () => {
    const running = await send('keys.replace', { run: 'c1', status: 'running' });
    const failed = await send('keys.replace', { run: 'c1', status: 'failed' });
    const completed = await send('keys.replace', { run: 'c1', status: 'completed' });
    for (const id of [running, failed]) {
      const list = await deliveries(id);
      assert.deepEqual(
        list.map((d) => d.status),
        ['suppressed', 'suppressed'],
      );
    }
    assert.equal((await deliveries(running))[0]!.lastError, `replaced by event ${failed}`);
    assert.equal((await deliveries(failed))[1]!.lastError, `replaced by event ${completed}`);
    await settled(completed, 'delivered');
    for (const recipient of ['U1', 'U2'])
      assert.deepEqual(
        (await inbox(recipient)).map((m) => m.message.text),
        ['run c1 is completed'],
      );
  });

  it('the status counts and the deliveries list know suppressed deliveries', async () => {
    const status = (await (await herald.get('/api/status')).json()) as { deliveries: Record<string, number> };
    assert.ok(status.deliveries.suppressed! >= 6);
    const page = (await (await herald.get('/api/deliveries?status=suppressed')).json()) as {
      deliveries: DeliveryView[];
    };
    assert.ok(page.deliveries.length >= 6);
    assert.ok(page.deliveries.every((d) => d.status === 'suppressed' && d.lastError));
  });
});
