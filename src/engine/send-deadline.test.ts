import assert from 'node:assert/strict';
import { it } from 'node:test';
import { sendWithDeadline } from './send-deadline.js';
import type { Channel } from './types.js';

it('cuts a send off no sooner than its deadline, wherever within a millisecond it started', async () => {
  const timeoutMs = 15;
  const early: string[] = [];
  const slow: Channel = {
    concurrency: 40,
    timeoutMs,
    send(request) {
      // The send's start as its caller saw it: the deadline counts from then, and a pause between
      // that call and this line must not count against it.
      const { startedAt } = request as unknown as { startedAt: number };
      return new Promise((resolve) =>
        request.signal.addEventListener('abort', () => {
          const after = performance.now() - startedAt;
          if (after < timeoutMs) early.push(after.toFixed(2));
          resolve({ outcome: 'retry', reason: (request.signal.reason as Error).message });
        }),
      );
    },
  };
  // Timers count whole milliseconds of the loop's clock, so one can fire up to a millisecond
  // before its time: start sends at many points within a millisecond.
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < 40; i++) {
    const busyUntil = performance.now() + 0.37;
    while (performance.now() < busyUntil);
    const request = { startedAt: performance.now() } as unknown as Parameters<typeof sendWithDeadline>[1];
    sends.push(sendWithDeadline(slow, request, { abort: null }));
  }
  const results = await Promise.all(sends);
  assert.ok(results.every((r) => (r as { outcome: string }).outcome === 'retry'));
  assert.deepEqual(early, [], `sends cut off before ${timeoutMs} ms: ${early.join(', ')}`);
});
