import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { text } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { captureLogger, eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { freePort } from '../support/ports.js';
import { rawRequest } from '../support/raw-http.js';

async function config(server = ''): Promise<string> {
  return `${server}
channels:
  hook: { kind: webhook, url: "http://127.0.0.1:${await freePort()}/gone", timeoutMs: 500 }
triggers:
  all:
    actions: [{ channel: hook }]
    delivery: { maxAttempts: 1 }
`;
}

const cloudEvent = (id: string) =>
  JSON.stringify({ specversion: '1.0', id, source: 'laptop-test', type: 'laptop.test' });

describe('admin API without a token: this machine only, no cross-site writes', () => {
  let herald: TestHerald;
  let port: string;
  before(async () => {
    herald = await startTestHerald(await config('server: { allowedHosts: [Herald.Internal] }'));
    port = new URL(herald.url).port;
    const res = await herald.post('/events', cloudEvent('dead-1'), {
      'content-type': 'application/cloudevents+json',
    });
    assert.equal(res.status, 202);
    await eventually(async () => (await herald.engine.store.dlq.count()) === 1, 10_000, 'a dead letter');
  });
  after(() => herald.close());

  const get = (path: string, host: string) => rawRequest(herald.url, 'GET', path, { host });
  const replay = (headers: Record<string, string>, body = '{}') =>
    rawRequest(herald.url, 'POST', '/api/dlq/replay', headers, body);

  it('answers Host localhost, 127.0.0.1, [::1] (any port) and server.allowedHosts', async () => {
    for (const host of [
      'localhost',
      `localhost:${port}`,
      `127.0.0.1:${port}`,
      '[::1]:9',
      'herald.internal:1',
    ]) {
      const res = await get('/api/config', host);
      assert.equal(res.status, 200, host);
    }
  });

  it('refuses another Host (DNS rebinding) with 403 JSON on every admin route, the stream and /metrics', async () => {
    for (const path of ['/api/config', '/api/events', '/api/stream', '/api/health', '/metrics']) {
      for (const host of [
        'attacker.example.com',
        `attacker.example.com:${port}`,
        '127.0.0.1.nip.io',
        'a@127.0.0.1',
      ]) {
        const res = await get(path, host);
        assert.equal(res.status, 403, `${path} Host ${host}`);
        const body = JSON.parse(res.body) as { error: string; code: string; attribute: string };
        assert.equal(body.code, 'FORBIDDEN');
        assert.equal(body.attribute, 'host');
        assert.match(body.error, /allowedHosts/);
      }
    }
    // HTTP/1.0 may leave Host out altogether: no name, no answer.
    const socket = connect(Number(port), '127.0.0.1');
    socket.end('GET /api/config HTTP/1.0\r\n\r\n');
    const answer = (await text(socket)).split('\r\n')[0];
    assert.match(answer ?? '', /^HTTP\/1\.[01] 403/);
  });

  it('refuses state-changing requests that a cross-site page could send', async () => {
    const host = `127.0.0.1:${port}`;
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
    ]) {
      const res = await replay({ host, 'content-type': type }, type === 'text/plain' ? '{}' : 'a=b');
      assert.equal(res.status, 415, type);
      const body = JSON.parse(res.body) as { error: string; attribute: string };
      assert.match(body.error, /application\/json/);
      assert.equal(body.attribute, 'content-type');
    }
    assert.equal((await replay({ host })).status, 415, 'no content-type at all');
    for (const origin of ['https://evil.example', 'null', `http://127.0.0.1:${Number(port) + 1}`]) {
      const res = await replay({ host, 'content-type': 'application/json', origin });
      assert.equal(res.status, 403, origin);
      assert.equal((JSON.parse(res.body) as { attribute: string }).attribute, 'origin');
    }
    assert.equal(await herald.engine.store.dlq.count(), 1, 'nothing was replayed');
  });

  it('lets this machine’s own page and tools replay: JSON, same origin or no Origin', async () => {
    const host = `127.0.0.1:${port}`;
    const fromPage = await replay({ host, 'content-type': 'application/json', origin: `http://${host}` });
    assert.equal(fromPage.status, 200, fromPage.body);
    assert.equal((JSON.parse(fromPage.body) as { replayed: number }).replayed, 1);
    await eventually(async () => (await herald.engine.store.dlq.count()) === 1, 10_000, 'dead again');
    const fromCurl = await replay({ host, 'content-type': 'application/json; charset=utf-8' });
    assert.equal(fromCurl.status, 200, fromCurl.body);
  });

  it('keeps ingest and health open to any Host: they are not admin routes', async () => {
    const res = await rawRequest(
      herald.url,
      'POST',
      '/events',
      { host: 'hooks.example.com', 'content-type': 'application/cloudevents+json' },
      cloudEvent('from-afar'),
    );
    assert.equal(res.status, 202, res.body);
    assert.equal((await get('/healthz', 'status.example.com')).status, 200);
  });
});

describe('listening beyond loopback without an admin token', () => {
  it('refuses to start, naming the fix', async () => {
    await assert.rejects(
      startTestHerald(await config(), { host: '0.0.0.0' }),
      (err: Error) =>
        /refusing to listen on 0\.0\.0\.0 without an admin token/.test(err.message) &&
        /HERALD_ADMIN_TOKEN/.test(err.message) &&
        /--insecure-admin/.test(err.message),
    );
  });

  it('starts with --insecure-admin (or server.allowUnauthenticatedAdmin) and says so in the log', async () => {
    for (const [yaml, options] of [
      ['', { insecureAdmin: true }],
      ['server: { allowUnauthenticatedAdmin: true }', {}],
    ] as const) {
      const { logger, lines } = captureLogger();
      const herald = await startTestHerald(await config(yaml), { host: '0.0.0.0', logger, ...options });
      try {
        const warning = lines.find((l) => l.level === 40 && /admin API has no token/.test(String(l.msg)));
        assert.ok(warning, 'a warning at start');
        // Still no rebinding: a foreign Host is refused even then.
        const port = new URL(herald.url).port;
        const res = await rawRequest(`http://127.0.0.1:${port}`, 'GET', '/api/config', {
          host: 'attacker.example.com',
        });
        assert.equal(res.status, 403);
      } finally {
        await herald.close();
      }
    }
  });

  it('starts with an admin token', async () => {
    const herald = await startTestHerald(await config(), {
      host: '0.0.0.0',
      env: { HERALD_ADMIN_TOKEN: 'tok-0' },
    });
    await herald.close();
  });
});
