import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { z } from 'zod';
import type { SourceKind } from '../../engine/types.js';
import { EventValidationError, HeraldError } from '../../errors.js';
import { newEventId } from '../../events/ids.js';
import { validateEvent } from '../../events/index.js';
import type { CloudEvent } from '../../events/types.js';
import { ingestAuthSchema } from '../../signing/ingest-auth.js';
import { renderTree, type TemplateTree, templateSchema, templateTreeSchema } from '../../templates/index.js';

const ajv = new Ajv({ allErrors: true, strict: false });

const routeSchema = z.strictObject({
  path: z
    .string()
    .regex(/^\/[A-Za-z0-9/_.:-]*$/, 'a path starts with "/"')
    .describe('URL path of the route, e.g. /notify.'),
  schema: z
    .record(z.string(), z.unknown())
    .optional()
    .describe('JSON Schema the request body must satisfy; a body that does not gets 400 naming the problem.'),
  event: z
    .strictObject({
      type: templateSchema().describe('CloudEvent type (template; the scope is `body`, `headers`, `query`).'),
      source: templateSchema()
        .optional()
        .describe('CloudEvent source. Default: herald://<source name><path>.'),
      subject: templateSchema().optional().describe('CloudEvent subject, e.g. "{{ body.topic }}".'),
      id: templateSchema()
        .optional()
        .describe(
          'CloudEvent id. Default: a new time-ordered UUID (version 7). Set it from the body to let Herald drop repeats.',
        ),
      data: templateTreeSchema().optional().describe('The event data. Default: the request body as is.'),
    })
    .describe('How the body becomes a CloudEvent.'),
  status: z.number().int().min(200).max(299).default(202).describe('Success status code.'),
  auth: ingestAuthSchema.optional(),
});

export const httpSourceConfigSchema = z.strictObject({
  routes: z.array(routeSchema).min(1).describe('Custom routes that turn a JSON body into a CloudEvent.'),
});
export type HttpSourceConfig = z.infer<typeof httpSourceConfigSchema>;

function describeAjvError(e: ErrorObject): string {
  const at = e.instancePath ? `body${e.instancePath.replaceAll('/', '.')}` : 'body';
  if (e.keyword === 'required')
    return `${at}.${(e.params as { missingProperty: string }).missingProperty} is required`;
  if (e.keyword === 'additionalProperties') {
    return `${at}.${(e.params as { additionalProperty: string }).additionalProperty} is not allowed`;
  }
  return `${at} ${e.message ?? 'is invalid'}`;
}

export const httpSource: SourceKind<HttpSourceConfig> = {
  kind: 'http',
  description: 'Custom HTTP routes on Herald’s port that map a JSON body to a CloudEvent.',
  configSchema: httpSourceConfigSchema,
  create(name, config, context) {
    const validators: (ValidateFunction | null)[] = config.routes.map((r) => {
      if (!r.schema) return null;
      try {
        return ajv.compile(r.schema);
      } catch (err) {
        throw new HeraldError(
          'CONFIG_INVALID',
          `sources.${name}: route ${r.path} has an invalid JSON schema: ${(err as Error).message}`,
        );
      }
    });
    return {
      async start() {
        if (!context.http) throw new HeraldError('SOURCE_ERROR', `source ${name} needs Herald's HTTP server`);
        config.routes.forEach((route, i) => {
          const validate = validators[i];
          context.http!.addRoute({
            method: 'POST',
            path: route.path,
            auth: route.auth,
            async handler(req) {
              const body = req.body;
              if (body === undefined || body === null || (typeof body !== 'object' && !validate)) {
                throw new HeraldError('REQUEST_INVALID', 'expected a JSON body', { status: 400 });
              }
              if (validate && !validate(body)) {
                const errors = (validate.errors ?? []).map(describeAjvError);
                throw new HeraldError(
                  'REQUEST_INVALID',
                  `the body does not fit the route's schema: ${errors.join('; ')}`,
                  {
                    details: { errors },
                  },
                );
              }
              const scope = { body, headers: req.headers, query: req.query };
              const draft: Record<string, unknown> = {
                specversion: '1.0',
                id: route.event.id ? route.event.id.render(scope) : newEventId(),
                source: route.event.source
                  ? route.event.source.render(scope)
                  : `herald://${name}${route.path}`,
                type: route.event.type.render(scope),
                time: new Date().toISOString(),
                datacontenttype: 'application/json',
                data:
                  route.event.data === undefined ? body : renderTree(route.event.data as TemplateTree, scope),
              };
              if (route.event.subject) {
                const subject = route.event.subject.render(scope);
                if (subject !== '') draft.subject = subject;
              }
              let event: CloudEvent;
              try {
                event = validateEvent(draft);
              } catch (err) {
                // A limit passed keeps its own code (413 ATTRIBUTE_TOO_LONG…); the rest is the route's doing.
                if (err instanceof EventValidationError && err.code === 'EVENT_INVALID') {
                  throw new HeraldError(
                    'REQUEST_INVALID',
                    `the route made an invalid event: ${err.message}`,
                    {
                      details: { attribute: err.attribute },
                    },
                  );
                }
                throw err;
              }
              const [result] = await context.ingest([event]);
              return { status: route.status, body: { id: event.id, duplicate: result?.duplicate ?? false } };
            },
          });
        });
      },
      async stop() {},
    };
  },
};
