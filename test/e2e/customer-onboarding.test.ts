import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { PG_URL, uniqueSuffix } from '../support/postgres.js';
import {
  assertChainCompleted,
  type RecipeWorld,
  type Registration,
  recipeConfig,
  sampleRegistration,
  startRecipeWorld,
} from './customer-onboarding-harness.js';

interface DeadDelivery {
  id: number;
  eventId: string;
  trigger: string;
  attempts: number;
  lastError: string;
}

/** A second customer whose only user holds a role the catalogue does not have yet. */
function auditorRegistration(): Registration {
  const registration = sampleRegistration();
  return {
    ...registration,
    id: '1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b',
    subject: '2a3b4c5d-6e7f-4081-9223-344556677889',
    data: {
      company_name: 'Initech',
      contact_email: 'it@initech.example',
      subscription_tier: 'basic',
      users: [
        {
          id: 'b4d2f1a3-2222-4e7f-9a11-000000000003',
          name: 'Milton Waddams',
          email: 'milton@initech.example',
          roles: ['auditor'],
        },
      ],
    },
  };
}

describe('customer-onboarding recipe end to end in distributed mode (JetStream in and out, JetStream bus, PostgreSQL store and tables, SMTP, Slack, webhook)', () => {
  const storeSchema = `herald_onboarding_${uniqueSuffix()}`;
  let world: RecipeWorld;
  let herald: TestHerald;

  before(async () => {
    world = await startRecipeWorld();
    assert.match(await world.setup(), /created stream DISCO_ONBOARDING[\s\S]*applied schema\.sql/);
    // Distributed mode: PostgreSQL holds the state, JetStream carries events to the routers.
    const config = [
      `store: { kind: postgres, url: "${PG_URL}", schema: ${storeSchema} }`,
      `bus: { kind: jetstream, url: "${world.nats.url}", subject: herald.events, stream: { name: HERALD, maxAgeMs: 3600000 } }`,
      recipeConfig({ saveAttempts: 2 }),
    ].join('\n');
    herald = await startTestHerald(config, { env: world.env });
  });
  after(async () => {
    await herald?.close();
    await world?.db.query(`DROP SCHEMA IF EXISTS ${storeSchema} CASCADE`);
    await world?.close();
  });

  it('one registration in the stream → every completion on its NATS subject, rows in every table, the email, the Slack message and the swag order', async () => {
    const registration = sampleRegistration();
    await world.register(registration);
    await assertChainCompleted(world, registration);

    const [mail] = await world.smtp.waitForMessages(1, 20_000);
    assert.deepEqual(mail!.to, [registration.data.contact_email]);
    assert.equal(mail!.subject, 'Welcome to Disco, Acme Rockets');
    const post = await world.slack.waitForCall(
      'chat.postMessage',
      (c) => c.args.channel === '#marketing',
      20_000,
    );
    assert.match(String(post.args.text), /New customer \*Acme Rockets\* \(2 users, professional\)/);
    const [order] = await world.supplier.waitFor(1, 20_000);
    assert.deepEqual(JSON.parse(order!.body), {
      customer: registration.subject,
      company: 'Acme Rockets',
      kit: 'welcome-box',
    });

    // The registration was acknowledged once stored: nothing waits in the consumer.
    const jsm = await jetstreamManager(await world.nats.nc());
    const consumer = await jsm.consumers.info('DISCO_ONBOARDING', 'herald-onboarding');
    assert.equal(consumer.num_pending + consumer.num_ack_pending, 0);
  });

  it('a save step that exits non-zero is retried, then dead-lettered with its reason; after the fix, replaying it completes the chain', async () => {
    const registration = auditorRegistration();
    await world.register(registration);
    const dead = await eventually(
      async () => {
        const page = (await (await herald.get('/api/dlq')).json()) as { deadLetters: DeadDelivery[] };
        return page.deadLetters.find((d) => d.eventId === registration.id);
      },
      30_000,
      'the save step in the DLQ',
    );
    assert.equal(dead.trigger, 'save-customer');
    assert.equal(dead.attempts, 2, 'retried once, as the policy says, before giving up');
    assert.match(
      dead.lastError,
      /^gave up after 2 attempts: exit 1: could not save customer .*user_role_assignments.*\(role\)=\(auditor\) is not present in table "user_roles"/,
    );
    assert.equal(world.heardFor(registration.subject).length, 0, 'no step completed');
    assert.equal(
      await world.count(
        'SELECT count(*)::int AS n FROM $schema.corporate_customers WHERE id = $1',
        registration.subject,
      ),
      0,
      'the failed transaction left no row behind',
    );

    // The fix: the role joins the catalogue. Then the dead letter is replayed.
    await world.db.query(
      `INSERT INTO ${world.dataSchema}.user_roles (name, description) VALUES ('auditor', 'Reads the books')`,
    );
    const replay = await herald.post(`/api/dlq/${dead.id}/replay`, {});
    assert.equal(replay.status, 200, await replay.clone().text());
    await assertChainCompleted(world, registration);
  });
});
