import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { ConfigError } from '../../src/config/load.js';
import {
  eventually,
  type HeraldProcess,
  spawnHerald,
  startTestHerald,
  type TestHerald,
  tempDir,
} from '../support/herald.js';
import { type FakeKubernetes, startFakeKubernetes, succeedAfter } from '../support/kubernetes/index.js';

const EVIL = '$(id); rm -rf / | `reboot` "quoted"';

const config = (kubeconfig: string) => `
dispatcher: { pollIntervalMs: 100 }
channels:
  cluster:
    kind: job
    mode: kubernetes
    kubernetes: { kubeconfig: ${kubeconfig}, namespace: jobs, logTailLines: 3, cleanup: { ttlSecondsAfterFinished: 3600 } }
triggers:
  resize:
    filter: { exact: { type: image.uploaded } }
    actions:
      - channel: cluster
        manifest:
          apiVersion: batch/v1
          kind: Job
          metadata: { labels: { app: resizer } }
          spec:
            backoffLimit: 2
            template:
              spec:
                restartPolicy: Never
                containers:
                  - name: resize
                    image: "registry.example.com/resizer:1.4"
                    args: ["--image", "{{ event.subject }}", "--note", "{{ event.data.note }}"]
        followUp:
          type: image.resized
          subject: "{{ event.subject }}"
          data:
            status: "{{ result.status }}"
            durationMs: "{{ result.durationMs }}"
            job: "{{ result.jobName }}"
            logs: "{{ result.logs }}"
    delivery: { maxAttempts: 3, backoff: { initialMs: 50, maxMs: 100 } }
  step:
    filter: { exact: { type: step.requested } }
    actions:
      - channel: cluster
        manifest:
          metadata: { name: "step-{{ event.id }}" }
          spec:
            activeDeadlineSeconds: 60
            template: { spec: { restartPolicy: Never, containers: [{ name: step, image: step:1 }] } }
        permanentExitCodes: [3]
    delivery: { maxAttempts: 2, backoff: { initialMs: 50, maxMs: 100 } }
  broken:
    filter: { exact: { type: image.broken } }
    actions:
      - channel: cluster
        manifest:
          spec: { template: { spec: { restartPolicy: Always, containers: [{ name: x, image: y }] } } }
    delivery: { maxAttempts: 3 }
`;

interface ShownDelivery {
  status: string;
  attempts: number;
  lastError: string | null;
  rendered: Record<string, unknown> | null;
}

describe('job channel, kubernetes mode (against a fake of the Jobs API)', () => {
  let k8s: FakeKubernetes;
  let herald: TestHerald;
  const dir = tempDir();
  before(async () => {
    k8s = await startFakeKubernetes({ namespaces: ['default', 'jobs'] });
    herald = await startTestHerald(config(k8s.writeKubeconfig(dir.path)));
  });
  after(async () => {
    await herald.close();
    await k8s.close();
    dir.remove();
  });
  beforeEach(() => k8s.setRunner(null));

  const send = (id: string, type: string, extra: Record<string, unknown> = {}) =>
    herald.post(
      '/events',
      { specversion: '1.0', id, source: 'uploads', type, ...extra },
      { 'content-type': 'application/cloudevents+json' },
    );
  const deliveryOf = async (id: string) => {
    const e = (await (await herald.get(`/api/events/${id}`)).json()) as { deliveries?: ShownDelivery[] };
    return e.deliveries?.[0];
  };
  const finalDelivery = (id: string) =>
    eventually(async () => {
      const d = await deliveryOf(id);
      return d && d.status !== 'pending' ? d : undefined;
    }, 10_000);
  const jobsOfEvent = (id: string) =>
    k8s.jobs('jobs').filter((j) => j.metadata.annotations?.['herald.events/event-id'] === id);
  const oneJob = (id: string, count = 1) =>
    eventually(
      () => jobsOfEvent(id).length === count && jobsOfEvent(id)[count - 1],
      10_000,
      `Job ${count} of ${id}`,
    );
  /** Gives Herald time to act on what it has seen (a watch event, a poll) before asserting it did not. */
  const settle = () => new Promise((r) => setTimeout(r, 400));

  it('is delivered only once the Job succeeds; the followUp carries status, duration, Job name and log lines', async () => {
    await send('img-1', 'image.uploaded', { subject: 'photos/cat.png', data: { note: EVIL } });
    const job = await oneJob('img-1');
    assert.deepEqual(job.spec.template.spec.containers[0]!.args, [
      '--image',
      'photos/cat.png',
      '--note',
      EVIL,
    ]);
    assert.equal((job.metadata.labels as Record<string, string>).app, 'resizer');
    assert.match(job.metadata.name, /^cluster-[0-9a-f]{16}$/);
    assert.equal(job.spec.ttlSecondsAfterFinished, 3600, 'cleanup sets the TTL');

    k8s.cluster.start(job.metadata.name, 'jobs');
    await settle();
    assert.equal((await deliveryOf('img-1'))?.status, 'pending', 'a created or running Job is not delivered');
    const resized = async () =>
      ((await (await herald.get('/api/events?type=image.resized')).json()) as { events: unknown[] }).events;
    assert.equal((await resized()).length, 0, 'no followUp before the Job is done');

    k8s.cluster.log(job.metadata.name, 'line 1\nline 2\nline 3\n', 'jobs');
    k8s.cluster.succeed(job.metadata.name, { logs: 'resized 3 sizes\nwrote photos/cat@2x.png' }, 'jobs');
    const d = await finalDelivery('img-1');
    assert.equal(d.status, 'delivered', d.lastError ?? '');
    assert.equal(d.attempts, 1);
    const [next] = (
      (await (await herald.get('/api/events?type=image.resized')).json()) as {
        events: { event: { subject: string; data: Record<string, string> } }[];
      }
    ).events;
    assert.ok(next, 'the followUp was emitted');
    assert.equal(next.event.subject, 'photos/cat.png');
    assert.equal(next.event.data.status, 'succeeded');
    assert.equal(next.event.data.job, job.metadata.name);
    assert.match(next.event.data.durationMs!, /^\d+$/);
    assert.equal(
      next.event.data.logs,
      'line 3\nresized 3 sizes\nwrote photos/cat@2x.png',
      'the last 3 lines',
    );
  });

  it('a failed Job is retried as a new Job, then dead-lettered with its reason and the tail of its log', async () => {
    await send('step-fail', 'step.requested');
    const first = await oneJob('step-fail');
    assert.equal(first.metadata.name, 'step-step-fail', 'the manifest names the first Job');
    k8s.cluster.fail(first.metadata.name, { logs: 'connecting to db\nERROR: db unreachable' }, 'jobs');
    const second = await oneJob('step-fail', 2);
    assert.equal(second.metadata.name, 'step-step-fail-r2', 'a retry after a failure is a new Job');
    assert.equal((await deliveryOf('step-fail'))?.status, 'pending');
    k8s.cluster.fail(second.metadata.name, { logs: 'connecting to db\nERROR: db still unreachable' }, 'jobs');
    const d = await finalDelivery('step-fail');
    assert.equal(d.status, 'dead');
    assert.equal(d.attempts, 2);
    assert.match(
      d.lastError ?? '',
      /Job step-step-fail-r2 in jobs failed: BackoffLimitExceeded: Job has reached the specified backoff limit/,
    );
    assert.match(d.lastError ?? '', /ERROR: db still unreachable/);
    assert.equal(d.rendered?.status, 'failed');
    assert.equal(jobsOfEvent('step-fail').length, 2, 'one Job per run, none more');
  });

  it('a Job past its activeDeadlineSeconds is retried, and dead-lettered saying DeadlineExceeded', async () => {
    await send('step-slow', 'step.requested');
    const first = await oneJob('step-slow');
    k8s.cluster.exceedDeadline(first.metadata.name, {}, 'jobs');
    const second = await oneJob('step-slow', 2);
    k8s.cluster.exceedDeadline(second.metadata.name, {}, 'jobs');
    const d = await finalDelivery('step-slow');
    assert.equal(d.status, 'dead');
    assert.match(d.lastError ?? '', /DeadlineExceeded: Job was active longer than specified deadline/);
    assert.match(d.lastError ?? '', /no pod of the Job is left/, 'the terminated pod took its logs along');
  });

  it('a pod exit code listed in permanentExitCodes dead-letters at once', async () => {
    await send('step-bad', 'step.requested');
    const job = await oneJob('step-bad');
    k8s.cluster.fail(job.metadata.name, { logs: 'customer has no users', exitCode: 3 }, 'jobs');
    const d = await finalDelivery('step-bad');
    assert.equal(d.status, 'dead');
    assert.equal(d.attempts, 1);
    assert.match(d.lastError ?? '', /\(exit 3\)/);
  });

  it('a dropped watch is resumed, and one the server no longer holds (410 Gone) is listed again', async () => {
    await send('step-watch', 'step.requested');
    const job = await oneJob('step-watch');
    await eventually(() => k8s.openWatches > 0, 5000, 'a watch on the Job');
    const watchesBefore = k8s.watchCalls;
    k8s.cluster.start(job.metadata.name, 'jobs');
    k8s.dropWatches();
    await eventually(() => k8s.watchCalls > watchesBefore && k8s.openWatches > 0, 5000, 'the watch resumed');
    assert.equal((await deliveryOf('step-watch'))?.status, 'pending');

    // Dropped again, and before Herald reconnects the Job finishes and the history is compacted:
    // the resumed watch is answered 410 Gone, and only a fresh list shows the Job succeeded.
    const expiredBefore = k8s.expiredWatches;
    k8s.bookmark();
    k8s.dropWatches();
    k8s.cluster.succeed(job.metadata.name, { logs: 'ok' }, 'jobs');
    k8s.cluster.compact();
    const d = await finalDelivery('step-watch');
    assert.equal(d.status, 'delivered', d.lastError ?? '');
    assert.equal(d.attempts, 1, 'reconnecting is not a new attempt');
    assert.equal(k8s.expiredWatches, expiredBefore + 1, 'the resumed watch met 410 Gone');
    assert.equal(jobsOfEvent('step-watch').length, 1);
  });

  it('a 500 is retried, and a Job whose create answer was lost is found and waited for, not duplicated', async () => {
    k8s.setRunner(succeedAfter(50));
    k8s.failNext(500);
    k8s.dropAnswerNext();
    await send('img-2', 'image.uploaded', { subject: 'photos/dog.png', data: { note: 'x' } });
    const d = await finalDelivery('img-2');
    assert.equal(d.status, 'delivered', d.lastError ?? '');
    assert.equal(d.attempts, 3, '500, then a lost answer, then the Job found and waited for');
    assert.equal(jobsOfEvent('img-2').length, 1, 'exactly one Job for the delivery');
  });

  it('a Job the API rejects as invalid goes to the DLQ with Kubernetes’ reason', async () => {
    await send('img-3', 'image.broken');
    const d = await finalDelivery('img-3');
    assert.equal(d.status, 'dead');
    assert.equal(d.attempts, 1, 'a 422 is permanent');
    assert.match(d.lastError ?? '', /422 .*Invalid: .*restartPolicy: Unsupported value: "Always"/);
  });
});

describe('job channel, kubernetes mode: a Herald restart mid-Job', () => {
  it('a Herald killed while its Job runs is replaced by one that finds the Job and waits for it', async () => {
    const k8s = await startFakeKubernetes();
    const dir = tempDir('herald-k8s-restart-');
    const file = join(dir.path, 'herald.yaml');
    writeFileSync(
      file,
      `
dispatcher: { leaseMs: 1500, pollIntervalMs: 100 }
channels:
  cluster: { kind: job, mode: kubernetes, kubernetes: { kubeconfig: ${k8s.writeKubeconfig(dir.path)} } }
triggers:
  step:
    actions:
      - channel: cluster
        manifest:
          metadata: { name: "step-{{ event.id }}" }
          spec: { template: { spec: { restartPolicy: Never, containers: [{ name: s, image: s:1 }] } } }
    delivery: { maxAttempts: 5, backoff: { initialMs: 50, maxMs: 100 } }
`,
    );
    const args = ['--config', file, '--data', join(dir.path, 'data'), '--port', '0'];
    let second: HeraldProcess | null = null;
    const first = await spawnHerald(args);
    try {
      const posted = await fetch(`${first.url}/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents+json' },
        body: JSON.stringify({ specversion: '1.0', id: 'r1', source: 'restart', type: 'step.requested' }),
      });
      assert.equal(posted.status, 202);
      await eventually(() => k8s.jobs().length === 1 && k8s.openWatches > 0, 15_000, 'the Job and its watch');
      k8s.cluster.start('step-r1');
      await first.kill('SIGKILL');

      second = await spawnHerald(args);
      // The dead process's lease runs out (1.5 s); the new one takes the delivery and watches the Job.
      await eventually(() => k8s.openWatches > 0, 15_000, 'the restarted Herald watching the Job');
      const createsBefore = k8s.createCalls;
      k8s.cluster.succeed('step-r1', { logs: 'done' });
      const d = await eventually(
        async () => {
          const e = (await (await fetch(`${second!.url}/api/events/r1`)).json()) as {
            deliveries: ShownDelivery[];
          };
          const found = e.deliveries[0];
          return found && found.status !== 'pending' ? found : undefined;
        },
        15_000,
        'the delivery to finish',
      );
      assert.equal(d.status, 'delivered', d.lastError ?? '');
      assert.equal(k8s.jobs().length, 1, 'no second Job');
      assert.equal(k8s.createCalls, createsBefore, 'the restarted Herald created nothing');
      assert.equal(k8s.createCalls, 1);
    } finally {
      await first.kill('SIGKILL');
      await second?.kill('SIGKILL');
      await k8s.close();
      dir.remove();
    }
  });
});

describe('job channel, kubernetes mode: configuration', () => {
  it('an action without a manifest, or with a command, is a config error naming the action', async () => {
    const k8s = await startFakeKubernetes();
    const dir = tempDir();
    try {
      const kubeconfig = k8s.writeKubeconfig(dir.path);
      await assert.rejects(
        startTestHerald(`
channels:
  cluster: { kind: job, mode: kubernetes, kubernetes: { kubeconfig: ${kubeconfig} } }
triggers:
  t:
    actions: [{ channel: cluster, command: /bin/true }]
`),
        (err: unknown) =>
          err instanceof ConfigError &&
          /triggers\.t\.actions\[0\].*needs a `manifest`/s.test(String(err.message)),
      );
    } finally {
      await k8s.close();
      dir.remove();
    }
  });

  it('a missing kubeconfig file is a clear start-up error', async () => {
    await assert.rejects(
      startTestHerald(`
channels:
  cluster: { kind: job, mode: kubernetes, kubernetes: { kubeconfig: /nonexistent/kubeconfig } }
triggers:
  t: { actions: [{ channel: cluster, manifest: { spec: {} } }] }
`),
      /could not load Kubernetes credentials from \/nonexistent\/kubeconfig/,
    );
  });
});
