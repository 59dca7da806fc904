import { Drop, Liquid, type Template as LiquidTemplate } from 'liquidjs';
import { z } from 'zod';
import { HeraldError } from '../errors.js';

/**
 * Liquid templates, parsed once when the config loads and rendered per delivery.
 * The scope a template sees is `{ event, recipient, … }`: `{{ event.data.description }}`.
 */
/** Bounds on every template of this process (`limits.templates` in the config). */
export interface TemplateLimits {
  /** Longest one render may take, in ms (Liquid checks it between tags and loop iterations). */
  renderLimitMs: number;
  /** Most characters one render may create through filters (Liquid's memoryLimit). */
  memoryLimit: number;
  /** Longest template source, in characters. */
  parseLimit: number;
}

export const DEFAULT_TEMPLATE_LIMITS: Readonly<TemplateLimits> = Object.freeze({
  renderLimitMs: 250,
  memoryLimit: 10_000_000,
  parseLimit: 100_000,
});

/**
 * The engine of templates compiled from now on. The render limits are the engine's own options:
 * passed to each render instead, Liquid would build its options anew every time.
 */
let liquid = createLiquid(DEFAULT_TEMPLATE_LIMITS);
let parseLimit = DEFAULT_TEMPLATE_LIMITS.parseLimit;

function createLiquid(limits: TemplateLimits): Liquid {
  return new Liquid({
    strictFilters: true,
    strictVariables: false,
    ownPropertyOnly: true,
    // Templates come from the config and see event data: they must not read files.
    root: [],
    partials: [],
    layouts: [],
    relativeReference: false,
    // Rendering runs on untrusted event data: a template must not loop or grow without end.
    renderLimit: limits.renderLimitMs,
    memoryLimit: limits.memoryLimit,
  });
}

/** Sets the limits of this process; the config loader calls it before compiling any template. */
export function configureTemplateLimits(limits: TemplateLimits): void {
  liquid = createLiquid(limits);
  parseLimit = limits.parseLimit;
}

/**
 * A value templates read as a plain value (its `valueOf()`: output, filters, comparisons) that
 * also has properties of its own (`{{ recipient.preferences.timezone }}`).
 */
export abstract class ScopeValue extends Drop {
  abstract override valueOf(): string | number | boolean | null;
}

export interface Template {
  readonly source: string;
  /** True when the source has no Liquid markup, so rendering is a copy. */
  readonly constant: boolean;
  render(scope: Record<string, unknown>): string;
}

export class TemplateRenderError extends HeraldError {
  constructor(message: string, cause?: unknown) {
    super('TEMPLATE_ERROR', message, { cause });
    this.name = 'TemplateRenderError';
  }
}

/** Parses a template, throwing a TEMPLATE_ERROR naming what is wrong. */
export function compileTemplate(source: string): Template {
  if (!source.includes('{{') && !source.includes('{%')) {
    return { source, constant: true, render: () => source };
  }
  if (source.length > parseLimit) {
    throw new HeraldError(
      'TEMPLATE_ERROR',
      `template is ${source.length} characters long; limits.templates.parseLimit allows ${parseLimit}`,
    );
  }
  const engine = liquid;
  let parsed: LiquidTemplate[];
  try {
    parsed = engine.parse(source);
  } catch (err) {
    throw new HeraldError('TEMPLATE_ERROR', `template does not parse: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return {
    source,
    constant: false,
    render(scope) {
      try {
        return engine.renderSync(parsed, scope) as string;
      } catch (err) {
        throw new TemplateRenderError(`template failed to render: ${(err as Error).message}`, err);
      }
    },
  };
}

/** A config string that is a Liquid template: validated and compiled during config parsing. */
export function templateSchema() {
  return z.string().transform((source, ctx) => {
    try {
      return compileTemplate(source);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}

/** A JSON value (object, array, string…) whose string leaves are templates. */
export type TemplateTree =
  | Template
  | number
  | boolean
  | null
  | TemplateTree[]
  | { [key: string]: TemplateTree };

export function compileTree(value: unknown): TemplateTree {
  if (typeof value === 'string') return compileTemplate(value);
  if (Array.isArray(value)) return value.map(compileTree);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, TemplateTree> = {};
    for (const [k, v] of Object.entries(value)) out[k] = compileTree(v);
    return out;
  }
  return value as number | boolean | null;
}

export function renderTree(tree: TemplateTree, scope: Record<string, unknown>): unknown {
  if (tree === null || typeof tree !== 'object') return tree;
  if (Array.isArray(tree)) return tree.map((t) => renderTree(t, scope));
  if (isTemplate(tree)) return tree.render(scope);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(tree)) out[k] = renderTree(v, scope);
  return out;
}

function isTemplate(value: object): value is Template {
  return typeof (value as Template).render === 'function' && typeof (value as Template).source === 'string';
}

/** A config value (any JSON) whose strings are templates, compiled during config parsing. */
export function templateTreeSchema() {
  return z.unknown().transform((value, ctx) => {
    try {
      return compileTree(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}
