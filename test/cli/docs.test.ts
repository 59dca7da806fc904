import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from '../support/herald.js';

it('docs/configuration.md is generated from the current schema', async () => {
  const run = promisify(execFile);
  const result = await run(
    process.execPath,
    ['--import', 'tsx', join(repoRoot, 'scripts/config-reference.ts'), '--check'],
    {
      cwd: repoRoot,
    },
  ).then(
    () => 0,
    (err: { code: number; stderr: string }) => {
      console.error(err.stderr);
      return err.code;
    },
  );
  assert.equal(result, 0, 'run: node --import tsx scripts/config-reference.ts');
});

it('every shell command in the READMEs runs from a checkout (no bare `herald`, which is not on PATH)', () => {
  const readmes = [
    'README.md',
    ...readdirSync(join(repoRoot, 'examples')).map((name) => join('examples', name, 'README.md')),
  ].filter((file) => existsSync(join(repoRoot, file)));
  const bare: string[] = [];
  for (const file of readmes) {
    const text = readFileSync(join(repoRoot, file), 'utf8');
    for (const block of text.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)) {
      for (const line of block[1]!.split('\n')) {
        // A command starts the line, after any VAR=value assignments.
        if (/^\s*(?:[A-Z_][A-Z0-9_]*=\S*\s+)*herald\s/.test(line)) bare.push(`${file}: ${line.trim()}`);
      }
    }
  }
  assert.ok(readmes.length > 3, 'the READMEs were found');
  assert.deepEqual(bare, [], 'write `npx herald …` or `node bin/herald.js …`');
});
