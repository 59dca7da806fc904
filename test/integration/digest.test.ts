import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, routedDeliveries, startTestHerald, type TestHerald } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';
import { type SlackServer, startSlackServer } from '../support/slack/index.js';

// `digest` end to end on the embedded store: events over HTTP, the store collects them into one
// delivery, the dispatcher sends one message with every event to the inbox, a real webhook
// receiver, or the Slack fake through Slack's own SDK.

function config(sinkUrl: string) {
  return `
channels:
  box: { kind: inbox }
  hook: { kind: webhook, url: ${sinkUrl}, timeoutMs: 2000 }
  slack: { kind: slack, token: "\${SLACK_BOT_TOKEN}", perChannelIntervalMs: 10 }
triggers:
  ops-digest:
    filter: { exact: { type: digest.box } }
    actions:
      - channel: box
        to: ["#ops", "#dev"]
        text: "{{ events | size }} events:{% for e in events %} {{ e.data.n }}{% endfor %}; newest {{ event.data.n }}"
        digest: { key: "{{ recipient }}", window: 1500ms }
      - channel: box
        to: "#plain"
        text: "{{ events | size }} {{ events[0].id }}"
  big-digest:
    filter: { exact: { type: digest.big } }
    actions:
      - channel: box
        to: "#big"
        text: "{{ events | size }}:{% for e in events %} {{ e.data.n }}{% endfor %}"
        digest: { key: "all", window: 1500ms, max: 50 }
  hook-digest:
    filter: { exact: { type: digest.hook } }
    actions:
      - channel: hook
        body: { count: "{{ events | size }}", ids: "{% for e in events %}{{ e.id }} {% endfor %}" }
        digest: { key: "all", window: 700ms }
    delivery: { maxAttempts: 2, backoff: { kind: fixed, initialMs: 1500, jitter: 0 } }
  repo-card:
    filter: { exact: { type: digest.slack } }
    actions:
      - channel: slack
        to: "#builds"
        text: "{{ events | size }} on {{ event.data.repo }}:{% for e in events %} {{ e.data.n }}{% endfor %}"
        digest: { key: "{{ event.data.repo }}", window: 700ms, update: true }
`;
}

interface DeliveryView {
  id: number;
  recipient: string | null;
  status: string;
  attempts: number;
  nextAttemptAt: number;
  idempotencyKey: string;
  lastError: string | null;
  remoteId: string | null;
}

describe('digest on the embedded store', () => {
  let sink: HttpSink;
  let slack: SlackServer;
  let herald: TestHerald;
  let buildsId: string;
  let n = 0;
  before(async () => {
    sink = await startHttpSink();
    slack = await startSlackServer();
    buildsId = slack.addChannel('builds');
    herald = await startTestHerald(config(sink.url), {
      env: { SLACK_BOT_TOKEN: slack.token, SLACK_API_URL: slack.url },
    });
  });
  after(async () => {
    await herald.close();
    await sink.close();
    await slack.close();
  });

  const send = async (type: string, data: Record<string, unknown>): Promise<string> => {
    const id = `${type}-${++n}`;
    const res = await herald.post(
      '/events',
      { specversion: '1.0', id, source: 'test/digest', type, data },
      { 'content-type': 'application/cloudevents+json' },
    );
    assert.equal(res.status, 202, await res.clone().text());
    return id;
  };
  const deliveries = (id: string) => eventually(() => routedDeliveries<DeliveryView>(herald, id));
  const settled = (id: string, status: string, timeoutMs = 8000) =>
    eventually(
      async () => {
        const list = await deliveries(id);
        return list.length > 0 && list.every((d) => d.status === status) ? list : undefined;
      },
      timeoutMs,
      `${id} ${status}`,
    );
  const inbox = async (recipient: string) =>
    (
      (await (await herald.get('/api/inbox?limit=200')).json()) as {
        messages: { eventId: string; recipient: string; message: { text: string } }[];
      }
    ).messages
      .filter((m) => m.recipient === recipient)
      .map((m) => m.message.text);
  const sinkBodies = () => sink.requests.map((r) => JSON.parse(r.body) as { count: string; ids: string });

  it('collects the events of a window into one message per recipient, oldest first; the rest are suppressed naming it', async () => {
    const ids = [await send('digest.box', { n: 1 }), await send('digest.box', { n: 2 })];
    ids.push(await send('digest.box', { n: 3 }));
    const openers = (await deliveries(ids[0]!)).filter((d) => d.recipient !== '#plain');
    const { receivedAt } = (await (await herald.get(`/api/events/${ids[0]}`)).json()) as {
      receivedAt: number;
    };
    assert.deepEqual(
      openers.map((d) => d.status),
      ['pending', 'pending'],
    );
    for (const d of openers) assert.ok(d.nextAttemptAt >= receivedAt + 1500, 'due when the window ends');
    for (const id of ids.slice(1)) {
      const joined = (await deliveries(id)).filter((d) => d.recipient !== '#plain');
      assert.deepEqual(
        joined.map((d) => [d.status, d.lastError]),
        openers.map((o) => [
          'suppressed',
          `digested into delivery ${o.idempotencyKey} of event ${ids[0]} (key "${o.recipient}")`,
        ]),
      );
    }
    // "Why didn't I get event 3 on its own?" — explain says which delivery carries it.
    const explained = (await (await herald.get(`/api/events/${ids[2]}/explain?recipient=%23ops`)).json()) as {
      triggers: { actions: { recipients: { delivery?: { fate: string; summary: string } }[] }[] }[];
    };
    const fates = explained.triggers.flatMap((t) =>
      t.actions.flatMap((a) => a.recipients.map((r) => r.delivery?.summary)),
    );
    const opsOpener = openers.find((o) => o.recipient === '#ops')!;
    assert.ok(
      fates.includes(
        `suppressed: digested into delivery ${opsOpener.idempotencyKey} of event ${ids[0]} (key "#ops")`,
      ),
      JSON.stringify(fates),
    );
    assert.deepEqual(await inbox('#ops'), []);

    await settled(ids[0]!, 'delivered');
    assert.deepEqual(await inbox('#ops'), ['3 events: 1 2 3; newest 3']);
    assert.deepEqual(await inbox('#dev'), ['3 events: 1 2 3; newest 3']);
    // An action without digest sees `events` as its one event.
    assert.deepEqual((await inbox('#plain')).sort(), ids.map((id) => `1 ${id}`).sort());
  });

  it('a digest of many large events sends its newest that fit in 8 MiB, not every byte it collected', async () => {
    // Twelve events of ~900 KB (under the 1 MiB body limit) fill one digest with ~10.8 MB.
    const pad = 'x'.repeat(900_000);
    const ids: string[] = [];
    for (let n = 1; n <= 12; n++) ids.push(await send('digest.big', { n, pad }));
    await settled(ids[0]!, 'delivered');
    const [text] = await inbox('#big');
    const [count, list] = text!.split(':');
    const kept = Number(count);
    assert.ok(kept >= 8 && kept < 12, `kept ${kept} of 12`);
    // The newest, oldest first; the oldest are the ones left out.
    assert.equal(list!.trim(), Array.from({ length: kept }, (_, i) => 12 - kept + 1 + i).join(' '));
    assert.ok(
      herald.logs.some((l) =>
        String(l.msg).startsWith(`digest: the oldest ${12 - kept} events are left out`),
      ),
    );
  });

  it('a retry re-sends the same digest with the same events; an event arriving meanwhile opens the next', async () => {
    sink.requests.length = 0;
    sink.respondWith({ status: 503 });
    const a = await send('digest.hook', {});
    const b = await send('digest.hook', {});
    await sink.waitFor(1, 5000);
    // The first attempt failed; the retry is 1.5 s away. The digest is no longer waiting.
    const c = await send('digest.hook', {});
    assert.equal((await deliveries(c))[0]!.status, 'pending');
    const [sent] = await settled(a, 'delivered');
    assert.equal(sent!.attempts, 2);
    await settled(c, 'delivered');
    assert.equal((await deliveries(b))[0]!.status, 'suppressed');
    // The retry and the next digest (due first: its window is shorter than the backoff) are sent.
    const bodies = sinkBodies().map((body, i) => ({ ...body, id: sink.requests[i]!.headers['webhook-id'] }));
    const retried = bodies.filter((body) => body.count === '2');
    assert.deepEqual(
      retried.map(({ count, ids }) => ({ count, ids })),
      [
        { count: '2', ids: `${a} ${b} ` },
        { count: '2', ids: `${a} ${b} ` },
      ],
    );
    assert.equal(retried[0]!.id, retried[1]!.id, 'the same delivery, sent again');
    assert.deepEqual(
      bodies.filter((body) => body.count !== '2').map(({ count, ids }) => ({ count, ids })),
      [{ count: '1', ids: `${c} ` }],
    );
  });

  it('a DLQ replay of a digest re-renders it with its events', async () => {
    sink.requests.length = 0;
    sink.respondWith({ status: 400 });
    const a = await send('digest.hook', {});
    const b = await send('digest.hook', {});
    const [dead] = await settled(a, 'dead');
    const replay = await herald.post(`/api/dlq/${dead!.id}/replay`, '');
    assert.equal(replay.status, 200, await replay.text());
    await settled(a, 'delivered');
    assert.deepEqual(sinkBodies(), [
      { count: '2', ids: `${a} ${b} ` },
      { count: '2', ids: `${a} ${b} ` },
    ]);
  });

  it('update: true posts the first digest of a key to Slack, then edits that message with the next one', async () => {
    const first = [
      await send('digest.slack', { repo: 'api', n: 1 }),
      await send('digest.slack', { repo: 'api', n: 2 }),
    ];
    const [posted] = await settled(first[0]!, 'delivered');
    const post = await slack.waitForCall('chat.postMessage', (c) => c.args.text === '2 on api: 1 2');
    assert.ok(posted!.remoteId);
    const second = await send('digest.slack', { repo: 'api', n: 3 });
    await settled(second, 'delivered');
    const update = await slack.waitForCall('chat.update');
    assert.equal(update.args.text, '1 on api: 3');
    assert.equal(update.args.ts, posted!.remoteId);
    assert.equal(post.args.channel, '#builds');
    assert.equal(update.args.channel, buildsId);
    // Another key is another message.
    const other = await send('digest.slack', { repo: 'web', n: 4 });
    await settled(other, 'delivered');
    assert.deepEqual(
      slack.callsTo('chat.postMessage').map((c) => c.args.text),
      ['2 on api: 1 2', '1 on web: 4'],
    );
    assert.equal(slack.callsTo('chat.update').length, 1);
  });
});
