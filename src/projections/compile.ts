import { createHash } from 'node:crypto';
import type { CloudEvent } from '../events/types.js';
import type { Matcher } from '../filters/types.js';
import { renderTree, type Template, type TemplateTree } from '../templates/index.js';
import type { AlertConfig, ProjectionConfig, ValueConfig } from './config.js';

type Fields = Record<string, unknown>;

/** One change to one row, planned from one event. */
export type Op =
  | { kind: 'upsert'; key: string; fields: Fields }
  | { kind: 'delete'; key: string }
  | { kind: 'add'; key: string; field: string; amount: number; verb: 'increment' | 'decrement' };

export interface CompiledRule {
  matcher: Matcher;
  plan(event: CloudEvent): Op;
}

export interface CompiledProjection {
  name: string;
  /** Events the projection is responsible for (no rule matching them is a failure); null: none. */
  scope: Matcher | null;
  rules: CompiledRule[];
  alerts: AlertConfig[];
  batchSize: number;
}

/** Why an event cannot be applied; the message becomes the DLQ reason. */
export class ProjectionError extends Error {}

const PATH = /^\{\{\s*([A-Za-z_$][\w$]*(?:\.[\w$]+)*)\s*\}\}$/;

/** Reads a template: a bare path keeps the value's JSON type, anything else renders a string. */
function reader(template: Template): (scope: Fields) => unknown {
  const path = PATH.exec(template.source)?.[1]?.split('.');
  if (template.constant || !path) return (scope) => template.render(scope);
  return (scope) => {
    let v: unknown = scope;
    for (const part of path) {
      if (v === null || typeof v !== 'object') return undefined;
      v = (v as Fields)[part];
    }
    return v;
  };
}

/** Numbers as Debezium may send them: numbers, or numeric/decimal as strings. */
export function toNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && value.trim() !== '') {
    const n = Number(value.trim());
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

function valueReader(spec: ValueConfig, what: string): (scope: Fields) => unknown {
  const template = 'value' in spec ? spec.value : spec;
  const type = 'value' in spec ? spec.type : 'auto';
  const read = reader(template);
  return (scope) => {
    const v = read(scope);
    switch (type) {
      case 'number': {
        if (v === undefined || v === null || v === '') return null;
        const n = toNumber(v);
        if (n === undefined) throw new ProjectionError(`${what}: ${JSON.stringify(v)} is not a number`);
        return n;
      }
      case 'string':
        return v === undefined || v === null ? null : typeof v === 'string' ? v : JSON.stringify(v);
      case 'boolean':
        return v === undefined || v === null ? null : v === true || v === 'true' || v === 1 || v === '1';
      default:
        return v === undefined ? null : v;
    }
  };
}

function keyReader(template: Template, what: string): (event: CloudEvent) => string {
  let read: (scope: Fields) => unknown;
  if (template.constant) {
    // A bare column name: the row's own key, from `after`, or `before` for a delete.
    const column = template.source;
    read = ({ event }) => {
      const data = (event as CloudEvent).data as
        | { after?: Fields | null; before?: Fields | null }
        | undefined;
      return data?.after?.[column] ?? data?.before?.[column];
    };
  } else read = reader(template);
  return (event) => {
    const v = read({ event });
    if (v === undefined || v === null || v === '' || typeof v === 'object')
      throw new ProjectionError(
        `${what} (${template.source}) gave no key${v === undefined || v === null ? '' : `: ${JSON.stringify(v)}`}`,
      );
    return String(v);
  };
}

export function compileProjection(
  name: string,
  config: ProjectionConfig,
  compileFilter: (filter: unknown, path: (string | number)[]) => Matcher,
): CompiledProjection {
  const ownKey = keyReader(config.key, 'key');
  const rules = config.rules.map((rule, index): CompiledRule => {
    const where = `rule ${index + 1}`;
    const matcher: Matcher =
      rule.filter === undefined
        ? () => true
        : compileFilter(rule.filter, ['projections', name, 'rules', index, 'filter']);
    const key = rule.key
      ? keyReader(rule.key, `${where}: key`)
      : (e: CloudEvent) => {
          try {
            return ownKey(e);
          } catch (err) {
            throw new ProjectionError(`${where}: ${(err as Error).message}`);
          }
        };
    if (rule.delete) return { matcher, plan: (event) => ({ kind: 'delete', key: key(event) }) };
    const amount = rule.increment ?? rule.decrement;
    if (amount) {
      const verb = rule.increment ? 'increment' : 'decrement';
      const by = valueReader(
        'value' in amount.by ? { ...amount.by, type: 'number' } : { value: amount.by, type: 'number' },
        `${where}: ${verb} ${amount.field} by`,
      );
      return {
        matcher,
        plan(event) {
          const n = by({ event });
          if (typeof n !== 'number')
            throw new ProjectionError(`${where}: ${verb} ${amount.field}: the amount is missing`);
          return { kind: 'add', key: key(event), field: amount.field, amount: rule.increment ? n : -n, verb };
        },
      };
    }
    const upsert = rule.upsert!;
    if (upsert === 'after') {
      return {
        matcher,
        plan(event) {
          const after = (event.data as { after?: unknown } | undefined)?.after;
          if (after === null || typeof after !== 'object' || Array.isArray(after))
            throw new ProjectionError(`${where}: upsert from after: the event has no \`after\` row`);
          return { kind: 'upsert', key: key(event), fields: { ...(after as Fields) } };
        },
      };
    }
    const fields = Object.entries(upsert).map(
      ([field, spec]) => [field, valueReader(spec, `${where}: ${field}`)] as const,
    );
    return {
      matcher,
      plan(event) {
        const out: Fields = {};
        for (const [field, read] of fields) out[field] = read({ event });
        return { kind: 'upsert', key: key(event), fields: out };
      },
    };
  });
  return {
    name,
    scope: config.filter === undefined ? null : compileFilter(config.filter, ['projections', name, 'filter']),
    rules,
    alerts: config.alerts,
    batchSize: config.batchSize,
  };
}

/**
 * Plans an event: the ops of every matching rule, in order; null when the projection does not
 * care about the event. Throws ProjectionError when it cannot be applied.
 */
export function planEvent(projection: CompiledProjection, event: CloudEvent): Op[] | null {
  const errors: { message: string }[] = [];
  const ops: Op[] = [];
  for (const rule of projection.rules) {
    errors.length = 0;
    const matched = rule.matcher(event, errors as never);
    if (!matched) continue;
    ops.push(rule.plan(event));
  }
  if (ops.length > 0) return ops;
  if (projection.scope?.(event, [])) {
    const table = (event as Fields).iodebeziumtable;
    const op = (event.data as { op?: unknown } | undefined)?.op;
    throw new ProjectionError(
      `no rule of projection ${projection.name} matches this event (type ${event.type}${table ? `, table ${String(table)}` : ''}${op ? `, op ${String(op)}` : ''})`,
    );
  }
  return null;
}

/**
 * Applies one event's ops to `rows` (the batch's working copy) all or nothing, and returns the
 * alerts it raises. Throws ProjectionError (leaving `rows` untouched) when an op cannot apply.
 */
export function applyOps(
  projection: CompiledProjection,
  event: CloudEvent,
  ops: Op[],
  rows: Map<string, Fields | null>,
): CloudEvent[] {
  const touched = new Map<string, Fields | null>();
  const current = (key: string) => (touched.has(key) ? touched.get(key)! : (rows.get(key) ?? null));
  for (const op of ops) {
    const row = current(op.key);
    if (op.kind === 'delete') touched.set(op.key, null);
    else if (op.kind === 'upsert') touched.set(op.key, { ...(row ?? {}), ...op.fields });
    else {
      if (!row)
        throw new ProjectionError(
          `${op.verb} ${op.field}: row ${op.key} does not exist in ${projection.name}`,
        );
      const before = row[op.field] ?? 0;
      const n = toNumber(before);
      if (n === undefined)
        throw new ProjectionError(
          `${op.verb} ${op.field} of row ${op.key}: ${JSON.stringify(before)} is not a number`,
        );
      touched.set(op.key, { ...row, [op.field]: n + op.amount });
    }
  }
  const alerts: CloudEvent[] = [];
  for (const [key, next] of touched) {
    const previousRow = rows.get(key) ?? null;
    projection.alerts.forEach((alert, index) => {
      const previous = toNumber(previousRow?.[alert.field]);
      const value = toNumber(next?.[alert.field]);
      if (previous === undefined || value === undefined) return;
      if (previous >= alert.below && value < alert.below)
        alerts.push(alertEvent(projection.name, index, alert, event, key, previous, value, next!));
    });
  }
  for (const [key, value] of touched) rows.set(key, value);
  return alerts;
}

function alertEvent(
  projection: string,
  index: number,
  alert: AlertConfig,
  cause: CloudEvent,
  key: string,
  previous: number,
  value: number,
  row: Fields,
): CloudEvent {
  const scope = {
    event: cause,
    projection,
    key,
    field: alert.field,
    below: alert.below,
    value,
    previous,
    row,
  };
  // Derived from the crossing event: a replayed batch re-emits the same id, which ingest drops.
  const id = createHash('sha256')
    .update(`${projection}\u0000${index}\u0000${key}\u0000${cause.source}\u0000${cause.id}`)
    .digest('hex')
    .slice(0, 32);
  return {
    specversion: '1.0',
    id,
    source: `herald://projections/${projection}`,
    type: alert.emit.type,
    subject: alert.emit.subject ? alert.emit.subject.render(scope) : key,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data:
      alert.emit.data !== undefined
        ? renderTree(alert.emit.data as TemplateTree, scope)
        : { projection, key, field: alert.field, below: alert.below, value, previous, row },
  };
}
