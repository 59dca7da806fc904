import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChannelTurns } from './pacing.js';

describe('Slack channel turns', () => {
  it('spaces the messages of one channel by the interval, and leaves other channels alone', () => {
    const turns = new ChannelTurns(1000);
    assert.equal(turns.take('#a', 5000), 5000);
    assert.equal(turns.take('#a', 5000), 6000);
    assert.equal(turns.take('#a', 5100), 7000);
    assert.equal(turns.take('#b', 5100), 5100);
    // Long after its last message a channel goes at once.
    assert.equal(turns.take('#a', 20_000), 20_000);
  });

  it('forgets channels whose turn is past once many are remembered, keeping those still waiting', () => {
    const turns = new ChannelTurns(1000, 100);
    for (let i = 0; i < 100; i++) turns.take(`U${i}`, 0);
    assert.equal(turns.size, 100);
    // A second message to U0 waits for its turn, at 1000.
    assert.equal(turns.take('U0', 500), 1000);
    // Later every turn but U0's (2000) is past: one more channel drops them.
    turns.take('U-new', 1500);
    assert.equal(turns.size, 2);
    assert.equal(turns.take('U0', 1500), 2000, 'a turn still to come is kept');
  });
});
