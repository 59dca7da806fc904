import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { StoredEvent } from '../../engine/store.js';
import { decodeMessage, encodeMessages } from './wire.js';

/** NATS' default max_payload: a message larger than this is refused by the server. */
const NATS_MAX_PAYLOAD = 1024 * 1024;

const storedEvents = fc
  .array(
    fc.record({
      size: fc.integer({ min: 0, max: 120_000 }),
      wide: fc.boolean(),
      receivedAt: fc.integer({ min: 0, max: 2 ** 41 }),
    }),
    { maxLength: 40 },
  )
  .map((specs) =>
    specs.map(
      ({ size, wide, receivedAt }, i): StoredEvent => ({
        seq: i + 1,
        receivedAt,
        // Multi-byte text too: messages are sized by characters, and must still fit in bytes.
        event: {
          specversion: '1.0',
          id: `e${i}`,
          source: 'wire-test',
          type: 't',
          data: (wide ? '€' : 'x').repeat(size),
        },
        routedAt: null,
        routing: null,
      }),
    ),
  );

describe('jetstream bus wire format', () => {
  it('carries every event once, in order, in messages of at most maxEvents that NATS accepts', () => {
    fc.assert(
      fc.property(storedEvents, fc.integer({ min: 1, max: 50 }), (events, maxEvents) => {
        const messages = [...encodeMessages(events, maxEvents)];
        for (const message of messages) {
          assert.ok(message.events.length >= 1 && message.events.length <= maxEvents);
          if (message.events.length > 1) assert.ok(message.data.byteLength <= NATS_MAX_PAYLOAD);
          assert.deepEqual(decodeMessage(message.data), message.events);
        }
        assert.deepEqual(
          messages.flatMap((m) => m.events),
          events,
        );
      }),
      { numRuns: 60 },
    );
  });
});
