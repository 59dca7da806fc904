import assert from 'node:assert/strict';
import { it } from 'node:test';
import pino from 'pino';
import type { CloudEvent } from '../events/types.js';
import { builtInDialects, compileFilter, matchAll } from '../filters/index.js';
import { sqlDialect } from '../filters/sql.js';
import { compileTemplate } from '../templates/index.js';
import { DEFAULT_BACKOFF } from './backoff.js';
import type { CompiledAction, CompiledTrigger } from './model.js';
import { Router, type SubscriberDirectory } from './router.js';
import type { Store } from './store.js';

const policy = { maxAttempts: 3, backoff: DEFAULT_BACKOFF };
const sql = (name: string, expression: string) =>
  compileFilter({ sql: expression }, ['triggers', name, 'filter'], [...builtInDialects, sqlDialect]);
/** The event both tests route: its `ext` is no number, so `INT(ext)` reports a cast error. */
const event: CloudEvent = { specversion: '1.0', id: 'e1', source: '/s', type: 't', subject: '42', ext: 'x' };
/** Plans `event` at time 1000, as ingest would before appending it. */
async function planOf(
  triggers: CompiledTrigger[],
  directory: SubscriberDirectory,
  hooks: ConstructorParameters<typeof Router>[3] = {},
) {
  const router = new Router({} as Store, triggers, pino({ level: 'silent' }), hooks, directory);
  const [plan] = await router.planBeforeAppend([event], 1000);
  return plan!;
}
const action = (index: number, to: CompiledAction['to']): CompiledAction => ({
  index,
  channel: 'hook',
  to,
  params: {},
});

it('plans subscriber lookups, listed recipients and filter errors in trigger order, as one record', async () => {
  const asked: string[] = [];
  const directory: SubscriberDirectory = {
    async recipientsOf(key, _where, _channel, _event, onMuted) {
      asked.push(key);
      if (key === 'down') throw new Error('the directory is down');
      onMuted?.({ id: 's2', name: 'Sam' }, 'prefers no email');
      return [{ address: 'u1', subscriber: { id: 's1', name: null, preferences: {} } }];
    },
  };
  const triggers: CompiledTrigger[] = [
    { name: 'casts', matcher: sql('casts', 'INT(ext) > 1'), actions: [action(0, { kind: 'none' })], policy },
    {
      name: 'watchers',
      matcher: matchAll,
      actions: [
        action(0, { kind: 'subscribers', key: compileTemplate('product:{{ event.subject }}') }),
        action(1, { kind: 'subscribers', key: compileTemplate('down') }),
      ],
      policy,
    },
    {
      name: 'misses',
      matcher: sql('misses', "absent = 'a'"),
      actions: [action(0, { kind: 'none' })],
      policy,
    },
    {
      name: 'listed',
      matcher: matchAll,
      actions: [action(0, { kind: 'list', templates: [compileTemplate('a@example.com, b@example.com')] })],
      policy,
    },
    {
      name: 'elsewhere',
      matcher: sql('elsewhere', "subject = 'other'"),
      actions: [action(0, { kind: 'none' })],
      policy,
    },
  ];
  const { record, deliveries } = await planOf(triggers, directory);

  assert.deepEqual(asked, ['product:42', 'down']);
  assert.deepEqual(record.matched, ['watchers', 'listed']);
  assert.deepEqual(
    record.errors.map((e) => [e.trigger, e.dialect, e.kind]),
    [
      ['casts', 'sql', 'cast'],
      ['watchers', 'to', 'recipient'],
      ['misses', 'sql', 'missingAttribute'],
    ],
  );
  assert.equal(record.errors[1]!.message, 'the directory is down');
  assert.deepEqual(record.muted, [
    { trigger: 'watchers', action: 0, subscriber: 'Sam (s2)', reason: 'prefers no email' },
  ]);
  assert.deepEqual(
    deliveries.map((d) => [d.trigger, d.action, d.recipient, d.notBefore]),
    [
      ['watchers', 0, 'u1', 1000],
      ['listed', 0, 'a@example.com', 1000],
      ['listed', 0, 'b@example.com', 1000],
    ],
  );
  assert.equal(record.deliveries, 3);
  assert.equal(new Set(deliveries.map((d) => d.idempotencyKey)).size, 3);
});

it('evaluates the filter of a trigger that asks the directory once per event, errors and all', async () => {
  const evaluated = new Map<string, number>();
  const counted = (name: string, matcher: CompiledTrigger['matcher']): CompiledTrigger['matcher'] =>
    Object.assign((event: CloudEvent, errors: Parameters<CompiledTrigger['matcher']>[1]) => {
      evaluated.set(name, (evaluated.get(name) ?? 0) + 1);
      return matcher(event, errors);
    }, matcher);
  const subscribers = (name: string, matcher: CompiledTrigger['matcher']): CompiledTrigger => ({
    name,
    matcher: counted(name, matcher),
    actions: [action(0, { kind: 'subscribers', key: compileTemplate(name) })],
    policy,
  });
  const triggers = [
    subscribers('watchers', sql('watchers', "subject = '42'")),
    subscribers('broken', sql('broken', 'INT(ext) > 1')),
    subscribers('others', sql('others', "subject = '7'")),
  ];
  const filterErrors: string[] = [];
  const directory: SubscriberDirectory = {
    recipientsOf: async (key) => [
      { address: `${key}-1`, subscriber: { id: 's1', name: null, preferences: {} } },
    ],
  };
  const plan = await planOf(triggers, directory, {
    onFilterError: (trigger, error) => filterErrors.push(`${trigger}:${error.kind}`),
  });

  // `others` needs subject '7': the trigger index leaves it out unevaluated.
  assert.deepEqual(Object.fromEntries(evaluated), { watchers: 1, broken: 1 });
  assert.deepEqual(plan.record.matched, ['watchers']);
  assert.deepEqual(
    plan.record.errors.map((e) => [e.trigger, e.kind]),
    [['broken', 'cast']],
  );
  assert.deepEqual(filterErrors, ['broken:cast']);
  assert.deepEqual(
    plan.deliveries.map((d) => d.recipient),
    ['watchers-1'],
  );
});
