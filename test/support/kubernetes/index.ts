import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

/**
 * A stand-in for the Kubernetes API server's batch/v1 Jobs endpoints, for tests: bearer-token
 * auth, the `Status` error objects the real server answers with (401 Unauthorized, 404 NotFound,
 * 409 AlreadyExists, 422 Invalid), and the validation a Job must pass (DNS-1123 name, at least one
 * container with a name and image, restartPolicy Never or OnFailure). No scheduler: Jobs are stored.
 */
export interface FakeJob {
  apiVersion: 'batch/v1';
  kind: 'Job';
  metadata: { name: string; namespace: string; uid: string; annotations?: Record<string, string> } & Record<
    string,
    unknown
  >;
  spec: {
    template: {
      spec: {
        containers: { name: string; image: string; args?: string[]; command?: string[] }[];
        restartPolicy: string;
      };
    };
  } & Record<string, unknown>;
}

export interface FakeKubernetes {
  url: string;
  token: string;
  /** A kubeconfig file pointing at this server, written into `dir`. */
  writeKubeconfig(dir: string): string;
  jobs(namespace?: string): FakeJob[];
  /** Every POST to the Jobs endpoint, including rejected ones. */
  createCalls: number;
  /** The next create(s) answer this HTTP status with a Status body. */
  failNext(status: number, times?: number): void;
  /** The next create stores the Job, then drops the connection before answering. */
  dropAnswerNext(): void;
  /** The next create stores the Job, then never answers (until the client goes). */
  stallNext(): void;
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

export async function startFakeKubernetes(
  options: { token?: string; namespaces?: string[] } = {},
): Promise<FakeKubernetes> {
  const token = options.token ?? 'k8s-test-token';
  const namespaces = new Set(options.namespaces ?? ['default']);
  const stored = new Map<string, FakeJob>(); // namespace/name → job
  const faults: number[] = [];
  let dropAnswer = false;
  let stall = false;
  let open = 0;
  let createCalls = 0;

  const server = createServer((req, res) => {
    open++;
    res.on('close', () => open--);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (code: number, body: unknown) => {
        res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      };
      if (req.headers.authorization !== `Bearer ${token}`) {
        return send(401, status(401, 'Unauthorized', 'Unauthorized'));
      }
      const url = new URL(req.url ?? '/', 'http://localhost');
      const match = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs(?:\/([^/]+))?$/.exec(url.pathname);
      if (!match)
        return send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
      const namespace = decodeURIComponent(match[1]!);
      const name = match[2] ? decodeURIComponent(match[2]) : undefined;
      if (!namespaces.has(namespace)) {
        if (req.method === 'POST') createCalls++;
        return send(
          404,
          status(404, 'NotFound', `namespaces "${namespace}" not found`, {
            name: namespace,
            kind: 'namespaces',
          }),
        );
      }
      if (req.method === 'GET' && name) {
        const job = stored.get(`${namespace}/${name}`);
        return job
          ? send(200, job)
          : send(
              404,
              status(404, 'NotFound', `jobs.batch "${name}" not found`, {
                name,
                group: 'batch',
                kind: 'jobs',
              }),
            );
      }
      if (req.method === 'GET') {
        const items = [...stored.values()].filter((j) => j.metadata.namespace === namespace);
        return send(200, {
          kind: 'JobList',
          apiVersion: 'batch/v1',
          metadata: { resourceVersion: '1' },
          items,
        });
      }
      if (req.method !== 'POST' || name)
        return send(405, status(405, 'MethodNotAllowed', 'the server does not allow this method'));
      createCalls++;
      const fault = faults.shift();
      if (fault)
        return send(
          fault,
          status(fault, fault >= 500 ? 'InternalError' : 'TooManyRequests', 'injected fault'),
        );
      let job: Record<string, unknown>;
      try {
        job = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        return send(
          400,
          status(
            400,
            'BadRequest',
            `the body of the request was in an unknown format: ${(err as Error).message}`,
          ),
        );
      }
      const problems = validateJob(job);
      const jobNameGiven = String((job.metadata as { name?: unknown } | undefined)?.name ?? '');
      if (problems.length > 0) {
        return send(
          422,
          status(422, 'Invalid', `Job.batch "${jobNameGiven}" is invalid: ${problems.join(', ')}`, {
            name: jobNameGiven,
            group: 'batch',
            kind: 'Job',
          }),
        );
      }
      const key = `${namespace}/${jobNameGiven}`;
      if (stored.has(key)) {
        return send(
          409,
          status(409, 'AlreadyExists', `jobs.batch "${jobNameGiven}" already exists`, {
            name: jobNameGiven,
            group: 'batch',
            kind: 'jobs',
          }),
        );
      }
      const created = {
        ...job,
        metadata: {
          ...(job.metadata as object),
          namespace,
          uid: randomUUID(),
          resourceVersion: String(stored.size + 1),
          creationTimestamp: new Date().toISOString(),
        },
        status: {},
      } as unknown as FakeJob;
      stored.set(key, created);
      if (dropAnswer) {
        dropAnswer = false;
        return req.socket.destroy();
      }
      if (stall) {
        stall = false;
        return;
      }
      send(201, created);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    token,
    get createCalls() {
      return createCalls;
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
    jobs: (namespace = 'default') => [...stored.values()].filter((j) => j.metadata.namespace === namespace),
    dropAnswerNext() {
      dropAnswer = true;
    },
    stallNext() {
      stall = true;
    },
    get open() {
      return open;
    },
    failNext(code, times = 1) {
      for (let i = 0; i < times; i++) faults.push(code);
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
