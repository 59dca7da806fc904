import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type pg from 'pg';
import { eventually, repoRoot, startTestHerald, type TestHerald } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';
import { PG_URL, pgClient, uniqueSuffix } from '../support/postgres.js';
import { type SlackServer, startSlackServer } from '../support/slack/index.js';
import { type SmtpSink, startSmtpSink } from '../support/smtp/index.js';

const recipe = join(repoRoot, 'examples/customer-onboarding');
const registered = JSON.parse(readFileSync(join(recipe, 'events/customer-registered.json'), 'utf8')) as {
  id: string;
  subject: string;
  data: { company_name: string; contact_email: string; users: { id: string; roles: string[] }[] };
};

describe('customer-onboarding recipe end to end in distributed mode (NATS in, JetStream bus, PostgreSQL store and tables, SMTP, Slack, webhook)', () => {
  const suffix = uniqueSuffix();
  const dataSchema = `onboarding_${suffix}`;
  const storeSchema = `herald_onboarding_${suffix}`;
  let db: pg.Client;
  let smtp: SmtpSink;
  let slack: SlackServer;
  let supplier: HttpSink;
  let herald: TestHerald;

  before(async () => {
    db = await pgClient();
    await db.query(`CREATE SCHEMA ${dataSchema}`);
    await db.query(`SET search_path TO ${dataSchema}`);
    await db.query(readFileSync(join(recipe, 'schema.sql'), 'utf8'));
    smtp = await startSmtpSink();
    slack = await startSlackServer();
    slack.addChannel('marketing');
    supplier = await startHttpSink();
    // Distributed mode: PostgreSQL holds the state, JetStream carries events to the routers.
    const stream = `HERALD_ONBOARDING_${suffix.toUpperCase()}`;
    const config = [
      `store: { kind: postgres, url: "${PG_URL}", schema: ${storeSchema} }`,
      `bus: { kind: jetstream, url: "nats://127.0.0.1:4222", subject: ${stream.toLowerCase()}.events, stream: { name: ${stream}, maxAgeMs: 3600000 } }`,
      readFileSync(join(recipe, 'herald.yaml'), 'utf8'),
    ].join('\n');
    herald = await startTestHerald(config, {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        NATS_URL: 'nats://127.0.0.1:4222',
        SMTP_URL: smtp.url,
        SLACK_BOT_TOKEN: slack.token,
        SLACK_API_URL: slack.url,
        SWAG_SUPPLIER_URL: supplier.url,
        ONBOARDING_DATABASE_URL: `${PG_URL}?options=-c%20search_path%3D${dataSchema}`,
        ONBOARDING_JOBS: join(recipe, 'jobs'),
      },
    });
  });
  after(async () => {
    await herald?.close();
    await Promise.all([smtp?.close(), slack?.close(), supplier?.close()]);
    await db.query(`DROP SCHEMA IF EXISTS ${dataSchema} CASCADE`);
    await db.query(`DROP SCHEMA IF EXISTS ${storeSchema} CASCADE`);
    await db.end();
    const nc = await connect({ servers: 'nats://127.0.0.1:4222' });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(`HERALD_ONBOARDING_${suffix.toUpperCase()}`).catch(() => undefined);
    await nc.close();
  });

  it('one customer-registered event on NATS → rows in all four tables, a welcome email, a Slack message, a swag order and the chain of events', async () => {
    const nc = await connect({ servers: 'nats://127.0.0.1:4222' });
    try {
      const publish = () => nc.publish('customer-registered', JSON.stringify(registered));
      publish();
      await nc.flush();
      // Core NATS delivers only to subscriptions that exist: publish again (same id, stored once) until seen.
      await eventually(async () => {
        const res = await herald.get(`/api/events/${registered.id}`);
        if (res.status === 200) return true;
        publish();
        await nc.flush();
        return false;
      }, 15_000);
    } finally {
      await nc.close();
    }

    const customer = registered.subject;
    await eventually(async () => {
      const { rows } = await db.query(
        `SELECT count(*)::int AS n FROM ${dataSchema}.touchpoints WHERE customer_id = $1`,
        [customer],
      );
      return rows[0].n === 2;
    }, 30_000);
    const count = async (sql: string) => (await db.query(sql, [customer])).rows[0].n as number;
    assert.equal(
      await count(`SELECT count(*)::int AS n FROM ${dataSchema}.corporate_customers WHERE id = $1`),
      1,
    );
    assert.equal(await count(`SELECT count(*)::int AS n FROM ${dataSchema}.users WHERE customer_id = $1`), 2);
    assert.equal(
      await count(
        `SELECT count(*)::int AS n FROM ${dataSchema}.user_roles r JOIN ${dataSchema}.users u ON u.id = r.user_id WHERE u.customer_id = $1`,
      ),
      3,
    );

    const [mail] = await smtp.waitForMessages(1, 20_000);
    assert.deepEqual(mail!.to, [registered.data.contact_email]);
    assert.equal(mail!.subject, 'Welcome to Disco, Acme Rockets');
    const post = await slack.waitForCall('chat.postMessage', (c) => c.args.channel === '#marketing', 20_000);
    assert.match(String(post.args.text), /New customer \*Acme Rockets\* \(2 users\)/);
    const [order] = await supplier.waitFor(1, 20_000);
    assert.deepEqual(JSON.parse(order!.body), { customer, company: 'Acme Rockets', kit: 'welcome-box' });

    const types = await eventually(async () => {
      const { events } = (await (await herald.get('/api/events?limit=50')).json()) as {
        events: { event: { type: string; subject?: string } }[];
      };
      const mine = events.filter((e) => e.event.subject === customer).map((e) => e.event.type);
      return mine.includes('disco.knapscen.touchpoints.created') &&
        mine.includes('disco.knapscen.swag.ordered')
        ? mine
        : undefined;
    }, 20_000);
    assert.deepEqual([...new Set(types)].sort(), [
      'disco.knapscen.customer.registered',
      'disco.knapscen.customer.saved',
      'disco.knapscen.marketing.notified',
      'disco.knapscen.swag.ordered',
      'disco.knapscen.touchpoints.created',
      'disco.knapscen.user.saved',
      'disco.knapscen.welcome-email.sent',
    ]);
    assert.equal(types.filter((t) => t === 'disco.knapscen.user.saved').length, 2);
  });
});
