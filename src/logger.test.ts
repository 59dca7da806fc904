import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { it } from 'node:test';
import { createLogger } from './logger.js';

it('structured JSON logs redact secrets', async () => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _e, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const logger = createLogger({ level: 'info', destination });
  logger.info(
    {
      eventId: 'e1',
      trigger: 'sales',
      deliveryId: 7,
      token: 'xoxb-secret-token',
      headers: { authorization: 'Bearer admin-secret', 'x-slack-signature': 'v0=abc' },
      channel: { secret: 'whsec_secret', password: 'hunter2', signingSecret: 'sig-secret' },
    },
    'delivered',
  );
  const text = lines.join('');
  const line = JSON.parse(lines[0]!);
  assert.equal(line.level, 30);
  assert.equal(line.msg, 'delivered');
  assert.equal(line.eventId, 'e1');
  assert.equal(line.deliveryId, 7);
  for (const secret of [
    'xoxb-secret-token',
    'admin-secret',
    'whsec_secret',
    'hunter2',
    'sig-secret',
    'v0=abc',
  ]) {
    assert.ok(!text.includes(secret), `${secret} reached the log`);
  }
  assert.equal(line.headers.authorization, '[redacted]');
});
