import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { isCodeConfigFile } from '../config/code.js';
import { isSecretName, REDACTED, redactUrl } from '../redact.js';

export { REDACTED };

/**
 * The config file as written, for the dashboard, with nothing secret in it: values that come
 * from the environment (`${VAR}`, whose defaults may be secrets too), values under secret-looking
 * keys, and credentials inside URLs are replaced by `••••`. It is read from the file rather than
 * from the loaded config so no interpolated value can ever reach the answer.
 */
export function redactedConfigFile(file: string): unknown {
  // A code config's values are computed (from the environment, say): none of them is shown.
  if (isCodeConfigFile(file)) return null;
  return redactConfig(parse(readFileSync(file, 'utf8')) ?? {});
}

export function redactConfig(value: unknown, key = ''): unknown {
  if (typeof value === 'string') {
    if (value === '') return value;
    if (isSecretName(key) || /\$\{/.test(value.replaceAll('$${', ''))) return REDACTED;
    return redactUrl(value);
  }
  if (Array.isArray(value)) return value.map((v) => redactConfig(v, key));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] =
        isSecretName(k) && v !== null && typeof v !== 'object' && v !== '' ? REDACTED : redactConfig(v, k);
    }
    return out;
  }
  return value;
}
