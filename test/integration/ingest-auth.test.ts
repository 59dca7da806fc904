import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { signWebhook } from '../../src/signing/standard-webhooks.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { type SlackServer, startSlackServer } from '../support/slack/index.js';
import { form, postSignedToSlackApp, slashCommandBody } from '../support/slack/requests.js';

const INGEST_TOKEN = 'ingest-tok-5c1e';
const GITHUB_SECRET = 'gh-hook-secret';
const PARTNER_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

const CONFIG = `
sources:
  bot:
    kind: http
    routes:
      - path: /notify
        event: { type: notification.created }
      - path: /github
        auth: { hmac: { secret: "\${GITHUB_WEBHOOK_SECRET}" } }
        event:
          type: 'github.{{ headers["x-github-event"] }}'
          id: '{{ headers["x-github-delivery"] }}'
      - path: /partner
        auth: { standardWebhooks: { secret: "\${PARTNER_WEBHOOK_SECRET}" } }
        event: { type: partner.event, id: '{{ headers["webhook-id"] }}' }
  cdc: { kind: debezium }
  cdc-signed:
    kind: debezium
    path: /debezium-signed
    auth: { hmac: { secret: cdc-secret, header: x-signature, prefix: "" } }
channels:
  box: { kind: inbox }
triggers:
  all:
    actions: [{ channel: box, text: "{{ event.type }}" }]
`;

const DEBEZIUM = JSON.stringify({
  before: null,
  after: { id: 7, name: 'widget' },
  source: {
    name: 'shop',
    connector: 'postgresql',
    db: 'shop',
    schema: 'public',
    table: 'products',
    lsn: 42,
    txId: 1,
  },
  op: 'c',
  ts_ms: 1_700_000_000_000,
});

describe('ingest with HERALD_INGEST_TOKEN and signed routes', () => {
  let herald: TestHerald;
  before(async () => {
    herald = await startTestHerald(CONFIG, {
      env: {
        HERALD_INGEST_TOKEN: INGEST_TOKEN,
        GITHUB_WEBHOOK_SECRET: GITHUB_SECRET,
        PARTNER_WEBHOOK_SECRET: PARTNER_SECRET,
      },
    });
  });
  after(() => herald.close());

  const count = () => herald.engine.store.events.count();
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  async function refused(res: Response, reason: RegExp, secrets: string[] = [INGEST_TOKEN]) {
    const text = await res.text();
    assert.equal(res.status, 401, text);
    const body = JSON.parse(text) as { error: string; code: string };
    assert.equal(body.code, 'UNAUTHORIZED');
    assert.match(body.error, reason);
    for (const secret of secrets) assert.doesNotMatch(text, new RegExp(secret));
    return res;
  }

  it('POST /events, http routes and /debezium need the bearer token', async () => {
    const event = JSON.stringify({ specversion: '1.0', id: 'e-1', source: 'tests', type: 't' });
    const ce = { 'content-type': 'application/cloudevents+json' };
    const requests: [string, string, Record<string, string>][] = [
      ['/events', event, ce],
      ['/notify', '{"n":1}', {}],
      ['/debezium', DEBEZIUM, {}],
    ];
    for (const [path, body, headers] of requests) {
      const none = await refused(await herald.post(path, body, headers), /Bearer <ingest token/);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer', path);
      await refused(await herald.post(path, body, { ...headers, ...bearer('wrong') }), /ingest token/);
      await refused(
        await herald.post(path, body, { ...headers, authorization: INGEST_TOKEN }),
        /ingest token/,
      );
    }
    assert.equal(await count(), 0, 'nothing refused was stored');
    for (const [path, body, headers] of requests) {
      const res = await herald.post(path, body, { ...headers, ...bearer(INGEST_TOKEN) });
      assert.equal(res.status, 202, `${path}: ${await res.text()}`);
    }
    assert.equal(await count(), 3);
  });

  it('a GitHub delivery with a good x-hub-signature-256 is accepted without the bearer token', async () => {
    const before = await count();
    const body = JSON.stringify({ ref: 'refs/heads/main', commits: [] });
    const signature = `sha256=${createHmac('sha256', GITHUB_SECRET).update(body).digest('hex')}`;
    const headers = { 'x-github-event': 'push', 'x-github-delivery': 'gh-1' };
    const res = await herald.post('/github', body, { ...headers, 'x-hub-signature-256': signature });
    assert.equal(res.status, 202, await res.text());
    const stored = await herald.engine.store.events.findById('gh-1');
    assert.equal(stored?.event.type, 'github.push');

    const secrets = [GITHUB_SECRET, signature.slice(7, 30)];
    await refused(
      await herald.post('/github', `${body} `, { ...headers, 'x-hub-signature-256': signature }),
      /x-hub-signature-256 does not match the body/,
      secrets,
    );
    const forged = `sha256=${createHmac('sha256', 'guessed').update(body).digest('hex')}`;
    await refused(
      await herald.post('/github', body, { ...headers, 'x-hub-signature-256': forged }),
      /does not match/,
      secrets,
    );
    await refused(await herald.post('/github', body, headers), /missing header x-hub-signature-256/, secrets);
    // The ingest token is no substitute for the route's signature.
    await refused(
      await herald.post('/github', body, { ...headers, ...bearer(INGEST_TOKEN) }),
      /missing header x-hub-signature-256/,
    );
    assert.equal(await count(), before + 1);
  });

  it('Standard Webhooks: good, forged, stale, future and unsigned requests', async () => {
    const before = await count();
    const body = Buffer.from('{"order":"o-1","note":"caf\u00e9"}');
    const signed = (id: string, at: number, payload: Buffer | string = body) => ({
      'webhook-id': id,
      'webhook-timestamp': String(at),
      'webhook-signature': signWebhook(PARTNER_SECRET, id, at, payload),
    });
    const now = Math.floor(Date.now() / 1000);
    const post = (headers: Record<string, string>) =>
      fetch(`${herald.url}/partner`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body,
      });
    const good = await post(signed('msg_good', now));
    assert.equal(good.status, 202, await good.text());
    assert.ok(await herald.engine.store.events.findById('msg_good'));

    const secrets = [PARTNER_SECRET.slice(6)];
    await refused(await post(signed('msg_old', now - 301)), /more than 5 minutes in the past/, secrets);
    await refused(await post(signed('msg_new', now + 301)), /more than 5 minutes in the future/, secrets);
    await refused(
      await post(signed('msg_other_body', now, '{"order":"o-2"}')),
      /webhook-signature does not match/,
      secrets,
    );
    const forged = { ...signed('msg_forged', now), 'webhook-signature': 'v1,Z2Fyb2JhZ2U=' };
    await refused(await post(forged), /webhook-signature does not match/, secrets);
    const { 'webhook-timestamp': _dropped, ...unstamped } = signed('msg_unstamped', now);
    await refused(await post(unstamped), /missing header webhook-timestamp/, secrets);
    await refused(await post(bearer(INGEST_TOKEN)), /missing header webhook-id, webhook-timestamp/);
    assert.equal(await count(), before + 1, 'only the good request was stored');
  });

  it('a debezium source with an hmac auth block verifies the raw body', async () => {
    const signature = createHmac('sha256', 'cdc-secret').update(DEBEZIUM).digest('hex');
    const ok = await herald.post('/debezium-signed', DEBEZIUM, { 'x-signature': signature });
    assert.equal(ok.status, 202, await ok.text());
    await refused(
      await herald.post('/debezium-signed', DEBEZIUM.replace('widget', 'gadget'), {
        'x-signature': signature,
      }),
      /x-signature does not match/,
    );
  });
});

describe('Slack endpoints with an ingest token', () => {
  const SIGNING_SECRET = 'slack-signing-secret-99';
  let slack: SlackServer;
  let herald: TestHerald;
  before(async () => {
    slack = await startSlackServer();
    slack.addUser({ id: 'UBOB', name: 'bob', email: 'bob@example.com' });
    herald = await startTestHerald(
      `slack: { token: "\${SLACK_BOT_TOKEN}", signingSecret: "\${SLACK_SIGNING_SECRET}" }\n`,
      {
        env: {
          HERALD_INGEST_TOKEN: INGEST_TOKEN,
          SLACK_BOT_TOKEN: slack.token,
          SLACK_SIGNING_SECRET: SIGNING_SECRET,
          SLACK_API_URL: slack.url,
        },
      },
    );
  });
  after(async () => {
    await herald.close();
    await slack.close();
  });

  it('keep their own signature check and need no ingest token', async () => {
    const body = form(
      slashCommandBody({
        command: '/herald',
        text: 'help',
        user_id: 'UBOB',
        response_url: slack.createResponseUrl(),
      }),
    );
    const type = 'application/x-www-form-urlencoded';
    const signed = await postSignedToSlackApp(herald.url, '/slack/commands', SIGNING_SECRET, body, type);
    assert.equal(signed.status, 200);
    const unsigned = await postSignedToSlackApp(herald.url, '/slack/commands', SIGNING_SECRET, body, type, {
      signature: 'v0=00',
    });
    assert.notEqual(unsigned.status, 200);
  });
});
