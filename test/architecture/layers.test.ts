import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { checkLayers } from '../../scripts/check-layers.js';
import { repoRoot } from '../support/herald.js';

const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** A throwaway project: `files` maps a path under the root to its text. */
function project(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'herald-layers-'));
  roots.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('the layer check', () => {
  it('passes on Herald itself', () => {
    const violations = checkLayers(repoRoot);
    assert.deepEqual(
      violations.map((v) => v.message),
      [],
    );
  });

  it('names an upward import, type-only included, by file and line', () => {
    const root = project({
      'src/config/load.ts': 'export interface CompiledTrigger { name: string }\n',
      'src/engine/router.ts':
        "import { errorMessage } from '../errors.js';\nimport type { CompiledTrigger } from '../config/load.js';\nexport const x = (t: CompiledTrigger) => errorMessage(t);\n",
      'src/errors.ts': 'export const errorMessage = (e: unknown) => String(e);\n',
    });
    const violations = checkLayers(root);
    assert.deepEqual(
      violations.map((v) => [v.rule, v.imports]),
      [['upward import', ['src/engine/router.ts:2 → src/config/load.ts']]],
    );
    assert.match(violations[0]!.message, /engine \(engine\) may not import config \(config, a layer above\)/);
  });

  it('names two folders of one layer that import each other, with the imports', () => {
    const root = project({
      'src/store/index.ts': "import { wake } from '../bus/index.js';\nexport const open = () => wake();\n",
      'src/bus/index.ts':
        "export const wake = () => 1;\nexport async function later() {\n  return import('../store/index.js');\n}\n",
    });
    const cycle = checkLayers(root).find((v) => v.rule === 'folder cycle');
    assert.ok(cycle, 'a folder cycle is reported');
    assert.deepEqual(cycle.imports.sort(), [
      'src/bus/index.ts:3 → src/store/index.ts',
      'src/store/index.ts:1 → src/bus/index.ts',
    ]);
  });

  it('names a cycle of three folders', () => {
    const root = project({
      'src/store/a.ts': "export * from '../bus/b.js';\n",
      'src/bus/b.ts': "export * from '../channels/c.js';\n",
      'src/channels/c.ts': "export type { A } from '../store/a.js';\nexport type C = 1;\n",
    });
    const cycles = checkLayers(root).filter((v) => v.rule === 'folder cycle');
    assert.equal(cycles.length, 1);
    assert.match(cycles[0]!.message, /folders import each other: bus, channels, store/);
  });

  it('names two files of one folder that import each other', () => {
    const root = project({
      'src/sources/cdc/index.ts':
        "import { Connector } from './connector.js';\nexport type Config = { url: string };\nexport const make = () => new Connector();\n",
      'src/sources/cdc/connector.ts':
        "import type { Config } from './index.js';\nexport class Connector { c?: Config }\n",
    });
    assert.deepEqual(
      checkLayers(root).map((v) => [v.rule, v.imports.sort()]),
      [
        [
          'file cycle',
          [
            'src/sources/cdc/connector.ts:1 → src/sources/cdc/index.ts',
            'src/sources/cdc/index.ts:1 → src/sources/cdc/connector.ts',
          ],
        ],
      ],
    );
  });

  it('lets a kind use its parent folder but not another kind', () => {
    const root = project({
      'src/channels/outbound.ts': 'export const send = () => 1;\n',
      'src/channels/webhook/index.ts': "export { send } from '../outbound.js';\n",
      'src/channels/slack/index.ts': "export { send } from '../webhook/index.js';\n",
    });
    assert.deepEqual(
      checkLayers(root).map((v) => [v.rule, v.imports]),
      [['kind imports kind', ['src/channels/slack/index.ts:1 → src/channels/webhook/index.ts']]],
    );
  });

  it('refuses a folder that is in no layer', () => {
    const root = project({ 'src/widgets/x.ts': 'export const x = 1;\n' });
    assert.deepEqual(
      checkLayers(root).map((v) => v.rule),
      ['unknown folder'],
    );
  });

  it('fails the command with the offending import', async () => {
    const root = project({
      'src/config/load.ts': 'export type Model = 1;\n',
      'src/engine/engine.ts': "import type { Model } from '../config/load.js';\nexport type M = Model;\n",
    });
    const result = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', join(repoRoot, 'scripts/check-layers.ts'), root],
      { cwd: repoRoot },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /upward import: src\/engine\/engine\.ts:1 → src\/config\/load\.ts/);
  });
});
