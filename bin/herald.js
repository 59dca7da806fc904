#!/usr/bin/env node
// The compiled CLI. `npm ci` / `npm install` build it (the `prepare` script), so a first run never
// compiles anything. In a checkout without a build, run: npm run build
import { existsSync } from 'node:fs';
import module from 'node:module';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(compiled)) {
  console.error('herald: not built yet. Run `npm run build` (npm ci and npm install do it for you).');
  process.exit(1);
}
// `herald start` runs with V8's young generation capped at YOUNG_GENERATION_MB per semi-space.
// Under a steady load V8 grows each of the two semi-spaces up to 64 MB on a machine with
// several GB (Node 24), nearly all of it garbage between scavenges: 128 MB of a 290 MB peak RSS
// at 1,000 events/s. Capped at 8 MB the peak is ~80 MB lower at the same throughput (measured in
// alternating bench runs; docs/configuration.md, the process). V8 reads the flag only when it starts,
// so this process replaces itself with one that has it (same pid, arguments and stdio). A
// --max-semi-space-size given on the command line or in NODE_OPTIONS wins; without
// process.execve (Node before 22.15, Windows) Herald runs with V8's default.
const YOUNG_GENERATION_MB = 8;
const nodeFlags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
if (
  process.argv[2] === 'start' &&
  typeof process.execve === 'function' &&
  !nodeFlags.some((flag) => /^--max[-_]semi[-_]space[-_]size\b/.test(flag))
) {
  try {
    process.execve(
      process.execPath,
      [
        process.execPath,
        `--max-semi-space-size=${YOUNG_GENERATION_MB}`,
        ...process.execArgv,
        ...process.argv.slice(1),
      ],
      process.env,
    );
  } catch {
    // Runs on with V8's default young generation.
  }
}
// The first run after an install reads several hundred modules from a cold disk cache, which can
// take many seconds; on a terminal, say so rather than sit silent.
const slowLoadNotice = process.stderr.isTTY
  ? setTimeout(
      () =>
        process.stderr.write(
          'herald: loading (the first run after an install reads its modules from disk)…\n',
        ),
      1500,
    )
  : undefined;
slowLoadNotice?.unref();
// Compiled bytecode is kept on disk (Node's compile cache), so every run after the first starts faster.
module.enableCompileCache?.();
try {
  await import(compiled.href);
} finally {
  clearTimeout(slowLoadNotice);
}
