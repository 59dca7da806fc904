import { spawn } from 'node:child_process';
import { z } from 'zod';
import {
  type ChannelKind,
  type ChannelResult,
  type DeliveryRequest,
  delivered,
  failed,
  retry,
  SendTimeoutError,
  templateScope,
} from '../../engine/types.js';
import { errorMessage } from '../../errors.js';
import { followUpDraft } from '../../events/hops.js';
import { validateEvent } from '../../events/index.js';
import type { CloudEvent } from '../../events/types.js';
import { renderTree, type TemplateTree, templateSchema, templateTreeSchema } from '../../templates/index.js';
import { jobName, kubernetesConfigSchema } from './kubernetes-config.js';
import type { KubernetesJobs } from './kubernetes-jobs.js';

/**
 * The Kubernetes client, loaded by `prepare` only for a channel in kubernetes mode: the library
 * is most of an idle Herald's memory otherwise.
 */
let kubernetesModule: typeof import('./kubernetes-jobs.js') | undefined;

const TAIL_BYTES = 4096;
const LOCAL_TIMEOUT_MS = 60_000;
const KUBERNETES_TIMEOUT_MS = 3_600_000;

export const jobConfigSchema = z.strictObject({
  mode: z
    .enum(['local', 'kubernetes'])
    .default('local')
    .describe(
      '`local` runs a program on Herald’s machine; `kubernetes` creates a batch/v1 Job from the action’s `manifest`.',
    ),
  kubernetes: kubernetesConfigSchema
    .default({ namespace: 'default', logTailLines: 20 })
    .describe('Where and how Jobs are created in kubernetes mode.'),
  concurrency: z
    .number()
    .int()
    .positive()
    .default(2)
    .describe('Jobs running at once (kubernetes mode: Jobs waited for at once, per Herald process).'),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .optional()
    .describe(
      'local mode (default 60000): a job running longer is killed, with its whole process group, and retried. ' +
        'kubernetes mode (default 3600000): how long one attempt waits for its Job to finish; make it longer ' +
        'than the Job may run (its activeDeadlineSeconds). At this deadline the Job is left running and the ' +
        'attempt counts as a retry: the next attempt finds the same Job and waits for it again.',
    ),
  cwd: z.string().optional().describe('Working directory of the jobs (default: Herald’s).'),
  inheritEnv: z
    .array(z.string())
    .default(['PATH', 'HOME', 'LANG', 'TZ'])
    .describe('Variables of Herald’s environment passed on to jobs; nothing else leaks to them.'),
});

export const jobActionSchema = z.strictObject({
  command: z
    .string()
    .min(1)
    .optional()
    .describe('local mode: the program to run (looked up on PATH). Not a shell line.'),
  manifest: templateTreeSchema()
    .optional()
    .describe(
      'kubernetes mode: the batch/v1 Job to create; its strings are templates. The delivery counts as ' +
        'delivered when the Job succeeds. Without `metadata.name`, the name comes from the delivery; a ' +
        'templated name must be unique per event (e.g. `save-customer-{{ event.id }}`). A retry after the Job ' +
        'failed creates the next run, named `<name>-r2`, `-r3`…',
    ),
  args: z
    .array(templateSchema())
    .default([])
    .describe('Arguments, each a template; passed as a list, so event data cannot inject shell syntax.'),
  env: z
    .record(z.string(), templateSchema())
    .default({})
    .describe('Extra environment variables (templates).'),
  shell: z
    .boolean()
    .default(false)
    .describe(
      'Run `command` and `args` through /bin/sh -c. Dangerous with event data in the arguments; off by default.',
    ),
  permanentExitCodes: z
    .array(z.number().int())
    .default([])
    .describe(
      'Exit codes that mean "do not retry": the delivery goes to the DLQ at once (kubernetes mode: the ' +
        'exit code of the failed Job’s last pod).',
    ),
  emitEvents: z
    .boolean()
    .default(true)
    .describe(
      'Lines the job prints on stdout that are CloudEvents (JSON with specversion) become new events ' +
        '(kubernetes mode: lines of the succeeded pod’s log, its first MiB).',
    ),
});
export type JobAction = Omit<z.infer<typeof jobActionSchema>, 'manifest'> & { manifest?: TemplateTree };

const tail = (chunks: Buffer[]) => {
  const all = Buffer.concat(chunks);
  return all.subarray(Math.max(0, all.length - TAIL_BYTES)).toString('utf8');
};

/**
 * Runs a local program per delivery. Exit 0 is delivered; another exit code is retried unless it
 * is listed as permanent; a timeout kills the process group and is retried. The last 4 KB of
 * stdout and stderr are kept on the delivery. Stdout lines that are CloudEvents are emitted as
 * follow-up events.
 */
function kubernetesClient(): typeof import('./kubernetes-jobs.js') {
  if (!kubernetesModule)
    throw new Error(
      'a job channel in kubernetes mode was created before its kind was prepared (ChannelKind.prepare)',
    );
  return kubernetesModule;
}

export const jobChannel: ChannelKind<z.infer<typeof jobConfigSchema>, JobAction> = {
  kind: 'job',
  description:
    'Runs a command with arguments rendered from the event; stdout CloudEvents become follow-up events.',
  configSchema: jobConfigSchema,
  actionSchema: jobActionSchema as unknown as z.ZodType<JobAction>,
  checkAction(config, action) {
    if (config.mode === 'kubernetes') {
      if (action.manifest === undefined)
        return 'a job channel in kubernetes mode needs a `manifest` (a batch/v1 Job)';
      if (action.command !== undefined)
        return '`command` is for local mode; in kubernetes mode the manifest says what runs';
    } else {
      if (action.command === undefined)
        return 'a job action needs a `command` (or set the channel’s mode: kubernetes)';
      if (action.manifest !== undefined) return '`manifest` needs the channel’s mode to be kubernetes';
    }
    return null;
  },
  async prepare(config) {
    if (config.mode === 'kubernetes') kubernetesModule ??= await import('./kubernetes-jobs.js');
  },
  create(name, config, context) {
    /** The CloudEvents a job printed become events; the delivery is done once they are durable. */
    const emitPrinted = async (
      printed: string,
      req: DeliveryRequest<JobAction>,
      result: ChannelResult,
    ): Promise<ChannelResult> => {
      const followUps = followUpEvents(printed, req.event, name, req.idempotencyKey);
      if (followUps.length === 0) return result;
      try {
        await context.emit(followUps);
      } catch (err) {
        return retry(`could not append the job's events: ${errorMessage(err)}`, undefined, result.rendered);
      }
      return result;
    };
    const cluster: KubernetesJobs | null =
      config.mode === 'kubernetes'
        ? kubernetesClient().kubernetesJobs(name, config.kubernetes, context.env)
        : null;
    if (cluster) {
      return {
        concurrency: config.concurrency,
        timeoutMs: config.timeoutMs ?? KUBERNETES_TIMEOUT_MS,
        async send(req) {
          const manifest = renderTree(req.action.manifest ?? null, templateScope(req));
          const { result, output } = await cluster.run({
            manifest,
            defaultName: jobName(name, req.idempotencyKey),
            idempotencyKey: req.idempotencyKey,
            annotations: {
              'herald.events/idempotency-key': req.idempotencyKey,
              'herald.events/event-id': req.event.id,
              'herald.events/trigger': req.trigger,
            },
            permanentExitCodes: req.action.permanentExitCodes,
            readOutput: req.action.emitEvents,
            signal: req.signal,
          });
          if (result.outcome !== 'delivered' || output === undefined) return result;
          return emitPrinted(output, req, result);
        },
        check: () => cluster.check(),
      };
    }
    const baseEnv: Record<string, string> = {};
    for (const key of config.inheritEnv) {
      const value = context.env[key];
      if (value !== undefined) baseEnv[key] = value;
    }
    return {
      concurrency: config.concurrency,
      timeoutMs: config.timeoutMs ?? LOCAL_TIMEOUT_MS,
      async send(req) {
        const scope = templateScope(req);
        const args = req.action.args.map((a) => a.render(scope));
        const env: Record<string, string> = {
          ...baseEnv,
          HERALD_IDEMPOTENCY_KEY: req.idempotencyKey,
          HERALD_EVENT_ID: req.event.id,
        };
        for (const [k, v] of Object.entries(req.action.env)) env[k] = v.render(scope);
        const command = req.action.command ?? '';
        const [file, argv] = req.action.shell
          ? ['/bin/sh', ['-c', [command, ...args].join(' ')]]
          : [command, args];
        const rendered = { command: req.action.command, args };

        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        // The send's signal is aborted at its deadline (`timeoutMs`) and at shutdown: either kills the job.
        const outcome = await new Promise<{
          code: number | null;
          signal: string | null;
          killedFor?: unknown;
          error?: Error;
        }>((resolve) => {
          const child = spawn(file, argv, {
            cwd: config.cwd,
            env,
            detached: true,
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let killedFor: unknown;
          const onAbort = () => {
            killedFor = req.signal.reason;
            try {
              if (child.pid) process.kill(-child.pid, 'SIGKILL');
            } catch {
              // Already gone.
            }
          };
          req.signal.addEventListener('abort', onAbort, { once: true });
          if (req.signal.aborted) onAbort();
          child.stdout.on('data', (c: Buffer) => stdout.push(c));
          child.stderr.on('data', (c: Buffer) => stderr.push(c));
          child.on('error', (error) => {
            req.signal.removeEventListener('abort', onAbort);
            resolve({ code: null, signal: null, error });
          });
          child.on('close', (code, signal) => {
            req.signal.removeEventListener('abort', onAbort);
            resolve({ code, signal, killedFor });
          });
        });
        const result = { ...rendered, exitCode: outcome.code, stdout: tail(stdout), stderr: tail(stderr) };
        if (outcome.error) {
          const code = (outcome.error as NodeJS.ErrnoException).code;
          const reason = `could not start ${req.action.command}: ${code ?? outcome.error.message}`;
          return code === 'ENOENT' || code === 'EACCES'
            ? failed(reason, result)
            : retry(reason, undefined, result);
        }
        if (outcome.killedFor !== undefined)
          return retry(
            outcome.killedFor instanceof SendTimeoutError
              ? `job ${name} timed out after ${outcome.killedFor.timeoutMs} ms and was killed`
              : `job ${name} was killed: ${errorMessage(outcome.killedFor)}`,
            undefined,
            result,
          );
        if (outcome.code !== 0) {
          const reason = `exit ${outcome.code ?? outcome.signal}${result.stderr ? `: ${result.stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`;
          return outcome.code !== null && req.action.permanentExitCodes.includes(outcome.code)
            ? failed(reason, result)
            : retry(reason, undefined, result);
        }
        if (req.action.emitEvents)
          return emitPrinted(Buffer.concat(stdout).toString('utf8'), req, delivered(undefined, result));
        return delivered(undefined, result);
      },
    };
  },
};

/** CloudEvents printed one JSON object per line; other lines are ordinary output. */
function followUpEvents(output: string, parent: CloudEvent, channel: string, key: string): CloudEvent[] {
  const events: CloudEvent[] = [];
  let n = 0;
  for (const line of output.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed.startsWith('{') || !trimmed.includes('specversion')) continue;
    try {
      const parsed = JSON.parse(trimmed) as Record<string, unknown>;
      events.push(
        validateEvent(
          followUpDraft(parent, parsed, {
            id: `${key}-${n++}`,
            source: `herald://job/${channel}`,
            inheritData: false,
          }),
        ),
      );
    } catch {
      // Not a valid CloudEvent: it stays ordinary output.
    }
  }
  return events;
}
