import {
  type ApiException,
  type ConfigurationOptions,
  KubeConfig,
  Observable,
  type ObservableMiddleware,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import { HeraldError } from '../../errors.js';
import type { KubernetesConfig } from './kubernetes-config.js';

export * from './kubernetes-config.js';

export function loadKubeConfig(config: KubernetesConfig, env: NodeJS.ProcessEnv): KubeConfig {
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

/** The reason Kubernetes gave, from its `Status` body when there is one. */
export function statusMessage(err: ApiException<unknown>): string {
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
export function abortableBy(signal: AbortSignal): ConfigurationOptions<ObservableMiddleware> {
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
