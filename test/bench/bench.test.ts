import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from '../support/herald.js';

// Keeps the benchmark from rotting: the quick mode must run every scenario and report it.
it('npm run bench -- --quick completes and reports every scenario', { timeout: 300_000 }, async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', join(repoRoot, 'bench/run.ts'), '--quick'],
    {
      cwd: repoRoot,
      maxBuffer: 10 * 1024 * 1024,
    },
  );
  for (const scenario of ['1. /notify', '2. CloudEvents batch', '3. fan-out', '4. 100 sql triggers']) {
    assert.match(
      stdout,
      new RegExp(
        `\\| ${scenario.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}[^|]*\\| herald \\| [\\d,]+ \\| [\\d,]+ \\|`,
      ),
    );
  }
  assert.match(stdout, /\| baseline \|/);
  assert.match(stdout, /CESQL filter evaluation: [\d,]+ evaluations\/s/);
  const file = /results: (\S+\.json)/.exec(stdout)![1]!;
  const results = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(results.quick, true);
  assert.ok(
    results.rows
      .filter((r: { system: string }) => r.system === 'herald')
      .every((r: { errors: number }) => r.errors === 0),
  );
});
