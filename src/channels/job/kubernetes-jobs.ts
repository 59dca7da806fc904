import { ApiException, BatchV1Api, CoreV1Api, type V1Job, type V1Pod } from '@kubernetes/client-node';
import { type ChannelResult, delivered, failed, retry, SendTimeoutError } from '../../engine/types.js';
import { errorMessage } from '../../errors.js';
import { finishedCondition, waitForJob } from './job-watch.js';
import {
  abortableBy,
  deliveryLabel,
  type KubernetesConfig,
  loadKubeConfig,
  runName,
  statusMessage,
} from './kubernetes.js';

const LABEL_DELIVERY = 'herald.events/delivery';
const LABEL_CHANNEL = 'herald.events/channel';
const ANNOTATION_RUN = 'herald.events/run';
/** The most of a pod's log read for the CloudEvents it printed. */
const EVENT_LOG_BYTES = 1024 * 1024;
/** The most of a pod's log tail kept, however long its lines are. */
const TAIL_BYTES = 16 * 1024;

/** One delivery's Job to run, or to find and wait for. */
export interface JobRequest {
  manifest: unknown;
  /** The first Job's name when the manifest gives none (derived from the idempotency key). */
  defaultName: string;
  idempotencyKey: string;
  annotations: Record<string, string>;
  permanentExitCodes: number[];
  /** Read the pod's whole log (up to 1 MiB) on success, for the CloudEvents it printed. */
  readOutput: boolean;
  signal: AbortSignal;
}

export interface JobOutcome {
  result: ChannelResult;
  /** The succeeded pod's log, when asked for. */
  output?: string;
}

export interface KubernetesJobs {
  run(request: JobRequest): Promise<JobOutcome>;
  check(): Promise<{ ok: boolean; detail: string }>;
}

const millis = (value: unknown): number | undefined => {
  if (value === undefined || value === null) return undefined;
  const ms = new Date(value as string | Date).getTime();
  return Number.isFinite(ms) ? ms : undefined;
};

const runOf = (job: V1Job) => Number(job.metadata?.annotations?.[ANNOTATION_RUN] ?? 1) || 1;

/**
 * Runs a delivery's Job to its end. Every Job of a delivery carries the delivery's label, so an
 * attempt first looks for them: a Job still running (created by an attempt cut short, or by a
 * Herald process that stopped or died) is waited for, a succeeded one is the delivery done, and
 * only after a failed one (or none) is a new Job created, as the next run. The send's signal
 * ends the waiting, never the Job: the next attempt finds it and waits again.
 */
export function kubernetesJobs(
  channel: string,
  config: KubernetesConfig,
  env: NodeJS.ProcessEnv,
): KubernetesJobs {
  const kc = loadKubeConfig(config, env);
  const batch = kc.makeApiClient(BatchV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const server = kc.getCurrentCluster()?.server ?? 'the cluster';
  const channelLabel =
    channel
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 63)
      .replace(/-+$/, '') || 'herald';

  /** The newest pod of the Job: its exit code and the tail of its log (and the whole log, when asked). */
  async function podReport(
    namespace: string,
    name: string,
    readOutput: boolean,
    signal: AbortSignal,
  ): Promise<{ logs: string; exitCode?: number; output?: string }> {
    try {
      const pods = await core.listNamespacedPod(
        { namespace, labelSelector: `job-name=${name}` },
        abortableBy(signal),
      );
      const newest = pods.items.sort(
        (a: V1Pod, b: V1Pod) =>
          (millis(b.metadata?.creationTimestamp) ?? 0) - (millis(a.metadata?.creationTimestamp) ?? 0),
      )[0];
      if (!newest?.metadata?.name) return { logs: '(no pod of the Job is left to read logs from)' };
      const exitCode = newest.status?.containerStatuses
        ?.map((c) => c.state?.terminated?.exitCode)
        .find((code) => code !== undefined && code !== 0);
      const read = (options: { tailLines?: number; limitBytes: number }) =>
        core.readNamespacedPodLog(
          { namespace, name: newest.metadata!.name!, ...options },
          abortableBy(signal),
        );
      const tail = String(await read({ tailLines: config.logTailLines, limitBytes: TAIL_BYTES }));
      const output = readOutput ? String(await read({ limitBytes: EVENT_LOG_BYTES })) : undefined;
      return { logs: tail.trimEnd(), exitCode, output };
    } catch (err) {
      const why = err instanceof ApiException ? `HTTP ${err.code}: ${statusMessage(err)}` : errorMessage(err);
      return { logs: `(could not read the pod's logs: ${why})` };
    }
  }

  /** The delivery's result once its Job has finished. */
  async function finished(job: V1Job, request: JobRequest, namespace: string): Promise<JobOutcome> {
    const name = job.metadata?.name ?? '';
    const condition = finishedCondition(job)!;
    const succeeded = condition.type === 'Complete';
    const pod = await podReport(namespace, name, succeeded && request.readOutput, request.signal);
    const startedAt = millis(job.status?.startTime) ?? millis(job.metadata?.creationTimestamp);
    const endedAt =
      millis(job.status?.completionTime) ??
      millis(job.status?.conditions?.find((c) => c.type === condition.type)?.lastTransitionTime);
    const rendered = {
      namespace,
      jobName: name,
      run: runOf(job),
      status: succeeded ? 'succeeded' : 'failed',
      durationMs: startedAt !== undefined && endedAt !== undefined ? Math.max(0, endedAt - startedAt) : null,
      ...(succeeded ? {} : { reason: condition.reason ?? null, message: condition.message ?? null }),
      ...(pod.exitCode !== undefined ? { exitCode: pod.exitCode } : {}),
      logs: pod.logs,
    };
    if (succeeded) return { result: delivered(job.metadata?.uid ?? name, rendered), output: pod.output };
    const reason =
      `Job ${name} in ${namespace} failed: ${condition.reason ?? 'Failed'}: ${condition.message ?? ''}`.trim() +
      (pod.exitCode !== undefined ? ` (exit ${pod.exitCode})` : '') +
      `\nlast log lines:\n${pod.logs}`;
    return {
      result:
        pod.exitCode !== undefined && request.permanentExitCodes.includes(pod.exitCode)
          ? failed(reason, rendered)
          : retry(reason, undefined, rendered),
    };
  }

  /** Waits for the Job and answers for it. */
  async function follow(job: V1Job, request: JobRequest, namespace: string): Promise<JobOutcome> {
    const name = job.metadata?.name ?? '';
    if (finishedCondition(job)) return finished(job, request, namespace);
    const wait = await waitForJob(kc, batch, namespace, name, request.signal);
    const rendered = { namespace, jobName: name, run: runOf(job), status: 'running' };
    switch (wait.state) {
      case 'finished':
        return finished(wait.job, request, namespace);
      case 'deleted':
        return {
          result: retry(`Job ${name} in ${namespace} was deleted before it finished`, undefined, {
            ...rendered,
            status: 'deleted',
          }),
        };
      case 'refused':
        return { result: failed(`Kubernetes at ${server}: ${wait.reason}`, rendered) };
      case 'aborted': {
        const why = request.signal.reason;
        const stopped =
          why instanceof SendTimeoutError
            ? `did not finish within the channel's timeoutMs (${errorMessage(why)})`
            : `was not waited for to the end: ${errorMessage(why)}`;
        return {
          result: retry(
            `Job ${name} in ${namespace} ${stopped}; it keeps running and the next attempt waits for it`,
            undefined,
            rendered,
          ),
        };
      }
    }
  }

  /** The Jobs earlier attempts made for this delivery, newest run first. */
  async function earlierRuns(namespace: string, label: string, signal: AbortSignal): Promise<V1Job[]> {
    const list = await batch.listNamespacedJob(
      { namespace, labelSelector: `${LABEL_DELIVERY}=${label}` },
      abortableBy(signal),
    );
    return list.items.sort((a, b) => runOf(b) - runOf(a));
  }

  function apiFailure(err: unknown, doing: string, signal: AbortSignal, rendered: unknown): ChannelResult {
    if (signal.aborted) return retry(`${doing} stopped: ${errorMessage(signal.reason)}`, undefined, rendered);
    if (err instanceof ApiException) {
      const reason = `Kubernetes answered ${err.code} ${doing}: ${statusMessage(err)}`;
      if (err.code === 429 || err.code >= 500) {
        const after = Number(err.headers?.['retry-after']);
        return retry(
          reason,
          Number.isFinite(after) && after > 0 ? Date.now() + after * 1000 : undefined,
          rendered,
        );
      }
      return failed(reason, rendered);
    }
    return retry(
      `could not reach Kubernetes at ${server} ${doing}: ${errorMessage(err)}`,
      undefined,
      rendered,
    );
  }

  return {
    async run(request) {
      const { manifest, signal } = request;
      if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) {
        return { result: failed(`job ${channel}: the manifest must render to an object (a batch/v1 Job)`) };
      }
      const job = structuredClone(manifest) as V1Job & Record<string, unknown>;
      job.apiVersion ??= 'batch/v1';
      job.kind ??= 'Job';
      if (job.kind !== 'Job')
        return { result: failed(`job ${channel}: the manifest's kind is ${String(job.kind)}, not Job`) };
      const namespace = job.metadata?.namespace ?? config.namespace;
      const label = deliveryLabel(request.idempotencyKey);
      const firstName = job.metadata?.name || request.defaultName;

      let runs: V1Job[];
      try {
        runs = await earlierRuns(namespace, label, signal);
      } catch (err) {
        return {
          result: apiFailure(err, `listing the Jobs of this delivery in ${namespace}`, signal, undefined),
        };
      }
      const latest = runs[0];
      if (latest && finishedCondition(latest)?.type !== 'Failed') return follow(latest, request, namespace);

      const run = latest ? runOf(latest) + 1 : 1;
      const name = runName(firstName, run);
      job.metadata = {
        ...job.metadata,
        name,
        labels: { ...job.metadata?.labels, [LABEL_DELIVERY]: label, [LABEL_CHANNEL]: channelLabel },
        annotations: { ...job.metadata?.annotations, ...request.annotations, [ANNOTATION_RUN]: String(run) },
      };
      if (config.cleanup && job.spec && job.spec.ttlSecondsAfterFinished === undefined)
        job.spec.ttlSecondsAfterFinished = config.cleanup.ttlSecondsAfterFinished;
      try {
        const created = await batch.createNamespacedJob({ namespace, body: job }, abortableBy(signal));
        return follow(created, request, namespace);
      } catch (err) {
        if (!(err instanceof ApiException && err.code === 409) || signal.aborted)
          return {
            result: apiFailure(err, `creating Job ${name} in ${namespace}`, signal, { namespace, job }),
          };
      }
      // 409: a Job of that name exists. Ours when it carries this delivery's label (a create whose
      // answer was lost and whose Job the list above did not show yet); someone else's otherwise.
      try {
        const existing = await batch.readNamespacedJob({ namespace, name }, abortableBy(signal));
        if (existing.metadata?.labels?.[LABEL_DELIVERY] === label)
          return follow(existing, request, namespace);
        return {
          result: failed(
            `a Job named ${name} already exists in ${namespace} for something else: give each event its own ` +
              'metadata.name (e.g. include {{ event.id }}), or leave it out',
            { namespace, jobName: name },
          ),
        };
      } catch (err) {
        return { result: apiFailure(err, `reading Job ${name} in ${namespace}`, signal, undefined) };
      }
    },
    async check() {
      try {
        await batch.listNamespacedJob({ namespace: config.namespace, limit: 1 });
        return { ok: true, detail: `Kubernetes at ${server} lists Jobs in ${config.namespace}` };
      } catch (err) {
        const detail =
          err instanceof ApiException ? `HTTP ${err.code}: ${statusMessage(err)}` : (err as Error).message;
        return { ok: false, detail: `Kubernetes at ${server}: ${detail}` };
      }
    },
  };
}
