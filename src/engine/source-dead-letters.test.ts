import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { REDACTED } from '../redact.js';
import { DEAD_LETTER_PAYLOAD_BYTES, sourceDeadLetterOf } from './source-dead-letters.js';

const payloadOf = (letter: ReturnType<typeof sourceDeadLetterOf>) =>
  Buffer.from(letter.payload, letter.payloadEncoding === 'utf8' ? 'utf8' : 'base64');

describe('source dead letters: what is kept of a message', () => {
  it('keeps any payload exactly, as text when it is NUL-free UTF-8 and as base64 otherwise', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.string({ maxLength: 100 }), (bytes, text) => {
        for (const payload of [bytes, text]) {
          const letter = sourceDeadLetterOf('s', { position: 'p', payload }, 'r');
          const raw = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload);
          assert.deepEqual(payloadOf(letter), raw);
          assert.equal(letter.payloadBytes, raw.length);
          assert.equal(letter.truncated, false);
          if (letter.payloadEncoding === 'utf8') assert.ok(!letter.payload.includes('\u0000'));
        }
      }),
    );
    assert.equal(
      sourceDeadLetterOf('s', { position: 'p', payload: 'a\u0000b' }, 'r').payloadEncoding,
      'base64',
    );
  });

  it('bounds what a hostile message can make it keep', () => {
    const huge = Buffer.alloc(DEAD_LETTER_PAYLOAD_BYTES + 10, 0x61);
    const headers = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`h${i}`, 'v'.repeat(10_000)]));
    const letter = sourceDeadLetterOf(
      's',
      { position: 'p'.repeat(100_000), subject: `x\u0000${'s'.repeat(100_000)}`, headers, payload: huge },
      'r'.repeat(100_000),
    );
    assert.equal(letter.truncated, true);
    assert.equal(letter.payloadBytes, DEAD_LETTER_PAYLOAD_BYTES + 10);
    assert.equal(payloadOf(letter).length, DEAD_LETTER_PAYLOAD_BYTES);
    assert.ok(letter.position.length <= 1025);
    assert.ok(letter.subject!.length <= 1025 && !letter.subject!.includes('\u0000'));
    assert.ok(letter.reason.length <= 4097);
    assert.equal(Object.keys(letter.headers).length, 64);
    assert.ok(Object.values(letter.headers).every((v) => v.length <= 1025));
  });

  it('keeps no credential from headers or from URLs in the reason', () => {
    const letter = sourceDeadLetterOf(
      's',
      {
        position: 'p',
        headers: { Authorization: 'Bearer abc', 'X-Api-Key': 'k', 'x-trace': 't' },
        payload: '{}',
      },
      'cannot reach https://user:pw@example.com/hook?token=t',
    );
    assert.deepEqual(letter.headers, { Authorization: REDACTED, 'X-Api-Key': REDACTED, 'x-trace': 't' });
    assert.doesNotMatch(letter.reason, /pw@|token=t/);
  });
});
