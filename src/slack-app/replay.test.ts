import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeenSignatures } from './replay.js';

describe('seen Slack signatures', () => {
  const ts = 1_700_000_000;
  const at = (seconds: number) => seconds * 1000;

  it('a signature is new once; again within its window it is a replay', () => {
    const seen = new SeenSignatures();
    assert.equal(seen.firstTime('v0=a', ts, at(ts)), true);
    assert.equal(seen.firstTime('v0=a', ts, at(ts + 1)), false);
    assert.equal(seen.firstTime('v0=a', ts, at(ts + 300)), false);
    assert.equal(seen.firstTime('v0=b', ts, at(ts + 1)), true);
  });

  it('forgets signatures whose window has passed, and never holds more than its capacity', () => {
    const seen = new SeenSignatures(100);
    for (let i = 0; i < 50; i++) seen.firstTime(`old-${i}`, ts, at(ts));
    seen.firstTime('new', ts + 400, at(ts + 400));
    assert.equal(seen.size, 1, 'expired entries were dropped');
    for (let i = 0; i < 1000; i++) seen.firstTime(`burst-${i}`, ts + 400, at(ts + 400));
    assert.ok(seen.size <= 100, `holds ${seen.size}`);
    assert.equal(seen.firstTime('burst-999', ts + 400, at(ts + 401)), false, 'the newest are kept');
  });
});
