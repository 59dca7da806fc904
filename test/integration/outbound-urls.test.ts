import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';

// What an event sender can make Herald do with a URL, and what the admin API shows of URLs.

describe('outbound URLs end to end', () => {
  let herald: TestHerald;
  let sink: HttpSink;
  let port: number;
  before(async () => {
    sink = await startHttpSink();
    port = Number(new URL(sink.url).port);
    herald = await startTestHerald(
      `
channels:
  relay: { kind: webhook, timeoutMs: 1000 }
  partner:
    kind: webhook
    url: "http://bob:\${PARTNER_PASSWORD}@127.0.0.1:${port}/in?token=\${PARTNER_TOKEN}&team=a"
triggers:
  relay:
    filter: { exact: { type: relay.requested } }
    actions: [{ channel: relay, url: "{{ event.data.url }}" }]
  callback:
    filter: { exact: { type: callback.requested } }
    actions: [{ channel: relay, to: "{{ event.data.callback }}" }]
  partner:
    filter: { exact: { type: partner.notified } }
    actions: [{ channel: partner }]
`,
      { env: { PARTNER_PASSWORD: 'pw-SECRET-1', PARTNER_TOKEN: 'tok-SECRET-2' } },
    );
  });
  after(async () => {
    await herald.close();
    await sink.close();
  });

  const send = async (id: string, type: string, data: unknown) => {
    const res = await herald.post(
      '/events',
      { specversion: '1.0', id, source: 'attacker', type, data },
      { 'content-type': 'application/cloudevents+json' },
    );
    assert.equal(res.status, 202);
  };
  const json = async (path: string) => {
    const res = await herald.get(path);
    assert.equal(res.status, 200, path);
    return { text: await res.clone().text(), body: (await res.json()) as Record<string, unknown> };
  };

  it('a URL from event data that points at Herald’s own network goes to the DLQ at once, unread', async () => {
    sink.setDefault({ status: 500, headers: { 'content-type': 'text/plain' }, body: 'internal-admin-page' });
    const targets = [
      `http://127.0.0.1:${port}/admin`,
      `http://[::ffff:127.0.0.1]:${port}/admin`,
      `http://0x7f000001:${port}/admin`,
      `http://localhost:${port}/admin`,
      'http://169.254.169.254/latest/meta-data/',
    ];
    for (const [i, url] of targets.entries()) await send(`ssrf-${i}`, 'relay.requested', { url });
    await send('ssrf-to', 'callback.requested', {
      callback: `http://127.0.0.1:${port}/cb?token=tok-SECRET-3`,
    });
    const { body, text } = await eventually(async () => {
      const answer = await json('/api/dlq?channel=relay');
      return (answer.body.deadLetters as unknown[]).length === targets.length + 1 ? answer : undefined;
    });
    for (const dead of body.deadLetters as { attempts: number; lastError: string }[]) {
      assert.equal(dead.attempts, 1, 'refused for good, not retried');
      assert.match(dead.lastError, /^refused to connect to .*: a (loopback|link-local) address/);
    }
    assert.ok(!text.includes('internal-admin-page'), 'nothing of the internal answer is shown');
    assert.ok(!text.includes('tok-SECRET-3'), 'the recipient URL is shown redacted');
    const detail = await json('/api/events/ssrf-to?source=attacker');
    assert.doesNotMatch(JSON.stringify(detail.body.deliveries), /tok-SECRET-3/);
    assert.match(JSON.stringify(detail.body.deliveries), /cb\?token=••••/);
    assert.equal(sink.requests.length, 0, 'no request reached the loopback server');
    sink.setDefault({ status: 200, body: '{"ok":true}' });
  });

  it('credentials in a channel URL are sent as Basic auth and appear in no API answer', async () => {
    sink.respondWith({ status: 400, body: '{"error":"unknown team"}' });
    await send('partner-1', 'partner.notified', { n: 1 });
    const [got] = await sink.waitFor(1);
    assert.equal(got!.headers.authorization, `Basic ${Buffer.from('bob:pw-SECRET-1').toString('base64')}`);
    assert.equal(got!.url, '/in?token=tok-SECRET-2&team=a');
    const dlq = await eventually(async () => {
      const answer = await json('/api/dlq?channel=partner');
      return (answer.body.deadLetters as unknown[]).length === 1 ? answer : undefined;
    });
    const [dead] = dlq.body.deadLetters as { lastError: string; rendered: { url: string } }[];
    assert.equal(dead!.lastError, 'HTTP 400: unknown team');
    assert.equal(dead!.rendered.url, `http://••••@127.0.0.1:${port}/in?token=••••&team=a`);
    const answers = [
      dlq.text,
      (await json('/api/deliveries?channel=partner')).text,
      (await json('/api/deliveries?channel=relay')).text,
      (await json('/api/events/partner-1?source=attacker')).text,
    ];
    for (const text of answers) {
      assert.ok(!/SECRET/.test(text), `a credential leaked: ${text.slice(0, 400)}`);
    }
    assert.match(answers[1]!, /token=••••&team=a/);
  });
});
