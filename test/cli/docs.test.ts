import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
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
