#!/usr/bin/env node
// The compiled CLI (npm install runs the build). In a checkout without a build, run: npm run build
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(compiled)) {
  console.error('herald: not built yet. Run `npm run build` (npm install does it for you).');
  process.exit(1);
}
await import(compiled.href);
