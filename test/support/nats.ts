import type { ChildProcess } from 'node:child_process';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { tempDir } from './herald.js';
import { freePort } from './ports.js';
import { runServer, stopServer } from './servers.js';

export interface PrivateNats {
  /** The URL Herald is given, with the credentials in it when the server has some. */
  url: string;
  port: number;
  /** A client of the test's own (made once, reconnecting through restarts). */
  nc(): Promise<NatsConnection>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A nats-server of the test's own, with JetStream, that the test may restart (its data stays) and
 * that may require a user and password.
 */
export async function startPrivateNats(auth?: { user: string; password: string }): Promise<PrivateNats> {
  const port = await freePort();
  const dir = tempDir('herald-nats-');
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir.path];
  if (auth) args.push('--user', auth.user, '--pass', auth.password);
  let server: ChildProcess = await runServer('nats-server', args, port);
  let client: NatsConnection | null = null;
  const nc = async () => {
    client ??= await connect({
      servers: `127.0.0.1:${port}`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
      ...(auth ? { user: auth.user, pass: auth.password } : {}),
    });
    return client;
  };
  const credentials = auth ? `${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.password)}@` : '';
  return {
    url: `nats://${credentials}127.0.0.1:${port}`,
    port,
    nc,
    async restart() {
      await stopServer(server, port);
      server = await runServer('nats-server', args, port);
    },
    async close() {
      await client?.close().catch(() => undefined);
      await stopServer(server, port);
      dir.remove();
    },
  };
}
