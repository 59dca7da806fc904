import { isUtf8 } from 'node:buffer';
import type { Logger } from 'pino';
import { errorMessage, HeraldError } from '../errors.js';
import type { CloudEvent } from '../events/types.js';
import { isSecretName, REDACTED, redactUrl } from '../redact.js';
import type { NewSourceDeadLetter, SourceDeadLetter, Store } from './store.js';
import type { IngestResult, Source, SourceMessage } from './types.js';

/** Bytes of a payload a source dead letter keeps: NATS' default max_payload, so NATS messages fit whole. */
export const DEAD_LETTER_PAYLOAD_BYTES = 1024 * 1024;
const TEXT_CHARS = 1024;
const REASON_CHARS = 4096;
const MAX_HEADERS = 64;
/** Text the store keeps as is: bounded, without NUL (PostgreSQL text cannot hold it). */
const bounded = (text: string, chars: number) => {
  const cut = text.length > chars ? `${text.slice(0, chars)}…` : text;
  return cut.includes('\u0000') ? cut.replaceAll('\u0000', '\uFFFD') : cut;
};

/** The row for a message: bounded in every field, the payload as text when it is clean UTF-8. */
export function sourceDeadLetterOf(
  source: string,
  message: SourceMessage,
  reason: string,
): NewSourceDeadLetter {
  const raw =
    typeof message.payload === 'string'
      ? Buffer.from(message.payload, 'utf8')
      : Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.byteLength);
  const kept = raw.subarray(0, DEAD_LETTER_PAYLOAD_BYTES);
  const text = isUtf8(kept) && !kept.includes(0);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers ?? {}).slice(0, MAX_HEADERS)) {
    headers[bounded(name, TEXT_CHARS)] = isSecretName(name) ? REDACTED : bounded(value, TEXT_CHARS);
  }
  return {
    source,
    position: bounded(message.position, TEXT_CHARS),
    subject: message.subject == null ? null : bounded(message.subject, TEXT_CHARS),
    headers,
    payload: text ? kept.toString('utf8') : kept.toString('base64'),
    payloadEncoding: text ? 'utf8' : 'base64',
    payloadBytes: raw.length,
    truncated: raw.length > kept.length,
    // A driver's complaint may quote a URL with its credentials.
    reason: bounded(redactUrl(reason), REASON_CHARS),
  };
}

/**
 * The source dead-letter queue: messages stream sources set aside so the messages behind them
 * keep flowing, kept in the store until a replay (after a config fix) turns them into events.
 */
export class SourceDeadLetters {
  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly onDeadLetter?: (source: string) => void,
  ) {}

  async record(source: string, message: SourceMessage, reason: string): Promise<void> {
    const letter = sourceDeadLetterOf(source, message, reason);
    await this.store.sourceDlq.add(letter, Date.now());
    this.logger.warn(
      { source, position: letter.position, subject: letter.subject, reason: letter.reason },
      `source ${source}: set aside the message at ${letter.position}${letter.subject === null ? '' : ` of ${letter.subject}`}: ${letter.reason}`,
    );
    this.onDeadLetter?.(source);
  }

  /**
   * Maps the message again with the source's current config and ingests its events; on success
   * it leaves the table. A message that still fails is answered 422 and stays.
   */
  async replay(
    id: number,
    sources: ReadonlyMap<string, Source>,
    ingest: (events: CloudEvent[]) => Promise<IngestResult[]>,
  ): Promise<{ replayed: number; events: IngestResult[] }> {
    const letter = await this.store.sourceDlq.get(id);
    if (!letter) throw new HeraldError('NOT_FOUND', `no source dead letter ${id}`);
    const source = sources.get(letter.source);
    if (!source?.replayDeadLetter) {
      throw new HeraldError(
        'REQUEST_INVALID',
        source
          ? `source ${letter.source} cannot replay messages`
          : `source ${letter.source} is not in the config; add it back to replay its messages`,
        { status: 409 },
      );
    }
    if (letter.truncated) {
      throw new HeraldError(
        'REQUEST_INVALID',
        `the message was ${letter.payloadBytes} bytes and only the first ${DEAD_LETTER_PAYLOAD_BYTES} were kept; it cannot be replayed`,
        { status: 409 },
      );
    }
    let events: CloudEvent[];
    try {
      events = source.replayDeadLetter(messageOf(letter));
    } catch (err) {
      throw stillFails(letter, errorMessage(err));
    }
    let results: IngestResult[];
    try {
      results = await ingest(events);
    } catch (err) {
      if (err instanceof HeraldError && err.status >= 400 && err.status < 500)
        throw stillFails(letter, err.message);
      throw err;
    }
    await this.store.sourceDlq.remove(letter.id);
    this.logger.info(
      { source: letter.source, position: letter.position, events: results.length },
      `source ${letter.source}: replayed the message at ${letter.position}`,
    );
    return { replayed: letter.id, events: results };
  }
}

function messageOf(letter: SourceDeadLetter): SourceMessage & { payload: Uint8Array } {
  return {
    position: letter.position,
    subject: letter.subject,
    headers: letter.headers,
    payload: Buffer.from(letter.payload, letter.payloadEncoding === 'utf8' ? 'utf8' : 'base64'),
  };
}

const stillFails = (letter: SourceDeadLetter, reason: string) =>
  new HeraldError('EVENT_INVALID', `the message at ${letter.position} still fails: ${reason}`, {
    status: 422,
    details: { id: letter.id, source: letter.source, position: letter.position },
  });
