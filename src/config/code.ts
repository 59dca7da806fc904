import { existsSync } from 'node:fs';
import { extname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Document, LineCounter } from 'yaml';
import { HeraldError } from '../errors.js';
import { UnsetVariables } from './interpolate.js';
import { ConfigIssues } from './issues.js';
import { compileConfig, type LoadOptions, loadConfigFile, type Registries } from './load.js';
import type { HeraldConfig } from './model.js';

/** Config files that are code (herald.config.ts): imported, not parsed. */
const CODE_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs']);

/** A config module must settle within this time (a config function awaiting a secret store, say). */
const CODE_CONFIG_TIMEOUT_MS = 30_000;

export function isCodeConfigFile(file: string): boolean {
  return CODE_EXTENSIONS.has(extname(file).toLowerCase());
}

/** Loads a herald.yaml, or a herald.config.ts / .js by importing it. Throws ConfigError listing every issue. */
export async function loadConfigFromFile(
  file: string,
  registries: Registries,
  options: LoadOptions = {},
): Promise<HeraldConfig> {
  if (!isCodeConfigFile(file)) return loadConfigFile(file, registries, options);
  return loadCodeConfig(file, registries, options);
}

/**
 * Imports a config module (TypeScript through tsx), takes its default export (the config, or a
 * function of `{ env }` returning it, possibly async) and validates it exactly like a parsed YAML
 * document. Strings are taken as they are: `${VAR}` is not interpolated in code.
 */
export async function loadCodeConfig(
  file: string,
  registries: Registries,
  options: LoadOptions = {},
): Promise<HeraldConfig> {
  const env = options.env ?? process.env;
  if (!existsSync(file)) throw new HeraldError('CONFIG_INVALID', `cannot read config ${file}: ENOENT`);
  const raw = await withTimeout(evaluate(file, env), file);
  const issues = new ConfigIssues(new Document(null), new LineCounter(), file);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    issues.add(
      [],
      `the default export must be a config object (or a function returning one), got ${describe(raw)}`,
    );
    throw issues.error();
  }
  return compileConfig({ raw, unset: new UnsetVariables([]), issues }, registries, { ...options, file });
}

async function evaluate(file: string, env: NodeJS.ProcessEnv): Promise<unknown> {
  let module: { default?: unknown };
  try {
    // tsImport loads the file in its own namespace: a second load reads the file again.
    // Loaded here, not up front: a YAML config never needs the TypeScript loader (and its esbuild).
    const { tsImport } = await import('tsx/esm/api');
    module = await tsImport(pathToFileURL(file).href, import.meta.url);
  } catch (err) {
    throw new HeraldError('CONFIG_INVALID', `cannot load config ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  // A CommonJS module's exports arrive as the default export, its own default one level down.
  let exported = module.default;
  if (isModuleWrapper(exported)) exported = exported.default;
  if (exported === undefined)
    throw new HeraldError(
      'CONFIG_INVALID',
      `config ${file} has no default export: write \`export default defineConfig({ … })\``,
    );
  if (typeof exported !== 'function') return exported;
  try {
    return await exported({ env });
  } catch (err) {
    throw new HeraldError('CONFIG_INVALID', `config ${file}: its function threw: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function isModuleWrapper(value: unknown): value is { default?: unknown } {
  return (
    value !== null && typeof value === 'object' && (value as { __esModule?: unknown }).__esModule === true
  );
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value;
}

async function withTimeout<T>(work: Promise<T>, file: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new HeraldError(
            'CONFIG_INVALID',
            `config ${file} did not produce its config within ${CODE_CONFIG_TIMEOUT_MS / 1000} s`,
          ),
        ),
      CODE_CONFIG_TIMEOUT_MS,
    );
    timer.unref();
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
