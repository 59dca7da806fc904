import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type HttpSink, startHttpSink } from '../../../test/support/http-sink.js';
import { freePort } from '../../../test/support/ports.js';
import type { Channel, ChannelContext, DeliveryRequest } from '../../engine/types.js';
import {
  retryAfterToEpoch,
  type WebhookAction,
  webhookActionSchema,
  webhookChannel,
  webhookConfigSchema,
} from './index.js';

function request(overrides: Partial<DeliveryRequest<WebhookAction>> = {}): DeliveryRequest<WebhookAction> {
  return {
    deliveryId: 1,
    idempotencyKey: 'key-1',
    attempt: 1,
    event: { specversion: '1.0', id: 'e1', source: 'test', type: 'test.happened', data: { n: 1 } },
    trigger: 't',
    action: webhookActionSchema.parse({}),
    recipient: null,
    signal: new AbortController().signal,
    ...overrides,
  };
}

describe('webhook channel', () => {
  let sink: HttpSink;
  let origin: string;
  const open: Channel<WebhookAction>[] = [];
  const make = (config: Record<string, unknown>) => {
    const c = webhookChannel.create('hook', webhookConfigSchema.parse(config), {} as ChannelContext);
    open.push(c);
    return c;
  };
  before(async () => {
    sink = await startHttpSink();
    origin = new URL(sink.url).origin;
  });
  after(async () => {
    for (const c of open) await c.close?.();
    await sink.close();
  });

  it('POSTs the structured CloudEvent to the URL, query string included, and reads the request id', async () => {
    sink.respondWith({ status: 202, headers: { 'x-request-id': 'r-42' }, body: '{"ok":true}' });
    const result = await make({ url: `${origin}/in?team=a` }).send(request());
    assert.deepEqual(result, {
      outcome: 'delivered',
      remoteId: 'r-42',
      rendered: { url: `${origin}/in?team=a`, body: undefined },
    });
    const got = sink.requests.at(-1)!;
    assert.equal(got.method, 'POST');
    assert.equal(got.url, '/in?team=a');
    assert.equal(got.headers['content-type'], 'application/cloudevents+json; charset=utf-8');
    assert.equal(got.headers['idempotency-key'], 'key-1');
    assert.equal(JSON.parse(got.body).id, 'e1');
  });

  it('a 503 is retried with the start of the body as the reason; a 400 fails with it', async () => {
    const hook = make({ url: sink.url });
    sink.respondWith({ status: 503, body: 'x'.repeat(5000) });
    const busy = await hook.send(request());
    assert.equal(busy.outcome, 'retry');
    assert.equal(busy.outcome === 'retry' && busy.reason, `HTTP 503: ${'x'.repeat(200)}`);
    sink.respondWith({ status: 400, body: '{"error":"bad field é"}' });
    const bad = await hook.send(request());
    assert.equal(bad.outcome, 'failed');
    assert.equal(bad.outcome === 'failed' && bad.reason, 'HTTP 400: {"error":"bad field é"}');
  });

  it('a 429 with Retry-After is retried no sooner than it says', async () => {
    sink.respondWith({ status: 429, headers: { 'retry-after': '7' } });
    const before = Date.now();
    const result = await make({ url: sink.url }).send(request());
    assert.equal(result.outcome, 'retry');
    const notBefore = result.outcome === 'retry' ? result.notBefore : undefined;
    assert.ok(notBefore !== undefined && notBefore >= before + 7000, `notBefore ${notBefore}`);
  });

  it('a receiver slower than timeoutMs is retried with the reason', async () => {
    sink.respondWith({ status: 200, delayMs: 1500 });
    const started = Date.now();
    const result = await make({ url: sink.url, timeoutMs: 200 }).send(request());
    assert.equal(result.outcome, 'retry');
    assert.match(result.outcome === 'retry' ? result.reason : '', /^request failed: .*timeout/i);
    assert.ok(Date.now() - started < 1400, 'gave up before the answer came');
  });

  it('an abort (the shutdown deadline) ends a send under way, and one not started yet', async () => {
    const hook = make({ url: sink.url });
    sink.respondWith({ status: 200, delayMs: 3000 });
    const controller = new AbortController();
    const started = Date.now();
    const pending = hook.send(request({ signal: controller.signal }));
    setTimeout(() => controller.abort(new Error('shutdown deadline passed')), 100);
    const result = await pending;
    assert.deepEqual(
      { outcome: result.outcome, reason: result.outcome === 'retry' && result.reason },
      { outcome: 'retry', reason: 'request failed: shutdown deadline passed' },
    );
    assert.ok(Date.now() - started < 2000);
    const already = await hook.send(request({ signal: AbortSignal.abort(new Error('stopped')) }));
    assert.equal(already.outcome === 'retry' && already.reason, 'request failed: stopped');
  });

  it('a refused connection is retried with the reason', async () => {
    const result = await make({ url: `http://127.0.0.1:${await freePort()}/` }).send(request());
    assert.equal(result.outcome, 'retry');
    assert.match(result.outcome === 'retry' ? result.reason : '', /ECONNREFUSED/);
  });

  it('a templated URL and body are rendered per event', async () => {
    const hook = make({});
    const action = webhookActionSchema.parse({
      url: `${origin}/events/{{ event.type }}`,
      body: { text: 'n is {{ event.data.n }}' },
    });
    const result = await hook.send(request({ action }));
    assert.equal(result.outcome, 'delivered');
    const got = sink.requests.at(-1)!;
    assert.equal(got.url, '/events/test.happened');
    assert.deepEqual(JSON.parse(got.body), { text: 'n is 1' });
    assert.deepEqual(result.rendered, { url: `${origin}/events/test.happened`, body: { text: 'n is 1' } });
  });
});

describe('Retry-After', () => {
  const now = 1_700_000_000_000;
  it('seconds, fractions rounded up to a whole millisecond, or an HTTP date; anything else is ignored', () => {
    assert.equal(retryAfterToEpoch('7', now), now + 7000);
    assert.equal(retryAfterToEpoch('0.0005', now), now + 1);
    assert.equal(retryAfterToEpoch(['2', '9'], now), now + 2000);
    assert.equal(retryAfterToEpoch('-3', now), now);
    assert.equal(retryAfterToEpoch('Wed, 21 Oct 2015 07:28:00 GMT', now), Date.UTC(2015, 9, 21, 7, 28));
    assert.equal(retryAfterToEpoch('soon', now), undefined);
    assert.equal(retryAfterToEpoch(undefined, now), undefined);
  });
});
