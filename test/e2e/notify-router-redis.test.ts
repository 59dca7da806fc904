import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { eventually, repoRoot, startTestHerald } from '../support/herald.js';

const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('notify-router recipe, Redis variant', () => {
  it('an XADD of {topic, description} reaches the sales channel; pricing the email channel', async () => {
    const stream = `herald-test:notify:${randomBytes(5).toString('hex')}`;
    const redis = new Redis(REDIS);
    // Added before Herald starts: `startAt: oldest` reads it when the group is created.
    await redis.xadd(stream, '*', 'topic', 'sales', 'description', 'Customer asks for a quote');
    const herald = await startTestHerald(
      readFileSync(`${repoRoot}examples/notify-router/herald.redis.yaml`, 'utf8'),
      {
        env: { REDIS_URL: REDIS, NOTIFY_STREAM: stream },
      },
    );
    try {
      await redis.xadd(stream, '*', 'topic', 'pricing', 'description', 'Is there an education discount?');
      const messages = await eventually(async () => {
        const inbox = (await (await herald.get('/api/inbox')).json()) as {
          messages: { channel: string; to: string; message: { text: string } }[];
        };
        return inbox.messages.length >= 2 ? inbox.messages : undefined;
      }, 10_000);
      const sales = messages.find((m) => m.channel === 'slack-sales')!;
      assert.equal(sales.message.text, 'New sales request: Customer asks for a quote');
      const pricing = messages.find((m) => m.channel === 'email-pricing')!;
      assert.equal(pricing.message.text, 'Is there an education discount?');
      await eventually(async () => ((await redis.call('XPENDING', [stream, 'herald'])) as [number])[0] === 0);
    } finally {
      await herald.close();
      await redis.del(stream);
      redis.disconnect();
    }
  });
});
