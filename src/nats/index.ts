import type { NodeConnectionOptions } from '@nats-io/transport-node';
import { z } from 'zod';

// Loaded on first use, so a Herald without NATS sources or channels does not pay for the client at start.
let modules: Promise<[typeof import('@nats-io/transport-node'), typeof import('@nats-io/jetstream')]> | null =
  null;
export const nats = () => {
  modules ??= Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream')]);
  return modules;
};

/** A NATS server URL: `nats://` or `tls://` (TLS), credentials optionally in its userinfo. */
export const natsUrlSchema = z.string().refine((value) => {
  try {
    return ['nats:', 'tls:'].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}, 'must be a nats:// or tls:// URL, e.g. nats://127.0.0.1:4222');

/** Connection options from a URL: credentials move to options so the server list holds none. */
export function natsConnectOptions(url: string, name: string): NodeConnectionOptions {
  const parsed = new URL(url);
  const options: NodeConnectionOptions = {
    servers: parsed.host,
    name: `herald/${name}`,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
  };
  if (parsed.protocol === 'tls:') options.tls = {};
  if (parsed.password) {
    options.user = decodeURIComponent(parsed.username);
    options.pass = decodeURIComponent(parsed.password);
  } else if (parsed.username) options.token = decodeURIComponent(parsed.username);
  return options;
}

/** Whether `promise` settled within `ms` (a rejection counts as settled). */
export async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return settled;
}
