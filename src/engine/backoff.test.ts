import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { backoffDelay } from './backoff.js';
import { idempotencyKey } from './idempotency.js';

const policy = { kind: 'exponential' as const, initialMs: 1000, maxMs: 10_000, multiplier: 2, jitter: 0.5 };

describe('retry policy', () => {
  it('grows exponentially up to the cap', () => {
    const noJitter = { ...policy, jitter: 0 };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((a) => backoffDelay(noJitter, a)),
      [1000, 2000, 4000, 8000, 10_000, 10_000],
    );
  });

  it('fixed backoff waits the same each time', () => {
    assert.deepEqual(
      [1, 2, 5].map((a) => backoffDelay({ ...policy, kind: 'fixed', jitter: 0 }, a)),
      [1000, 1000, 1000],
    );
  });

  it('jitter takes away at most its fraction', () => {
    assert.equal(
      backoffDelay(policy, 3, () => 0),
      4000,
    );
    assert.equal(
      backoffDelay(policy, 3, () => 0.999999),
      2000,
    );
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(policy, 2);
      assert.ok(d >= 1000 && d <= 2000, String(d));
    }
  });
});

describe('idempotency keys', () => {
  it('are stable for the same inputs and differ when any part differs', () => {
    const k = idempotencyKey('t', 0, '#sales', 'src', 'id-1');
    assert.equal(k, idempotencyKey('t', 0, '#sales', 'src', 'id-1'));
    assert.match(k, /^msg_[A-Za-z0-9_-]{32}$/);
    const others = [
      idempotencyKey('u', 0, '#sales', 'src', 'id-1'),
      idempotencyKey('t', 1, '#sales', 'src', 'id-1'),
      idempotencyKey('t', 0, '#pricing', 'src', 'id-1'),
      idempotencyKey('t', 0, null, 'src', 'id-1'),
      idempotencyKey('t', 0, '#sales', 'src2', 'id-1'),
      idempotencyKey('t', 0, '#sales', 'src', 'id-2'),
      // Parts are separated, so shifting characters between them changes the key.
      idempotencyKey('t', 0, '#sales', 'srci', 'd-1'),
    ];
    assert.equal(new Set([k, ...others]).size, others.length + 1);
  });

  it('are the keys earlier versions stored: sha256 over the parts fed one by one, NUL between them', () => {
    // Stores and receivers hold keys made this way; a different key would send a repeat.
    const streamed = (t: string, a: number, r: string | null, s: string, id: string) =>
      `msg_${createHash('sha256')
        .update(t)
        .update('\u0000')
        .update(String(a))
        .update('\u0000')
        .update(r ?? '')
        .update('\u0000')
        .update(s)
        .update('\u0000')
        .update(id)
        .digest('base64url')
        .slice(0, 32)}`;
    assert.equal(idempotencyKey('t', 0, '#sales', 'src', 'id-1'), streamed('t', 0, '#sales', 'src', 'id-1'));
    // Any UTF-16 code unit, lone surrogates included: they must encode as they did part by part.
    const anyText = fc.string({
      unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
    });
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme' }),
        fc.nat(50),
        fc.option(anyText, { nil: null }),
        fc.string({ unit: 'binary' }),
        anyText,
        (t, a, r, s, id) => idempotencyKey(t, a, r, s, id) === streamed(t, a, r, s, id),
      ),
      { numRuns: 2000 },
    );
  });
});
