import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';

const CONFIG = `
sources:
  bot:
    kind: http
    routes:
      - path: /notify
        event: { type: notification.created, subject: "{{ body.topic }}" }
channels:
  box: { kind: inbox }
triggers:
  sales:
    filter: { exact: { subject: sales } }
    actions: [{ channel: box, text: "{{ event.data.description }}" }]
`;

function value(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('GET /metrics', () => {
  let herald: TestHerald;
  before(async () => {
    herald = await startTestHerald(CONFIG);
  });
  after(() => herald.close());

  it('counters move when events flow', async () => {
    const scrape = async () => (await herald.get('/metrics')).text();
    const before = await scrape();
    assert.match(before, /# TYPE herald_events_ingested_total counter/);
    assert.match(before, /herald_process_resident_memory_bytes/);
    for (let i = 0; i < 3; i++) {
      assert.equal((await herald.post('/notify', { topic: 'sales', description: `d${i}` })).status, 202);
    }
    const after = await eventually(async () => {
      const text = await scrape();
      // The counters move when each attempt ends; the queue gauge once its outcome is on disk.
      return value(text, 'herald_deliveries_total', 'channel="box",status="delivered"') >= 3 &&
        value(text, 'herald_queue_depth') === 0
        ? text
        : undefined;
    });
    assert.equal(
      value(
        after,
        'herald_events_ingested_total',
        'source="herald://bot/notify",type="notification.created"',
      ),
      3,
    );
    assert.equal(value(after, 'herald_routing_matches_total', 'trigger="sales"'), 3);
    assert.equal(value(after, 'herald_delivery_attempts_total', 'channel="box",outcome="delivered"'), 3);
    assert.equal(value(after, 'herald_queue_depth'), 0);
    assert.equal(value(after, 'herald_dlq_size'), 0);
    assert.match(after, /herald_delivery_latency_seconds_bucket\{le="[^"]+",channel="box"\}/);
  });

  it('stays small however many types and sources senders invent; the first ones keep their names', async () => {
    const sent = 5000;
    for (let batch = 0; batch < sent / 500; batch++) {
      const events = Array.from({ length: 500 }, (_, i) => {
        const n = batch * 500 + i;
        const noise = Math.random().toString(36).slice(2);
        return { specversion: '1.0', id: `m${n}`, source: `urn:s:${n}:${noise}`, type: `t.${n}.${noise}` };
      });
      const res = await herald.post('/events', events, {
        'content-type': 'application/cloudevents-batch+json',
      });
      assert.equal(res.status, 202);
    }
    const text = await eventually(async () => {
      const scraped = await (await herald.get('/metrics')).text();
      const ingested = scraped
        .split('\n')
        .filter((l) => l.startsWith('herald_events_ingested_total{'))
        .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
      return ingested >= sent + 3 ? scraped : undefined;
    });
    assert.ok(text.length < 100_000, `/metrics is ${text.length} bytes`);
    assert.ok(value(text, 'herald_events_ingested_total', 'source="other",type="other"') > sent - 200);
    assert.match(text, /herald_events_ingested_total\{source="urn:s:0:[a-z0-9]+",type="t\.0\.[a-z0-9]+"\} 1/);
    const health = (await (await herald.get('/api/health')).json()) as {
      eventSources: { source: string; total: number }[];
    };
    const other = health.eventSources.find((s) => s.source === 'other');
    // The http route of the test above is one of the first 100 sources.
    assert.equal(other?.total, sent - 99, 'the live feed counts sources past the first 100 as other');
  });
});
