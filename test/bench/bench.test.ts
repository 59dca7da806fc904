import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { promisify } from 'node:util';
import type { Results } from '../../bench/report.js';
import { repoRoot } from '../support/herald.js';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

// Keeps the benchmark from rotting: the quick mode must run every scenario and report it.
it('npm run bench -- --quick completes and reports every scenario', { timeout: 600_000 }, async () => {
  const readmeBefore = readFileSync(join(repoRoot, 'README.md'), 'utf8');
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
      new RegExp(`\\| ${escapeRegExp(scenario)}[^|]*\\| herald \\| [\\d,]+ \\| [\\d,]+ \\|`),
    );
  }
  for (const rate of ['200', '1000', '3000'])
    for (const system of ['limit', 'herald'])
      assert.match(
        stdout,
        new RegExp(`\\| 1b\\. /notify open loop at ${rate} ev/s \\| ${system} \\| [\\d,]+ \\| [\\d,]+ \\|`),
      );
  assert.match(stdout, /CESQL filter evaluation: [\d,]+ evaluations\/s/);
  const file = /results: (\S+\.json)/.exec(stdout)![1]!;
  const results = JSON.parse(readFileSync(file, 'utf8')) as Results;
  assert.equal(results.quick, true);
  assert.ok(results.rows.filter((r) => r.system === 'herald').every((r) => r.errors === 0));
  // Herald keeps every event it accepted: under any load, none may go missing.
  for (const r of results.openLoop) {
    assert.equal(r.sent, r.rate * results.openLoopSeconds, r.scenario);
    assert.equal(r.sent, r.accepted + r.rejected + r.failed, r.scenario);
    if (r.system === 'herald') assert.equal(r.lost, 0, `${r.scenario}: ${r.lost} lost`);
  }
  // A quick run is no measurement to publish.
  assert.equal(readFileSync(join(repoRoot, 'README.md'), 'utf8'), readmeBefore);
});
