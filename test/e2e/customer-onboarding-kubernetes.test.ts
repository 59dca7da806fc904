import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { eventually, startTestHerald, type TestHerald, tempDir } from '../support/herald.js';
import {
  type FakeJob,
  type FakeKubernetes,
  type JobRunner,
  startFakeKubernetes,
} from '../support/kubernetes/index.js';
import {
  assertChainCompleted,
  type RecipeWorld,
  type Registration,
  recipe,
  sampleRegistration,
  startRecipeWorld,
} from './customer-onboarding-harness.js';

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

describe('customer-onboarding, Kubernetes variant, embedded mode: every job step a Kubernetes Job (against the fake Jobs API), JetStream in and out', () => {
  const dir = tempDir('herald-onboarding-k8s-');
  let world: RecipeWorld;
  let k8s: FakeKubernetes;
  let herald: TestHerald;

  before(async () => {
    world = await startRecipeWorld();
    assert.match(await world.setup(), /created stream DISCO_ONBOARDING[\s\S]*applied schema\.sql/);
    k8s = await startFakeKubernetes({ namespaces: ['onboarding'] });
    k8s.setRunner(runJobsLocally({ 'onboarding-db': { url: world.databaseUrl } }));
    const config = parse(readFileSync(join(recipe, 'herald.kubernetes.yaml'), 'utf8'));
    config.channels.steps.kubernetes.kubeconfig = k8s.writeKubeconfig(dir.path);
    config.dispatcher = { pollIntervalMs: 100 };
    for (const trigger of ['save-customer', 'create-touchpoints'])
      config.triggers[trigger].delivery = { maxAttempts: 2, backoff: { initialMs: 50, maxMs: 100 } };
    herald = await startTestHerald(stringify(config), { env: world.env });
  });
  after(async () => {
    await herald?.close();
    await k8s?.close();
    await world?.close();
    dir.remove();
  });

  const eventsOf = async (subject: string) => {
    const { events } = (await (await herald.get('/api/events?limit=100')).json()) as {
      events: { event: { type: string; subject?: string; data?: Record<string, string> } }[];
    };
    return events.map((e) => e.event).filter((e) => e.subject === subject);
  };

  it('a registration from the stream runs save-customer and create-touchpoints as Jobs named per event, and every completion is published on its NATS subject', async () => {
    const registered = sampleRegistration();
    await world.register(registered);
    const customer = registered.subject;
    // The Jobs' printed events (customer.saved, user.saved, touchpoints.created) and the other
    // steps' follow-ups, each heard once by a plain NATS subscriber, and the rows behind them.
    await assertChainCompleted(world, registered);

    const names = k8s.jobs('onboarding').map((j) => j.metadata.name);
    assert.deepEqual(names.sort(), [`create-touchpoints-${customer}`, `save-customer-${registered.id}`]);
    const saveJob = k8s.cluster.job(`save-customer-${registered.id}`, 'onboarding');
    assert.equal(saveJob.spec.ttlSecondsAfterFinished, 86400, 'cleanup from the channel');
    assert.equal(saveJob.metadata.labels?.['herald.events/channel'], 'steps');

    const [mail] = await world.smtp.waitForMessages(1, 20_000);
    assert.equal(mail!.subject, 'Welcome to Disco, Acme Rockets');
    const post = await world.slack.waitForCall(
      'chat.postMessage',
      (c) => c.args.channel === '#marketing',
      20_000,
    );
    assert.match(String(post.args.text), /New customer \*Acme Rockets\* \(2 users, professional\)/);
    await world.supplier.waitFor(1, 20_000);

    const chain = await eventually(async () => {
      const mine = await eventsOf(customer);
      return mine.some((e) => e.type === 'disco.knapscen.touchpoints.job-finished') ? mine : undefined;
    }, 20_000);
    const finished = chain.find((e) => e.type === 'disco.knapscen.touchpoints.job-finished')!;
    assert.equal(finished.data?.job, `create-touchpoints-${customer}`);
    assert.equal(finished.data?.status, 'succeeded');
    assert.match(finished.data?.durationMs ?? '', /^\d+$/);
    assert.match(finished.data?.logs ?? '', /touchpoints\.created/, 'the pod’s last log lines');
    assert.ok(
      world.heardFor(customer).every((m) => m.event.type !== 'disco.knapscen.touchpoints.job-finished'),
      'the Job report stays inside Herald',
    );
  });

  it('a save-customer Job that exits non-zero is retried as a new Job, then dead-lettered with its log tail; nothing is published', async () => {
    const registered = sampleRegistration();
    const broken: Registration = {
      ...registered,
      id: 'c0ffee00-0000-4000-8000-000000000001',
      subject: 'c0ffee00-0000-4000-8000-0000000000aa',
      // Its user's e-mail belongs to a user of another customer already: the insert fails, exit 1.
      data: {
        ...registered.data,
        users: [{ ...registered.data.users[0]!, id: 'c0ffee00-0000-4000-8000-0000000000bb' }],
      },
    };
    await world.register(broken);
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
    assert.deepEqual(world.heardFor(broken.subject), [], 'nothing of that customer on NATS');
  });
});
