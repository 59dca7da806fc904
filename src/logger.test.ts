import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { it } from 'node:test';
import { chooseLogFormat, createLogger, isPrettyLogger } from './logger.js';

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

it('log format: HERALD_LOG_FORMAT decides, else readable on a terminal and JSON elsewhere', () => {
  assert.equal(chooseLogFormat({}, true), 'pretty');
  assert.equal(chooseLogFormat({}, false), 'json');
  assert.equal(chooseLogFormat({ HERALD_LOG_FORMAT: 'json' }, true), 'json');
  assert.equal(chooseLogFormat({ HERALD_LOG_FORMAT: 'pretty' }, false), 'pretty');
  assert.equal(chooseLogFormat({ HERALD_LOG_FORMAT: ' Pretty ' }, false), 'pretty');
  assert.equal(chooseLogFormat({ HERALD_LOG_FORMAT: '' }, false), 'json');
  assert.throws(
    () => chooseLogFormat({ HERALD_LOG_FORMAT: 'yaml' }, true),
    /HERALD_LOG_FORMAT must be json or pretty, not "yaml"/,
  );
});

it('readable logs carry the message and fields on their own lines, secrets redacted', () => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _e, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const logger = createLogger({ level: 'info', destination, format: 'pretty' });
  assert.ok(isPrettyLogger(logger));
  logger.warn({ channel: 'slack-sales', token: 'xoxb-secret-token' }, 'channel falls back');
  const text = lines.join('');
  assert.match(text, /^\[\d\d:\d\d:\d\d\] WARN: channel falls back\n/);
  assert.match(text, /\n {4}channel: "slack-sales"\n/);
  assert.match(text, /token: "\[redacted\]"/);
  assert.doesNotMatch(text, /xoxb-secret-token|\{"level"/);
  assert.equal(isPrettyLogger(createLogger({ destination })), false, 'a destination alone means JSON');
});
