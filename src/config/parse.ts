import { isMap, LineCounter, parseDocument } from 'yaml';
import { interpolateTree, type UnsetVariable, UnsetVariables, VariableOrigins } from './interpolate.js';
import { ConfigIssues } from './issues.js';

export interface ParsedConfig {
  /** The document as plain data, each `${VAR}` replaced by its value. */
  raw: unknown;
  /** Variables the document uses that are not set, and where. */
  unset: UnsetVariables;
  /** Where later stages add their issues: located in this document. */
  issues: ConfigIssues;
}

/**
 * Parses a herald.yaml and interpolates the variables of its strings. Throws a ConfigError when the
 * YAML does not parse (duplicate keys included) or the document is not a mapping.
 */
export function parseConfigText(text: string, env: NodeJS.ProcessEnv, file?: string): ParsedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const issues = new ConfigIssues(doc, lineCounter, file);
  for (const err of doc.errors) {
    const pos = err.linePos?.[0];
    issues.push({
      path: [],
      message: `YAML: ${err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`,
      line: pos?.line,
      column: pos?.col,
    });
  }
  issues.throwIfAny();

  const missing: UnsetVariable[] = [];
  const origins = new VariableOrigins();
  const raw = interpolateTree(doc.toJS() ?? {}, [], env, missing, origins);
  issues.useOrigins(origins);
  // Keys of the YAML document are needed for locating issues even when the tree is not a map.
  if (!isMap(doc.contents) && doc.contents !== null) issues.add([], 'the config must be a YAML mapping');
  issues.throwIfAny();
  return { raw, unset: new UnsetVariables(missing), issues };
}
