#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with node's own test runner (TypeScript through tsx).
// Usage: node scripts/test.mjs [path-or-substring …]  — with arguments, only matching files run.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { delimiter, dirname, join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
function collect(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) collect(full, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, full));
  }
  return out;
}
const filters = process.argv.slice(2);
mkdirSync(join(root, 'test-output'), { recursive: true });
const tapFile = join(root, 'test-output', 'results.tap');
let files = [...collect(join(root, 'src'), []), ...collect(join(root, 'test'), [])].sort();
if (filters.length > 0) files = files.filter((f) => filters.some((p) => f.includes(p)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const args = [
  '--import',
  'tsx',
  '--test',
  `--test-concurrency=${process.env.HERALD_TEST_CONCURRENCY ?? 2}`,
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=tap',
  `--test-reporter-destination=${tapFile}`,
  ...files,
];
const child = spawn(process.execPath, args, {
  cwd: root,
  stdio: 'inherit',
  // A `node` spawned by a test (a job's `command: node`) is this same Node, first on PATH.
  env: {
    ...process.env,
    NODE_ENV: 'test',
    PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
  },
});
child.on('exit', (code, signal) => {
  // A plain closing line, whatever the reporter above printed.
  const tap = existsSync(tapFile) ? readFileSync(tapFile, 'utf8') : '';
  const count = (key) => Number(tap.match(new RegExp(`^# ${key} (\\d+)$`, 'm'))?.[1] ?? 0);
  console.log(
    `${count('pass')} passed, ${count('fail') + count('cancelled')} failed, ${count('skipped')} skipped`,
  );
  process.exit(code ?? (signal ? 1 : 0));
});
