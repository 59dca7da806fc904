import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { DEMO_CONFIG } from '../../src/app.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { type SlackServer, startSlackServer } from '../support/slack/index.js';
import { type SmtpSink, startSmtpSink } from '../support/smtp/index.js';

// The notify-router recipe end to end: the demo config as shipped, plus a third topic added as
// one trigger block, against a Slack-compatible server and a real SMTP server on loopback.
const THIRD_TOPIC = `
  legal-to-slack:
    filter: { exact: { type: notification.created, subject: legal } }
    actions:
      - channel: slack-sales
        to: "#legal"
        text: "Legal question: {{ event.data.description }}"
`;

describe('notify-router recipe', () => {
  let slack: SlackServer;
  let smtp: SmtpSink;
  let herald: TestHerald;
  before(async () => {
    slack = await startSlackServer();
    slack.addChannel('sales');
    slack.addChannel('legal');
    smtp = await startSmtpSink();
    const config = `${readFileSync(DEMO_CONFIG, 'utf8').trimEnd()}\n${THIRD_TOPIC}`;
    herald = await startTestHerald(config, {
      env: { SLACK_BOT_TOKEN: slack.token, SLACK_API_URL: slack.url, SMTP_URL: smtp.url },
    });
  });
  after(async () => {
    await herald.close();
    await smtp.close();
    await slack.close();
  });

  const notify = (topic: string, description: string) => herald.post('/notify', { topic, description });

  it('sales reaches #sales in Slack, pricing arrives by email, and a third topic is one config block', async () => {
    assert.equal((await notify('sales', 'Customer asks for a quote')).status, 202);
    assert.equal((await notify('pricing', 'Is there an education discount?')).status, 202);
    assert.equal((await notify('legal', 'Can we sign their NDA?')).status, 202);
    assert.equal((await notify('unknown', 'goes nowhere')).status, 202);

    const sales = await slack.waitForCall('chat.postMessage', (c) => c.args.channel === '#sales');
    assert.equal(sales.args.text, 'New sales request: Customer asks for a quote');
    const legal = await slack.waitForCall('chat.postMessage', (c) => c.args.channel === '#legal');
    assert.equal(legal.args.text, 'Legal question: Can we sign their NDA?');
    const [mail] = await smtp.waitForMessages(1);
    assert.deepEqual(mail!.to, ['pricing@example.com']);
    assert.equal(mail!.subject, 'Pricing request');
    assert.match(mail!.raw, /Is there an education discount\?/);

    await eventually(async () => {
      const status = (await (await herald.get('/api/status')).json()) as {
        deliveries: { pending: number; delivered: number };
      };
      return status.deliveries.pending === 0 && status.deliveries.delivered === 3;
    });
    assert.equal(slack.callsTo('chat.postMessage').length, 2);
    assert.equal(smtp.messages.length, 1);
    const inbox = (await (await herald.get('/api/inbox')).json()) as { messages: unknown[] };
    assert.equal(inbox.messages.length, 0, 'with credentials set, nothing falls back to the inbox');
  });

  it('the Slack-compatible server keeps what is posted to a response_url', async () => {
    const url = slack.createResponseUrl();
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'done' }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(slack.responses.get(url), [{ text: 'done' }]);
    assert.equal((await fetch(`${url}x`, { method: 'POST', body: '{}' })).status, 404);
  });
});
