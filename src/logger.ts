import pino, { type Logger } from 'pino';

/** Keys whose values never reach a log line. */
export const REDACTED_PATHS = [
  'token',
  'password',
  'secret',
  'authorization',
  '*.token',
  '*.password',
  '*.secret',
  '*.authorization',
  '*.signingSecret',
  'headers.authorization',
  'headers["x-slack-signature"]',
  'config.*.token',
  'config.*.secret',
  'config.*.url',
];

export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? process.env.HERALD_LOG_LEVEL ?? 'info',
      base: { service: 'herald' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    (options.destination as pino.DestinationStream | undefined) ?? pino.destination(1),
  );
}

/** A connection URL fit for a log line or an error: any password or token becomes `***`. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    else if (parsed.username) parsed.username = '***';
    return parsed.toString();
  } catch {
    // Not a URL we can parse: say nothing of it rather than risk echoing a secret.
    return '(unparseable URL)';
  }
}
