import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inboxChannel } from '../channels/inbox/index.js';
import { DEFAULT_BACKOFF } from '../engine/backoff.js';
import type { ChannelKind } from '../engine/types.js';
import { builtInDialects } from '../filters/index.js';
import { loadConfig, type Registries } from './load.js';
import { backoffSchema } from './schema.js';

const registries: Registries = {
  channels: [inboxChannel] as ChannelKind[],
  sources: [],
  dialects: builtInDialects,
};

const backoffOf = (delivery: string) =>
  loadConfig(
    `channels: { box: { kind: inbox } }\ntriggers:\n  t:\n    actions: [{ channel: box }]\n${delivery}`,
    registries,
    { env: {} },
  ).triggers[0]!.policy.backoff;

describe('backoff defaults', () => {
  it('a trigger without a delivery policy retries with the engine default', () => {
    assert.deepEqual(backoffOf(''), DEFAULT_BACKOFF);
  });

  it('naming only the kind keeps every other default', () => {
    assert.deepEqual(backoffOf('    delivery: { backoff: fixed }\n'), { ...DEFAULT_BACKOFF, kind: 'fixed' });
  });

  it('an object with one key keeps the defaults of the others', () => {
    assert.deepEqual(backoffOf('    delivery: { backoff: { maxMs: 5000 } }\n'), {
      ...DEFAULT_BACKOFF,
      maxMs: 5000,
    });
  });

  it('the schema, and with it docs/configuration.md, documents the engine default', () => {
    assert.deepEqual(backoffSchema.parse({}), DEFAULT_BACKOFF);
  });
});
