import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  README_END,
  README_START,
  replaceBenchBlock,
  type ThroughputRow,
  throughputTable,
} from '../../bench/report.js';
import { repoRoot } from '../support/herald.js';

const row = (scenario: string, system: 'herald' | 'limit', deliveredPerSec: number): ThroughputRow => ({
  scenario,
  system,
  acceptedPerSec: deliveredPerSec,
  deliveredPerSec,
  p50Ms: 1,
  p99Ms: 2,
  peakRssMb: 100,
  errors: 0,
  delivered: deliveredPerSec * 15,
  duplicates: 0,
  lost: 0,
});

describe('bench report', () => {
  it('rewrites only what lies between the markers', () => {
    const readme = `# Herald\n\nintro\n${README_START}\nold table\n${README_END}\n\nafter\n`;
    const once = replaceBenchBlock(readme, '| new | table |\n');
    assert.equal(once, `# Herald\n\nintro\n${README_START}\n| new | table |\n${README_END}\n\nafter\n`);
    assert.equal(
      replaceBenchBlock(once, 'again'),
      `# Herald\n\nintro\n${README_START}\nagain\n${README_END}\n\nafter\n`,
    );
  });

  it('refuses a README without its markers, with them twice or out of order', () => {
    for (const readme of [
      'no markers',
      `${README_START} only the start`,
      `${README_END} then ${README_START}`,
      `${README_START} a ${README_END} ${README_START} b ${README_END}`,
    ])
      assert.throws(() => replaceBenchBlock(readme, 'x'), /README must hold <!-- bench:start -->/);
  });

  it("the project's README holds the markers, so a full run can rewrite its table", () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    assert.doesNotThrow(() => replaceBenchBlock(readme, 'x'));
  });

  it('compares delivered rates with the limit, and 100 triggers with the single-trigger row', () => {
    const table = throughputTable([
      row('1. /notify → 1 trigger → webhook', 'limit', 8000),
      row('1. /notify → 1 trigger → webhook', 'herald', 2000),
      row('4. 100 sql triggers, one matching', 'limit', 8000),
      row('4. 100 sql triggers, one matching', 'herald', 1900),
    ]);
    assert.match(table, /\| 1\. \/notify → 1 trigger → webhook \| herald \| 2,000 \| 2,000 \| 25% \|/);
    assert.match(
      table,
      /\| 4\. 100 sql triggers, one matching \(95% of the single-trigger row\) \| herald \| 1,900 \| 1,900 \| 24% \|/,
    );
    assert.match(table, /\| 1\. \/notify → 1 trigger → webhook \| limit \| 8,000 \| 8,000 \| {2}\|/);
  });
});
