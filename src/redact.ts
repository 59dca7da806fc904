/**
 * The one place that decides what of a URL or a name is secret. Everything that shows a URL to a
 * person (logs, errors, API answers, the dashboard, stored delivery records) goes through
 * `redactUrl`, so a rule added here holds everywhere.
 */

export const REDACTED = '••••';

/** Keys (config keys, header names) whose values are secrets whatever they look like. */
const SECRET_NAME =
  /token|secret|password|passwd|passphrase|credential|api[-_]?key|private[-_]?key|authorization|cookie|signature/i;

/** Query parameters whose whole name is a secret word (`?key=…`, `&sig=…`, `?auth=…`). */
const SECRET_PARAM_EXACT = new Set(['key', 'sig', 'auth', 'pwd', 'pass', 'session', 'sessionid']);
/** …or that end in one after a separator (`x-api-key`, `hub.sig`, `basic_auth`). */
const SECRET_PARAM_SUFFIX = /[-_.](key|sig|auth)$/i;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** True for query parameter names that carry credentials: `token`, `api_key`, `X-Api-Key`, `sig`… */
export function isSecretParam(name: string): boolean {
  return (
    SECRET_NAME.test(name) || SECRET_PARAM_EXACT.has(name.toLowerCase()) || SECRET_PARAM_SUFFIX.test(name)
  );
}

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi;

/**
 * `https://user:pw@host/x?token=t&team=a` → `https://••••@host/x?token=••••&team=a`: userinfo and
 * the values of secret-named query parameters are hidden, the rest is kept exactly as written.
 * A text that merely contains URLs (an error message, a driver's complaint) has each of them
 * redacted; a text with none is returned unchanged. Works on the text rather than a parsed URL
 * so a malformed URL leaks nothing either.
 */
export function redactUrl(text: string): string {
  if (SCHEME.test(text) && !/\s/.test(text)) return redactOneUrl(text);
  return text.includes('://') ? text.replace(URL_IN_TEXT, redactOneUrl) : text;
}

function redactOneUrl(text: string): string {
  const start = text.indexOf('://') + 3;
  // The authority ends where the WHATWG parser ends it for http(s): at / ? # or \.
  let end = text.slice(start).search(/[/?#\\]/);
  end = end === -1 ? text.length : start + end;
  const at = text.lastIndexOf('@', end - 1);
  let out = at >= start ? `${text.slice(0, start)}${REDACTED}${text.slice(at)}` : text;
  const q = out.indexOf('?');
  if (q === -1) return out;
  const hashAt = out.indexOf('#', q);
  const query = out.slice(q + 1, hashAt === -1 ? undefined : hashAt);
  const redacted = query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq === -1) return pair;
      return isSecretParam(safeDecode(pair.slice(0, eq).replaceAll('+', ' ')))
        ? `${pair.slice(0, eq)}=${REDACTED}`
        : pair;
    })
    .join('&');
  out = out.slice(0, q + 1) + redacted + (hashAt === -1 ? '' : out.slice(hashAt));
  return out;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
