import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { eventually } from './herald.js';

/**
 * Broker processes of a test's own (nats-server, redis-server) on their own ports, which the
 * test may stop and start again; the shared services other worktrees use must not be restarted.
 */
export const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

/** Starts `command` and resolves once it accepts connections on `port`. */
export async function runServer(command: string, args: string[], port: number): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: 'ignore' });
  await eventually(() => listening(port), 10_000, `${command} on port ${port}`);
  return child;
}

/** Stops a server started by `runServer` and waits for its port to close. */
export async function stopServer(child: ChildProcess, port: number): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    await new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGTERM');
    });
  }
  await eventually(async () => !(await listening(port)), 5000, 'the port to close');
}
