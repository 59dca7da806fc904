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
