import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { freePort } from '../support/ports.js';
import { rawRequest } from '../support/raw-http.js';

const TOKEN = 'admin-tok-7f3a';

async function config(): Promise<string> {
  return `
sources:
  bot:
    kind: http
    routes:
      - path: /notify
        event: { type: notification.created }
channels:
  hook: { kind: webhook, url: "http://127.0.0.1:${await freePort()}/gone", timeoutMs: 500 }
triggers:
  all:
    actions: [{ channel: hook }]
    delivery: { maxAttempts: 1 }
`;
}

/** Admin reads and writes: each must be refused without the token, whatever its spelling. */
const ADMIN: { method: string; path: string }[] = [
  { method: 'GET', path: '/api/config' },
  { method: 'GET', path: '/api/events' },
  { method: 'GET', path: '/api/status' },
  { method: 'GET', path: '/api/health' },
  { method: 'GET', path: '/api/stream' },
  { method: 'GET', path: '/api/dlq' },
  { method: 'GET', path: '/metrics' },
  { method: 'HEAD', path: '/api/config' },
  { method: 'POST', path: '/api/dlq/replay' },
  { method: 'POST', path: '/api/dlq/1/replay' },
];

const hex = (char: string, upper: boolean) => {
  const code = `%${char.charCodeAt(0).toString(16).padStart(2, '0')}`;
  return upper ? code.toUpperCase() : code;
};

/** Spellings of `path` that a router might take for it, one trick at a time. */
export function spellings(path: string): string[] {
  const out = new Set<string>();
  const chars = [...path];
  chars.forEach((c, i) => {
    if (c === '/') return;
    for (const upper of [false, true]) {
      out.add(chars.map((d, j) => (j === i ? hex(d, upper) : d)).join(''));
    }
  });
  out.add(chars.map((c) => (c === '/' ? c : hex(c, false))).join(''));
  out.add(path.replace(/\//g, '%2F'));
  out.add(path.replace(/\/(?=.)/g, (m, at: number) => (at === 0 ? m : '%2f')));
  out.add(`/${path}`);
  out.add(path.replace(/\/(?=[^/]*$)/, '//'));
  out.add(`/.${path}`);
  out.add(`/x/..${path}`);
  out.add(`/%2e${path}`);
  out.add(`/x/%2e%2e${path}`);
  out.add(path.replace(/\/(?=[^/]*$)/, '/./'));
  out.add(path.replace(/\/(?=[^/]*$)/, '/x/../'));
  out.add(path.toUpperCase());
  out.add(path.replace(/^\/(\w)/, (_m, c: string) => `/${c.toUpperCase()}`));
  out.add(`${path}/`);
  out.add(`${path}?`);
  out.add(`${path}?limit=1`);
  out.add(`${path}#x`);
  out.add(`${path};x`);
  out.add(`${path}%00`);
  out.add(`${path}%20`);
  out.add(path.replace(/\//g, '\\'));
  out.add(path);
  return [...out];
}

describe('admin guard with a token: keyed on the matched route', () => {
  let herald: TestHerald;
  let deadId: number;
  const auth = { authorization: `Bearer ${TOKEN}` };
  before(async () => {
    herald = await startTestHerald(await config(), { env: { HERALD_ADMIN_TOKEN: TOKEN } });
    assert.equal((await herald.post('/notify', { n: 1 })).status, 202);
    deadId = await eventually(
      async () => (await herald.engine.store.dlq.list({ limit: 1 }))[0]?.id,
      10_000,
      'a dead letter',
    );
  });
  after(() => herald.close());

  it('answers every admin route with the token', async () => {
    for (const { method, path } of ADMIN) {
      const body = method === 'POST' ? '{}' : undefined;
      const res = await rawRequest(
        herald.url,
        method,
        path,
        { ...auth, 'content-type': 'application/json' },
        body,
      );
      assert.equal(res.status, 200, `${method} ${path}`);
    }
    // The replay above put the dead letter back: let it die again for the spellings below.
    await eventually(async () => {
      const attempts = await herald.engine.store.deliveries.attempts(deadId);
      const delivery = await herald.engine.store.deliveries.get(deadId);
      return attempts.length >= 2 && delivery?.status === 'dead';
    }, 10_000);
  });

  it('refuses every spelling of an admin path without the token (401, or 404 with no data)', async () => {
    const attemptsBefore = (await herald.engine.store.deliveries.attempts(deadId)).length;
    let tried = 0;
    for (const { method, path } of ADMIN) {
      for (const spelling of spellings(path)) {
        // Not a request target at all: the server's 400 carries a body a HEAD client cannot parse.
        if (method === 'HEAD' && !spelling.startsWith('/')) continue;
        const body = method === 'POST' ? '{}' : undefined;
        const res = await rawRequest(
          herald.url,
          method,
          spelling,
          { 'content-type': 'application/json' },
          body,
        );
        tried++;
        assert.ok(
          [400, 401, 404].includes(res.status),
          `${method} ${spelling} answered ${res.status}: ${res.body.slice(0, 120)}`,
        );
        assert.doesNotMatch(res.body, /"events"|"config"|deadLetters|herald_/, `${method} ${spelling}`);
        if (res.status === 401) assert.equal(res.headers['www-authenticate'], 'Bearer');
        if (method !== 'HEAD' && res.status !== 400) {
          const answer = JSON.parse(res.body) as { error: string; code: string };
          assert.ok(answer.error && answer.code, `${method} ${spelling}: a JSON error`);
          assert.doesNotMatch(res.body, new RegExp(TOKEN));
        }
      }
    }
    assert.ok(tried > 300, `${tried} spellings tried`);
    // Decoded once, a double-encoded path is a page path: the dashboard, never the API's data.
    const twice = await rawRequest(herald.url, 'GET', '/%2561pi/config');
    assert.doesNotMatch(String(twice.headers['content-type']), /json/);
    const dead = await herald.engine.store.deliveries.get(deadId);
    assert.equal(dead?.status, 'dead', 'no spelling replayed the dead letter');
    const attempts = await herald.engine.store.deliveries.attempts(deadId);
    assert.equal(attempts.length, attemptsBefore, 'no attempt since: nothing was replayed');
  });

  it('refuses any percent-encoding of any characters of an admin path', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/api/config', '/api/events', '/api/dlq/replay', '/metrics'),
        fc.array(fc.boolean(), { minLength: 20, maxLength: 20 }),
        fc.boolean(),
        async (path, encodeAt, upper) => {
          const spelling = [...path].map((c, i) => (c !== '/' && encodeAt[i] ? hex(c, upper) : c)).join('');
          const method = path.endsWith('replay') ? 'POST' : 'GET';
          const res = await rawRequest(
            herald.url,
            method,
            spelling,
            { 'content-type': 'application/json' },
            method === 'POST' ? '{}' : undefined,
          );
          assert.equal(res.status, 401, `${method} ${spelling}`);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('keeps health, readiness and the dashboard page public, and ingest out of the admin guard', async () => {
    assert.equal((await herald.get('/healthz')).status, 200);
    assert.equal((await herald.get('/readyz')).status, 200);
    assert.notEqual((await herald.get('/')).status, 401);
    assert.notEqual((await herald.get('/events/42')).status, 401);
    assert.equal((await herald.post('/notify', { n: 2 })).status, 202);
  });
});

describe('/metrics with server.publicMetrics', () => {
  let herald: TestHerald;
  before(async () => {
    herald = await startTestHerald(`server: { publicMetrics: true }\n${await config()}`, {
      env: { HERALD_ADMIN_TOKEN: TOKEN },
    });
  });
  after(() => herald.close());

  it('serves /metrics without the token while /api stays guarded', async () => {
    const metrics = await herald.get('/metrics');
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /herald_events_ingested_total/);
    assert.equal((await herald.get('/api/config')).status, 401);
    assert.equal((await rawRequest(herald.url, 'GET', '/%61pi/config')).status, 401);
  });
});
