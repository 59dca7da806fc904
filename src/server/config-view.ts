import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export const REDACTED = '••••';

/** Keys whose values are secrets whatever they look like. */
const SECRET_KEY =
  /token|secret|password|passwd|passphrase|credential|api[-_]?key|private[-_]?key|authorization|cookie/i;
/** Query parameters that carry secrets in URLs (`?token=…`, `&sig=…`). */
const SECRET_PARAM = /^(token|access_token|key|api[-_]?key|secret|password|sig|signature|auth)$/i;

/**
 * The config file as written, for the dashboard, with nothing secret in it: values that come
 * from the environment (`${VAR}`, whose defaults may be secrets too), values under secret-looking
 * keys, and credentials inside URLs are replaced by `••••`. It is read from the file rather than
 * from the loaded config so no interpolated value can ever reach the answer.
 */
export function redactedConfigFile(file: string): unknown {
  return redactConfig(parse(readFileSync(file, 'utf8')) ?? {});
}

export function redactConfig(value: unknown, key = ''): unknown {
  if (typeof value === 'string') {
    if (value === '') return value;
    if (SECRET_KEY.test(key) || /\$\{/.test(value.replaceAll('$${', ''))) return REDACTED;
    return redactUrl(value);
  }
  if (Array.isArray(value)) return value.map((v) => redactConfig(v, key));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] =
        SECRET_KEY.test(k) && v !== null && typeof v !== 'object' && v !== '' ? REDACTED : redactConfig(v, k);
    }
    return out;
  }
  return value;
}

/** `smtp://user:pw@host/x?token=t` → `smtp://••••@host/x?token=••••`; anything else unchanged. */
export function redactUrl(text: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return text;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // Not parseable as a URL: hide userinfo by pattern so a malformed one does not leak it.
    return text.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/i, `$1${REDACTED}@`);
  }
  let out = text;
  if (url.username || url.password) {
    out = out.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/]*@/i, `$1${REDACTED}@`);
  }
  if (url.search) {
    const q = out.indexOf('?');
    const hashAt = out.indexOf('#', q);
    const query = out.slice(q + 1, hashAt === -1 ? undefined : hashAt);
    const redacted = query
      .split('&')
      .map((pair) => {
        const eq = pair.indexOf('=');
        const name = safeDecode(eq === -1 ? pair : pair.slice(0, eq));
        return eq !== -1 && SECRET_PARAM.test(name) ? `${pair.slice(0, eq)}=${REDACTED}` : pair;
      })
      .join('&');
    out = out.slice(0, q + 1) + redacted + (hashAt === -1 ? '' : out.slice(hashAt));
  }
  return out;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
