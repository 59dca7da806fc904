// The kubernetes mode's config and Job names: kept apart from the client library, so a job
// channel in local mode (and every process without one) never loads @kubernetes/client-node.
import { createHash } from 'node:crypto';
import { z } from 'zod';

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
  logTailLines: z
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(20)
    .describe(
      'How many of the last lines the Job’s pod printed are kept with the delivery (`result.logs` in a ' +
        '`followUp`, and the dead-letter reason of a Job that failed).',
    ),
  cleanup: z
    .strictObject({
      ttlSecondsAfterFinished: z
        .number()
        .int()
        .nonnegative()
        .describe(
          'Seconds after a Job finishes (succeeded or failed) until Kubernetes deletes it with its pods. ' +
            'Keep it longer than Herald may be down: a Job deleted before Herald saw it finish is run again.',
        ),
    })
    .optional()
    .describe(
      'Deletes finished Jobs: sets `spec.ttlSecondsAfterFinished` on each Job whose manifest does not set ' +
        'it. Without it, finished Jobs stay until deleted (kubectl delete jobs -l herald.events/channel=NAME).',
    ),
});
export type KubernetesConfig = z.infer<typeof kubernetesConfigSchema>;

/** Kubernetes object names: DNS-1123 labels, at most 63 characters. */
const dnsLabel = (value: string, max: number) =>
  value
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, max)
    .replace(/-+$/, '') || 'herald';

/**
 * The name of a delivery's first Job when the manifest gives none: derived from its idempotency
 * key, so every attempt and every Herald process that takes the delivery over means the same Job.
 */
export function jobName(channel: string, idempotencyKey: string): string {
  return `${dnsLabel(channel, 40)}-${deliveryLabel(idempotencyKey).slice(0, 16)}`;
}

/**
 * The name of a delivery's run `run` (1 for the first Job). A retry after a Job failed needs a
 * new Job (a finished Job never runs again), so later runs add `-r<run>` to the first name.
 */
export function runName(firstName: string, run: number): string {
  if (run <= 1) return firstName;
  const suffix = `-r${run}`;
  return `${dnsLabel(firstName, 63 - suffix.length)}${suffix}`;
}

/** The label value every Job of one delivery carries: how a restarted Herald finds them. */
export function deliveryLabel(idempotencyKey: string): string {
  return createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 32);
}
