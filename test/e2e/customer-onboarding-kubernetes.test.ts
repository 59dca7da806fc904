import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { parse, stringify } from 'yaml';
import { eventually, repoRoot, startTestHerald, type TestHerald, tempDir } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';
import {
  type FakeJob,
  type FakeKubernetes,
  type JobRunner,
  startFakeKubernetes,
} from '../support/kubernetes/index.js';
import { PG_URL, pgClient, uniqueSuffix } from '../support/postgres.js';
import { type SlackServer, startSlackServer } from '../support/slack/index.js';
import { type SmtpSink, startSmtpSink } from '../support/smtp/index.js';

const recipe = join(repoRoot, 'examples/customer-onboarding');
const registered = JSON.parse(readFileSync(join(recipe, 'events/customer-registered.json'), 'utf8')) as {
  id: string;
  subject: string;
  data: { company_name: string; contact_email: string; users: { id: string }[] };
};

/**
 * Runs each Job as its node would: the container's command and args, with the recipe's job scripts
 * where the image has them (/jobs) and DATABASE_URL from the Secret the manifest names. The pod's
 * output becomes its log and its exit code the Job's end.
 */
function runJobsLocally(secrets: Record<string, Record<string, string>>): JobRunner {
  return (job: FakeJob, cluster) => {
    const { name, namespace } = job.metadata;
    cluster.start(name, namespace);
    const container = job.spec.template.spec.containers[0]!;
    const env: Record<string, string> = { PATH: process.env.PATH ?? '' };
    for (const variable of (container.env ?? []) as {
      name: string;
      value?: string;
      valueFrom?: { secretKeyRef: { name: string; key: string } };
    }[]) {
      const ref = variable.valueFrom?.secretKeyRef;
      env[variable.name] = ref ? (secrets[ref.name]?.[ref.key] ?? '') : (variable.value ?? '');
    }
    const [script, ...args] = container.args ?? [];
    const program = container.command?.[0] === 'node' ? process.execPath : container.command![0]!;
    const child = spawn(program, [join(recipe, 'jobs', basename(script!)), ...args], { env });
    let log = '';
    child.stdout.on('data', (c: Buffer) => {
      log += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      log += c.toString();
    });
    child.on('close', (code) => {
      if (code === 0) cluster.succeed(name, { logs: log }, namespace);
      else cluster.fail(name, { logs: log, exitCode: code ?? 1 }, namespace);
    });
  };
}

describe('customer-onboarding, Kubernetes variant, embedded mode: every job step a Kubernetes Job (against the fake Jobs API)', () => {
  const suffix = uniqueSuffix();
  const dataSchema = `onboarding_k8s_${suffix}`;
  const databaseUrl = `${PG_URL}?options=-c%20search_path%3D${dataSchema}`;
  const dir = tempDir('herald-onboarding-k8s-');
  let db: pg.Client;
  let k8s: FakeKubernetes;
  let smtp: SmtpSink;
  let slack: SlackServer;
  let supplier: HttpSink;
  let herald: TestHerald;

  before(async () => {
    db = await pgClient();
    await db.query(`CREATE SCHEMA ${dataSchema}`);
    await db.query(`SET search_path TO ${dataSchema}`);
    await db.query(readFileSync(join(recipe, 'schema.sql'), 'utf8'));
    k8s = await startFakeKubernetes({ namespaces: ['onboarding'] });
    k8s.setRunner(runJobsLocally({ 'onboarding-db': { url: databaseUrl } }));
    smtp = await startSmtpSink();
    slack = await startSlackServer();
    slack.addChannel('marketing');
    supplier = await startHttpSink();
    const config = parse(readFileSync(join(recipe, 'herald.kubernetes.yaml'), 'utf8'));
    // Events come in over HTTP here: the NATS source is the same as herald.yaml's and tested there.
    delete config.sources;
    config.channels.steps.kubernetes.kubeconfig = k8s.writeKubeconfig(dir.path);
    config.dispatcher = { pollIntervalMs: 100 };
    for (const trigger of ['save-customer', 'create-touchpoints'])
      config.triggers[trigger].delivery = { maxAttempts: 2, backoff: { initialMs: 50, maxMs: 100 } };
    herald = await startTestHerald(stringify(config), {
      env: {
        SMTP_URL: smtp.url,
        SLACK_BOT_TOKEN: slack.token,
        SLACK_API_URL: slack.url,
        SWAG_SUPPLIER_URL: supplier.url,
      },
    });
  });
  after(async () => {
    await herald?.close();
    await Promise.all([k8s?.close(), smtp?.close(), slack?.close(), supplier?.close()]);
    await db.query(`DROP SCHEMA IF EXISTS ${dataSchema} CASCADE`);
    await db.end();
    dir.remove();
  });

  const post = (event: unknown) =>
    herald.post('/events', event, { 'content-type': 'application/cloudevents+json' });
  const eventsOf = async (subject: string) => {
    const { events } = (await (await herald.get('/api/events?limit=100')).json()) as {
      events: { event: { type: string; subject?: string; data?: Record<string, string> } }[];
    };
    return events.map((e) => e.event).filter((e) => e.subject === subject);
  };

  it('a registration runs save-customer and create-touchpoints as Jobs named per event, and the chain completes', async () => {
    assert.equal((await post(registered)).status, 202);
    const customer = registered.subject;
    await eventually(
      async () =>
        (
          await db.query(`SELECT count(*)::int AS n FROM ${dataSchema}.touchpoints WHERE customer_id = $1`, [
            customer,
          ])
        ).rows[0].n === 2,
      30_000,
      'the touchpoints rows',
    );
    const names = k8s.jobs('onboarding').map((j) => j.metadata.name);
    assert.deepEqual(names.sort(), [`create-touchpoints-${customer}`, `save-customer-${registered.id}`]);
    const saveJob = k8s.cluster.job(`save-customer-${registered.id}`, 'onboarding');
    assert.equal(saveJob.spec.ttlSecondsAfterFinished, 86400, 'cleanup from the channel');
    assert.equal(saveJob.metadata.labels?.['herald.events/channel'], 'steps');

    const [mail] = await smtp.waitForMessages(1, 20_000);
    assert.equal(mail!.subject, 'Welcome to Disco, Acme Rockets');
    await slack.waitForCall('chat.postMessage', (c) => c.args.channel === '#marketing', 20_000);
    await supplier.waitFor(1, 20_000);

    const chain = await eventually(async () => {
      const mine = await eventsOf(customer);
      return mine.some((e) => e.type === 'disco.knapscen.touchpoints.job-finished') ? mine : undefined;
    }, 20_000);
    const types = chain.map((e) => e.type);
    for (const type of [
      'disco.knapscen.customer.registered',
      'disco.knapscen.customer.saved',
      'disco.knapscen.user.saved',
      'disco.knapscen.welcome-email.sent',
      'disco.knapscen.marketing.notified',
      'disco.knapscen.swag.ordered',
      'disco.knapscen.touchpoints.created',
    ])
      assert.ok(types.includes(type), `${type} in the chain (the Jobs' printed events included)`);
    assert.equal(types.filter((t) => t === 'disco.knapscen.user.saved').length, 2);
    const finished = chain.find((e) => e.type === 'disco.knapscen.touchpoints.job-finished')!;
    assert.equal(finished.data?.job, `create-touchpoints-${customer}`);
    assert.equal(finished.data?.status, 'succeeded');
    assert.match(finished.data?.durationMs ?? '', /^\d+$/);
    assert.match(finished.data?.logs ?? '', /touchpoints\.created/, 'the pod’s last log lines');
  });

  it('a save-customer Job that exits non-zero is retried as a new Job, then dead-lettered with its log tail', async () => {
    const broken = {
      ...registered,
      id: 'c0ffee00-0000-4000-8000-000000000001',
      subject: 'c0ffee00-0000-4000-8000-0000000000aa',
      // Its user's e-mail belongs to a user of another customer already: the insert fails, exit 1.
      data: {
        ...registered.data,
        users: [{ ...registered.data.users[0], id: 'c0ffee00-0000-4000-8000-0000000000bb' }],
      },
    };
    assert.equal((await post(broken)).status, 202);
    const d = await eventually(async () => {
      const e = (await (await herald.get(`/api/events/${broken.id}`)).json()) as {
        deliveries?: { status: string; attempts: number; lastError: string | null }[];
      };
      const found = e.deliveries?.[0];
      return found && found.status !== 'pending' ? found : undefined;
    }, 30_000);
    assert.equal(d.status, 'dead');
    assert.equal(d.attempts, 2);
    assert.match(
      d.lastError ?? '',
      new RegExp(`Job save-customer-${broken.id}-r2 in onboarding failed: BackoffLimitExceeded`),
    );
    assert.match(d.lastError ?? '', /\(exit 1\)/);
    assert.match(d.lastError ?? '', /could not save customer c0ffee00-0000-4000-8000-0000000000aa: .*unique/);
    assert.deepEqual(
      k8s
        .jobs('onboarding')
        .map((j) => j.metadata.name)
        .filter((n) => n.includes(broken.id))
        .sort(),
      [`save-customer-${broken.id}`, `save-customer-${broken.id}-r2`],
    );
    assert.equal(
      (await eventsOf(broken.subject)).filter((e) => e.type === 'disco.knapscen.customer.saved').length,
      0,
    );
  });
});
