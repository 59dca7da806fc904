import { createHash } from 'node:crypto';
import { HeraldError } from '../errors.js';
import { checkValueDepth, eventLimits } from './limits.js';
import type { CloudEvent } from './types.js';

/**
 * Debezium's change-event envelope and the one CloudEvent shape Herald gives every row change,
 * whether Herald read it from PostgreSQL itself or a Debezium connector sent it from elsewhere.
 *
 * The shape: `type` and `source` as Debezium's CloudEvents converter names them
 * (`io.debezium.connector.<connector>.DataChangeEvent`, `/debezium/<connector>/<name>`), `time` =
 * the change's time in the database (`source.ts_ms`), `subject` = the row's key, `data` = the
 * whole envelope (before, after, source, op, ts_ms), and the converter's `iodebezium*` extensions
 * (strings, as the converter writes them) so filters can match a table or an operation without
 * reaching into `data`.
 */

export type DebeziumOp = 'c' | 'u' | 'd' | 'r' | 't' | 'm';
const OPS = new Set<string>(['c', 'u', 'd', 'r', 't', 'm']);

export type Row = Record<string, unknown>;

export interface DebeziumSourceInfo {
  version?: string;
  connector: string;
  name: string;
  ts_ms?: number;
  snapshot?: boolean | string;
  db?: string;
  schema?: string;
  table?: string;
  txId?: number | null;
  lsn?: number | null;
  xmin?: number | null;
  [field: string]: unknown;
}

export interface DebeziumEnvelope {
  before?: Row | null;
  after?: Row | null;
  source: DebeziumSourceInfo;
  op: DebeziumOp;
  ts_ms?: number;
  [field: string]: unknown;
}

export const debeziumType = (connector: string) => `io.debezium.connector.${connector}.DataChangeEvent`;
export const debeziumSource = (connector: string, name: string) => `/debezium/${connector}/${name}`;

/** Debezium writes this in place of a TOASTed column value the change did not carry. */
export const UNAVAILABLE_VALUE = '__debezium_unavailable_value';

/**
 * The subject of a row change: a single-column key as its value (`42`, `sku-1`), a composite key
 * as a JSON object in key-column order (`{"order_id":7,"line":2}`). Undefined when a key column is
 * missing from the row.
 */
export function keySubject(row: Row | null | undefined, keyColumns: readonly string[]): string | undefined {
  if (!row || keyColumns.length === 0) return undefined;
  if (keyColumns.length === 1) {
    const value = row[keyColumns[0]!];
    if (value === undefined || value === null) return undefined;
    return typeof value === 'string' ? value : JSON.stringify(value);
  }
  const key: Row = {};
  for (const column of keyColumns) {
    const value = row[column];
    if (value === undefined || value === null) return undefined;
    key[column] = value;
  }
  return JSON.stringify(key);
}

function isoFromMs(ms: number | undefined): string | undefined {
  // Debezium writes 0 when it does not know the change's time (MySQL snapshots).
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) return undefined;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** Builds the CloudEvent for one envelope. `id` must be stable across redelivery of the change. */
export function changeCloudEvent(envelope: DebeziumEnvelope, id: string, subject?: string): CloudEvent {
  const s = envelope.source;
  const event: CloudEvent = {
    specversion: '1.0',
    id,
    source: debeziumSource(s.connector, s.name),
    type: debeziumType(s.connector),
  };
  if (subject !== undefined && subject !== '') event.subject = subject;
  const time = isoFromMs(s.ts_ms) ?? isoFromMs(envelope.ts_ms);
  if (time) event.time = time;
  event.datacontenttype = 'application/json';
  event.data = envelope;
  event.iodebeziumop = envelope.op;
  if (s.version !== undefined) event.iodebeziumversion = String(s.version);
  event.iodebeziumconnector = s.connector;
  event.iodebeziumname = s.name;
  if (s.ts_ms !== undefined) event.iodebeziumtsms = String(s.ts_ms);
  if (s.snapshot !== undefined && s.snapshot !== null) event.iodebeziumsnapshot = String(s.snapshot);
  if (s.db !== undefined) event.iodebeziumdb = s.db;
  if (s.schema !== undefined) event.iodebeziumschema = s.schema;
  if (s.table !== undefined) event.iodebeziumtable = s.table;
  if (s.lsn !== undefined && s.lsn !== null) event.iodebeziumlsn = String(s.lsn);
  if (s.txId !== undefined && s.txId !== null) event.iodebeziumtxid = String(s.txId);
  return event;
}

/* ------------------------------------------------------------- normalisation */

export interface NormaliseOptions {
  /**
   * The key columns of a table (the subject). Default: `id` when the row has it; a table whose
   * key cannot be found gets no subject and a `warning`.
   */
  keyColumns?(schema: string | undefined, table: string | undefined): readonly string[] | undefined;
  /** The row key a Kafka bridge carried beside the value: the subject when no key columns are configured. */
  kafkaKey?: Row;
}

export type Normalised =
  | { kind: 'event'; event: CloudEvent; warning?: string }
  /** Valid Debezium output that is not a row change: a tombstone, transaction metadata. */
  | { kind: 'ignored'; reason: string };

const invalid = (message: string) =>
  new HeraldError('REQUEST_INVALID', `not a Debezium change event: ${message}`);

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Turns a Debezium event as a connector emits it — the bare envelope (JSON converter with
 * `schemas.enable=false`), the JSON converter's `{schema, payload}` wrapper, or a structured
 * CloudEvent from Debezium's CloudEvents converter with JSON data — into Herald's CloudEvent.
 * Throws a REQUEST_INVALID HeraldError saying what is wrong with anything else.
 */
export function normaliseDebezium(input: unknown, options: NormaliseOptions = {}): Normalised {
  // The change's id hashes the rows recursively: bound their depth before anything walks them.
  checkValueDepth(input, eventLimits().jsonDepth, '');
  if (input === null) return { kind: 'ignored', reason: 'tombstone (the null value that follows a delete)' };
  if (!isObject(input))
    throw invalid(`expected a JSON object, got ${Array.isArray(input) ? 'an array' : typeof input}`);
  if (typeof input.specversion === 'string') return normaliseCloudEvent(input, options);
  if (isJsonConverterWrapper(input)) return normaliseDebezium(input.payload, options);
  if (
    typeof input.status === 'string' &&
    (input.status === 'BEGIN' || input.status === 'END') &&
    !('op' in input)
  ) {
    return { kind: 'ignored', reason: `transaction metadata (${input.status} of ${String(input.id)})` };
  }
  return normaliseEnvelope(input, options);
}

function normaliseEnvelope(input: Record<string, unknown>, options: NormaliseOptions): Normalised {
  const op = input.op;
  const source = input.source;
  if (op === undefined && source === undefined) {
    throw invalid(
      'it has neither "op" nor "source" (a message key or a flattened row? Herald needs the whole envelope)',
    );
  }
  if (typeof op !== 'string' || !OPS.has(op))
    throw invalid(`"op" must be one of c, u, d, r, t, m, got ${JSON.stringify(op)}`);
  if (!isObject(source)) throw invalid('"source" must be an object');
  if (typeof source.connector !== 'string' || source.connector === '')
    throw invalid('"source.connector" is missing');
  if (typeof source.name !== 'string' || source.name === '') throw invalid('"source.name" is missing');
  for (const side of ['before', 'after'] as const) {
    const row = input[side];
    if (row !== undefined && row !== null && !isObject(row))
      throw invalid(`"${side}" must be an object or null`);
  }
  if ((op === 'c' || op === 'r' || op === 'u') && !isObject(input.after))
    throw invalid(`op "${op}" needs "after"`);
  if (op === 'd' && !isObject(input.before)) throw invalid('op "d" needs "before"');
  const envelope = input as DebeziumEnvelope;
  return finish(envelope, options);
}

function finish(envelope: DebeziumEnvelope, options: NormaliseOptions): Normalised {
  const s = envelope.source;
  let subject: string | undefined;
  let warning: string | undefined;
  if (envelope.op !== 't' && envelope.op !== 'm') {
    const row = envelope.after ?? envelope.before;
    const configured = options.keyColumns?.(s.schema, s.table);
    if (!configured && options.kafkaKey)
      subject = keySubject(options.kafkaKey, Object.keys(options.kafkaKey));
    const columns = configured ?? (row && 'id' in row ? ['id'] : []);
    subject ??= keySubject(row, columns);
    if (subject === undefined) {
      const table = [s.schema, s.table].filter(Boolean).join('.');
      warning = configured
        ? `the row of ${table} lacks key column(s) ${configured.join(', ')}; the event has no subject`
        : `no key columns known for ${table} and the row has no "id"; the event has no subject`;
    }
  }
  return { kind: 'event', event: changeCloudEvent(envelope, normalisedId(envelope), subject), warning };
}

/**
 * Stable for every redelivery of the same change in the same form: the position Debezium reports
 * plus a digest of what changed (snapshot rows share one position, so the position alone is not
 * unique). The top-level `ts_ms` is the connector's processing time and is left out.
 */
function normalisedId(envelope: DebeziumEnvelope): string {
  const s = envelope.source;
  const digest = createHash('sha256')
    .update(
      canonicalJson({
        source: s,
        op: envelope.op,
        before: envelope.before ?? null,
        after: envelope.after ?? null,
      }),
    )
    .digest('hex')
    .slice(0, 20);
  const parts = [`name:${s.name}`];
  if (s.lsn !== undefined && s.lsn !== null) parts.push(`lsn:${s.lsn}`);
  if (s.txId !== undefined && s.txId !== null) parts.push(`txId:${s.txId}`);
  parts.push(`h:${digest}`);
  return parts.join(';');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isObject(value)) {
    return `{${Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The JSON converter's `{schema, payload}` wrapper (`schemas.enable=true`). */
function isJsonConverterWrapper(value: unknown): value is { schema: unknown; payload: unknown } {
  return isObject(value) && 'payload' in value && 'schema' in value && Object.keys(value).length === 2;
}

/** Past this a Kafka key is not a row key anyone would write; it is ignored rather than parsed. */
const MAX_KAFKA_KEY_LENGTH = 8192;

/**
 * The row key from the Kafka record key a bridge (Knative KafkaSource: the `key` extension)
 * carries: Debezium writes the key columns there as JSON, bare or in the `{schema, payload}`
 * wrapper. Undefined when it is anything else.
 */
export function kafkaKeyRow(key: unknown): Row | undefined {
  if (typeof key !== 'string' || key === '' || key.length > MAX_KAFKA_KEY_LENGTH) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(key);
  } catch {
    return undefined;
  }
  if (isJsonConverterWrapper(parsed)) parsed = parsed.payload;
  if (!isObject(parsed) || Object.keys(parsed).length === 0) return undefined;
  const scalar = (v: unknown) => v !== null && typeof v !== 'object';
  return Object.values(parsed).every(scalar) ? parsed : undefined;
}

/*
 * A CloudEvent is either Debezium's own (its CloudEvents converter: the envelope's `source` fields
 * travel as `iodebezium*` extensions and `data` holds only before/after), or a Kafka record
 * forwarded by a bridge such as Knative's KafkaSource (type `dev.knative.kafka.event`, subject
 * `partition:<n>#<offset>`, the record key in the `key` extension): then `data` is the record's
 * value as Debezium's JSON converter wrote it, and table and operation come from it.
 */
function normaliseCloudEvent(input: Record<string, unknown>, options: NormaliseOptions): Normalised {
  const contentType = typeof input.datacontenttype === 'string' ? input.datacontenttype : 'application/json';
  const hasData = input.data !== undefined && input.data !== null;
  if ((hasData && !/^application\/(?:[\w.+-]*\+)?json\b/i.test(contentType)) || 'data_base64' in input) {
    throw invalid(
      `the CloudEvent's data is ${contentType}; Herald reads JSON data only (configure Debezium's CloudEvents converter with value.converter.data.serializer.type=json)`,
    );
  }
  const hasOpExtension = Object.keys(input).some((k) => k.toLowerCase() === 'iodebeziumop');
  if (!hasOpExtension) return normaliseBridgedRecord(input, options);
  const data = input.data;
  // A CloudEvent whose data is already a whole envelope (e.g. one Herald produced) passes through.
  if (isObject(data) && 'op' in data && 'source' in data) return normaliseEnvelope(data, options);
  const ext: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    // The converter has written `iodebeziumtxId`; CloudEvents names are lower-case, so fold.
    if (k.toLowerCase().startsWith('iodebezium') && v !== null && v !== undefined)
      ext[k.toLowerCase().slice(10)] = v;
  }
  if (data !== undefined && data !== null && !isObject(data))
    throw invalid("the CloudEvent's data must be an object");
  const str = (v: unknown) => (v === undefined ? undefined : String(v));
  const num = (v: unknown) => {
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  };
  const source: DebeziumSourceInfo = {
    connector: str(ext.connector) ?? '',
    name: str(ext.name) ?? '',
  };
  if (ext.version !== undefined) source.version = str(ext.version);
  if (ext.tsms !== undefined) source.ts_ms = num(ext.tsms);
  if (ext.snapshot !== undefined) source.snapshot = parseSnapshot(ext.snapshot);
  if (ext.db !== undefined) source.db = str(ext.db);
  if (ext.schema !== undefined) source.schema = str(ext.schema);
  if (ext.table !== undefined) source.table = str(ext.table);
  if (ext.txid !== undefined) source.txId = num(ext.txid) ?? null;
  if (ext.lsn !== undefined) source.lsn = num(ext.lsn) ?? null;
  if (ext.xmin !== undefined) source.xmin = num(ext.xmin) ?? null;
  const time = typeof input.time === 'string' ? Date.parse(input.time) : Number.NaN;
  const envelope: Record<string, unknown> = {
    before: isObject(data) && isObject(data.before) ? data.before : null,
    after: isObject(data) && isObject(data.after) ? data.after : null,
    source,
    op: ext.op,
  };
  const tsMs = Number.isFinite(time) ? time : source.ts_ms;
  if (tsMs !== undefined) envelope.ts_ms = tsMs;
  return normaliseEnvelope(envelope, options);
}

/** A Kafka record's value forwarded as a CloudEvent's data (see normaliseCloudEvent). */
function normaliseBridgedRecord(input: Record<string, unknown>, options: NormaliseOptions): Normalised {
  const value = isJsonConverterWrapper(input.data) ? input.data.payload : input.data;
  // Kafka's null value after a delete arrives as a CloudEvent without data.
  if (value === undefined || value === null)
    return {
      kind: 'ignored',
      reason: 'tombstone (a CloudEvent without data: the null value that follows a delete)',
    };
  if (isObject(value) && typeof value.specversion === 'string')
    throw invalid("the CloudEvent's data is itself a CloudEvent; send the inner event instead");
  const keyRow = kafkaKeyRow(input.key);
  try {
    return normaliseDebezium(value, keyRow ? { ...options, kafkaKey: keyRow } : options);
  } catch (err) {
    if (!(err instanceof HeraldError)) throw err;
    const reason = err.message.replace(/^not a Debezium change event: /, '');
    throw invalid(
      `the CloudEvent has no "iodebeziumop" extension (Debezium's CloudEvents converter) and its data is not a Debezium change event value (as a Kafka bridge forwards it): ${reason}`,
    );
  }
}

/** `snapshot` is a boolean in older envelopes and an enum string (true, last, false, incremental…) in newer ones. */
function parseSnapshot(value: unknown): boolean | string {
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  return String(value);
}

/** The type Knative's KafkaSource gives every Kafka record it forwards. */
export const KAFKA_BRIDGE_TYPE = 'dev.knative.kafka.event';

/**
 * Whether a CloudEvent is a Kafka record a bridge forwarded with a Debezium change as its data:
 * `/events` keeps such an event as sent (so `iodebezium*` filters do not match it), and says so.
 */
export function isBridgedDebeziumChange(event: CloudEvent): boolean {
  if (event.type !== KAFKA_BRIDGE_TYPE) return false;
  const value = isJsonConverterWrapper(event.data) ? event.data.payload : event.data;
  return isObject(value) && typeof value.op === 'string' && isObject(value.source);
}
