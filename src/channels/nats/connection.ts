import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { errorMessage } from '../../errors.js';
import { nats, natsConnectOptions, within } from '../../nats/index.js';
import { redactUrl } from '../../redact.js';

/** Settles with `work`, or rejects with the signal's reason as soon as it is aborted. */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  // What is abandoned may still fail later; that must not become an unhandled rejection.
  work.catch(() => undefined);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

export class NatsConnectError extends Error {
  constructor(server: string, cause: unknown) {
    super(`cannot connect to NATS at ${server}: ${redactUrl(errorMessage(cause))}`);
    this.name = 'NatsConnectError';
  }
}

/**
 * One connection per channel, opened by the first send and shared by the sends after it. Once up,
 * the client reconnects by itself (publishes wait meanwhile); a first connect that fails is tried
 * again by the next send.
 */
export class ChannelConnection {
  private connecting: Promise<{ nc: NatsConnection; js: JetStreamClient }> | null = null;
  private closed = false;
  readonly server: string;

  constructor(
    private readonly channel: string,
    private readonly url: string,
    private readonly connectTimeoutMs: number,
    private readonly logger: Logger,
  ) {
    this.server = redactUrl(url);
  }

  /** The connection, once it is up; rejects with NatsConnectError, or the signal's reason when aborted first. */
  get(signal: AbortSignal): Promise<{ nc: NatsConnection; js: JetStreamClient }> {
    if (!this.connecting) {
      const connecting = this.open();
      this.connecting = connecting;
      connecting.catch(() => {
        if (this.connecting === connecting) this.connecting = null;
      });
    }
    return untilAborted(this.connecting, signal);
  }

  private async open(): Promise<{ nc: NatsConnection; js: JetStreamClient }> {
    const [{ connect }, { jetstream }] = await nats();
    let nc: NatsConnection;
    try {
      nc = await connect({
        ...natsConnectOptions(this.url, `channel/${this.channel}`),
        timeout: this.connectTimeoutMs,
      });
    } catch (err) {
      throw new NatsConnectError(this.server, err);
    }
    if (this.closed) {
      // The channel closed while this connect was under way.
      await nc.close().catch(() => undefined);
      throw new NatsConnectError(this.server, new Error('the channel is closed'));
    }
    void this.watch(nc);
    return { nc, js: jetstream(nc, { timeout: this.connectTimeoutMs }) };
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect')
        this.logger.warn(
          { server: this.server },
          `channel ${this.channel}: lost the NATS connection; reconnecting`,
        );
      else if (status.type === 'reconnect')
        this.logger.info({ server: this.server }, `channel ${this.channel}: reconnected to NATS`);
    }
  }

  /** A connection check for `herald doctor`, independent of the sends' connection. */
  async probe(jetstreamNeeded: boolean): Promise<{ ok: boolean; detail: string; fix?: string }> {
    const [{ connect }, { jetstreamManager }] = await nats();
    let nc: NatsConnection;
    try {
      nc = await connect({
        ...natsConnectOptions(this.url, `channel/${this.channel}`),
        maxReconnectAttempts: 0,
        timeout: 3000,
      });
    } catch (err) {
      return {
        ok: false,
        detail: `cannot connect to ${this.server}: ${redactUrl(errorMessage(err))}`,
        fix: 'check the URL, the credentials and that NATS runs',
      };
    }
    try {
      if (!jetstreamNeeded) return { ok: true, detail: `connected to ${this.server}` };
      await jetstreamManager(nc);
      return { ok: true, detail: `connected to ${this.server}; JetStream is enabled` };
    } catch (err) {
      return {
        ok: false,
        detail: `connected to ${this.server}, but JetStream answers: ${errorMessage(err)}`,
        fix: 'enable JetStream on the server (nats-server -js) or set jetstream: false',
      };
    } finally {
      await nc.close().catch(() => undefined);
    }
  }

  /** Flushes what is buffered, then closes. */
  async close(): Promise<void> {
    this.closed = true;
    const connecting = this.connecting;
    this.connecting = null;
    if (!connecting) return;
    // Still connecting: `open` closes it when it comes up, without holding shutdown for it.
    if (!(await within(connecting, 0))) return;
    const { nc } = await connecting.catch(() => ({ nc: null }));
    if (!nc) return;
    if (!(await within(nc.drain(), 5000))) await nc.close().catch(() => undefined);
  }
}
