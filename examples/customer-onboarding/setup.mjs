#!/usr/bin/env node
// Prepares what the customer-onboarding recipe runs against, independently of Herald; safe to run
// again. Creates the JetStream stream that keeps the onboarding subjects (registrations wait there
// while Herald is down; other systems can replay the completions), and, with
// ONBOARDING_DATABASE_URL set, applies schema.sql.
//   NATS_URL=nats://127.0.0.1:4222 ONBOARDING_DATABASE_URL=postgres://…/crm node examples/customer-onboarding/setup.mjs
import { readFileSync } from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';

const STREAM = process.env.ONBOARDING_STREAM || 'DISCO_ONBOARDING';
const SUBJECTS = [
  'customer-registered',
  'customer-saved',
  'user-saved',
  'welcome-email-sent',
  'marketing-notified',
  'swag-ordered',
  'touchpoints-created',
];
const DAY_NS = 24 * 3600 * 1e9;

const natsUrl = new URL(process.env.NATS_URL || 'nats://127.0.0.1:4222');
const nc = await connect({
  servers: natsUrl.host,
  ...(natsUrl.password
    ? { user: decodeURIComponent(natsUrl.username), pass: decodeURIComponent(natsUrl.password) }
    : natsUrl.username
      ? { token: decodeURIComponent(natsUrl.username) }
      : {}),
  ...(natsUrl.protocol === 'tls:' ? { tls: {} } : {}),
});
try {
  const jsm = await jetstreamManager(nc);
  const wanted = {
    name: STREAM,
    subjects: SUBJECTS,
    max_age: 7 * DAY_NS,
    // Herald publishes each completion with Nats-Msg-Id = its delivery's idempotency key: a retry
    // within this window is not stored twice.
    duplicate_window: 10 * 60 * 1e9,
  };
  const existing = await jsm.streams.info(STREAM).catch(() => null);
  if (existing) {
    await jsm.streams.update(STREAM, { ...existing.config, subjects: SUBJECTS });
    console.log(`stream ${STREAM} is there; its subjects: ${SUBJECTS.join(', ')}`);
  } else {
    await jsm.streams.add(wanted);
    console.log(`created stream ${STREAM} for ${SUBJECTS.join(', ')}`);
  }
} finally {
  await nc.close();
}

if (process.env.ONBOARDING_DATABASE_URL) {
  const client = new pg.Client({ connectionString: process.env.ONBOARDING_DATABASE_URL });
  await client.connect();
  try {
    await client.query(readFileSync(new URL('./schema.sql', import.meta.url), 'utf8'));
    console.log(
      'applied schema.sql (tiers, roles catalogue, customers, users, role assignments, touchpoints)',
    );
  } finally {
    await client.end();
  }
} else {
  console.log('ONBOARDING_DATABASE_URL is not set: schema.sql was not applied');
}
