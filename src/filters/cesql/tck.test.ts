import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { checkCase, readTckFile, runCase } from './tck.js';

const dir = new URL('../../../../shared/conformance/cesql-tck/', import.meta.url).pathname;
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

describe('CESQL TCK (every case, as-is)', () => {
  it('has the whole TCK to run', () => {
    assert.equal(files.length, 18);
    assert.equal(
      files.reduce((n, f) => n + readTckFile(join(dir, f)).length, 0),
      275,
    );
  });
  for (const file of files) {
    describe(file, () => {
      for (const c of readTckFile(join(dir, file))) {
        it(`${c.name}: ${c.expression}`, () => {
          const problem = checkCase(c, runCase(file, c));
          assert.equal(problem, null, problem ?? '');
        });
      }
    });
  }
});
