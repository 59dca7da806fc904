import { InvalidArgumentError } from 'commander';
import { createClient, HeraldApiError, type HeraldClient } from '../client/index.js';

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

/** The client of the `send` and `dlq` commands: the tokens come from the environment. */
export function cliClient(url: string): HeraldClient {
  return createClient({
    url,
    token: process.env.HERALD_ADMIN_TOKEN || undefined,
    ingestToken: process.env.HERALD_INGEST_TOKEN || undefined,
  });
}

/**
 * Runs one call of a command: Herald's JSON error body goes to stdout (what a script reads) with
 * exit 1; an unreachable Herald is one line on stderr, also exit 1.
 */
export async function runCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof HeraldApiError) console.log(JSON.stringify(err.body));
    else console.error(`herald: ${(err as Error).message}`);
    process.exit(1);
  }
}
