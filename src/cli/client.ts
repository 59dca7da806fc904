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

/** Calls a running Herald; the admin token comes from HERALD_ADMIN_TOKEN. */
export async function adminRequest(
  baseUrl: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = {};
  if (process.env.HERALD_ADMIN_TOKEN) headers.authorization = `Bearer ${process.env.HERALD_ADMIN_TOKEN}`;
  if (body !== undefined) headers['content-type'] = contentType;
  try {
    const res = await request(new URL(path, baseUrl), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
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
