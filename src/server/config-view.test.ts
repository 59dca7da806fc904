import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { redactUrl } from '../redact.js';
import { REDACTED, redactConfig } from './config-view.js';

describe('config redaction', () => {
  it('hides values under secret keys, values from the environment and URL credentials', () => {
    const out = redactConfig({
      channels: {
        slack: { kind: 'slack', token: 'xoxb-123', fallback: { kind: 'inbox' } },
        mail: { kind: 'email', url: 'smtp://bob:hunter2@mail.example.com:587?pool=true', from: 'a@b.c' },
        hook: {
          kind: 'webhook',
          url: 'https://hooks.example.com/x?token=abc&format=json',
          secret: '${WEBHOOK_SECRET}',
          headers: { Authorization: 'Bearer zzz', 'X-Trace': 'on' },
        },
        db: { kind: 'x', url: '${DATABASE_URL:-postgres://u:p@h/db}' },
      },
      server: { port: 8080, adminToken: 12345 },
    });
    assert.deepEqual(out, {
      channels: {
        slack: { kind: 'slack', token: REDACTED, fallback: { kind: 'inbox' } },
        mail: { kind: 'email', url: `smtp://${REDACTED}@mail.example.com:587?pool=true`, from: 'a@b.c' },
        hook: {
          kind: 'webhook',
          url: `https://hooks.example.com/x?token=${REDACTED}&format=json`,
          secret: REDACTED,
          headers: { Authorization: REDACTED, 'X-Trace': 'on' },
        },
        db: { kind: 'x', url: REDACTED },
      },
      server: { port: 8080, adminToken: REDACTED },
    });
  });

  it('keeps what is not secret exactly as written', () => {
    assert.equal(redactUrl('https://example.com/hook'), 'https://example.com/hook');
    assert.equal(redactUrl('not a url'), 'not a url');
    assert.deepEqual(
      redactConfig({ text: 'New sales request: {{ event.data.description }}', literal: '$${HOME}' }),
      {
        text: 'New sales request: {{ event.data.description }}',
        literal: '$${HOME}',
      },
    );
  });

  it('never lets a secret through, wherever it sits in the tree', () => {
    const secret = fc.stringMatching(/^[A-Za-z0-9]{12,24}$/).map((s) => `S3CR3T${s}`);
    const plainKey = fc.constantFrom('kind', 'to', 'text', 'name', 'channel', 'host', 'from');
    const secretKey = fc.constantFrom(
      'token',
      'secret',
      'password',
      'apiKey',
      'signingSecret',
      'Authorization',
    );
    // A secret reaches the config as a value under a secret key, inside a URL, or as a `${VAR}` default.
    const hidden = fc.oneof(
      fc.tuple(secretKey, secret).map(([k, s]) => ({ [k]: s })),
      fc.tuple(plainKey, secret).map(([k, s]) => ({ [k]: `postgres://user:${s}@db.example.com/herald` })),
      fc.tuple(plainKey, secret).map(([k, s]) => ({ [k]: `https://h.example.com/p?token=${s}` })),
      fc.tuple(plainKey, secret).map(([k, s]) => ({ [k]: `\${SOME_VAR:-${s}}` })),
    );
    const tree = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        hidden,
        fc.dictionary(plainKey, tie('node'), { maxKeys: 3 }),
        fc.array(tie('node'), { maxLength: 3 }),
        fc.stringMatching(/^[a-z ]{0,8}$/),
        fc.integer(),
      ),
    })).node;
    fc.assert(
      fc.property(tree, (config) => {
        const out = JSON.stringify(redactConfig(config));
        assert.ok(!/S3CR3T/.test(out), `leaked: ${out}`);
      }),
      { numRuns: 500 },
    );
  });
});
