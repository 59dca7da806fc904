import { z } from 'zod';
import type { SourceKind } from '../../engine/types.js';
import { HeraldError } from '../../errors.js';
import { normaliseDebezium } from '../../events/debezium.js';
import { decodeHeaderValue } from '../../events/http.js';
import { validateEvent } from '../../events/index.js';
import { checkBatchSize, eventLimits, parseJsonText } from '../../events/limits.js';
import type { CloudEvent } from '../../events/types.js';
import { parseJsonBody } from '../../http-input.js';
import { ingestAuthSchema } from '../../signing/ingest-auth.js';

export const debeziumSourceConfigSchema = z.strictObject({
  path: z
    .string()
    .regex(/^\/[A-Za-z0-9/_.:-]*$/, 'a path starts with "/"')
    .default('/debezium')
    .describe(
      'URL path that accepts Debezium events (POST): the bare envelope, the JSON converter’s {schema, payload}, a CloudEvent from Debezium’s CloudEvents converter (structured or binary), a CloudEvent whose data is a Debezium value as a Kafka bridge (Knative KafkaSource) forwards it, or a JSON array of these.',
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

const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]*\+)?json$/i;

/**
 * A CloudEvent in binary mode: attributes in ce-* headers, the body is the data. An empty body is
 * no data (a Kafka tombstone forwarded by a bridge); a body without a content type is read as
 * JSON, since a bridge forwarding a Kafka record does not always know the value's type.
 */
function fromBinary(
  headers: Record<string, string | string[] | undefined>,
  raw: Buffer,
): Record<string, unknown> {
  const event: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith('ce-') && typeof value === 'string') event[name.slice(3)] = decodeHeaderValue(value);
  }
  const contentType = headers['content-type'];
  const mediaType = typeof contentType === 'string' ? contentType.split(';')[0]!.trim() : '';
  if (mediaType) event.datacontenttype = contentType;
  if (raw.length === 0) return event;
  // Data of another type is kept as text: the normaliser refuses it, naming the type.
  event.data =
    !mediaType || JSON_MEDIA_TYPE.test(mediaType)
      ? parseJsonText(raw.toString('utf8'), 'body', eventLimits().jsonDepth)
      : raw.toString('utf8');
  return event;
}

const firstHeader = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

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
          readsRawBody: true,
          async handler(req) {
            const raw = req.rawBody ?? Buffer.alloc(0);
            const body =
              typeof req.headers['ce-specversion'] === 'string'
                ? fromBinary(req.headers, raw)
                : parseJsonBody(raw, firstHeader(req.headers['content-type']));
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
