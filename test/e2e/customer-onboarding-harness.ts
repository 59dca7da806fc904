import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jetstream } from '@nats-io/jetstream';
import type { Msg } from '@nats-io/transport-node';
import type pg from 'pg';
import type { CloudEvent } from '../../src/events/types.js';
import { eventually, repoRoot } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';
import { type PrivateNats, startPrivateNats } from '../support/nats.js';
import { PG_URL, pgClient, uniqueSuffix } from '../support/postgres.js';
import { type SlackServer, startSlackServer } from '../support/slack/index.js';
import { type SmtpSink, startSmtpSink } from '../support/smtp/index.js';

export const recipe = join(repoRoot, 'examples/customer-onboarding');

export interface Registration extends CloudEvent {
  subject: string;
  data: {
    company_name: string;
    contact_email: string;
    subscription_tier: string;
    users: { id: string; name: string; email: string; roles: string[] }[];
  };
}

export const sampleRegistration = (): Registration =>
  JSON.parse(readFileSync(join(recipe, 'events/customer-registered.json'), 'utf8')) as Registration;

/** The subjects the seed makes the system's interface, each carrying one step's completion. */
export const COMPLETION_SUBJECTS = [
  'customer-saved',
  'user-saved',
  'welcome-email-sent',
  'marketing-notified',
  'swag-ordered',
  'touchpoints-created',
] as const;

/** The recipe's config as shipped, with a short retry policy on the save step so a test sees it run out. */
export function recipeConfig(options: { saveAttempts?: number } = {}): string {
  const text = readFileSync(join(recipe, 'herald.yaml'), 'utf8');
  if (options.saveAttempts === undefined) return text;
  const shipped = 'delivery: { maxAttempts: 5, backoff: { initialMs: 2000, maxMs: 60000 } }';
  assert.ok(text.includes(shipped), 'the recipe still ships this retry policy on save-customer');
  return text.replace(
    shipped,
    `delivery: { maxAttempts: ${options.saveAttempts}, backoff: { initialMs: 200, maxMs: 400 } }`,
  );
}

/**
 * What the recipe runs against, all real and all the test's own: a nats-server with JetStream, a
 * PostgreSQL schema for the recipe's tables, an SMTP server, the Slack-compatible server and the
 * supplier's webhook endpoint. `setup()` runs the recipe's setup.mjs as its README says.
 */
export async function startRecipeWorld() {
  const nats: PrivateNats = await startPrivateNats();
  const dataSchema = `onboarding_${uniqueSuffix()}`;
  const db: pg.Client = await pgClient();
  await db.query(`CREATE SCHEMA ${dataSchema}`);
  const smtp: SmtpSink = await startSmtpSink();
  const slack: SlackServer = await startSlackServer();
  slack.addChannel('marketing');
  const supplier: HttpSink = await startHttpSink();
  const databaseUrl = `${PG_URL}?options=-c%20search_path%3D${dataSchema}`;

  // A plain NATS subscriber, as any other system of the company would be.
  const nc = await nats.nc();
  const heard: Msg[] = [];
  for (const subject of COMPLETION_SUBJECTS)
    nc.subscribe(subject, {
      callback: (_err, msg) => {
        heard.push(msg);
      },
    });
  await nc.flush();

  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NATS_URL: nats.url,
    SMTP_URL: smtp.url,
    SLACK_BOT_TOKEN: slack.token,
    SLACK_API_URL: slack.url,
    SWAG_SUPPLIER_URL: supplier.url,
    ONBOARDING_DATABASE_URL: databaseUrl,
    ONBOARDING_JOBS: join(recipe, 'jobs'),
  };

  return {
    nats,
    db,
    dataSchema,
    /** The recipe's tables' database, as ONBOARDING_DATABASE_URL (or a Job's Secret) names it. */
    databaseUrl,
    smtp,
    slack,
    supplier,
    env,
    /** `node examples/customer-onboarding/setup.mjs`, from the checkout, as the README runs it. */
    async setup(): Promise<string> {
      const { stdout } = await promisify(execFile)(process.execPath, [join(recipe, 'setup.mjs')], {
        cwd: repoRoot,
        env: { PATH: process.env.PATH, NATS_URL: nats.url, ONBOARDING_DATABASE_URL: databaseUrl },
      });
      return stdout;
    },
    /** What another system publishes: a registration into the stream (acknowledged once stored). */
    async register(event: Registration): Promise<void> {
      const ack = await jetstream(await nats.nc()).publish('customer-registered', JSON.stringify(event), {
        msgID: event.id,
      });
      assert.equal(ack.stream, 'DISCO_ONBOARDING');
    },
    /** The completions the plain subscriber heard about one customer, as (subject, event) pairs. */
    heardFor(customer: string): { subject: string; event: CloudEvent }[] {
      return heard
        .map((m) => ({ subject: m.subject, event: m.json<CloudEvent>() }))
        .filter((m) => m.event.subject === customer);
    },
    async count(sql: string, ...params: unknown[]): Promise<number> {
      return (await db.query(sql.replaceAll('$schema', dataSchema), params)).rows[0].n as number;
    },
    async close() {
      await Promise.all([smtp.close(), slack.close(), supplier.close()]);
      await nats.close();
      await db.query(`DROP SCHEMA IF EXISTS ${dataSchema} CASCADE`);
      await db.end();
    },
  };
}

export type RecipeWorld = Awaited<ReturnType<typeof startRecipeWorld>>;

/**
 * Waits for the whole chain of one registration and checks what other systems see: one message per
 * completion on its subject (a user-saved per user), structured CloudEvents from knapscen.disco.
 */
export async function assertChainCompleted(world: RecipeWorld, registration: Registration): Promise<void> {
  const customer = registration.subject;
  const users = registration.data.users.length;
  const expected = COMPLETION_SUBJECTS.length - 1 + users;
  const heard = await eventually(
    () => {
      const mine = world.heardFor(customer);
      return mine.length >= expected ? mine : undefined;
    },
    60_000,
    `${expected} completions of ${customer} on NATS`,
  );
  // A moment for a repeat to show up, if there were one.
  await new Promise((r) => setTimeout(r, 300));
  const all = world.heardFor(customer);
  assert.equal(all.length, expected, `subjects heard: ${all.map((m) => m.subject).join(', ')}`);
  const bySubject = (s: string) => heard.filter((m) => m.subject === s).map((m) => m.event);
  for (const subject of COMPLETION_SUBJECTS) {
    const events = bySubject(subject);
    assert.equal(events.length, subject === 'user-saved' ? users : 1, `messages on ${subject}`);
    for (const event of events) {
      assert.equal(event.source, 'knapscen.disco');
      assert.equal(event.type, `disco.knapscen.${subject.replace(/-(?=[a-z]+$)/, '.')}`);
    }
  }
  const [saved] = bySubject('customer-saved');
  assert.deepEqual(saved!.data, {
    company_name: registration.data.company_name,
    contact_email: registration.data.contact_email,
    subscription_tier: registration.data.subscription_tier,
    users,
  });
  assert.deepEqual(
    bySubject('user-saved')
      .map((e) => (e.data as { email: string }).email)
      .sort(),
    registration.data.users.map((u) => u.email).sort(),
  );
  assert.deepEqual(bySubject('touchpoints-created')[0]!.data, { kinds: ['welcome-email', 'kickoff-call'] });

  // The rows behind them.
  assert.equal(
    await world.count(
      'SELECT count(*)::int AS n FROM $schema.corporate_customers WHERE id = $1 AND subscription_tier = $2',
      customer,
      registration.data.subscription_tier,
    ),
    1,
  );
  assert.equal(
    await world.count('SELECT count(*)::int AS n FROM $schema.users WHERE customer_id = $1', customer),
    users,
  );
  assert.equal(
    await world.count(
      'SELECT count(*)::int AS n FROM $schema.user_role_assignments a JOIN $schema.users u ON u.id = a.user_id WHERE u.customer_id = $1',
      customer,
    ),
    registration.data.users.reduce((n, u) => n + u.roles.length, 0),
  );
  assert.equal(
    await world.count('SELECT count(*)::int AS n FROM $schema.touchpoints WHERE customer_id = $1', customer),
    2,
  );
}
