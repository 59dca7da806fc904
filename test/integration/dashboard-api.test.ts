import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';

// The admin API the dashboard stands on: the live stream (SSE), CESQL-filtered paging of the log,
// health and the redacted config.

const CONFIG = `
channels:
  box: { kind: inbox }
  hook: { kind: webhook, url: "http://user:\${HOOK_PASSWORD}@127.0.0.1:9/hook", headers: { X-Api-Key: literal-key-123 } }
triggers:
  all-to-box:
    filter: { prefix: { type: "x." } }
    actions:
      - { channel: box, text: "{{ event.type }}" }
`;

interface Frame {
  event: string;
  data: unknown;
}

/** Opens /api/stream and collects its frames (and comment lines) until closed. */
async function openStream(herald: TestHerald, query = '', headers: Record<string, string> = {}) {
  const abort = new AbortController();
  const res = await fetch(`${herald.url}/api/stream${query}`, { headers, signal: abort.signal });
  const frames: Frame[] = [];
  const comments: string[] = [];
  let ended = false;
  const done = (async () => {
    if (!res.ok || !res.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
          let event = 'message';
          let data: string | null = null;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data = line.slice(6);
          }
          if (data !== null) frames.push({ event, data: JSON.parse(data) });
        }
      }
    } catch {
      // Aborted by the test.
    }
    ended = true;
  })();
  if (res.ok) await eventually(() => frames.some((f) => f.event === 'ready'), 5000, 'the ready frame');
  return {
    res,
    frames,
    comments,
    get ended() {
      return ended;
    },
    done,
    close: () => abort.abort(),
  };
}

const ce = (id: string, type: string, subject: string, extra: Record<string, unknown> = {}) => ({
  specversion: '1.0',
  id,
  source: 'dash-test',
  type,
  subject,
  ...extra,
});

describe('dashboard API', () => {
  let herald: TestHerald;
  before(async () => {
    herald = await startTestHerald(CONFIG, {
      env: { HOOK_PASSWORD: 'pw-from-env-42' },
      live: { heartbeatMs: 100 },
    });
  });
  after(async () => {
    await herald.close();
  });

  const send = (events: unknown[]) =>
    herald.post('/events', events, { 'content-type': 'application/cloudevents-batch+json' }).then((r) => {
      assert.equal(r.status, 202);
    });

  it('streams routed events with the triggers they matched, filtered by attributes and CESQL, then their deliveries', async () => {
    const stream = await openStream(herald, `?subject=s1&sql=${encodeURIComponent("type LIKE 'x.%'")}`);
    const everything = await openStream(herald);
    try {
      assert.equal(stream.res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      await send([
        ce('a', 'x.created', 's1'),
        ce('b', 'x.created', 's2'), // wrong subject
        ce('c', 'y.created', 's1'), // fails the CESQL expression
        ce('d', 'x.deleted', 's1'),
      ]);
      await eventually(
        () => stream.frames.filter((f) => f.event === 'delivery').length === 2,
        5000,
        'delivery frames for a and d',
      );
      const events = stream.frames.filter((f) => f.event === 'event').map((f) => f.data) as {
        event: { id: string };
        routing: { matched: string[] };
      }[];
      assert.deepEqual(
        events.map((e) => e.event.id),
        ['a', 'd'],
      );
      assert.deepEqual(events[0]!.routing.matched, ['all-to-box']);
      const deliveries = stream.frames.filter((f) => f.event === 'delivery').map((f) => f.data) as {
        channel: string;
        status: string;
      }[];
      assert.deepEqual(
        deliveries.map((d) => [d.channel, d.status]),
        [
          ['box', 'delivered'],
          ['box', 'delivered'],
        ],
      );
      // The unfiltered stream saw all four, including the one no trigger matched.
      await eventually(() => everything.frames.filter((f) => f.event === 'event').length === 4);
      const unmatched = everything.frames.find(
        (f) => f.event === 'event' && (f.data as { event: { id: string } }).event.id === 'c',
      )!.data as { routing: { matched: string[] } };
      assert.deepEqual(unmatched.routing.matched, []);
      // Idle streams carry heartbeat comments so proxies keep them open.
      await eventually(() => stream.comments.includes('heartbeat'), 2000, 'a heartbeat');
    } finally {
      stream.close();
      everything.close();
    }
  });

  it('refuses a CESQL expression that does not parse, saying where', async () => {
    const res = await fetch(`${herald.url}/api/stream?sql=${encodeURIComponent('type = ')}`);
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: string; code: string };
    assert.equal(body.code, 'REQUEST_INVALID');
    assert.match(body.error, /^sql: .*line 1, column \d+/);
    const list = await herald.get(`/api/events?sql=${encodeURIComponent('AND')}`);
    assert.equal(list.status, 400);
  });

  it('pages the log newest first through a CESQL filter without losing or repeating an event', async () => {
    const batch = Array.from({ length: 60 }, (_, i) => ({
      ...ce(`p${i}`, 'page.test', `sub${i % 3}`),
      n: i,
    }));
    await send(batch);
    const expected = batch
      .filter((e) => e.n % 7 === 0 && e.subject === 'sub0')
      .map((e) => e.id)
      .reverse();
    const seen: string[] = [];
    let cursor: number | null | undefined;
    for (let pages = 0; pages < 20; pages++) {
      const q = new URLSearchParams({ limit: '2', sql: 'n % 7 = 0', subject: 'sub0' });
      if (cursor) q.set('before', String(cursor));
      const res = await herald.get(`/api/events?${q}`);
      assert.equal(res.status, 200);
      const page = (await res.json()) as { events: { event: { id: string } }[]; next: number | null };
      seen.push(...page.events.map((e) => e.event.id));
      cursor = page.next;
      if (cursor === null) break;
    }
    assert.equal(cursor, null, 'the last page says there is no more');
    assert.deepEqual(seen, expected);
  });

  it('reports health: state, lag, and per channel what happened in the last minute', async () => {
    await eventually(async () => {
      const h = (await (await herald.get('/api/health')).json()) as {
        deliveries: { pending: number };
      };
      return h.deliveries.pending === 0;
    });
    const health = (await (await herald.get('/api/health')).json()) as {
      state: string;
      lagMs: number;
      eventsLastMinute: number;
      channels: { name: string; status: string; lastMinute: { delivered: number } }[];
      sources: unknown[];
      eventSources: { source: string; total: number }[];
    };
    assert.equal(health.state, 'running');
    assert.equal(health.lagMs, 0);
    const box = health.channels.find((c) => c.name === 'box')!;
    assert.equal(box.status, 'ok');
    assert.ok(box.lastMinute.delivered >= 2);
    assert.equal(health.channels.find((c) => c.name === 'hook')!.status, 'idle');
    assert.ok(health.eventsLastMinute >= 64);
    assert.ok(health.eventSources.some((s) => s.source === 'dash-test' && s.total >= 64));
  });

  it('shows the config file with secrets, environment values and URL credentials redacted', async () => {
    const res = await herald.get('/api/config');
    const text = await res.text();
    assert.ok(!text.includes('pw-from-env-42'), 'the interpolated password never appears');
    assert.ok(!text.includes('HOOK_PASSWORD'), 'nor does the raw reference');
    assert.ok(!text.includes('literal-key-123'), 'a literal value under a secret-looking key is hidden');
    const body = JSON.parse(text) as {
      config: { channels: { hook: { url: string; headers: Record<string, string> }; box: unknown } };
    };
    assert.equal(body.config.channels.hook.url, '••••');
    assert.equal(body.config.channels.hook.headers['X-Api-Key'], '••••');
    assert.deepEqual(body.config.channels.box, { kind: 'inbox' });
  });

  it('serves the dashboard at / and any page path, keeps JSON 404s for the API', async () => {
    const page = await herald.get('/events/12');
    // Without a build the answer says how to make one; with one it is the app.
    if (page.status === 200) {
      assert.match(page.headers.get('content-type')!, /^text\/html/);
      assert.match(page.headers.get('content-security-policy')!, /script-src 'self'/);
      assert.match(await page.text(), /<div id="app">/);
    } else {
      assert.equal(page.status, 503);
      assert.match(await page.text(), /npm run build/);
    }
    const api = await herald.get('/api/nothing-here');
    assert.equal(api.status, 404);
    assert.equal(((await api.json()) as { code: string }).code, 'NOT_FOUND');
    assert.equal((await herald.get('/assets/missing-0000.js')).status, 404);
  });

  it('ends open streams when Herald stops, so stopping does not wait for the browsers', async () => {
    const other = await startTestHerald(CONFIG, { env: { HOOK_PASSWORD: 'x' } });
    const stream = await openStream(other);
    const started = Date.now();
    await other.close();
    assert.ok(Date.now() - started < 5000, `stop took ${Date.now() - started} ms`);
    await eventually(() => stream.ended, 2000, 'the stream to end');
  });
});

describe('dashboard API with an admin token', () => {
  let herald: TestHerald;
  before(async () => {
    herald = await startTestHerald(CONFIG, { env: { HERALD_ADMIN_TOKEN: 'tok-123', HOOK_PASSWORD: 'x' } });
  });
  after(async () => {
    await herald.close();
  });

  it('needs the token for the stream, health and config; the page itself loads without it', async () => {
    for (const path of ['/api/stream', '/api/health', '/api/config', '/api/events/by-seq/1']) {
      assert.equal((await herald.get(path)).status, 401, path);
      assert.equal((await herald.get(path, { authorization: 'Bearer nope' })).status, 401, path);
    }
    const stream = await openStream(herald, '', { authorization: 'Bearer tok-123' });
    assert.equal(stream.res.status, 200);
    stream.close();
    assert.equal((await herald.get('/api/health', { authorization: 'Bearer tok-123' })).status, 200);
    assert.notEqual((await herald.get('/')).status, 401);
  });
});
