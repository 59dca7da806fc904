import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadCodeConfig, loadConfigFromFile } from '../../src/config/code.js';
import { ConfigError, type HeraldConfig } from '../../src/config/load.js';
import { registries } from '../../src/plugins.js';
import type { ConfigView } from '../../src/server/api-types.js';
import { repoRoot, startTestHerald, tempDir } from '../support/herald.js';

const example = (name: string) => join(repoRoot, 'examples/notify-router', name);

/** A compiled config as plain data: plugin kinds by name, compiled templates and matchers by their shape. */
function plain(value: unknown, seen = new Set<unknown>()): unknown {
  if (typeof value === 'function') return 'function';
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return 'cycle';
  seen.add(value);
  if (value instanceof Map) return [...value].map(([k, v]) => [k, plain(v, seen)]);
  if (Array.isArray(value)) return value.map((v) => plain(v, seen));
  const record = value as Record<string, unknown>;
  if (typeof record.create === 'function' && typeof record.kind === 'string') return `kind:${record.kind}`;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record))
    if (k !== 'file' && k !== 'fallbackReason') out[k] = plain(v, new Set(seen));
  return out;
}

const same = (a: HeraldConfig, b: HeraldConfig) => assert.deepStrictEqual(plain(a), plain(b));

describe('herald.config.ts', () => {
  const dir = tempDir('herald-code-config-');
  after(() => dir.remove());

  it('the notify-router example in TypeScript loads to the same config as its herald.yaml', async () => {
    const real = {
      SLACK_BOT_TOKEN: 'xoxb-1',
      SMTP_URL: 'smtp://127.0.0.1:2525',
      HERALD_MAIL_FROM: 'Ops <ops@example.com>',
      SALES_SLACK_CHANNEL: '#deals',
      PRICING_EMAIL: 'prices@example.com',
    };
    for (const env of [real, {}]) {
      const yaml = await loadConfigFromFile(example('herald.yaml'), registries, { env });
      const code = await loadConfigFromFile(example('herald.config.ts'), registries, { env });
      same(yaml, code);
      assert.deepEqual(
        code.channels.map((c) => c.kind.kind),
        env === real ? ['slack', 'email'] : ['inbox', 'inbox'],
      );
    }
    const yaml = await loadConfigFromFile(example('herald.yaml'), registries, { env: real });
    assert.equal(yaml.triggers[0]!.description, 'Sales requests go to the #sales Slack channel.');
  });

  it('takes an object, a function of { env } or an async one; ${VAR} stays as written', async () => {
    const variants = {
      'object.mjs':
        "export default { triggers: { t: { description: '${NOT_INTERPOLATED}', actions: [{ channel: 'box' }] } }, channels: { box: { kind: 'inbox' } } };",
      'function.ts':
        "export default ({ env }: { env: Record<string, string | undefined> }) => ({ channels: { box: { kind: 'inbox' as const } }, triggers: { t: { description: env.DESCRIPTION, actions: [{ channel: 'box' }] } } });",
      'async.ts':
        "export default async ({ env }: { env: Record<string, string | undefined> }) => { await new Promise((r) => setTimeout(r, 1)); return { channels: { box: { kind: 'inbox' } }, triggers: { t: { description: env.DESCRIPTION, actions: [{ channel: 'box' }] } } }; };",
    };
    const descriptions: (string | undefined)[] = [];
    for (const [name, text] of Object.entries(variants)) {
      const file = join(dir.path, name);
      writeFileSync(file, text);
      const config = await loadCodeConfig(file, registries, { env: { DESCRIPTION: `from ${name}` } });
      assert.equal(config.file, file);
      descriptions.push(config.triggers[0]!.description);
    }
    assert.deepEqual(descriptions, ['${NOT_INTERPOLATED}', 'from function.ts', 'from async.ts']);
  });

  it('is validated like YAML: every issue with its path, in one ConfigError', async () => {
    const file = join(dir.path, 'wrong.ts');
    writeFileSync(
      file,
      "export default { server: { prot: 1 }, channels: { hook: { kind: 'webhook', url: 7 } }, triggers: { t: { actions: [{ channel: 'ghost' }] } } };",
    );
    const err = await loadCodeConfig(file, registries, { env: {} }).catch((e) => e);
    assert.ok(err instanceof ConfigError, String(err));
    const message = err.message;
    assert.match(message, /unknown key `prot` in server/);
    assert.equal(err.file, file);
    for (const issue of err.issues) assert.equal(issue.line, undefined, 'no YAML lines for code');
  });

  it('explains a module without a default export, one that throws, and one that does not load', async () => {
    const cases: [string, string, RegExp][] = [
      ['none.ts', 'export const config = {};', /has no default export: write `export default defineConfig/],
      ['list.ts', 'export default [1];', /default export must be a config object .* got a list/],
      ['throws.ts', "export default () => { throw new Error('no vault'); };", /its function threw: no vault/],
      ['syntax.ts', 'export default {', /cannot load config/],
    ];
    for (const [name, text, expected] of cases) {
      const file = join(dir.path, name);
      writeFileSync(file, text);
      const err = await loadCodeConfig(file, registries, { env: {} }).catch((e) => e);
      assert.match(String(err?.message), expected, name);
    }
    const missing = await loadConfigFromFile(join(dir.path, 'absent.config.ts'), registries).catch((e) => e);
    assert.match(missing.message, /cannot read config .*ENOENT/);
  });

  it('defineConfig types every registered channel and source kind', () => {
    const types = readFileSync(join(repoRoot, 'src/index.ts'), 'utf8');
    const block = (name: string) => types.slice(types.indexOf(`interface ${name} {`)).split('}')[0]!;
    const typed = (name: string) => [...block(name).matchAll(/^\s+'?([a-z-]+)'?:/gm)].map((m) => m[1]).sort();
    assert.deepEqual(typed('ChannelKinds'), registries.channels.map((k) => k.kind).sort());
    assert.deepEqual(typed('SourceKinds'), registries.sources.map((k) => k.kind).sort());
  });

  it('herald starts from it and /api/config shows none of its values', async () => {
    const herald = await startTestHerald('', { configFile: example('herald.config.ts') });
    try {
      assert.deepEqual(
        herald.config.triggers.map((t) => t.name),
        ['sales-to-slack', 'pricing-to-email'],
      );
      const view = (await (await herald.get('/api/config')).json()) as ConfigView;
      assert.deepEqual(view.config, null);
      assert.match(view.file ?? '', /herald\.config\.ts$/);
    } finally {
      await herald.close();
    }
  });
});
