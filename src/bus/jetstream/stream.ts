import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamManager,
  type RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { errorMessage, HeraldError } from '../../errors.js';
import type { JetStreamBusConfig } from '../config.js';

/** Creates the stream when it is missing; an existing one is used as it is. */
export async function ensureStream(
  jsm: JetStreamManager,
  config: JetStreamBusConfig,
  logger: Logger,
): Promise<void> {
  const { stream, subject } = config;
  const subjects = stream.subjects ?? [subject];
  try {
    await jsm.streams.info(stream.name);
    return;
  } catch (err) {
    if (!/not found/i.test(errorMessage(err))) throw streamError(config, err);
  }
  try {
    await jsm.streams.add({
      name: stream.name,
      subjects,
      retention: stream.retention as RetentionPolicy,
      num_replicas: stream.replicas,
      max_age: nanos(stream.maxAgeMs),
      duplicate_window: nanos(stream.duplicateWindowMs),
      storage: StorageType.File,
    });
    logger.info({ stream: stream.name, subjects }, 'created the JetStream stream');
  } catch (err) {
    // Another process may have created it a moment ago.
    if (!/already in use/i.test(errorMessage(err))) throw streamError(config, err);
  }
}

function streamError(config: JetStreamBusConfig, err: unknown): HeraldError {
  return new HeraldError(
    'CONFIG_INVALID',
    `bus.stream: cannot create or read stream "${config.stream.name}": ${errorMessage(err)}`,
    { cause: err },
  );
}

/** Creates the durable consumer the routers share, or adopts the settings that can change. */
export async function ensureConsumer(jsm: JetStreamManager, config: JetStreamBusConfig): Promise<void> {
  const { consumer, stream, subject } = config;
  const wanted = {
    durable_name: consumer.name,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(consumer.ackWaitMs),
    max_ack_pending: consumer.maxAckPending,
    deliver_policy: DeliverPolicy.All,
    filter_subject: subject,
    max_deliver: consumer.maxDeliver,
  };
  try {
    await jsm.consumers.add(stream.name, wanted);
  } catch (err) {
    // An existing consumer with other settings: adopt what can change, keep it otherwise.
    try {
      await jsm.consumers.update(stream.name, consumer.name, {
        ack_wait: wanted.ack_wait,
        max_ack_pending: wanted.max_ack_pending,
        max_deliver: wanted.max_deliver,
      });
    } catch {
      throw new HeraldError(
        'CONFIG_INVALID',
        `bus.consumer: cannot create consumer "${consumer.name}" on stream "${stream.name}": ${errorMessage(err)}`,
        { cause: err },
      );
    }
  }
}
