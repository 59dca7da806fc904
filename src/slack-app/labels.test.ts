import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inboxChannel } from '../channels/inbox/index.js';
import { ConfigError, loadConfig, type Registries } from '../config/load.js';
import type { ChannelKind } from '../engine/types.js';
import { builtInDialects } from '../filters/index.js';
import { compileTemplate } from '../templates/index.js';
import { renderFeedHome } from './home.js';
import { createKeyLabeler, keyText, MAX_LABELLED_KEYS } from './labels.js';

const products: Record<string, Record<string, unknown>> = {
  '1': { name: 'Red Kettle' },
  '2': { name: 'Tea & <Cups>' },
};
const readRow = async (view: string, key: string) => {
  assert.equal(view, 'products');
  const value = products[key];
  return value ? { key, value } : null;
};
const rules = [
  { prefix: 'product:', view: 'products', text: compileTemplate('{{ row.name }}') },
  { prefix: 'email:', text: compileTemplate('{{ id }}') },
];

describe('key labels (slack.labels)', () => {
  it('names a key by its view row, by the rest of the key, or not at all', async () => {
    const labels = await createKeyLabeler(rules, readRow)(['product:1', 'email:a@example.com', 'team:x']);
    assert.deepEqual(
      [...labels],
      [
        ['product:1', 'Red Kettle'],
        ['email:a@example.com', 'a@example.com'],
      ],
    );
  });

  it('a key whose row is gone, or whose label renders empty or fails, is shown as the key', async () => {
    const errors: string[] = [];
    const broken = {
      get name(): string {
        throw new Error('no name');
      },
    };
    const labels = await createKeyLabeler(
      [
        { prefix: 'product:', view: 'products', text: compileTemplate('{{ row.name }}') },
        { prefix: 'blank:', text: compileTemplate('{{ row.name }}') },
        { prefix: 'broken:', view: 'products', text: compileTemplate('{{ row.name }}') },
      ],
      async (view, key) => (key === 'b' ? { key, value: broken } : readRow(view, key)),
      (key) => errors.push(key),
    )(['product:9', 'blank:x', 'broken:b']);
    assert.equal(labels.size, 0);
    assert.deepEqual(errors, ['broken:b']);
    const shown = renderFeedHome({
      items: [],
      keys: ['product:9', 'blank:x', 'broken:b'],
      labels,
      preferences: {},
      specs: {},
      config: { renderer: 'feed', title: 'Herald', line: '', limit: 30 },
      command: '/herald',
      now: 0,
    }).map((b) => (b.type === 'section' ? b.text?.text : undefined));
    assert.ok(shown.includes('`product:9`'));
    assert.ok(shown.includes('`blank:x`'));
    assert.ok(shown.includes('`broken:b`'));
  });

  it('a failing view read does not fail the Home: the key is shown and the error reported', async () => {
    const errors: string[] = [];
    const labels = await createKeyLabeler(
      rules,
      async () => {
        throw new Error('store is down');
      },
      (key, err) => errors.push(`${key}: ${err.message}`),
    )(['product:1']);
    assert.equal(labels.size, 0);
    assert.deepEqual(errors, ['product:1: store is down']);
  });

  it('the Home shows names as bold text with Slack markup escaped, and keeps the key on Stop', async () => {
    const labels = await createKeyLabeler(rules, readRow)(['product:1', 'product:2', 'team:x']);
    const blocks = renderFeedHome({
      items: [],
      keys: ['product:1', 'product:2', 'team:x'],
      labels,
      preferences: {},
      specs: {},
      config: { renderer: 'feed', title: 'Herald', line: '', limit: 30 },
      command: '/herald',
      now: 0,
    });
    const following = blocks.flatMap((b) =>
      b.type === 'section' && b.accessory?.type === 'button' ? [b] : [],
    );
    assert.deepEqual(
      following.map((b) => b.text?.text),
      ['*Red Kettle*', '*Tea &amp; &lt;Cups&gt;*', '`team:x`'],
    );
    assert.deepEqual(
      following.map((b) => JSON.parse((b.accessory as { value: string }).value).key),
      ['product:1', 'product:2', 'team:x'],
    );
    assert.equal(keyText('team:x', labels), '`team:x`');
  });

  it('reads at most MAX_LABELLED_KEYS rows however many keys are asked for', async () => {
    let reads = 0;
    const keys = Array.from({ length: MAX_LABELLED_KEYS + 30 }, (_, i) => `product:${i}`);
    await createKeyLabeler(rules, async (view, key) => {
      reads++;
      return readRow(view, key);
    })(keys);
    assert.equal(reads, MAX_LABELLED_KEYS);
  });
});

describe('slack.labels in the config', () => {
  const registries: Registries = {
    channels: [inboxChannel] as ChannelKind[],
    sources: [],
    dialects: builtInDialects,
  };
  const config = (labels: string) => `
channels: { box: { kind: inbox } }
projections:
  products: { key: id, rules: [{ upsert: after }] }
slack:
  token: xoxb-1
  signingSecret: s
  labels: ${labels}
`;
  const issues = (yaml: string) => {
    try {
      loadConfig(yaml, registries, { env: {} });
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    }
    return [];
  };

  it('accepts labels with and without a view', () => {
    assert.deepEqual(
      issues(
        config(
          '[{ prefix: "product:", view: products, text: "{{ row.name }}" }, { prefix: "email:", text: "{{ id }}" }]',
        ),
      ),
      [],
    );
  });

  it('names a view that is not a projection, and a label that does not parse', () => {
    assert.deepEqual(issues(config('[{ prefix: "product:", view: product, text: "{{ row.name }}" }]')), [
      'slack.labels.0.view: unknown view "product" (did you mean "products"?)',
    ]);
    const [bad] = issues(config('[{ prefix: "product:", text: "{{ row.name " }]'));
    assert.match(String(bad), /^slack\.labels\.0\.text: template does not parse/);
  });
});
