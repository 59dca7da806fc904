import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';

const STRUCTURED = { 'content-type': 'application/cloudevents+json' };
const BATCH = { 'content-type': 'application/cloudevents-batch+json' };
const event = (id: string, extra: Record<string, unknown> = {}) => ({
  specversion: '1.0',
  id,
  source: 'limits',
  type: 'limits.test',
  ...extra,
});
const nested = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

describe('limits at the door, with their defaults', () => {
  let herald: TestHerald;
  before(async () => {
    herald = await startTestHerald(`
sources:
  bot:
    kind: http
    routes:
      - path: /notify
        event: { type: notification.created, subject: "{{ body.topic }}" }
channels:
  box: { kind: inbox }
triggers:
  all:
    actions: [{ channel: box, text: "{{ event.id }}" }]
`);
  });
  after(() => herald.close());

  it('the deep-JSON request gets 400 naming the path; its 40 concurrent neighbours get 202', async () => {
    const deep = `{"specversion":"1.0","id":"deep","source":"limits","type":"t","data":${nested(20_000)}}`;
    const ids = Array.from({ length: 40 }, (_, i) => `n-${i}`);
    const [bad, ...neighbours] = await Promise.all([
      herald.post('/events', deep, STRUCTURED),
      ...ids.map((id) => herald.post('/events', event(id), STRUCTURED)),
    ]);
    assert.equal(bad!.status, 400);
    const body = (await bad!.json()) as Record<string, unknown>;
    assert.equal(body.code, 'NESTING_TOO_DEEP');
    assert.equal(body.attribute, 'data');
    assert.equal(body.limit, 64);
    assert.match(String(body.path), /^data\[0\]\[0\]/);
    assert.match(String(body.error), /nested deeper than 64 levels at data\[0\]/);
    assert.deepEqual(
      neighbours.map((r) => r.status),
      ids.map(() => 202),
    );
    assert.equal(await herald.engine.store.events.findById('deep', 'limits'), null);
  });

  it('a long attribute is 413 naming it, in structured and binary mode', async () => {
    const structured = await herald.post('/events', event('long', { type: 'x'.repeat(5000) }), STRUCTURED);
    assert.equal(structured.status, 413);
    assert.deepEqual(
      await structured
        .json()
        .then((b) => [(b as { code: string }).code, (b as { attribute: string }).attribute]),
      ['ATTRIBUTE_TOO_LONG', 'type'],
    );
    const binary = await herald.post('/events', '{}', {
      'ce-specversion': '1.0',
      'ce-id': 'long-binary',
      'ce-source': 'limits',
      'ce-type': 't',
      'ce-subject': 's'.repeat(5000),
    });
    assert.equal(binary.status, 413);
    assert.equal(((await binary.json()) as { attribute: string }).attribute, 'subject');
  });

  it('too many extensions and too large a batch are 413, and nothing of the batch is stored', async () => {
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`x${i}`, 1]));
    const res = await herald.post('/events', event('many', many), STRUCTURED);
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { code: string }).code, 'TOO_MANY_EXTENSIONS');
    const before = await herald.engine.store.events.count();
    const batch = Array.from({ length: 1001 }, (_, i) => event(`b-${i}`));
    const big = await herald.post('/events', batch, BATCH);
    assert.equal(big.status, 413);
    assert.equal(((await big.json()) as { code: string }).code, 'BATCH_TOO_LARGE');
    assert.equal(await herald.engine.store.events.count(), before);
  });

  it('an http source route refuses a deep body, and an event whose rendered attribute is too long', async () => {
    const deep = await herald.post('/notify', `{"topic":${nested(100)}}`);
    assert.equal(deep.status, 400);
    const body = (await deep.json()) as { code: string; path: string };
    assert.equal(body.code, 'NESTING_TOO_DEEP');
    assert.match(body.path, /^body\.topic\[0\]/);
    const long = await herald.post('/notify', { topic: 't'.repeat(5000) });
    assert.equal(long.status, 413);
    assert.deepEqual(await long.json().then((b) => (b as { attribute: string }).attribute), 'subject');
  });
});

describe('limits from the config', () => {
  it('applies the configured values instead of the defaults', async () => {
    const herald = await startTestHerald('limits: { batchSize: 2, attributeLength: 100, jsonDepth: 4 }\n');
    try {
      assert.equal((await herald.post('/events', [event('a'), event('b')], BATCH)).status, 202);
      assert.equal((await herald.post('/events', [event('c'), event('d'), event('e')], BATCH)).status, 413);
      assert.equal(
        (await herald.post('/events', event('f', { subject: 'x'.repeat(101) }), STRUCTURED)).status,
        413,
      );
      assert.equal((await herald.post('/events', event('g', { data: [[[[]]]] }), STRUCTURED)).status, 400);
      assert.equal((await herald.post('/events', event('h', { data: [[[]]] }), STRUCTURED)).status, 202);
    } finally {
      await herald.close();
    }
  });
});

describe('a hostile LIKE value does not stall Herald', () => {
  it('200,000-character values are ingested and routed while /healthz keeps answering', async () => {
    // The door is opened for long attributes on purpose: this is about the matcher behind it.
    const herald = await startTestHerald(`
limits: { attributeLength: 300000 }
channels:
  box: { kind: inbox }
triggers:
  dots:
    filter: { sql: "type LIKE '%.%.created'" }
    actions: [{ channel: box, text: "{{ event.id }}" }]
  wild:
    filter: { sql: "subject LIKE '%a%b%c%d%e%z'" }
    actions: [{ channel: box, text: "{{ event.id }}" }]
  slow:
    filter: { sql: "subject LIKE '%${'a'.repeat(100)}b'" }
    actions: [{ channel: box, text: "{{ event.id }}" }]
`);
    const delay = monitorEventLoopDelay({ resolution: 10 });
    try {
      delay.enable();
      let healthy = 0;
      let polling = true;
      const poll = (async () => {
        while (polling) {
          const started = performance.now();
          const res = await fetch(`${herald.url}/healthz`);
          assert.equal(res.status, 200);
          assert.ok(performance.now() - started < 500, 'healthz answered late');
          healthy++;
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      const ids = ['dots', 'wild', 'slow'];
      const responses = await Promise.all([
        herald.post('/events', event('dots', { type: '.'.repeat(200_000) }), STRUCTURED),
        herald.post('/events', event('wild', { subject: 'a'.repeat(200_000) }), STRUCTURED),
        herald.post('/events', event('slow', { subject: 'a'.repeat(200_000) }), STRUCTURED),
      ]);
      assert.deepEqual(
        responses.map((r) => r.status),
        [202, 202, 202],
      );
      const routed = await Promise.all(
        ids.map((id) =>
          eventually(async () => {
            const body = (await (await herald.get(`/api/events/${id}`)).json()) as {
              routedAt: number | null;
              routing: { matched: string[]; errors: { trigger: string; kind: string }[] };
            };
            return body.routedAt ? body.routing : undefined;
          }),
        ),
      );
      polling = false;
      await poll;
      assert.ok(healthy > 0);
      assert.deepEqual(
        routed.map((r) => r.matched),
        [[], [], []],
      );
      // The one that would take too long is stopped and recorded against its trigger.
      assert.deepEqual(
        routed[2]!.errors.map((e) => [e.trigger, e.kind]),
        [['slow', 'budget']],
      );
      // Unbounded, one of these held the loop for seconds; a budget's worth is tens of ms, with room
      // for a machine shared with other work.
      assert.ok(delay.max / 1e6 < 200, `event loop held for ${(delay.max / 1e6).toFixed(0)} ms`);
    } finally {
      delay.disable();
      await herald.close();
    }
  });
});
