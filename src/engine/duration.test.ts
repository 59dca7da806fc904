import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatDuration, MAX_DURATION_MS, parseDuration } from './duration.js';

test('the documented durations parse to their milliseconds', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('24h'), 86_400_000);
  assert.equal(parseDuration('7d'), 604_800_000);
});

test('text that is not a duration is refused with a message naming it', () => {
  for (const bad of ['', '5', 'm', '5 minutes', '1.5h', '-3s', '5M', '10w', '0s', '366d']) {
    const result = parseDuration(bad);
    assert.ok(result instanceof Error, `"${bad}" should be refused`);
  }
  assert.match(String(parseDuration('5 minutes')), /"5 minutes" is not a duration/);
});

test('every duration formats to text that parses back to it', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: MAX_DURATION_MS }), (ms) => {
      assert.equal(parseDuration(formatDuration(ms)), ms);
    }),
  );
});

test('a number with a unit parses to number × unit, or is refused as out of range', () => {
  const units = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  fc.assert(
    fc.property(fc.nat({ max: 10_000_000 }), fc.constantFrom(...Object.keys(units)), (n, unit) => {
      const result = parseDuration(`${n}${unit}`);
      const ms = n * units[unit as keyof typeof units];
      if (ms === 0 || ms > MAX_DURATION_MS) assert.ok(result instanceof Error);
      else assert.equal(result, ms);
    }),
  );
});

test('arbitrary text never throws: it parses or yields an error', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 30 }), (text) => {
      const result = parseDuration(text);
      assert.ok(result instanceof Error || (Number.isInteger(result) && result > 0));
    }),
  );
});
