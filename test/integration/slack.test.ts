import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebClient } from '@slack/web-api';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { type SlackServer, startSlackServer } from '../support/slack/index.js';

const CONFIG = `
sources:
  bot:
    kind: http
    routes:
      - path: /notify
        event: { type: notification.created, subject: "{{ body.topic }}" }
channels:
  slack: { kind: slack, token: "\${SLACK_BOT_TOKEN}", perChannelIntervalMs: 100 }
triggers:
  to-channel:
    filter: { exact: { type: notification.created } }
    actions:
      - channel: slack
        to: "{{ event.data.to | default: '#sales' }}"
        text: "New {{ event.subject }} request: {{ event.data.description }}"
    delivery: { maxAttempts: 4, backoff: { initialMs: 100, jitter: 0 } }
  threaded:
    filter: { exact: { type: build.update } }
    actions:
      - channel: slack
        to: "#builds"
        text: "build {{ event.subject }}: {{ event.data.status }}"
        thread: "{{ event.subject }}"
  status-card:
    filter: { exact: { type: deploy.update } }
    actions:
      - channel: slack
        to: "#builds"
        text: "deploy {{ event.subject }}: {{ event.data.status }}"
        blocks:
          - type: section
            text: { type: mrkdwn, text: "*{{ event.subject }}* is {{ event.data.status }}" }
        update: "{{ event.subject }}"
`;

describe('Slack channel against a Slack-compatible server', () => {
  let slack: SlackServer;
  let herald: TestHerald;
  before(async () => {
    slack = await startSlackServer();
    for (const name of ['sales', 'a', 'b', 'builds']) slack.addChannel(name);
    slack.addUser({ id: 'U0ALICE', name: 'alice', email: 'alice@example.com' });
    herald = await startTestHerald(CONFIG, {
      env: { SLACK_BOT_TOKEN: slack.token, SLACK_API_URL: slack.url },
    });
  });
  after(async () => {
    await herald.close();
    await slack.close();
  });

  const notify = (body: Record<string, unknown>) => herald.post('/notify', body);
  const deliveryOf = async (id: string) =>
    eventually(async () => {
      const e = (await (await herald.get(`/api/events/${id}`)).json()) as {
        deliveries: { status: string; attempts: number; lastError: string | null }[];
      };
      const d = e.deliveries?.[0];
      return d && d.status !== 'pending' ? d : undefined;
    }, 10_000);

  it('the fake speaks Slack to Slack’s own SDK: a bad token is invalid_auth', async () => {
    const client = new WebClient('xoxb-wrong', { slackApiUrl: slack.url, retryConfig: { retries: 0 } });
    await assert.rejects(
      client.auth.test(),
      (e: { data?: { error?: string } }) => e.data?.error === 'invalid_auth',
    );
    const ok = await new WebClient(slack.token, { slackApiUrl: slack.url }).auth.test();
    assert.equal(ok.ok, true);
  });

  it('posts a sales notification to #sales with the description', async () => {
    assert.equal((await notify({ topic: 'sales', description: 'Customer asks for a quote' })).status, 202);
    const call = await slack.waitForCall('chat.postMessage', (c) =>
      String(c.args.text).includes('Customer asks for a quote'),
    );
    assert.equal(call.args.channel, '#sales');
    assert.equal(call.args.text, 'New sales request: Customer asks for a quote');
    assert.equal(call.headers.authorization, `Bearer ${slack.token}`);
  });

  it('a 429 with Retry-After: 2 is retried no sooner than 2 s later, then succeeds', async () => {
    slack.failNext('chat.postMessage', { status: 429, retryAfter: 2 });
    const before = slack.callsTo('chat.postMessage').length;
    const { id } = (await (await notify({ topic: 'rate', description: 'limited', to: '#a' })).json()) as {
      id: string;
    };
    const d = await deliveryOf(id);
    assert.equal(d.status, 'delivered');
    assert.equal(d.attempts, 2);
    const [first, second] = slack.callsTo('chat.postMessage').slice(before);
    assert.ok(second!.at - first!.at >= 2000, `retried after ${second!.at - first!.at} ms`);
  });

  it('a burst to one Slack channel is paced while another channel is not held back', async () => {
    const before = slack.calls.length;
    for (let i = 0; i < 10; i++) await notify({ topic: `burst-${i}`, description: 'x', to: '#b' });
    await notify({ topic: 'other', description: 'y', to: '#sales' });
    await eventually(
      () => slack.callsTo('chat.postMessage').filter((c) => c.args.channel === '#b').length >= 10,
      10_000,
    );
    const calls = slack.calls.slice(before).filter((c) => c.method === 'chat.postMessage');
    const toB = calls.filter((c) => c.args.channel === '#b');
    // Pacing spaces the sends 100 ms apart. Arrival times at the server add jitter on a busy machine
    // (one late request arrives just before the next), so the firm check is the whole burst's span:
    // unpaced, ten messages arrive within a few milliseconds.
    const span = toB[toB.length - 1]!.at - toB[0]!.at;
    assert.ok(span >= 9 * 100 * 0.9, `10 paced messages spanned only ${span} ms`);
    const other = calls.findIndex((c) => c.args.channel === '#sales');
    const fifthToB = calls.indexOf(toB[4]!);
    assert.ok(other >= 0 && other < fifthToB, 'the #sales message went out while #b was still being paced');
  });

  it('channel_not_found goes to the DLQ with the Slack error code', async () => {
    const { id } = (await (await notify({ topic: 'lost', description: 'x', to: '#nowhere' })).json()) as {
      id: string;
    };
    const d = await deliveryOf(id);
    assert.equal(d.status, 'dead');
    assert.equal(d.attempts, 1);
    assert.match(d.lastError ?? '', /slack error channel_not_found/);
  });

  it('DMs a user by id and by email (looked up)', async () => {
    await notify({ topic: 'dm', description: 'by id', to: 'U0ALICE' });
    await notify({ topic: 'dm', description: 'by email', to: 'alice@example.com' });
    const byEmail = await slack.waitForCall('chat.postMessage', (c) =>
      String(c.args.text).includes('by email'),
    );
    const byId = await slack.waitForCall('chat.postMessage', (c) => String(c.args.text).includes('by id'));
    assert.equal(byId.args.channel, 'D0ALICE');
    assert.equal(byEmail.args.channel, 'D0ALICE');
    assert.equal(slack.callsTo('users.lookupByEmail')[0]?.args.email, 'alice@example.com');
    const opens = slack.callsTo('conversations.open').length;
    assert.ok(opens >= 1);
    // The DM channel is remembered: another DM to the same user opens nothing.
    await notify({ topic: 'dm', description: 'again', to: 'U0ALICE' });
    const again = await slack.waitForCall('chat.postMessage', (c) => String(c.args.text).includes('again'));
    assert.equal(again.args.channel, 'D0ALICE');
    assert.equal(slack.callsTo('conversations.open').length, opens);
  });

  it('threads by key and updates by key', async () => {
    const send = (id: string, type: string, subject: string, status: string) =>
      herald.post(
        '/events',
        { specversion: '1.0', id, source: 'ci', type, subject, data: { status } },
        { 'content-type': 'application/cloudevents+json' },
      );
    await send('b1', 'build.update', 'build-7', 'running');
    const first = await slack.waitForCall(
      'chat.postMessage',
      (c) => c.args.text === 'build build-7: running',
    );
    await send('b2', 'build.update', 'build-7', 'passed');
    const reply = await slack.waitForCall('chat.postMessage', (c) => c.args.text === 'build build-7: passed');
    assert.equal(first.args.thread_ts, undefined);
    assert.ok(reply.args.thread_ts, 'the second message is a reply');

    await send('d1', 'deploy.update', 'api', 'deploying');
    await slack.waitForCall('chat.postMessage', (c) => c.args.text === 'deploy api: deploying');
    await send('d2', 'deploy.update', 'api', 'live');
    const update = await slack.waitForCall('chat.update');
    assert.equal(update.args.text, 'deploy api: live');
    assert.match(String(update.args.blocks), /\*api\* is live/);
    assert.equal(
      slack.callsTo('chat.postMessage').filter((c) => String(c.args.text).startsWith('deploy api')).length,
      1,
    );
  });
});

describe('the notify-router demo config with Slack credentials', () => {
  it('posts sales notifications to the Slack-compatible server named by SLACK_API_URL', async () => {
    const { readFileSync } = await import('node:fs');
    const { DEMO_CONFIG } = await import('../../src/app.js');
    const slack = await startSlackServer();
    slack.addChannel('sales');
    const herald = await startTestHerald(readFileSync(DEMO_CONFIG, 'utf8'), {
      env: { SLACK_BOT_TOKEN: slack.token, SLACK_API_URL: slack.url },
    });
    try {
      assert.ok(!herald.logs.some((l) => /slack-sales: .* go to the inbox/.test(String(l.msg))));
      assert.equal(
        (await herald.post('/notify', { topic: 'sales', description: 'Customer asks for a quote' })).status,
        202,
      );
      const call = await slack.waitForCall('chat.postMessage');
      assert.equal(call.args.channel, '#sales');
      assert.equal(call.args.text, 'New sales request: Customer asks for a quote');
    } finally {
      await herald.close();
      await slack.close();
    }
  });
});

describe('the Slack channel’s email lookups', () => {
  it('remembers at most emailCacheSize of them: a new address beyond it makes the others be looked up again', async () => {
    const slack = await startSlackServer();
    for (const name of ['ann', 'bob', 'cat'])
      slack.addUser({ id: `U0${name.toUpperCase()}`, name, email: `${name}@example.com` });
    const herald = await startTestHerald(
      `
channels:
  slack: { kind: slack, token: "\${SLACK_BOT_TOKEN}", perChannelIntervalMs: 1, emailCacheSize: 2 }
triggers:
  dm:
    filter: { exact: { type: dm } }
    actions: [{ channel: slack, to: "{{ event.data.to }}", text: "{{ event.id }}" }]
`,
      { env: { SLACK_BOT_TOKEN: slack.token, SLACK_API_URL: slack.url } },
    );
    try {
      const dm = async (id: string, to: string) => {
        const res = await herald.post(
          '/events',
          { specversion: '1.0', id, source: 'test', type: 'dm', data: { to } },
          { 'content-type': 'application/cloudevents+json' },
        );
        assert.equal(res.status, 202);
        await slack.waitForCall('chat.postMessage', (c) => c.args.text === id);
      };
      await dm('1', 'ann@example.com');
      await dm('2', 'bob@example.com');
      await dm('3', 'ann@example.com');
      assert.equal(slack.callsTo('users.lookupByEmail').length, 2, 'ann is remembered');
      await dm('4', 'cat@example.com');
      await dm('5', 'ann@example.com');
      assert.deepEqual(
        slack.callsTo('users.lookupByEmail').map((c) => c.args.email),
        ['ann@example.com', 'bob@example.com', 'cat@example.com', 'ann@example.com'],
      );
    } finally {
      await herald.close();
      await slack.close();
    }
  });
});
