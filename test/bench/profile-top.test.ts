import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type CpuProfile, formatSummary, summarizeProfile } from '../../bench/profile-top.js';

const frame = (functionName: string, url = '', lineNumber = -1) => ({
  functionName,
  url,
  lineNumber,
  columnNumber: 0,
});

// Two call paths into the same function (nodes 3 and 4), an idle bucket and GC.
const nodes = [
  { id: 1, callFrame: frame('(root)') },
  { id: 2, callFrame: frame('(idle)') },
  { id: 3, callFrame: frame('claim', 'file:///repo/dist/store/embedded.js', 41) },
  { id: 4, callFrame: frame('claim', 'file:///repo/dist/store/embedded.js', 41) },
  { id: 5, callFrame: frame('(garbage collector)') },
];

describe('profile-top', () => {
  it('adds up self time per function across call paths, apart from idle, per delivered event', () => {
    // Samples at 1000, 1100, 1400, 1500, 1600, 2000 µs; each covers the time to the next one.
    const profile: CpuProfile = {
      nodes,
      startTime: 900,
      endTime: 2100,
      samples: [3, 4, 5, 2, 3, 4],
      timeDeltas: [100, 100, 300, 100, 100, 400],
    };
    const summary = summarizeProfile(profile, { events: 10, root: '/repo' });
    assert.equal(summary.windowUs, 1100);
    assert.equal(summary.busyUs, 1000);
    assert.deepEqual(
      summary.top.map((e) => [e.name, e.selfUs, e.usPerEvent]),
      [
        ['claim dist/store/embedded.js:42', 900, 90],
        ['(garbage collector)', 100, 10],
      ],
    );
    assert.equal(summary.top[0]!.busyPercent, 90);
    assert.match(
      formatSummary(summary, 10),
      /100\.0 µs busy per event[\s\S]*claim dist\/store\/embedded\.js:42/,
    );
  });

  it('keeps only the samples taken inside the window', () => {
    const profile: CpuProfile = {
      nodes,
      startTime: 0,
      endTime: 400,
      samples: [5, 3, 3, 5],
      timeDeltas: [0, 100, 100, 100],
    };
    // The samples at 100 and 200 µs fall inside [100, 300); those at 0 and 300 do not.
    const summary = summarizeProfile(profile, { fromUs: 100, toUs: 300, root: '/repo' });
    assert.deepEqual(
      summary.top.map((e) => [e.name, e.selfUs]),
      [['claim dist/store/embedded.js:42', 200]],
    );
    assert.equal(summary.windowUs, 200);
  });

  it('accounts for every sampled microsecond in the window (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 2, max: 5 }), fc.integer({ min: 0, max: 5000 })), {
          minLength: 1,
          maxLength: 200,
        }),
        fc.integer({ min: 0, max: 5000 }),
        (samples, tail) => {
          const timeDeltas = samples.map(([, d]) => d);
          const total = timeDeltas.reduce((a, b) => a + b, 0);
          const profile: CpuProfile = {
            nodes,
            startTime: 0,
            endTime: total + tail,
            samples: samples.map(([id]) => id),
            timeDeltas,
          };
          const summary = summarizeProfile(profile, { top: Number.POSITIVE_INFINITY });
          // Everything after the first sample, up to the end, lands in some bucket.
          assert.equal(summary.windowUs, total - timeDeltas[0]! + tail);
          const busy = summary.top.reduce((a, e) => a + e.selfUs, 0);
          assert.equal(busy, summary.busyUs);
          assert.ok(summary.busyUs <= summary.windowUs);
        },
      ),
    );
  });
});
