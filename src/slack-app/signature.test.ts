import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isValidSlackSignature } from './signature.js';

interface Vector {
  id: string;
  signing_secret: string;
  timestamp: string;
  body: string;
  expected_signature?: string;
  presented_signature?: string;
  now_for_valid_check: string;
  expected_valid: boolean | string;
}

const file = new URL('../../../shared/conformance/slack-signing/vectors.json', import.meta.url);
const { vectors } = JSON.parse(readFileSync(file, 'utf8')) as { vectors: Vector[] };
const bodyOf = (v: Vector) =>
  v.body.startsWith('(same as ') ? vectors.find((o) => v.body.includes(o.id))!.body : v.body;

describe('Slack request signatures (conformance vectors)', () => {
  for (const v of vectors) {
    it(`${v.id}: ${String(v.expected_valid)}`, () => {
      const valid = isValidSlackSignature(
        v.signing_secret,
        bodyOf(v),
        { signature: v.presented_signature ?? v.expected_signature, timestamp: v.timestamp },
        Number(v.now_for_valid_check) * 1000,
      );
      assert.equal(valid, v.expected_valid === true || v.expected_valid === 'True');
    });
  }

  it('property: a body signed with the secret verifies within 5 minutes, and any change breaks it', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.string(),
        fc.integer({ min: 1_500_000_000, max: 2_000_000_000 }),
        fc.integer({ min: -300, max: 300 }),
        fc.string({ minLength: 1 }),
        (secret, body, ts, skew, extra) => {
          const sig = `v0=${createHmac('sha256', secret).update(`v0:${ts}:${body}`).digest('hex')}`;
          const now = (ts + skew) * 1000;
          assert.equal(isValidSlackSignature(secret, body, { signature: sig, timestamp: ts }, now), true);
          assert.equal(
            isValidSlackSignature(secret, body + extra, { signature: sig, timestamp: ts }, now),
            false,
          );
          assert.equal(
            isValidSlackSignature(`${secret}x`, body, { signature: sig, timestamp: ts }, now),
            false,
          );
          assert.equal(
            isValidSlackSignature(secret, body, { signature: sig, timestamp: ts }, (ts + 301) * 1000),
            false,
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a timestamp more than 5 minutes in the future is refused, like one 5 minutes old', () => {
    const now = 1_700_000_000;
    const secret = 'future-secret';
    const signed = (ts: number) => `v0=${createHmac('sha256', secret).update(`v0:${ts}:body`).digest('hex')}`;
    const valid = (ts: number) =>
      isValidSlackSignature(secret, 'body', { signature: signed(ts), timestamp: ts }, now * 1000);
    assert.equal(valid(now + 1_000_000), false);
    assert.equal(valid(now + 301), false);
    assert.equal(valid(now + 300), true);
    assert.equal(valid(now - 300), true);
    assert.equal(valid(now - 301), false);
  });

  it('missing headers are invalid, not an exception', () => {
    assert.equal(isValidSlackSignature('s', 'b', { signature: undefined, timestamp: undefined }), false);
    assert.equal(isValidSlackSignature('s', 'b', { signature: 'v0=00', timestamp: 'soon' }), false);
  });
});
