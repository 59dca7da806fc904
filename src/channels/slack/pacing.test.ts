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
    for (let i = 0; i < 99; i++) turns.take(`U${i}`, 0);
    // A second message to U0 waits for its turn, at 1000.
    assert.equal(turns.take('U0', 500), 1000);
    turns.take('U-new', 1500);
    assert.equal(turns.size, 100);
    // The 101st channel finds every turn past but U0's (2000) and U-new's (2500), and drops them.
    turns.take('U-next', 1500);
    assert.equal(turns.size, 3);
    assert.equal(turns.take('U0', 1500), 2000, 'a turn still to come is kept');
  });

  it('with most channels still waiting, sweeps again only once twice as many are remembered', () => {
    const turns = new ChannelTurns(1000, 100);
    // 300 channels, each given a turn 1 s ahead at time 0: none is past while they come in.
    for (let i = 0; i < 300; i++) turns.take(`#c${i}`, 0);
    assert.equal(turns.size, 300);
    // At 100 and at 200 remembered: two walks for 300 messages, not one per message past 100.
    assert.equal(turns.sweeps, 2);
    // Later the 300 are past; 100 more come in at 5000, still no walk below 400 remembered.
    for (let i = 0; i < 100; i++) turns.take(`#d${i}`, 5000);
    assert.equal(turns.sweeps, 2);
    assert.equal(turns.size, 400);
    // The walk at 400 drops the 300 past turns and keeps the 100 waiting.
    turns.take('#e', 5000);
    assert.equal(turns.sweeps, 3);
    assert.equal(turns.size, 101);
  });
});
