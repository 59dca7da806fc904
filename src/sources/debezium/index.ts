import { z } from 'zod';
import type { SourceKind } from '../../engine/types.js';
import { HeraldError } from '../../errors.js';
import { normaliseDebezium } from '../../events/debezium.js';
import { decodeHeaderValue } from '../../events/http.js';
import { validateEvent } from '../../events/index.js';
import { checkBatchSize } from '../../events/limits.js';
import type { CloudEvent } from '../../events/types.js';
import { ingestAuthSchema } from '../../signing/ingest-auth.js';

export const debeziumSourceConfigSchema = z.strictObject({
  path: z
    .string()
    .regex(/^\/[A-Za-z0-9/_.:-]*$/, 'a path starts with "/"')
    .default('/debezium')
    .describe(
      'URL path that accepts Debezium events (POST): the bare envelope, the JSON converter’s {schema, payload}, a CloudEvent from Debezium’s CloudEvents converter (structured or binary), or a JSON array of these.',
    ),
  keys: z
    .record(z.string(), z.array(z.string()).min(1))
    .default({})
    .describe(
      'Key columns per table ("schema.table" or "table"), which make the event subject. Default: the "id" column.',
    ),
  auth: ingestAuthSchema.optional(),
});
export type DebeziumSourceConfig = z.infer<typeof debeziumSourceConfigSchema>;

/** A CloudEvent in binary mode: attributes in ce-* headers, the body is the data. */
function fromBinary(
  headers: Record<string, string | string[] | undefined>,
  body: unknown,
): Record<string, unknown> {
  const event: Record<string, unknown> = { data: body };
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith('ce-') && typeof value === 'string') event[name.slice(3)] = decodeHeaderValue(value);
  }
  const contentType = headers['content-type'];
  if (typeof contentType === 'string') event.datacontenttype = contentType;
  return event;
}

export const debeziumHttpSource: SourceKind<DebeziumSourceConfig> = {
  kind: 'debezium',
  description:
    'An HTTP route for Debezium change events from elsewhere, normalised to the same CloudEvents the postgres-cdc source makes.',
  configSchema: debeziumSourceConfigSchema,
  create(name, config, context) {
    const keyColumns = (schema: string | undefined, table: string | undefined) =>
      config.keys[`${schema}.${table}`] ??
      (schema === 'public' || !schema ? config.keys[table ?? ''] : undefined);
    return {
      async start() {
        if (!context.http) throw new HeraldError('SOURCE_ERROR', `source ${name} needs Herald's HTTP server`);
        context.http.addRoute({
          method: 'POST',
          path: config.path,
          auth: config.auth,
          async handler(req) {
            const body =
              typeof req.headers['ce-specversion'] === 'string'
                ? fromBinary(req.headers, req.body)
                : req.body;
            if (body === undefined)
              throw new HeraldError('REQUEST_INVALID', 'expected a JSON body', { status: 400 });
            const inputs = Array.isArray(body) ? body : [body];
            checkBatchSize(inputs.length, 'the request');
            const events: CloudEvent[] = [];
            const ignored: string[] = [];
            inputs.forEach((input, i) => {
              let result: ReturnType<typeof normaliseDebezium>;
              try {
                result = normaliseDebezium(input, { keyColumns });
              } catch (err) {
                const reason = (err as Error).message;
                context.logger.warn({ index: i, reason }, 'rejected a Debezium event');
                throw new HeraldError(
                  'REQUEST_INVALID',
                  inputs.length > 1 ? `event ${i}: ${reason}` : reason,
                  {
                    details: { index: i },
                  },
                );
              }
              if (result.kind === 'ignored') ignored.push(result.reason);
              else {
                if (result.warning) context.logger.warn({ id: result.event.id }, result.warning);
                // The normaliser builds the event from the row; the limits on attributes still apply.
                events.push(validateEvent(result.event, inputs.length > 1 ? `[${i}]` : ''));
              }
            });
            const results = await context.ingest(events);
            const duplicates = results.filter((r) => r.duplicate).length;
            return {
              status: 202,
              body: {
                accepted: results.length - duplicates,
                duplicates,
                ignored: ignored.length,
                ids: results.map((r) => r.id),
              },
            };
          },
        });
      },
      async stop() {},
    };
  },
};
