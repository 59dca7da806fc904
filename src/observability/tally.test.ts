import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { BoundedPairs, OTHER } from './bounded.js';
import { Tally } from './tally.js';

it('a tallied counter reads the sums at every scrape, each count once', async () => {
  const registry = new Registry();
  const tally = new Tally(['channel', 'outcome']);
  const counter: Counter<'channel' | 'outcome'> = new Counter({
    name: 'test_attempts_total',
    help: 'attempts',
    labelNames: ['channel', 'outcome'],
    registers: [registry],
    collect: (): void => tally.flushInto(counter),
  });
  const read = async () =>
    Object.fromEntries(
      (await counter.get()).values.map((v) => [`${v.labels.channel}/${v.labels.outcome}`, v.value]),
    );
  for (let i = 0; i < 3; i++) tally.add('hook', 'delivered');
  tally.add('hook', 'retry', 2);
  tally.add('mail', 'delivered');
  assert.deepEqual(await read(), { 'hook/delivered': 3, 'hook/retry': 2, 'mail/delivered': 1 });
  assert.deepEqual(await read(), { 'hook/delivered': 3, 'hook/retry': 2, 'mail/delivered': 1 });
  tally.add('hook', 'delivered');
  assert.match(await registry.metrics(), /test_attempts_total\{channel="hook",outcome="delivered"\} 4/);
});

it('bounded pairs keep the first 200 pairs by name and count later ones as other', () => {
  const pairs = new BoundedPairs(100, 200);
  const counted: string[] = [];
  const count = (a: string, b: string) => counted.push(`${a}/${b}`);
  for (let s = 0; s < 20; s++) for (let t = 0; t < 10; t++) pairs.count(`s${s}`, `t${t}`, count);
  pairs.count('s0', 't0', count);
  pairs.count('s0', 't10', count);
  pairs.count('s20', 't0', count);
  assert.deepEqual(counted.slice(-3), ['s0/t0', `${OTHER}/${OTHER}`, `${OTHER}/${OTHER}`]);
  pairs.count('s19', 't9', count);
  assert.equal(counted.at(-1), 's19/t9', 'a pair seen before the bound keeps its names');
  assert.equal(new Set(counted).size, 201);
});
