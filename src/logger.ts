import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import { HeraldError } from './errors.js';

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

export type LogFormat = 'json' | 'pretty';

/**
 * JSON lines for machines (a pipe, a file, a log collector), readable lines for a person at a
 * terminal; HERALD_LOG_FORMAT=json|pretty decides instead.
 */
export function chooseLogFormat(env: NodeJS.ProcessEnv, stdoutIsTerminal: boolean): LogFormat {
  const forced = env.HERALD_LOG_FORMAT?.trim().toLowerCase();
  if (forced === 'json' || forced === 'pretty') return forced;
  if (forced)
    throw new HeraldError(
      'CONFIG_INVALID',
      `HERALD_LOG_FORMAT must be json or pretty, not "${env.HERALD_LOG_FORMAT}"`,
    );
  return stdoutIsTerminal ? 'pretty' : 'json';
}

const prettyLoggers = new WeakSet<Logger>();

/** Whether the logger writes for a person: a message can then span lines (the start banner). */
export function isPrettyLogger(logger: Logger): boolean {
  return prettyLoggers.has(logger);
}

export interface LoggerOptions {
  level?: string;
  /** Where JSON lines go (default stdout). Given, the format is JSON unless `format` says otherwise. */
  destination?: NodeJS.WritableStream;
  /** Default: chooseLogFormat(process.env, whether stdout is a terminal), or JSON with a destination. */
  format?: LogFormat;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const format =
    options.format ??
    (options.destination ? 'json' : chooseLogFormat(process.env, Boolean(process.stdout.isTTY)));
  const settings: pino.LoggerOptions = {
    level: options.level ?? process.env.HERALD_LOG_LEVEL ?? 'info',
    base: { service: 'herald' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (format === 'pretty') {
    // In this process and synchronous: no worker thread, and no line lost when Herald exits.
    // Required here, not imported up front: a process logging JSON never loads the formatter.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
    const stream = pretty({
      colorize: !options.destination && Boolean(process.stdout.isTTY) && !process.env.NO_COLOR,
      translateTime: 'SYS:HH:MM:ss',
      ignore: 'pid,hostname,service',
      singleLine: false,
      sync: true,
      ...(options.destination ? { destination: options.destination } : { destination: 1 }),
    });
    const logger = pino(settings, stream);
    prettyLoggers.add(logger);
    return logger;
  }
  return pino(settings, (options.destination as pino.DestinationStream | undefined) ?? pino.destination(1));
}
