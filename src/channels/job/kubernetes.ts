import { createHash } from 'node:crypto';
import {
  ApiException,
  BatchV1Api,
  type ConfigurationOptions,
  KubeConfig,
  Observable,
  type ObservableMiddleware,
  type RequestContext,
  type ResponseContext,
  type V1Job,
} from '@kubernetes/client-node';
import { z } from 'zod';
import { type ChannelResult, delivered, failed, retry } from '../../engine/types.js';
import { errorMessage, HeraldError } from '../../errors.js';

export const kubernetesConfigSchema = z.strictObject({
  namespace: z.string().min(1).default('default').describe('Namespace the Jobs are created in.'),
  kubeconfig: z
    .string()
    .optional()
    .describe(
      'Path of a kubeconfig file. Default: in-cluster credentials when running in a pod ' +
        '(KUBERNETES_SERVICE_HOST is set), else $KUBECONFIG or ~/.kube/config.',
    ),
  context: z.string().optional().describe('kubeconfig context to use (default: its current context).'),
});
export type KubernetesConfig = z.infer<typeof kubernetesConfigSchema>;

/** Kubernetes object names: DNS-1123 labels, at most 63 characters. */
const dnsLabel = (value: string) =>
  value
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40) || 'herald';

/**
 * The Job's name is derived from the delivery's idempotency key, so a retry after a lost answer
 * meets the Job it already created (409) instead of starting a second one.
 */
export function jobName(channel: string, idempotencyKey: string): string {
  const digest = createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 16);
  return `${dnsLabel(channel)}-${digest}`;
}

function loadKubeConfig(config: KubernetesConfig, env: NodeJS.ProcessEnv): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else if (env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else kc.loadFromDefault();
    if (config.context) kc.setCurrentContext(config.context);
  } catch (err) {
    throw new HeraldError(
      'CONFIG_INVALID',
      `could not load Kubernetes credentials${config.kubeconfig ? ` from ${config.kubeconfig}` : ''}: ${(err as Error).message}`,
    );
  }
  if (!kc.getCurrentCluster()) {
    throw new HeraldError(
      'CONFIG_INVALID',
      'no Kubernetes cluster is configured: set kubernetes.kubeconfig, $KUBECONFIG, or run inside a pod',
    );
  }
  return kc;
}

export interface KubernetesJobs {
  /** Creates the Job; `signal` ends the API call (the send's deadline, shutdown). */
  create(
    manifest: unknown,
    name: string,
    annotations: Record<string, string>,
    signal: AbortSignal,
  ): Promise<ChannelResult>;
  check(): Promise<{ ok: boolean; detail: string }>;
}

/** The reason Kubernetes gave, from its `Status` body when there is one. */
function statusMessage(err: ApiException<unknown>): string {
  let body: unknown = err.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      // Plain text body.
    }
  }
  const status = body as { reason?: string; message?: string } | undefined;
  if (status && typeof status === 'object' && status.message) {
    return `${status.reason ?? 'Error'}: ${status.message}`;
  }
  return typeof body === 'string' && body ? body.slice(0, 300) : `HTTP ${err.code}`;
}

/**
 * Per-call options that hand `signal` to the request: the generated client takes a signal only
 * on its request context, which a middleware may set. Appended, so the client's own middleware
 * (authentication) still runs.
 */
function abortableBy(signal: AbortSignal): ConfigurationOptions<ObservableMiddleware> {
  return {
    middleware: [
      {
        pre: (context: RequestContext) => {
          context.setSignal(signal);
          return new Observable(Promise.resolve(context));
        },
        post: (context: ResponseContext) => new Observable(Promise.resolve(context)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

export function kubernetesJobs(
  channel: string,
  config: KubernetesConfig,
  env: NodeJS.ProcessEnv,
): KubernetesJobs {
  const kc = loadKubeConfig(config, env);
  const batch = kc.makeApiClient(BatchV1Api);
  const server = kc.getCurrentCluster()?.server ?? 'the cluster';
  return {
    async create(manifest, name, annotations, signal) {
      if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) {
        return failed(`job ${channel}: the manifest must render to an object (a batch/v1 Job)`);
      }
      const job = structuredClone(manifest) as V1Job & Record<string, unknown>;
      job.apiVersion ??= 'batch/v1';
      job.kind ??= 'Job';
      if (job.kind !== 'Job')
        return failed(`job ${channel}: the manifest's kind is ${String(job.kind)}, not Job`);
      job.metadata = {
        ...job.metadata,
        name: job.metadata?.name || name,
        annotations: { ...job.metadata?.annotations, ...annotations },
      };
      const namespace = job.metadata.namespace ?? config.namespace;
      const rendered = { namespace, job };
      try {
        const created = await batch.createNamespacedJob({ namespace, body: job }, abortableBy(signal));
        return delivered(created.metadata?.uid ?? job.metadata.name, rendered);
      } catch (err) {
        if (signal.aborted)
          return retry(
            `creating Job ${job.metadata.name} in ${namespace} stopped: ${errorMessage(signal.reason)}`,
            undefined,
            rendered,
          );
        if (err instanceof ApiException) {
          // The Job from an earlier attempt whose answer was lost: it is running, so this is done.
          if (err.code === 409) return delivered(job.metadata.name, rendered);
          const reason = `Kubernetes answered ${err.code} creating Job ${job.metadata.name} in ${namespace}: ${statusMessage(err)}`;
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
          `could not reach Kubernetes at ${server}: ${(err as Error).message}`,
          undefined,
          rendered,
        );
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
