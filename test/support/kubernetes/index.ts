import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { FakeCluster, type FakeJob, matchesFields, matchesSelector } from './cluster.js';

/**
 * A stand-in for the Kubernetes API server, for tests: batch/v1 Jobs (create, read, list, watch)
 * and the core/v1 pods a Job runs (list by the `job-name` / `batch.kubernetes.io/job-name` label,
 * read their log). Bearer-token auth, the `Status` error objects the real server answers with
 * (401 Unauthorized, 404 NotFound, 409 AlreadyExists, 422 Invalid), and the validation a Job must
 * pass (DNS-1123 name, at least one container with a name and image, restartPolicy Never or
 * OnFailure). Watches stream newline-delimited `{type, object}` events from a resourceVersion,
 * answer a resourceVersion the history no longer holds with an ERROR event carrying a 410 Expired
 * Status, and send BOOKMARKs when asked to. Jobs do not run by themselves: the test drives them
 * (`cluster.start/succeed/fail/exceedDeadline`) or sets a `runner` that does, for every Job created.
 */
export type { FakeJob } from './cluster.js';

/** Runs a created Job, as the Job controller and kubelet would: drives `cluster` to an end. */
export type JobRunner = (job: FakeJob, cluster: FakeCluster) => void | Promise<void>;

export interface FakeKubernetes {
  url: string;
  token: string;
  /** The Jobs, pods and their history; drive Jobs through it. */
  cluster: FakeCluster;
  /** A kubeconfig file pointing at this server, written into `dir`. */
  writeKubeconfig(dir: string): string;
  jobs(namespace?: string): FakeJob[];
  /** Every POST to the Jobs endpoint, including rejected ones. */
  createCalls: number;
  /** Watch requests received, including resumed ones. */
  watchCalls: number;
  /** Watches answered with 410 Gone (their resourceVersion was compacted away). */
  expiredWatches: number;
  /** Watch streams open now. */
  readonly openWatches: number;
  /** What runs each Job created from now on (null: nothing does; the test drives them). */
  setRunner(runner: JobRunner | null): void;
  /** The next create(s) answer this HTTP status with a Status body. */
  failNext(status: number, times?: number): void;
  /** The next create stores the Job, then drops the connection before answering. */
  dropAnswerNext(): void;
  /** The next create stores the Job, then never answers (until the client goes). */
  stallNext(): void;
  /** Ends every open watch stream, as an API server restart or a load balancer's idle timeout does. */
  dropWatches(): void;
  /** Sends a BOOKMARK with the current resourceVersion to watches that asked for them. */
  bookmark(): void;
  /** Requests not answered yet. */
  readonly open: number;
  close(): Promise<void>;
}

const DNS_1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const status = (code: number, reason: string, message: string, details?: Record<string, unknown>) => ({
  kind: 'Status',
  apiVersion: 'v1',
  metadata: {},
  status: 'Failure',
  message,
  reason,
  ...(details ? { details } : {}),
  code,
});

function validateJob(job: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const meta = (job.metadata ?? {}) as { name?: unknown };
  const name = String(meta.name ?? '');
  if (job.apiVersion !== 'batch/v1') problems.push(`apiVersion: Invalid value: "${String(job.apiVersion)}"`);
  if (job.kind !== 'Job') problems.push(`kind: Invalid value: "${String(job.kind)}"`);
  if (!name) problems.push('metadata.name: Required value: name or generateName is required');
  else if (name.length > 63 || !DNS_1123.test(name))
    problems.push(
      `metadata.name: Invalid value: "${name}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'`,
    );
  const podSpec = (job.spec as { template?: { spec?: Record<string, unknown> } } | undefined)?.template?.spec;
  const containers = podSpec?.containers as { name?: unknown; image?: unknown }[] | undefined;
  if (!Array.isArray(containers) || containers.length === 0)
    problems.push('spec.template.spec.containers: Required value');
  else
    containers.forEach((c, i) => {
      if (!c.name) problems.push(`spec.template.spec.containers[${i}].name: Required value`);
      if (!c.image) problems.push(`spec.template.spec.containers[${i}].image: Required value`);
    });
  const restart = podSpec?.restartPolicy;
  if (restart !== 'Never' && restart !== 'OnFailure')
    problems.push(
      `spec.template.spec.restartPolicy: Unsupported value: "${String(restart ?? '')}": supported values: "OnFailure", "Never"`,
    );
  return problems;
}

const notFound = (kind: string, name: string, group?: string) =>
  status(404, 'NotFound', `${group ? `${kind}.${group}` : kind} "${name}" not found`, {
    name,
    ...(group ? { group } : {}),
    kind,
  });

export async function startFakeKubernetes(
  options: { token?: string; namespaces?: string[]; runner?: JobRunner } = {},
): Promise<FakeKubernetes> {
  const token = options.token ?? 'k8s-test-token';
  const namespaces = new Set(options.namespaces ?? ['default']);
  const cluster = new FakeCluster();
  let runner: JobRunner | null = options.runner ?? null;
  const faults: number[] = [];
  let dropAnswer = false;
  let stall = false;
  let open = 0;
  let createCalls = 0;
  let watchCalls = 0;
  let expiredWatches = 0;
  const watches = new Set<{ res: ServerResponse; bookmarks: boolean; namespace: string }>();

  const send = (res: ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };

  /** `GET …/jobs?watch=true`: newline-delimited WatchEvents from `resourceVersion` on. */
  const watch = (res: ServerResponse, namespace: string, url: URL) => {
    watchCalls++;
    const labels = url.searchParams.get('labelSelector');
    const fields = url.searchParams.get('fieldSelector');
    const matches = (job: FakeJob) =>
      job.metadata.namespace === namespace &&
      matchesSelector(job.metadata.labels, labels) &&
      matchesFields(job, fields);
    const write = (type: string, object: unknown) => res.write(`${JSON.stringify({ type, object })}\n`);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const from = url.searchParams.get('resourceVersion');
    if (from && from !== '0' && cluster.isExpired(Number(from))) {
      expiredWatches++;
      write('ERROR', status(410, 'Expired', `too old resource version: ${from} (${cluster.currentVersion})`));
      return res.end();
    }
    if (!from || from === '0') {
      // No resourceVersion: the current state first, as synthetic ADDED events.
      for (const job of cluster.jobs.values()) if (matches(job)) write('ADDED', job);
    } else {
      for (const change of cluster.changesSince(Number(from)))
        if (matches(change.job)) write(change.type, change.job);
    }
    const entry = { res, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true', namespace };
    watches.add(entry);
    const stop = cluster.onChange((change) => {
      if (matches(change.job)) write(change.type, change.job);
    });
    const end = () => {
      stop();
      watches.delete(entry);
    };
    res.on('close', end);
  };

  const jobs = (
    req: IncomingMessage,
    res: ServerResponse,
    namespace: string,
    name: string | undefined,
    url: URL,
    body: Buffer,
  ) => {
    if (req.method === 'GET' && name) {
      const job = cluster.jobs.get(`${namespace}/${name}`);
      return job ? send(res, 200, job) : send(res, 404, notFound('jobs', name, 'batch'));
    }
    if (req.method === 'GET' && url.searchParams.get('watch') === 'true') return watch(res, namespace, url);
    if (req.method === 'GET') {
      const labels = url.searchParams.get('labelSelector');
      const fields = url.searchParams.get('fieldSelector');
      const items = [...cluster.jobs.values()].filter(
        (j) =>
          j.metadata.namespace === namespace &&
          matchesSelector(j.metadata.labels, labels) &&
          matchesFields(j, fields),
      );
      const limit = Number(url.searchParams.get('limit') ?? 0);
      return send(res, 200, {
        kind: 'JobList',
        apiVersion: 'batch/v1',
        metadata: { resourceVersion: String(cluster.currentVersion) },
        items: limit > 0 ? items.slice(0, limit) : items,
      });
    }
    if (req.method !== 'POST' || name)
      return send(res, 405, status(405, 'MethodNotAllowed', 'the server does not allow this method'));
    createCalls++;
    const fault = faults.shift();
    if (fault)
      return send(
        res,
        fault,
        status(
          fault,
          fault >= 500 ? 'InternalError' : fault === 429 ? 'TooManyRequests' : 'Forbidden',
          'injected fault',
        ),
      );
    let job: Record<string, unknown>;
    try {
      job = JSON.parse(body.toString('utf8'));
    } catch (err) {
      return send(
        res,
        400,
        status(
          400,
          'BadRequest',
          `the body of the request was in an unknown format: ${(err as Error).message}`,
        ),
      );
    }
    const problems = validateJob(job);
    const given = String((job.metadata as { name?: unknown } | undefined)?.name ?? '');
    if (problems.length > 0) {
      return send(
        res,
        422,
        status(422, 'Invalid', `Job.batch "${given}" is invalid: ${problems.join(', ')}`, {
          name: given,
          group: 'batch',
          kind: 'Job',
        }),
      );
    }
    if (cluster.jobs.has(`${namespace}/${given}`)) {
      return send(
        res,
        409,
        status(409, 'AlreadyExists', `jobs.batch "${given}" already exists`, {
          name: given,
          group: 'batch',
          kind: 'jobs',
        }),
      );
    }
    const created = cluster.create(namespace, job);
    if (runner) {
      const run = runner;
      // After the answer, as the controller acts on a Job only once it is stored.
      setImmediate(() => void Promise.resolve(run(created, cluster)).catch(() => undefined));
    }
    if (dropAnswer) {
      dropAnswer = false;
      return req.socket.destroy();
    }
    if (stall) {
      stall = false;
      return;
    }
    send(res, 201, created);
  };

  const pods = (res: ServerResponse, namespace: string, name: string | undefined, log: boolean, url: URL) => {
    if (!name) {
      const selector = url.searchParams.get('labelSelector');
      return send(res, 200, {
        kind: 'PodList',
        apiVersion: 'v1',
        metadata: { resourceVersion: String(cluster.currentVersion) },
        items: [...cluster.pods.values()]
          .filter((p) => p.metadata.namespace === namespace && matchesSelector(p.metadata.labels, selector))
          .map(({ log: _log, ...pod }) => pod),
      });
    }
    const pod = cluster.pods.get(`${namespace}/${name}`);
    if (!pod) return send(res, 404, notFound('pods', name));
    if (!log) {
      const { log: _log, ...shown } = pod;
      return send(res, 200, shown);
    }
    let text = pod.log;
    const tailLines = url.searchParams.get('tailLines');
    if (tailLines !== null) {
      const lines = text.split('\n');
      const last = lines.at(-1) === '' ? lines.slice(0, -1) : lines;
      text = last.slice(Math.max(0, last.length - Number(tailLines))).join('\n') + (last.length ? '\n' : '');
    }
    const limitBytes = url.searchParams.get('limitBytes');
    if (limitBytes !== null) text = Buffer.from(text).subarray(0, Number(limitBytes)).toString('utf8');
    res.writeHead(200, { 'content-type': 'text/plain' }).end(text);
  };

  const server = createServer((req, res) => {
    open++;
    res.on('close', () => open--);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.headers.authorization !== `Bearer ${token}`) {
        return send(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
      }
      const url = new URL(req.url ?? '/', 'http://localhost');
      const jobPath = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs(?:\/([^/]+))?$/.exec(url.pathname);
      const podPath = /^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+)(\/log)?)?$/.exec(url.pathname);
      const match = jobPath ?? podPath;
      if (!match)
        return send(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
      const namespace = decodeURIComponent(match[1]!);
      const name = match[2] ? decodeURIComponent(match[2]) : undefined;
      if (!namespaces.has(namespace)) {
        if (jobPath && req.method === 'POST') createCalls++;
        return send(
          res,
          404,
          status(404, 'NotFound', `namespaces "${namespace}" not found`, {
            name: namespace,
            kind: 'namespaces',
          }),
        );
      }
      if (jobPath) return jobs(req, res, namespace, name, url, Buffer.concat(chunks));
      if (req.method !== 'GET')
        return send(res, 405, status(405, 'MethodNotAllowed', 'the server does not allow this method'));
      return pods(res, namespace, name, podPath?.[3] !== undefined, url);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    token,
    cluster,
    get createCalls() {
      return createCalls;
    },
    get watchCalls() {
      return watchCalls;
    },
    get expiredWatches() {
      return expiredWatches;
    },
    get openWatches() {
      return watches.size;
    },
    writeKubeconfig(dir) {
      const file = join(dir, 'kubeconfig.yaml');
      writeFileSync(
        file,
        [
          'apiVersion: v1',
          'kind: Config',
          'clusters:',
          `- name: fake\n  cluster:\n    server: ${url}\n    insecure-skip-tls-verify: true`,
          'users:',
          `- name: herald\n  user:\n    token: ${token}`,
          'contexts:',
          '- name: fake\n  context:\n    cluster: fake\n    user: herald',
          'current-context: fake',
          '',
        ].join('\n'),
      );
      return file;
    },
    jobs: (namespace = 'default') =>
      [...cluster.jobs.values()].filter((j) => j.metadata.namespace === namespace),
    setRunner(next) {
      runner = next;
    },
    dropAnswerNext() {
      dropAnswer = true;
    },
    stallNext() {
      stall = true;
    },
    dropWatches() {
      for (const w of watches) w.res.destroy();
      watches.clear();
    },
    bookmark() {
      for (const w of watches)
        if (w.bookmarks)
          w.res.write(
            `${JSON.stringify({
              type: 'BOOKMARK',
              object: {
                kind: 'Job',
                apiVersion: 'batch/v1',
                metadata: { resourceVersion: String(cluster.currentVersion) },
              },
            })}\n`,
          );
    },
    get open() {
      return open;
    },
    failNext(code, times = 1) {
      for (let i = 0; i < times; i++) faults.push(code);
    },
    close: () =>
      new Promise((r) => {
        cluster.close();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A runner for tests that only need Jobs to finish: each succeeds after `afterMs`, printing `logs`. */
export function succeedAfter(afterMs: number, logs = 'done\n'): JobRunner {
  return (job, cluster) => {
    cluster.start(job.metadata.name, job.metadata.namespace);
    const timer = setTimeout(() => {
      if (cluster.jobs.get(`${job.metadata.namespace}/${job.metadata.name}`))
        cluster.succeed(job.metadata.name, { logs }, job.metadata.namespace);
    }, afterMs);
    timer.unref();
  };
}
