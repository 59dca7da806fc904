import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type RunningHerald, startHerald } from '../../src/app.js';
import type { DeadLetterReplay, EventDetail } from '../../src/server/api-types.js';
import { captureLogger, eventually, tempDir } from '../support/herald.js';
import { type SlackServer, startSlackServer } from '../support/slack/index.js';

// notify-router's own line: the Slack channel comes from the environment, read when the config loads.
const CONFIG = `
sources:
  bot:
    kind: http
    routes:
      - path: /notify
        event: { type: notification.created, subject: "{{ body.topic }}" }
channels:
  slack: { kind: slack, token: "\${SLACK_BOT_TOKEN}" }
triggers:
  sales-to-slack:
    filter: { exact: { type: notification.created, subject: sales } }
    actions:
      - channel: slack
        to: \${SALES_SLACK_CHANNEL}
        text: "New sales request: {{ event.data.description }}"
`;

describe('DLQ replay renders the delivery again from the current config', () => {
  const dir = tempDir('herald-replay-');
  let slack: SlackServer;
  let herald: RunningHerald | null = null;
  before(async () => {
    slack = await startSlackServer();
    slack.addChannel('sales');
    writeFileSync(join(dir.path, 'herald.yaml'), CONFIG);
  });
  after(async () => {
    await herald?.stop();
    await slack.close();
    dir.remove();
  });

  // Same data directory each time: a restart with another environment is a config change.
  const start = async (channel: string) => {
    await herald?.stop();
    herald = await startHerald({
      configFile: join(dir.path, 'herald.yaml'),
      port: 0,
      host: '127.0.0.1',
      dataDir: dir.path,
      logger: captureLogger().logger,
      env: { SLACK_BOT_TOKEN: slack.token, SLACK_API_URL: slack.url, SALES_SLACK_CHANNEL: channel },
    });
    return herald;
  };
  const api = (path: string, body?: unknown) =>
    fetch(`${herald!.url}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const deadDelivery = async (eventId: string) =>
    eventually(async () => {
      const detail = (await (await api(`/api/events/${eventId}`)).json()) as EventDetail;
      return detail.deliveries.find((d) => d.status === 'dead');
    }, 10_000);

  it('re-renders the recipient after the fix, and --as-recorded retries the recorded one', async () => {
    await start('#salse');
    for (const id of ['typo-1', 'typo-2']) {
      const res = await fetch(`${herald!.url}/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents+json' },
        body: JSON.stringify({
          specversion: '1.0',
          id,
          source: 'test/replay',
          type: 'notification.created',
          subject: 'sales',
          data: { description: id },
        }),
      });
      assert.equal(res.status, 202);
    }
    const [first, second] = [await deadDelivery('typo-1'), await deadDelivery('typo-2')].map((d) => d!);
    assert.equal(first!.recipient, '#salse');
    assert.match(first!.lastError ?? '', /channel_not_found/);

    await start('#sales');
    const res = await api(`/api/dlq/${first!.id}/replay`, {});
    assert.equal(res.status, 200, await res.clone().text());
    const replay = (await res.json()) as DeadLetterReplay;
    assert.equal(replay.mode, 're-rendered');
    assert.deepEqual(replay.replayed, [first!.id]);
    assert.deepEqual(replay.from, { channel: 'slack', recipient: '#salse' });
    assert.deepEqual(replay.to, [{ channel: 'slack', recipient: '#sales' }]);
    assert.match(replay.message, /#salse on slack → #sales on slack/);
    const posted = await slack.waitForCall(
      'chat.postMessage',
      (c) => c.args.text === 'New sales request: typo-1',
    );
    assert.ok(posted);
    await eventually(async () => {
      const d = (await (await api(`/api/deliveries/${first!.id}`)).json()) as {
        status: string;
        recipient: string;
      };
      return d.status === 'delivered' && d.recipient === '#sales';
    });

    const asRecorded = (await (
      await api(`/api/dlq/${second!.id}/replay`, { asRecorded: true })
    ).json()) as DeadLetterReplay;
    assert.equal(asRecorded.mode, 'as-recorded');
    assert.match(asRecorded.message, /as recorded, to #salse on slack/);
    await eventually(async () => {
      const d = (await (await api(`/api/deliveries/${second!.id}`)).json()) as {
        status: string;
        attempts: number;
      };
      return d.status === 'dead' && d.attempts === 1 && d;
    }, 10_000);
    assert.equal(
      slack
        .callsTo('chat.postMessage')
        .filter((c) => c.args.text === 'New sales request: typo-2' && c.args.channel !== '#salse').length,
      0,
      'as recorded, it went to the misspelt channel again',
    );
  });

  it('a delivery whose trigger is gone cannot be re-rendered: a 409 that suggests --as-recorded', async () => {
    const dead = await deadDelivery('typo-2');
    writeFileSync(join(dir.path, 'herald.yaml'), CONFIG.replace('sales-to-slack:', 'sales-renamed:'));
    await start('#sales');
    const res = await api(`/api/dlq/${dead!.id}/replay`, {});
    assert.equal(res.status, 409);
    const body = (await res.json()) as { error: string; code: string };
    assert.equal(body.code, 'REPLAY_CONFLICT');
    assert.match(body.error, /trigger "sales-to-slack" is not in the current config/);
    assert.match(body.error, /--as-recorded/);
    const unknownKey = await api(`/api/dlq/${dead!.id}/replay`, { asRecorded: true, extra: 1 });
    assert.equal(unknownKey.status, 400);
    assert.match(((await unknownKey.json()) as { error: string }).error, /unknown key extra/);
  });
});
