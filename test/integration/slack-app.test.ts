import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { type SlackServer, startSlackServer } from '../support/slack/index.js';
import { form, postSignedToSlackApp, slashCommandBody } from '../support/slack/requests.js';

const SECRET = 'test-signing-secret-1234';

const config = (extra = '') => `
slack:
  token: \${SLACK_BOT_TOKEN}
  signingSecret: \${SLACK_SIGNING_SECRET}
  appToken: \${SLACK_APP_TOKEN:-}
${extra}
subscriptions:
  preferences:
    notify: { type: boolean, default: true }
`;

interface SubscriberView {
  id: string;
  email: string | null;
  keys: string[];
}

describe('Slack app over HTTP: signed slash commands', () => {
  let slack: SlackServer;
  let herald: TestHerald;
  before(async () => {
    slack = await startSlackServer();
    slack.addUser({ id: 'UALICE', name: 'alice', email: 'Alice@Example.com' });
    slack.addUser({ id: 'UNOMAIL', name: 'nomail' });
    herald = await startTestHerald(config(), {
      env: { SLACK_BOT_TOKEN: slack.token, SLACK_SIGNING_SECRET: SECRET, SLACK_API_URL: slack.url },
    });
  });
  after(async () => {
    await herald.close();
    await slack.close();
  });

  const command = (userId: string, text: string, sign: Parameters<typeof postSignedToSlackApp>[5] = {}) => {
    const responseUrl = slack.createResponseUrl();
    const body = form(
      slashCommandBody({ command: '/herald', text, user_id: userId, response_url: responseUrl }),
    );
    return {
      responseUrl,
      sent: postSignedToSlackApp(
        herald.url,
        '/slack/commands',
        SECRET,
        body,
        'application/x-www-form-urlencoded',
        sign,
      ),
    };
  };
  const reply = (url: string) =>
    eventually(
      () => (slack.responses.get(url) ?? [])[0] as { text: string; response_type: string } | undefined,
    );
  const subscriber = async (id: string) => {
    const res = await herald.get(`/api/subscribers/${encodeURIComponent(id)}`);
    return res.status === 200 ? ((await res.json()) as SubscriberView) : null;
  };

  it('subscribe without an argument uses the Slack profile email, and confirms via response_url', async () => {
    const { responseUrl, sent } = command('UALICE', 'subscribe');
    const res = await sent;
    assert.equal(res.status, 200);
    const answer = await reply(responseUrl);
    assert.equal(answer.text, 'Subscribed to `email:alice@example.com`.');
    assert.equal(answer.response_type, 'ephemeral');
    const stored = await subscriber('slack:UALICE');
    assert.deepEqual(stored?.keys, ['email:alice@example.com']);
    assert.equal(stored?.email, 'Alice@Example.com');
    assert.ok(slack.callsTo('users.info').some((c) => c.args.user === 'UALICE'));
  });

  it('subscribe with an email subscribes to that address; status lists it; unsubscribe removes it', async () => {
    const first = command('UALICE', 'subscribe bob@example.com');
    await first.sent;
    assert.equal((await reply(first.responseUrl)).text, 'Subscribed to `email:bob@example.com`.');
    const status = command('UALICE', 'status');
    await status.sent;
    assert.match(
      (await reply(status.responseUrl)).text,
      /email:alice@example.com.*email:bob@example.com[\s\S]*notify=true/,
    );
    const un = command('UALICE', 'unsubscribe bob@example.com');
    await un.sent;
    assert.equal((await reply(un.responseUrl)).text, 'Unsubscribed from `email:bob@example.com`.');
    assert.deepEqual((await subscriber('slack:UALICE'))?.keys, ['email:alice@example.com']);
  });

  it('a profile without email gets a clear answer; a bad address is refused; help lists the commands', async () => {
    const none = command('UNOMAIL', 'subscribe');
    await none.sent;
    assert.match(
      (await reply(none.responseUrl)).text,
      /no email address.*\/herald subscribe you@example.com/,
    );
    const bad = command('UNOMAIL', 'subscribe not-an-address');
    await bad.sent;
    assert.match((await reply(bad.responseUrl)).text, /"not-an-address" is not an email address/);
    // 40,000 dots between two @: the address pattern alone would backtrack for seconds.
    const started = performance.now();
    const hostile = command('UNOMAIL', `subscribe a@${'.'.repeat(40_000)}@`);
    await hostile.sent;
    assert.match((await reply(hostile.responseUrl)).text, /is not an email address/);
    assert.ok(performance.now() - started < 1000, `answered after ${performance.now() - started} ms`);
    const help = command('UNOMAIL', 'frobnicate');
    await help.sent;
    assert.match(
      (await reply(help.responseUrl)).text,
      /Unknown command "frobnicate"[\s\S]*\/herald subscribe/,
    );
    assert.deepEqual((await subscriber('slack:UNOMAIL'))?.keys ?? [], []);
  });

  it('unsigned, wrongly signed, 6-minute-old and future-dated requests get 401 and change nothing', async () => {
    const attempts = [
      command('UNOMAIL', 'subscribe carol@example.com', { signature: null }),
      command('UNOMAIL', 'subscribe carol@example.com', { signature: `v0=${'0'.repeat(64)}` }),
      command('UNOMAIL', 'subscribe carol@example.com', { timestamp: Math.floor(Date.now() / 1000) - 360 }),
      command('UNOMAIL', 'subscribe carol@example.com', { timestamp: Math.floor(Date.now() / 1000) + 360 }),
      command('UNOMAIL', 'subscribe carol@example.com', {
        timestamp: Math.floor(Date.now() / 1000) + 1_000_000,
      }),
    ];
    for (const a of attempts) {
      const res = await a.sent;
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { code: string }).code, 'UNAUTHORIZED');
    }
    await new Promise((r) => setTimeout(r, 200));
    for (const a of attempts) assert.deepEqual(slack.responses.get(a.responseUrl), []);
    assert.deepEqual((await subscriber('slack:UNOMAIL'))?.keys ?? [], []);
  });

  it('the same signed request sent again within the window is answered 200 and runs once', async () => {
    const responseUrl = slack.createResponseUrl();
    const body = form(
      slashCommandBody({
        command: '/herald',
        text: 'subscribe erin@example.com',
        user_id: 'UNOMAIL',
        response_url: responseUrl,
      }),
    );
    const timestamp = Math.floor(Date.now() / 1000);
    const post = () =>
      postSignedToSlackApp(herald.url, '/slack/commands', SECRET, body, 'application/x-www-form-urlencoded', {
        timestamp,
      });
    assert.equal((await post()).status, 200);
    assert.equal((await reply(responseUrl)).text, 'Subscribed to `email:erin@example.com`.');
    const un = command('UNOMAIL', 'unsubscribe erin@example.com');
    await un.sent;
    await reply(un.responseUrl);
    const replayed = await post();
    assert.equal(replayed.status, 200);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(slack.responses.get(responseUrl)?.length, 1, 'the replay was not run');
    assert.deepEqual(
      (await subscriber('slack:UNOMAIL'))?.keys ?? [],
      [],
      'the replay did not subscribe again',
    );
  });

  it('acks at once while Slack is slow (2 s on users.info), then answers via response_url', async () => {
    slack.failNext('users.info', { delayMs: 2000 });
    slack.addUser({ id: 'USLOW', name: 'slow', email: 'slow@example.com' });
    const started = Date.now();
    const { responseUrl, sent } = command('USLOW', 'subscribe');
    const res = await sent;
    const ackMs = Date.now() - started;
    assert.equal(res.status, 200);
    assert.ok(ackMs < 3000, `acked in ${ackMs} ms`);
    assert.ok(ackMs < 1500, `acked in ${ackMs} ms, before the slow Slack call finished`);
    const answer = await reply(responseUrl);
    assert.equal(answer.text, 'Subscribed to `email:slow@example.com`.');
    assert.ok(Date.now() - started >= 2000);
  });

  it('admin API: create a subscriber, subscribe, set a preference (validated), fan out by subscribersOf', async () => {
    const created = await herald.post('/api/subscribers', { id: 'dave', email: 'dave@example.com' });
    assert.equal(created.status, 201);
    assert.equal((await herald.post('/api/subscribers/dave/subscriptions', { key: 'topic:x' })).status, 201);
    const bad = await fetch(`${herald.url}/api/subscribers/dave/preferences`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ notify: 'yes' }),
    });
    assert.equal(bad.status, 400);
    assert.match(
      ((await bad.json()) as { error: string }).error,
      /preference "notify" must be true or false/,
    );
    const unknown = await fetch(`${herald.url}/api/subscribers/dave/preferences`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ colour: 'red' }),
    });
    assert.equal(unknown.status, 400);
    assert.match(
      ((await unknown.json()) as { error: string }).error,
      /unknown preference "colour" \(known: notify\)/,
    );
    const ok = await fetch(`${herald.url}/api/subscribers/dave/preferences`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ notify: false }),
    });
    assert.equal(ok.status, 200);
    const list = (await (await herald.get('/api/subscriptions/topic:x/subscribers')).json()) as {
      subscribers: { id: string; preferences: { notify: boolean } }[];
    };
    assert.deepEqual(
      list.subscribers.map((s) => [s.id, s.preferences.notify]),
      [['dave', false]],
    );
    assert.equal((await herald.post('/api/subscribers', { email: 'nope' })).status, 400);
    assert.equal((await herald.get('/api/subscribers/nobody')).status, 404);
  });
});

describe('Slack app over Socket Mode', () => {
  it('the same slash command over the WebSocket envelope is acked and handled', async () => {
    const slack = await startSlackServer();
    slack.addUser({ id: 'USOCK', name: 'sock', email: 'sock@example.com' });
    const herald = await startTestHerald(config(), {
      env: {
        SLACK_BOT_TOKEN: slack.token,
        SLACK_SIGNING_SECRET: SECRET,
        SLACK_APP_TOKEN: slack.appToken,
        SLACK_API_URL: slack.url,
      },
    });
    try {
      await slack.waitForSocket();
      assert.equal(slack.callsTo('apps.connections.open').length >= 1, true);
      const responseUrl = slack.createResponseUrl();
      const ack = await slack.sendEnvelope(
        'slash_commands',
        slashCommandBody({
          command: '/herald',
          text: 'subscribe',
          user_id: 'USOCK',
          response_url: responseUrl,
        }),
      );
      assert.match(ack.envelope_id, /^env-/);
      const answer = await eventually(
        () => (slack.responses.get(responseUrl) ?? [])[0] as { text: string } | undefined,
      );
      assert.equal(answer.text, 'Subscribed to `email:sock@example.com`.');
      // HTTP endpoints are not mounted in Socket Mode.
      const res = await fetch(`${herald.url}/slack/commands`, { method: 'POST', body: 'x' });
      assert.equal(res.status, 404);
    } finally {
      await herald.close();
      await slack.close();
    }
  });
});

describe('subscribersOf fan-out', () => {
  it('10,000 subscribers of one key get one delivery each, planned in well under a second', async () => {
    const herald = await startTestHerald(`
subscriptions:
  preferences:
    muted: { type: boolean, default: false }
channels:
  box: { kind: inbox }
triggers:
  fan:
    filter: { exact: { type: big.news } }
    actions:
      - channel: box
        to: { subscribersOf: "topic:{{ event.subject }}", where: "not muted" }
        text: "news"
`);
    try {
      const store = herald.engine.store.subscriptions;
      for (let i = 0; i < 10_000; i++) {
        const id = `p${i}`;
        await store.upsertSubscriber({ id, email: `p${i}@example.com` }, 1);
        await store.subscribe(id, 'topic:all', 1);
      }
      await store.setPreferences('p7', { muted: true });
      const res = await herald.post(
        '/events',
        { specversion: '1.0', id: 'news-1', source: 'test', type: 'big.news', subject: 'all' },
        { 'content-type': 'application/cloudevents+json' },
      );
      assert.equal(res.status, 202);
      const routed = await eventually(async () => {
        const e = (await (await herald.get('/api/events/news-1')).json()) as {
          receivedAt: number;
          routedAt: number | null;
          routing: { deliveries: number } | null;
        };
        return e.routedAt ? e : undefined;
      }, 20_000);
      assert.equal(routed.routing?.deliveries, 9_999, 'everyone but the muted subscriber');
      const planningMs = routed.routedAt! - routed.receivedAt;
      assert.ok(planningMs < 1000, `planned in ${planningMs} ms`);
    } finally {
      await herald.close();
    }
  });
});
