import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { trickle } from '../support/raw-http.js';

const CONFIG = `
server: { requestTimeoutMs: 1500, headersTimeoutMs: 1000 }
channels:
  box: { kind: inbox }
triggers:
  all:
    actions: [{ channel: box, text: "{{ event.type }}" }]
`;

describe('slow clients are cut off at the configured deadlines', () => {
  let herald: TestHerald;
  before(async () => {
    herald = await startTestHerald(CONFIG);
  });
  after(() => herald.close());

  it('a body trickling 1 byte every 5 s gets 408 and a closed connection by requestTimeoutMs', async () => {
    const { closed } = trickle(
      herald.url,
      'POST /events HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/cloudevents+json\r\ncontent-length: 200\r\n\r\n{',
      { drip: '"specversion"', intervalMs: 5000, giveUpMs: 8000 },
    );
    const { statusLine, elapsedMs } = await closed;
    assert.match(statusLine, /^HTTP\/1\.1 408/);
    assert.ok(elapsedMs >= 1400 && elapsedMs < 4000, `closed after ${elapsedMs} ms`);
    assert.equal(await herald.engine.store.events.count(), 0);
  });

  it('headers trickling in get 408 by headersTimeoutMs', async () => {
    const { closed } = trickle(herald.url, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n', {
      drip: 'x-slow: 1\r\n',
      intervalMs: 200,
      giveUpMs: 8000,
    });
    const { statusLine, elapsedMs } = await closed;
    assert.match(statusLine, /^HTTP\/1\.1 408/);
    assert.ok(elapsedMs >= 900 && elapsedMs < 3000, `closed after ${elapsedMs} ms`);
  });

  it('a request that arrives in time is answered as usual', async () => {
    const res = await herald.post(
      '/events',
      { specversion: '1.0', id: 'in-time', source: 'slow-test', type: 't' },
      { 'content-type': 'application/cloudevents+json' },
    );
    assert.equal(res.status, 202);
  });
});
