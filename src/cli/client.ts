import { InvalidArgumentError } from 'commander';
import { request } from 'undici';

export type Roles = { ingest: boolean; router: boolean; dispatcher: boolean };

export function parseRoles(value: string): Roles {
  const roles = { ingest: false, router: false, dispatcher: false };
  for (const part of value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    if (!(part in roles))
      throw new InvalidArgumentError(`unknown role "${part}" (roles: ingest, router, dispatcher)`);
    roles[part as keyof Roles] = true;
  }
  if (!roles.ingest && !roles.router && !roles.dispatcher)
    throw new InvalidArgumentError('name at least one role');
  return roles;
}

/**
 * Calls a running Herald; the bearer token is HERALD_ADMIN_TOKEN unless `options` names one. A POST always carries a JSON
 * body (`{}` when there is nothing to say): the admin API refuses other content types.
 */
export async function adminRequest(
  baseUrl: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  options: { contentType?: string; token?: string } = {},
): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = {};
  const token = 'token' in options ? options.token : process.env.HERALD_ADMIN_TOKEN;
  if (token) headers.authorization = `Bearer ${token}`;
  const payload = body === undefined && method === 'POST' ? {} : body;
  if (payload !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  try {
    const res = await request(new URL(path, baseUrl), {
      method,
      headers,
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
    const text = await res.body.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON: show as is.
    }
    return { status: res.statusCode, body: parsed };
  } catch (err) {
    console.error(`cannot reach Herald at ${baseUrl}: ${(err as Error).message}`);
    process.exit(1);
  }
}
