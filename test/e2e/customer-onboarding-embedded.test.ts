import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { type RunningHerald, startHerald } from '../../src/app.js';
import { captureLogger, eventually, tempDir } from '../support/herald.js';
import {
  assertChainCompleted,
  type RecipeWorld,
  type Registration,
  recipeConfig,
  sampleRegistration,
  startRecipeWorld,
} from './customer-onboarding-harness.js';

describe('customer-onboarding recipe end to end in embedded mode (one process, SQLite store), through a restart', () => {
  const dir = tempDir('herald-onboarding-');
  let world: RecipeWorld;
  let herald: RunningHerald | null = null;

  /** Herald as `herald start --config examples/customer-onboarding/herald.yaml` runs it, on one data dir. */
  const start = async () => {
    const configFile = join(dir.path, 'herald.yaml');
    writeFileSync(configFile, recipeConfig());
    herald = await startHerald({
      configFile,
      port: 0,
      host: '127.0.0.1',
      dataDir: dir.path,
      logger: captureLogger().logger,
      env: world.env,
    });
  };

  before(async () => {
    world = await startRecipeWorld();
    await world.setup();
    await start();
  });
  after(async () => {
    await herald?.stop();
    await world?.close();
    dir.remove();
  });

  it('one registration → every completion on its NATS subject and rows in every table', async () => {
    const registration = sampleRegistration();
    await world.register(registration);
    await assertChainCompleted(world, registration);
  });

  it('a registration published while Herald is stopped waits in the stream and is processed after the restart', async () => {
    await herald!.stop();
    herald = null;
    const registration: Registration = {
      ...sampleRegistration(),
      id: '9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a',
      subject: '3c4d5e6f-7081-4293-a4b5-c6d7e8f90a1b',
      data: {
        company_name: 'Globex',
        contact_email: 'hank@globex.example',
        subscription_tier: 'enterprise',
        users: [
          {
            id: 'c5e3a2b4-3333-4f80-8b22-000000000004',
            name: 'Hank Scorpio',
            email: 'hank@globex.example',
            roles: ['admin'],
          },
        ],
      },
    };
    await world.register(registration);
    const jsm = await jetstreamManager(await world.nats.nc());
    const waiting = await jsm.consumers.info('DISCO_ONBOARDING', 'herald-onboarding');
    assert.equal(waiting.num_pending, 1, 'the registration waits in the stream for Herald');
    assert.equal(world.heardFor(registration.subject).length, 0);

    await start();
    await assertChainCompleted(world, registration);
    // Acknowledged once stored: nothing is left for the consumer.
    await eventually(async () => {
      const info = await jsm.consumers.info('DISCO_ONBOARDING', 'herald-onboarding');
      return info.num_pending + info.num_ack_pending === 0;
    }, 10_000);
  });
});
