import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from '../support/herald.js';

const run = promisify(execFile);
const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
const fixtures = join(repoRoot, 'test/client/types');

async function typecheck(project: string): Promise<{ code: number; output: string }> {
  try {
    await run(process.execPath, [tsc, '-p', project], { cwd: repoRoot });
    return { code: 0, output: '' };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, output: e.stdout + e.stderr };
  }
}

// The fixture imports 'herald' and 'herald/client' as an application would: through the package's
// `exports`, which name the declarations the build emits (dist/*.d.ts).
describe('the published types', () => {
  before(async () => {
    if (
      !existsSync(join(repoRoot, 'dist/index.d.ts')) ||
      !existsSync(join(repoRoot, 'dist/client/index.d.ts'))
    )
      await run(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: repoRoot });
  });

  it('type a config and client calls, and refuse misspelt keys (each @ts-expect-error is used)', async () => {
    const result = await typecheck(join(fixtures, 'tsconfig.json'));
    assert.equal(result.code, 0, result.output);
  });

  it('a misspelt key without @ts-expect-error fails to compile, naming the key', async () => {
    // Inside the repository so that 'herald' resolves to this package.
    const file = join(fixtures, `wrong-${process.pid}.ts`);
    const project = join(fixtures, `tsconfig.wrong-${process.pid}.json`);
    writeFileSync(
      file,
      "import { defineConfig } from 'herald';\nexport default defineConfig({ channels: { box: { kind: 'inbox', colour: 'red' } } });\n",
    );
    const config = JSON.parse(readFileSync(join(fixtures, 'tsconfig.json'), 'utf8'));
    writeFileSync(project, JSON.stringify({ ...config, files: [file] }));
    try {
      const result = await typecheck(project);
      assert.notEqual(result.code, 0);
      assert.match(result.output, /'colour' does not exist/);
    } finally {
      rmSync(file, { force: true });
      rmSync(project, { force: true });
    }
  });
});
