import { ApiException, type BatchV1Api, type KubeConfig, type V1Job, Watch } from '@kubernetes/client-node';
import { abortableBy, statusMessage } from './kubernetes.js';

/** What waiting for a Job came to. */
export type JobWait =
  | { state: 'finished'; job: V1Job }
  | { state: 'deleted' }
  | { state: 'aborted' }
  /** Kubernetes refused to show the Job (401, 403, 404 namespace): waiting longer will not help. */
  | { state: 'refused'; reason: string };

/** Reconnecting a dropped watch starts this soon and backs off to the most, while nothing arrives. */
const RECONNECT_FIRST_MS = 100;
const RECONNECT_MOST_MS = 5000;

/** The Job's `Complete` or `Failed` condition, once it has one: the Job is over then. */
export function finishedCondition(
  job: V1Job,
): { type: 'Complete' | 'Failed'; reason?: string; message?: string } | null {
  for (const condition of job.status?.conditions ?? []) {
    if (condition.status !== 'True') continue;
    if (condition.type === 'Complete' || condition.type === 'Failed')
      return { type: condition.type, reason: condition.reason, message: condition.message };
  }
  return null;
}

type WatchEnd =
  | { state: 'finished'; job: V1Job }
  | { state: 'deleted' }
  | { state: 'aborted' }
  | { state: 'refused'; reason: string }
  /** 410 Gone: the resourceVersion is too old to resume from; list again. */
  | { state: 'expired' }
  /** The stream ended or broke: resume from `resourceVersion`. */
  | { state: 'ended'; resourceVersion: string; progressed: boolean };

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

const refusing = (code: number) => code === 401 || code === 403 || code === 404;

/**
 * Waits until the Job `name` finishes, is deleted, or `signal` is aborted. It lists the Job (its
 * state and a resourceVersion), then watches it from that resourceVersion; a stream that ends or
 * breaks is resumed from the last resourceVersion seen (BOOKMARKs included), and one answered with
 * 410 Gone (the server no longer holds that version) is listed afresh. Nothing here changes the
 * Job: an abort only stops the waiting.
 */
export async function waitForJob(
  kc: KubeConfig,
  batch: BatchV1Api,
  namespace: string,
  name: string,
  signal: AbortSignal,
): Promise<JobWait> {
  const watcher = new Watch(kc);
  let resourceVersion: string | undefined;
  let pause = RECONNECT_FIRST_MS;
  while (!signal.aborted) {
    if (resourceVersion === undefined) {
      try {
        const list = await batch.listNamespacedJob(
          { namespace, fieldSelector: `metadata.name=${name}` },
          abortableBy(signal),
        );
        const job = list.items[0];
        if (!job) return { state: 'deleted' };
        if (finishedCondition(job)) return { state: 'finished', job };
        resourceVersion = list.metadata?.resourceVersion ?? job.metadata?.resourceVersion;
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof ApiException && refusing(err.code))
          return { state: 'refused', reason: `listing Job ${name}: HTTP ${err.code}: ${statusMessage(err)}` };
        // The API server is unreachable or busy: ask again until the send's deadline.
        await sleep(pause, signal);
        pause = Math.min(pause * 2, RECONNECT_MOST_MS);
        continue;
      }
    }
    const end = await watchOnce(watcher, namespace, name, resourceVersion ?? '', signal);
    switch (end.state) {
      case 'expired':
        resourceVersion = undefined;
        break;
      case 'ended':
        resourceVersion = end.resourceVersion;
        pause = end.progressed ? RECONNECT_FIRST_MS : Math.min(pause * 2, RECONNECT_MOST_MS);
        await sleep(pause, signal);
        break;
      default:
        return end;
    }
  }
  return { state: 'aborted' };
}

/** One watch request, until it says something final or its stream ends. */
function watchOnce(
  watcher: Watch,
  namespace: string,
  name: string,
  from: string,
  signal: AbortSignal,
): Promise<WatchEnd> {
  return new Promise<WatchEnd>((resolve) => {
    let resourceVersion = from;
    let progressed = false;
    let settled = false;
    let connection: AbortController | null = null;
    const settle = (end: WatchEnd) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      connection?.abort();
      resolve(end);
    };
    const onAbort = () => settle({ state: 'aborted' });
    signal.addEventListener('abort', onAbort, { once: true });
    const onEvent = (type: string, object: Record<string, unknown> | undefined) => {
      const version = (object?.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
      if (type === 'ERROR') {
        const status = object as { code?: number; message?: string } | undefined;
        if (status?.code === 410) return settle({ state: 'expired' });
        if (status?.code !== undefined && refusing(status.code))
          return settle({
            state: 'refused',
            reason: `watching Job ${name}: ${status.message ?? status.code}`,
          });
        return settle({ state: 'ended', resourceVersion, progressed });
      }
      if (version) {
        resourceVersion = version;
        progressed = true;
      }
      if (type === 'DELETED') return settle({ state: 'deleted' });
      if ((type === 'ADDED' || type === 'MODIFIED') && object && finishedCondition(object as V1Job))
        settle({ state: 'finished', job: object as V1Job });
    };
    const onDone = (err: unknown) => {
      const code = (err as { statusCode?: number } | null)?.statusCode;
      if (code !== undefined && refusing(code))
        return settle({ state: 'refused', reason: `watching Job ${name}: HTTP ${code}` });
      settle({ state: 'ended', resourceVersion, progressed });
    };
    watcher
      .watch(
        `/apis/batch/v1/namespaces/${encodeURIComponent(namespace)}/jobs`,
        {
          fieldSelector: `metadata.name=${name}`,
          resourceVersion: from || undefined,
          allowWatchBookmarks: true,
        },
        onEvent,
        onDone,
      )
      .then(
        (controller) => {
          connection = controller;
          if (settled) controller.abort();
        },
        (err: unknown) => onDone(err),
      );
  });
}
