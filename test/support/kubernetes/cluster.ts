import { randomBytes, randomUUID } from 'node:crypto';

/**
 * The state behind the fake Kubernetes API: Jobs, the pods a Job runs and their logs, the
 * resourceVersion every change advances, and the change history watches resume from. Shapes follow
 * the Kubernetes API reference (batch/v1 Job, core/v1 Pod, meta/v1 WatchEvent and Status). There
 * is no scheduler: a test drives each Job (start, succeed, fail, exceed its deadline), or lets a
 * runner do it for every Job created.
 */

export interface JobCondition {
  type: 'Complete' | 'Failed' | 'SuccessCriteriaMet' | 'FailureTarget' | 'Suspended';
  status: 'True' | 'False';
  reason: string;
  message: string;
  lastProbeTime: string;
  lastTransitionTime: string;
}

export interface FakeJob {
  apiVersion: 'batch/v1';
  kind: 'Job';
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    creationTimestamp: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  } & Record<string, unknown>;
  spec: {
    activeDeadlineSeconds?: number;
    backoffLimit?: number;
    ttlSecondsAfterFinished?: number;
    template: {
      spec: {
        containers: {
          name: string;
          image: string;
          args?: string[];
          command?: string[];
          env?: { name: string; value?: string }[];
        }[];
        restartPolicy: string;
      };
    };
  } & Record<string, unknown>;
  status: {
    active?: number;
    succeeded?: number;
    failed?: number;
    startTime?: string;
    completionTime?: string;
    conditions?: JobCondition[];
  };
}

export interface FakePod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    creationTimestamp: string;
    labels: Record<string, string>;
    ownerReferences: { apiVersion: string; kind: string; name: string; uid: string; controller: boolean }[];
  };
  status: {
    phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
    containerStatuses?: {
      name: string;
      state: { running?: { startedAt: string }; terminated?: { exitCode: number; reason: string } };
    }[];
  };
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface Change {
  resourceVersion: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  job: FakeJob;
}

/** How a Job ends: its pod's exit code and the log lines it printed. */
export interface Ending {
  logs?: string;
  exitCode?: number;
}

const now = () => new Date().toISOString();

export class FakeCluster {
  private resourceVersion = 1;
  /** Changes older than this are gone from the watch cache: resuming before it is 410 Gone. */
  private oldestKept = 1;
  readonly jobs = new Map<string, FakeJob>(); // namespace/name
  readonly pods = new Map<string, FakePod & { log: string }>(); // namespace/name
  private readonly history: Change[] = [];
  private readonly listeners = new Set<(change: Change) => void>();
  private readonly timers = new Set<NodeJS.Timeout>();

  get currentVersion(): number {
    return this.resourceVersion;
  }

  /** Whether a watch may resume from `version`, or must re-list (410 Gone). */
  isExpired(version: number): boolean {
    return version < this.oldestKept - 1;
  }

  changesSince(version: number): Change[] {
    return this.history.filter((c) => c.resourceVersion > version);
  }

  onChange(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Forgets the history up to now: a watch resuming from an older resourceVersion gets 410 Gone. */
  compact(): void {
    this.oldestKept = this.resourceVersion + 1;
    this.history.length = 0;
  }

  private record(type: Change['type'], job: FakeJob): void {
    this.resourceVersion++;
    job.metadata.resourceVersion = String(this.resourceVersion);
    const change = { resourceVersion: this.resourceVersion, type, job: structuredClone(job) };
    this.history.push(change);
    for (const listener of this.listeners) listener(change);
  }

  create(namespace: string, body: Record<string, unknown>): FakeJob {
    const job = {
      ...body,
      metadata: {
        ...(body.metadata as object),
        namespace,
        uid: randomUUID(),
        creationTimestamp: now(),
        resourceVersion: '',
      },
      status: {},
    } as unknown as FakeJob;
    this.jobs.set(`${namespace}/${job.metadata.name}`, job);
    this.record('ADDED', job);
    return job;
  }

  job(name: string, namespace = 'default'): FakeJob {
    const job = this.jobs.get(`${namespace}/${name}`);
    if (!job) throw new Error(`the fake cluster has no Job ${namespace}/${name}`);
    return job;
  }

  podsOf(name: string, namespace = 'default'): (FakePod & { log: string })[] {
    return [...this.pods.values()].filter(
      (p) => p.metadata.namespace === namespace && p.metadata.labels['job-name'] === name,
    );
  }

  /** The Job controller starts a pod: the Job counts it active and gets its startTime. */
  start(name: string, namespace = 'default'): FakePod {
    const job = this.job(name, namespace);
    const podName = `${name.slice(0, 57)}-${randomBytes(3).toString('hex').slice(0, 5)}`;
    const pod: FakePod & { log: string } = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: podName,
        namespace,
        uid: randomUUID(),
        resourceVersion: String(this.resourceVersion),
        creationTimestamp: now(),
        labels: {
          'batch.kubernetes.io/controller-uid': job.metadata.uid,
          'batch.kubernetes.io/job-name': name,
          'controller-uid': job.metadata.uid,
          'job-name': name,
        },
        ownerReferences: [
          { apiVersion: 'batch/v1', kind: 'Job', name, uid: job.metadata.uid, controller: true },
        ],
      },
      status: {
        phase: 'Running',
        containerStatuses: job.spec.template.spec.containers.map((c) => ({
          name: c.name,
          state: { running: { startedAt: now() } },
        })),
      },
      log: '',
    };
    this.pods.set(`${namespace}/${podName}`, pod);
    job.status = {
      ...job.status,
      active: (job.status.active ?? 0) + 1,
      startTime: job.status.startTime ?? now(),
    };
    this.record('MODIFIED', job);
    return pod;
  }

  /** The Job's pod prints `text` (lines end with a newline). */
  log(name: string, text: string, namespace = 'default'): void {
    const pod = this.runningPod(name, namespace);
    pod.log += text;
  }

  private runningPod(name: string, namespace: string): FakePod & { log: string } {
    const pods = this.podsOf(name, namespace).filter((p) => p.status.phase === 'Running');
    if (pods.length === 0) this.start(name, namespace);
    return this.podsOf(name, namespace).find((p) => p.status.phase === 'Running')!;
  }

  private endPod(pod: FakePod & { log: string }, ending: Ending, succeeded: boolean): void {
    if (ending.logs) pod.log += ending.logs.endsWith('\n') ? ending.logs : `${ending.logs}\n`;
    const exitCode = ending.exitCode ?? (succeeded ? 0 : 1);
    pod.status = {
      phase: succeeded ? 'Succeeded' : 'Failed',
      containerStatuses: (pod.status.containerStatuses ?? []).map((c) => ({
        name: c.name,
        state: { terminated: { exitCode, reason: succeeded ? 'Completed' : 'Error' } },
      })),
    };
  }

  /** The pod exits 0: the Job gets SuccessCriteriaMet and Complete, as since Kubernetes 1.31. */
  succeed(name: string, ending: Ending = {}, namespace = 'default'): void {
    const job = this.job(name, namespace);
    this.endPod(this.runningPod(name, namespace), ending, true);
    const message = 'Reached expected number of succeeded pods';
    job.status = {
      ...job.status,
      active: undefined,
      succeeded: (job.status.succeeded ?? 0) + 1,
      completionTime: now(),
      conditions: [
        this.condition('SuccessCriteriaMet', 'CompletionsReached', message),
        this.condition('Complete', 'CompletionsReached', message),
      ],
    };
    delete job.status.active;
    this.record('MODIFIED', job);
    this.expireLater(job);
  }

  /**
   * The pod exits non-zero and the Job gives up: `BackoffLimitExceeded` by default, the reason
   * the Job controller gives once `backoffLimit` pods have failed.
   */
  fail(
    name: string,
    ending: Ending & { reason?: string; message?: string } = {},
    namespace = 'default',
  ): void {
    const job = this.job(name, namespace);
    this.endPod(this.runningPod(name, namespace), ending, false);
    this.finishFailed(
      job,
      ending.reason ?? 'BackoffLimitExceeded',
      ending.message ?? 'Job has reached the specified backoff limit',
    );
  }

  /**
   * `activeDeadlineSeconds` passed: the controller terminates the running pods (they are gone,
   * and their logs with them) and fails the Job with DeadlineExceeded.
   */
  exceedDeadline(name: string, ending: Ending = {}, namespace = 'default'): void {
    const job = this.job(name, namespace);
    const pod = this.runningPod(name, namespace);
    if (ending.logs) pod.log += ending.logs;
    this.pods.delete(`${namespace}/${pod.metadata.name}`);
    this.finishFailed(job, 'DeadlineExceeded', 'Job was active longer than specified deadline');
  }

  private finishFailed(job: FakeJob, reason: string, message: string): void {
    job.status = {
      ...job.status,
      failed: (job.status.failed ?? 0) + 1,
      conditions: [
        this.condition('FailureTarget', reason, message),
        this.condition('Failed', reason, message),
      ],
    };
    delete job.status.active;
    this.record('MODIFIED', job);
    this.expireLater(job);
  }

  /** Deletes the Job and, as background propagation does, its pods. */
  delete(name: string, namespace = 'default'): void {
    const job = this.job(name, namespace);
    this.jobs.delete(`${namespace}/${name}`);
    for (const pod of this.podsOf(name, namespace)) this.pods.delete(`${namespace}/${pod.metadata.name}`);
    this.record('DELETED', job);
  }

  /** The TTL-after-finished controller: a finished Job with `ttlSecondsAfterFinished` goes then. */
  private expireLater(job: FakeJob): void {
    const ttl = job.spec.ttlSecondsAfterFinished;
    if (ttl === undefined) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.jobs.get(`${job.metadata.namespace}/${job.metadata.name}`) === job)
        this.delete(job.metadata.name, job.metadata.namespace);
    }, ttl * 1000);
    timer.unref();
    this.timers.add(timer);
  }

  private condition(type: JobCondition['type'], reason: string, message: string): JobCondition {
    return { type, status: 'True', reason, message, lastProbeTime: now(), lastTransitionTime: now() };
  }

  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.listeners.clear();
  }
}

/** `key=value,key2=value2` (equality only, as Herald and the tests use them). */
export function matchesSelector(
  labels: Record<string, string> | undefined,
  selector: string | null,
): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [key, value] = term.split('=');
    return key !== undefined && labels?.[key.trim()] === value?.trim();
  });
}

/** Field selectors on Jobs: `metadata.name=` and `metadata.namespace=`. */
export function matchesFields(job: FakeJob, selector: string | null): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [field, value] = term.split('=');
    if (field === 'metadata.name') return job.metadata.name === value;
    if (field === 'metadata.namespace') return job.metadata.namespace === value;
    return false;
  });
}
