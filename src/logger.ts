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
