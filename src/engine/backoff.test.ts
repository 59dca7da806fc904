import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
});
