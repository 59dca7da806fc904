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
// `herald start` runs with three memory settings that keep its resident memory near what it uses
// (docs/configuration.md, the process; each measured in alternating bench runs):
// - V8's young generation capped at YOUNG_GENERATION_MB per semi-space. Under a steady load V8
//   grows each of the two up to 64 MB on a machine with several GB (Node 24), nearly all of it
//   garbage between scavenges: about 80 MB of a 290 MB peak at 1,000 events/s.
// - The old generation collected once it has grown OLD_GENERATION_GROWTH_PERCENT past what the last
//   collection kept. Under load V8 otherwise lets it grow to about four times that (some 40 MB
//   live, 160 MB before a full collection): the 1,000,000-event soak's plateau went from about
//   330 MB to about 200 MB.
// - glibc's malloc kept to MALLOC_ARENAS arenas instead of one per thread that allocates (SQLite's
//   checkpoint thread, libuv's pool, V8's helpers): about 13 MB less at the same load. Jobs Herald
//   runs do not inherit the setting (it is taken out of process.env once this process runs).
// V8 and glibc read these only when the process starts, so this process replaces itself with one
// that has them (same pid, arguments and stdio). A value given on node's command line, in
// NODE_OPTIONS (semi-spaces), HERALD_HEAP_GROWING_PERCENT (Node does not take V8's growth flag from
// NODE_OPTIONS) or MALLOC_ARENA_MAX wins; without process.execve (Node before 22.15, Windows)
// Herald runs with the defaults.
const YOUNG_GENERATION_MB = 8;
const OLD_GENERATION_GROWTH_PERCENT = 50;
const starting = process.argv[2] === 'start';
const growthSetting = process.env.HERALD_HEAP_GROWING_PERCENT;
if (starting && growthSetting !== undefined && !/^(?:0|[1-9]\d{0,3})$/.test(growthSetting)) {
  console.error(
    `herald: HERALD_HEAP_GROWING_PERCENT must be a whole number from 0 (V8's own choice) to 9999, not ${JSON.stringify(growthSetting)}`,
  );
  process.exit(2);
}
const MALLOC_ARENAS = 2;
/** Marks a MALLOC_ARENA_MAX that this script set, not the user. */
const ARENAS_SET_HERE = 'HERALD_SET_MALLOC_ARENA_MAX';
const nodeFlags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
const given = (name) =>
  nodeFlags.some((flag) => new RegExp(`^--${name.replaceAll('-', '[-_]')}\\b`).test(flag));
const addedFlags = [
  ...(given('max-semi-space-size') ? [] : [`--max-semi-space-size=${YOUNG_GENERATION_MB}`]),
  ...(given('heap-growing-percent')
    ? []
    : [`--heap-growing-percent=${growthSetting ?? OLD_GENERATION_GROWTH_PERCENT}`]),
];
const setsArenas = process.platform === 'linux' && process.env.MALLOC_ARENA_MAX === undefined;
if (starting && typeof process.execve === 'function' && (addedFlags.length > 0 || setsArenas)) {
  try {
    process.execve(
      process.execPath,
      [process.execPath, ...addedFlags, ...process.execArgv, ...process.argv.slice(1)],
      setsArenas
        ? { ...process.env, MALLOC_ARENA_MAX: String(MALLOC_ARENAS), [ARENAS_SET_HERE]: '1' }
        : process.env,
    );
  } catch {
    // Runs on with the defaults.
  }
}
if (process.env[ARENAS_SET_HERE] === '1') {
  delete process.env.MALLOC_ARENA_MAX;
  delete process.env[ARENAS_SET_HERE];
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
