import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Histogram, Registry } from 'prom-client';
import { OneLabelHistogram } from './histogram.js';

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Values that land in every bucket, on the bounds themselves, and above the last. */
const value = fc.oneof(fc.constantFrom(0, ...BUCKETS, 31, 1e6), fc.double({ min: 0, max: 60, noNaN: true }));
const observation = fc.record({
  channel: fc.constantFrom('hook', 'box', 'a "quoted" one', 'back\\slash', 'new\nline'),
  value,
});

describe('OneLabelHistogram', () => {
  it("is written out exactly as prom-client's Histogram given the same observations", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(observation, { maxLength: 200 }), async (observations) => {
        const theirs = new Registry();
        const ours = new Registry();
        const reference = new Histogram({
          name: 'herald_test_seconds',
          help: 'A test.',
          labelNames: ['channel'],
          buckets: BUCKETS,
          registers: [theirs],
        });
        const histogram = new OneLabelHistogram({
          name: 'herald_test_seconds',
          help: 'A test.',
          labelName: 'channel',
          buckets: BUCKETS,
          registry: ours,
        });
        for (const { channel, value } of observations) {
          reference.observe({ channel }, value);
          histogram.observe(channel, value);
        }
        assert.equal(await ours.metrics(), await theirs.metrics());
        assert.deepEqual(await ours.getMetricsAsJSON(), await theirs.getMetricsAsJSON());
      }),
      { numRuns: 300 },
    );
  });

  it('leaves out what cannot be counted, and reset empties it', async () => {
    const registry = new Registry();
    const histogram = new OneLabelHistogram({
      name: 'herald_test_seconds',
      help: 'A test.',
      labelName: 'channel',
      buckets: BUCKETS,
      registry,
    });
    histogram.observe('hook', Number.NaN);
    histogram.observe('hook', Number.POSITIVE_INFINITY);
    histogram.observe('hook', 0.002);
    const text = await registry.metrics();
    assert.match(text, /herald_test_seconds_count\{channel="hook"\} 1\n/);
    assert.match(text, /herald_test_seconds_sum\{channel="hook"\} 0.002\n/);
    histogram.reset();
    assert.doesNotMatch(await registry.metrics(), /channel="hook"/);
  });
});
