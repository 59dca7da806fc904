import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type HttpSink, type SinkResponse, startHttpSink } from '../../../test/support/http-sink.js';
import { freePort } from '../../../test/support/ports.js';
import type { Channel, ChannelContext, DeliveryRequest } from '../../engine/types.js';
import type { Lookup } from '../outbound.js';
import {
  createWebhookChannelKind,
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

  it('a 503 is retried and a 400 fails, with the status and a short summary of the body as the reason', async () => {
    const hook = make({ url: sink.url });
    const reasonOf = async (response: SinkResponse) => {
      sink.respondWith(response);
      const result = await hook.send(request());
      return `${result.outcome}: ${result.outcome === 'delivered' ? '' : result.reason}`;
    };
    const text = { 'content-type': 'text/plain; charset=utf-8' };
    assert.equal(
      await reasonOf({ status: 503, headers: text, body: `down\nfor ${'x'.repeat(5000)}` }),
      `retry: HTTP 503: down for ${'x'.repeat(91)}…`,
    );
    assert.equal(
      await reasonOf({ status: 400, body: '{"error":"bad field é","stack":"at secret.js"}' }),
      'failed: HTTP 400: bad field é',
    );
    assert.equal(
      await reasonOf({ status: 422, body: '{"error":{"message":"name is required"}}' }),
      'failed: HTTP 422: name is required',
    );
    assert.equal(
      await reasonOf({ status: 500, headers: { 'content-type': 'text/html' }, body: '<h1>root:x:0:0</h1>' }),
      'retry: HTTP 500',
    );
    assert.equal(await reasonOf({ status: 404, body: '{"id":"ami-0abc","keys":[1]}' }), 'failed: HTTP 404');
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
    // The receiver listens on loopback, which a rendered URL may reach only when allowed.
    const hook = make({ allowHosts: ['127.0.0.1'] });
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

describe('webhook channel: URLs rendered from event data', () => {
  let sink: HttpSink;
  let port: number;
  const open: Channel<WebhookAction>[] = [];
  // Names under .test resolve to loopback, as a hostile DNS record (or a rebinding one) would.
  const lookup: Lookup = (hostname, _options, callback) =>
    hostname.replace(/\.$/, '').endsWith('.test')
      ? callback(null, [{ address: '127.0.0.1', family: 4 }])
      : callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
  const make = (config: Record<string, unknown>, options: { lookup?: Lookup } = {}) => {
    const c = createWebhookChannelKind(options).create(
      'hook',
      webhookConfigSchema.parse(config),
      {} as ChannelContext,
    );
    open.push(c);
    return c;
  };
  const fromEvent = (url: string) =>
    request({
      event: { specversion: '1.0', id: 'e1', source: 'test', type: 'test.happened', data: { url } },
      action: webhookActionSchema.parse({ url: '{{ event.data.url }}' }),
    });
  const reasonOf = (result: Awaited<ReturnType<Channel['send']>>) =>
    result.outcome === 'delivered' ? '(delivered)' : result.reason;
  before(async () => {
    sink = await startHttpSink();
    port = Number(new URL(sink.url).port);
  });
  after(async () => {
    for (const c of open) await c.close?.();
    await sink.close();
  });

  it('refuses loopback, private, link-local, unspecified, multicast and CGNAT addresses in any notation, at once and for good', async () => {
    const hook = make({ timeoutMs: 300 });
    const refused: [string, string][] = [
      [`http://127.0.0.1:${port}/hook`, 'loopback'],
      [`http://localhost:${port}/hook`, 'loopback'],
      [`http://[::1]:${port}/hook`, 'loopback'],
      [`http://[::ffff:127.0.0.1]:${port}/hook`, 'loopback'],
      [`http://[0:0:0:0:0:ffff:7f00:1]:${port}/hook`, 'loopback'],
      [`http://[::127.0.0.1]:${port}/hook`, 'reserved'],
      [`http://[64:ff9b::127.0.0.1]:${port}/hook`, 'loopback'],
      [`http://0x7f000001:${port}/hook`, 'loopback'],
      [`http://2130706433:${port}/hook`, 'loopback'],
      [`http://0177.0.0.1:${port}/hook`, 'loopback'],
      [`http://127.1:${port}/hook`, 'loopback'],
      ['http://169.254.169.254/latest/meta-data/', 'link-local'],
      ['http://0251.0376.0251.0376/latest/meta-data/', 'link-local'],
      ['http://[::ffff:169.254.169.254]/', 'link-local'],
      ['http://[fe80::1]/', 'link-local'],
      ['http://10.1.2.3/', 'private'],
      ['http://172.16.0.1/', 'private'],
      ['http://172.31.255.254/', 'private'],
      ['http://192.168.1.1/', 'private'],
      ['http://[fd12:3456::1]/', 'private'],
      ['http://[fc00::1]/', 'private'],
      [`http://0.0.0.0:${port}/hook`, 'unspecified'],
      [`http://0:${port}/hook`, 'unspecified'],
      [`http://[::]:${port}/hook`, 'unspecified'],
      ['http://224.0.0.1/', 'multicast'],
      ['http://[ff02::1]/', 'multicast'],
      ['http://100.64.0.1/', 'shared (CGNAT)'],
    ];
    const requestsBefore = sink.requests.length;
    for (const [url, kind] of refused) {
      const result = await hook.send(fromEvent(url));
      assert.equal(result.outcome, 'failed', `${url}: ${reasonOf(result)}`);
      assert.match(
        reasonOf(result),
        new RegExp(`^refused to connect to .*: a ${kind.replace(/[()]/g, '\\$&')} address`),
        url,
      );
      assert.match(reasonOf(result), /allowHosts/);
    }
    assert.equal(sink.requests.length, requestsBefore, 'nothing reached the loopback receiver');
  });

  it('checks the address a name resolves to when connecting: a name pointing at loopback is refused', async () => {
    const hook = make({ timeoutMs: 1000 }, { lookup });
    const requestsBefore = sink.requests.length;
    const result = await hook.send(fromEvent(`http://rebind.test:${port}/hook`));
    assert.equal(result.outcome, 'failed', reasonOf(result));
    assert.equal(
      reasonOf(result),
      'refused to connect to rebind.test (127.0.0.1): a loopback address, not reachable from a URL rendered from event data; list the host in the channel’s allowHosts or set allowPrivateNetworks: true to allow it',
    );
    assert.equal(sink.requests.length, requestsBefore);
  });

  it('refuses schemes other than http and https', async () => {
    const result = await make({}).send(fromEvent('file:///etc/passwd'));
    assert.equal(result.outcome, 'failed');
    assert.match(reasonOf(result), /refused a file: URL/);
  });

  it('a recipient (`to`) used as the URL is checked the same way', async () => {
    const result = await make({ timeoutMs: 300 }).send(
      request({ recipient: `http://127.0.0.1:${port}/hook` }),
    );
    assert.equal(result.outcome, 'failed', reasonOf(result));
    assert.match(reasonOf(result), /a loopback address/);
  });

  it('allowHosts and allowPrivateNetworks let such URLs through; URLs written in the config always go', async () => {
    const allowed = make({ allowHosts: ['sink.test', '*.internal.test', '127.0.0.2'] }, { lookup });
    for (const url of [
      `http://sink.test:${port}/a`,
      `http://SINK.test.:${port}/a`,
      `http://api.internal.test:${port}/a`,
    ]) {
      assert.equal((await allowed.send(fromEvent(url))).outcome, 'delivered', url);
    }
    const other = await allowed.send(fromEvent(`http://other.test:${port}/a`));
    assert.equal(other.outcome, 'failed', reasonOf(other));
    const open = make({ allowPrivateNetworks: true });
    assert.equal((await open.send(fromEvent(`http://127.0.0.1:${port}/b`))).outcome, 'delivered');
    const literal = make({}).send(
      request({ action: webhookActionSchema.parse({ url: `http://127.0.0.1:${port}/c` }) }),
    );
    assert.equal((await literal).outcome, 'delivered');
    assert.equal((await make({ url: sink.url }).send(request())).outcome, 'delivered');
    assert.deepEqual(
      sink.requests.slice(-6).map((r) => r.url),
      ['/a', '/a', '/a', '/b', '/c', '/hook'],
    );
  });
});

describe('webhook channel: credentials in URLs', () => {
  let sink: HttpSink;
  let port: number;
  const open: Channel<WebhookAction>[] = [];
  const make = (config: Record<string, unknown>) => {
    const c = webhookChannel.create('hook', webhookConfigSchema.parse(config), {} as ChannelContext);
    open.push(c);
    return c;
  };
  before(async () => {
    sink = await startHttpSink();
    port = Number(new URL(sink.url).port);
  });
  after(async () => {
    for (const c of open) await c.close?.();
    await sink.close();
  });

  it('sends userinfo as Basic auth and keeps no credential in the delivery record', async () => {
    const result = await make({ url: `http://bob:p%40ss%20word@127.0.0.1:${port}/in?token=abc&team=a` }).send(
      request(),
    );
    assert.equal(result.outcome, 'delivered');
    const got = sink.requests.at(-1)!;
    assert.equal(got.headers.authorization, `Basic ${Buffer.from('bob:p@ss word').toString('base64')}`);
    assert.equal(got.url, '/in?token=abc&team=a');
    assert.deepEqual(result.rendered, {
      url: `http://••••@127.0.0.1:${port}/in?token=••••&team=a`,
      body: undefined,
    });
  });

  it('a configured Authorization header wins over userinfo', async () => {
    await make({ url: `http://bob:pw@127.0.0.1:${port}/in`, headers: { Authorization: 'Bearer t0k' } }).send(
      request(),
    );
    assert.equal(sink.requests.at(-1)!.headers.authorization, 'Bearer t0k');
  });

  it('a rendered URL is stored redacted too', async () => {
    const action = webhookActionSchema.parse({
      url: `http://127.0.0.1:${port}/x?api_key={{ event.data.key }}&n=1`,
    });
    const result = await make({ allowPrivateNetworks: true }).send(
      request({
        action,
        event: { specversion: '1.0', id: 'e1', source: 'test', type: 't', data: { key: 'K3Y' } },
      }),
    );
    assert.equal(result.outcome, 'delivered');
    assert.deepEqual(result.rendered, {
      url: `http://127.0.0.1:${port}/x?api_key=••••&n=1`,
      body: undefined,
    });
    assert.equal(sink.requests.at(-1)!.url, '/x?api_key=K3Y&n=1');
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
