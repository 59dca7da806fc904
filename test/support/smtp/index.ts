import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  from: string;
  to: string[];
  user?: string;
  raw: string;
  /** Header names lower-cased; unfolded values. */
  headers: Record<string, string>;
  subject: string;
  body: string;
}

/** A real SMTP server on loopback that records what it receives, and can refuse on command. */
export interface SmtpSink {
  url: string;
  port: number;
  messages: ReceivedMail[];
  /** The next `times` messages are refused at end of data with this reply. */
  rejectNext(code: number, message: string, times?: number): void;
  waitForMessages(count: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

function parseMessage(raw: string): { headers: Record<string, string>; body: string } {
  const split = raw.indexOf('\r\n\r\n');
  const head = split === -1 ? raw : raw.slice(0, split);
  const body = split === -1 ? '' : raw.slice(split + 4);
  const headers: Record<string, string> = {};
  for (const line of head.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    const at = line.indexOf(':');
    if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
  }
  return { headers, body };
}

export async function startSmtpSink(options: { auth?: boolean } = {}): Promise<SmtpSink> {
  const messages: ReceivedMail[] = [];
  const rejections: { code: number; message: string }[] = [];
  const server = new SMTPServer({
    secure: false,
    disabledCommands: options.auth ? ['STARTTLS'] : ['AUTH', 'STARTTLS'],
    authOptional: !options.auth,
    logger: false,
    onAuth(auth, _session, callback) {
      callback(null, { user: auth.username });
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const rejection = rejections.shift();
        if (rejection) {
          const err = new Error(rejection.message) as Error & { responseCode: number };
          err.responseCode = rejection.code;
          return callback(err);
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        const { headers, body } = parseMessage(raw);
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          user: typeof session.user === 'string' ? session.user : undefined,
          raw,
          headers,
          subject: headers.subject ?? '',
          body,
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return {
    url: options.auth ? `smtp://herald:secret-pass@127.0.0.1:${port}` : `smtp://127.0.0.1:${port}`,
    port,
    messages,
    rejectNext(code, message, times = 1) {
      for (let i = 0; i < times; i++) rejections.push({ code, message });
    },
    async waitForMessages(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count) {
        if (Date.now() > deadline) throw new Error(`SMTP sink got ${messages.length} of ${count} messages`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return messages;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
