import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../src/config/load.js';
import { eventually, startTestHerald, type TestHerald, tempDir } from '../support/herald.js';
import { type FakeKubernetes, startFakeKubernetes } from '../support/kubernetes/index.js';

const EVIL = '$(id); rm -rf / | `reboot` "quoted"';

const config = (kubeconfig: string) => `
channels:
  cluster:
    kind: job
    mode: kubernetes
    kubernetes: { kubeconfig: ${kubeconfig}, namespace: jobs }
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
    delivery: { maxAttempts: 3, backoff: { initialMs: 50, maxMs: 100 } }
  broken:
    filter: { exact: { type: image.broken } }
    actions:
      - channel: cluster
        manifest:
          spec: { template: { spec: { restartPolicy: Always, containers: [{ name: x, image: y }] } } }
    delivery: { maxAttempts: 3 }
`;

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

  const send = (id: string, type: string, extra: Record<string, unknown> = {}) =>
    herald.post(
      '/events',
      { specversion: '1.0', id, source: 'uploads', type, ...extra },
      { 'content-type': 'application/cloudevents+json' },
    );
  const finalDelivery = (id: string) =>
    eventually(async () => {
      const e = (await (await herald.get(`/api/events/${id}`)).json()) as {
        deliveries: { status: string; attempts: number; lastError: string | null }[];
      };
      const d = e.deliveries?.[0];
      return d && d.status !== 'pending' ? d : undefined;
    });

  it('creates a Job rendered from the event, with event data passed verbatim as arguments', async () => {
    await send('img-1', 'image.uploaded', { subject: 'photos/cat.png', data: { note: EVIL } });
    const d = await finalDelivery('img-1');
    assert.equal(d.status, 'delivered', d.lastError ?? '');
    const [job] = k8s.jobs('jobs');
    assert.ok(job, 'a Job exists in the configured namespace');
    assert.deepEqual(job.spec.template.spec.containers[0]!.args, [
      '--image',
      'photos/cat.png',
      '--note',
      EVIL,
    ]);
    assert.equal(job.metadata.labels && (job.metadata.labels as Record<string, string>).app, 'resizer');
    assert.match(job.metadata.name, /^cluster-[0-9a-f]{16}$/);
    assert.equal(job.metadata.annotations?.['herald.events/event-id'], 'img-1');
  });

  it('a 500 is retried, and a Job created whose answer was lost counts as created, not duplicated', async () => {
    k8s.failNext(500);
    k8s.dropAnswerNext();
    const before = k8s.jobs('jobs').length;
    await send('img-2', 'image.uploaded', { subject: 'photos/dog.png', data: { note: 'x' } });
    const d = await finalDelivery('img-2');
    assert.equal(d.status, 'delivered', d.lastError ?? '');
    assert.equal(d.attempts, 3, '500, then a lost answer, then 409 AlreadyExists');
    assert.equal(k8s.jobs('jobs').length, before + 1, 'exactly one Job for the delivery');
  });

  it('a Job the API rejects as invalid goes to the DLQ with Kubernetes’ reason', async () => {
    await send('img-3', 'image.broken');
    const d = await finalDelivery('img-3');
    assert.equal(d.status, 'dead');
    assert.equal(d.attempts, 1, 'a 422 is permanent');
    assert.match(d.lastError ?? '', /422 .*Invalid: .*restartPolicy: Unsupported value: "Always"/);
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
