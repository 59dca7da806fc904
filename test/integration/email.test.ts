import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { type SmtpSink, startSmtpSink } from '../support/smtp/index.js';

describe('email channel over real SMTP', () => {
  let smtp: SmtpSink;
  let herald: TestHerald;
  before(async () => {
    smtp = await startSmtpSink({ auth: true });
    herald = await startTestHerald(
      `
sources:
  bot:
    kind: http
    routes:
      - path: /notify
        event: { type: notification.created, subject: "{{ body.topic }}" }
channels:
  mail: { kind: email, url: "\${SMTP_URL}", from: "Herald <herald@example.com>" }
triggers:
  pricing:
    filter: { exact: { subject: pricing } }
    actions:
      - channel: mail
        to: pricing@example.com
        subject: "Pricing request"
        text: "{{ event.data.description }}"
        html: "<p>{{ event.data.description | escape }}</p>"
    delivery: { maxAttempts: 3, backoff: { initialMs: 100, jitter: 0 } }
`,
      { env: { SMTP_URL: smtp.url } },
    );
  });
  after(async () => {
    await herald.close();
    await smtp.close();
  });

  const deliveryOf = async (id: string) => {
    const body = (await (await herald.get(`/api/events/${id}`)).json()) as {
      deliveries: { status: string; attempts: number; lastError: string | null }[];
    };
    return body.deliveries[0];
  };

  it('sends the rendered message; a 451 is retried, then delivered with the same Message-ID', async () => {
    smtp.rejectNext(451, 'Try again later');
    const res = await herald.post('/notify', {
      topic: 'pricing',
      description: 'Volume discount for <ACME>?',
    });
    const { id } = (await res.json()) as { id: string };
    const [mail] = await smtp.waitForMessages(1);
    assert.ok(mail);
    assert.deepEqual(mail.to, ['pricing@example.com']);
    assert.equal(mail.from, 'herald@example.com');
    assert.equal(mail.user, 'herald');
    assert.equal(mail.subject, 'Pricing request');
    assert.match(mail.headers['message-id'] ?? '', /^<msg_[A-Za-z0-9_-]+@127\.0\.0\.1>$/);
    assert.match(mail.headers['x-herald-idempotency-key'] ?? '', /^msg_/);
    assert.match(mail.raw, /Volume discount for <ACME>\?/);
    assert.match(mail.raw, /&lt;ACME&gt;/);
    const d = await eventually(async () => {
      const x = await deliveryOf(id);
      return x?.status === 'delivered' ? x : undefined;
    });
    assert.equal(d.attempts, 2);
  });

  it('a 550 goes to the DLQ with the server’s reply, and no password in it', async () => {
    smtp.rejectNext(550, 'Mailbox unavailable');
    const res = await herald.post('/notify', { topic: 'pricing', description: 'x' });
    const { id } = (await res.json()) as { id: string };
    const d = await eventually(async () => {
      const x = await deliveryOf(id);
      return x?.status === 'dead' ? x : undefined;
    });
    assert.equal(d.attempts, 1);
    assert.match(d.lastError ?? '', /SMTP 550.*Mailbox unavailable/);
    assert.doesNotMatch(d.lastError ?? '', /secret-pass/);
  });
});

describe('the notify-router demo config', () => {
  it('emails pricing requests when SMTP_URL is set, and falls back to the inbox (saying so) when not', async () => {
    const { readFileSync } = await import('node:fs');
    const { DEMO_CONFIG } = await import('../../src/app.js');
    const demo = readFileSync(DEMO_CONFIG, 'utf8');
    const smtp = await startSmtpSink();
    const real = await startTestHerald(demo, { env: { SMTP_URL: smtp.url } });
    try {
      assert.equal(
        (await real.post('/notify', { topic: 'pricing', description: 'Enterprise price list?' })).status,
        202,
      );
      const [mail] = await smtp.waitForMessages(1);
      assert.deepEqual(mail!.to, ['pricing@example.com']);
      assert.match(mail!.raw, /Enterprise price list\?/);
      assert.ok(!real.logs.some((l) => /email-pricing: .*go to the inbox/.test(String(l.msg))));
    } finally {
      await real.close();
      await smtp.close();
    }
    const fallback = await startTestHerald(demo);
    try {
      assert.ok(
        fallback.logs.some((l) =>
          /email-pricing: SMTP_URL not set; its messages go to the inbox instead/.test(String(l.msg)),
        ),
      );
      await fallback.post('/notify', { topic: 'pricing', description: 'Where is the price list?' });
      const message = await eventually(async () => {
        const inbox = (await (await fallback.get('/api/inbox')).json()) as {
          messages: { channel: string; message: { text: string; subject: string } }[];
        };
        return inbox.messages[0];
      });
      assert.equal(message.channel, 'email-pricing');
      assert.equal(message.message.subject, 'Pricing request');
      assert.equal(message.message.text, 'Where is the price list?');
    } finally {
      await fallback.close();
    }
  });
});
