/**
 * kafka-ts 1.5.0's producer keeps a produce request (same producer id and
 * sequence numbers, so the broker drops what it already stored) through its
 * retries only after a connection error or NOT_LEADER_OR_FOLLOWER, and only
 * if the metadata refresh it does first succeeds. Two gaps:
 * - a refresh that fails (no broker answers yet: a single broker restarting,
 *   a leader election) ends the request at once, without the configured
 *   retries and backoff;
 * - most other errors Kafka counts as retriable (NOT_ENOUGH_REPLICAS,
 *   REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS_AFTER_APPEND, ...) end it at once too.
 * This replaces the producer's error handler: for those errors the metadata
 * is refreshed (a failed refresh only means the next attempt fails too) and
 * the request is retried with backoff, up to `maxRetries`; kafka-ts's own
 * handling of producer-id errors (a new id for the next attempt) stays.
 * `onFailedAttempt` is told of every failed produce attempt (KafkaTsProducer
 * uses it to know that a failed send reached the produce stage).
 *
 * It reaches into the producer's private members; if they moved (another
 * kafka-ts version) connecting fails with a message saying so, rather than
 * publishing without the fix.
 */
import type { Client } from 'kafka-ts';
import { BuslineError, ErrorCode } from '@busline/core/driver';
import { RETRIABLE_TYPES, failureScope, isConnectionError, protocolType } from './kafka-errors.js';

/** kafka-ts's producer (its class is not exported by name). */
export type KafkaTsProducer = ReturnType<Client['createProducer']>;

/**
 * What is retried: every error Kafka counts as retriable but a missing topic
 * (busline looks topics up before their first publish; a topic deleted since
 * fails its publishes at once) and a corrupt record (sending the same bytes
 * again cannot help).
 */
const RETRIED_TYPES: ReadonlySet<string> = new Set([...RETRIABLE_TYPES].filter((t) => t !== 'UNKNOWN_TOPIC_OR_PARTITION' && t !== 'CORRUPT_MESSAGE'));

/** The members of kafka-ts's Producer this fix uses. */
export interface KafkaTsProducerInternals {
  /** Called by a produce request after each failed attempt: throws to give up, resolves to try again. */
  retry(error: unknown, attempt: number): Promise<void>;
  /** Called by `retry` before the backoff: throws when the error is not to be retried. */
  handleError(error: unknown): Promise<void>;
  /** Metadata of every topic the producer knows, fetched again. */
  refreshMetadata(): Promise<void>;
}

/** The producer's private members, or a BuslineError naming the kafka-ts version problem. */
export function kafkaTsInternals(producer: KafkaTsProducer): KafkaTsProducerInternals {
  const p = producer as unknown as Partial<KafkaTsProducerInternals>;
  if (typeof p.retry !== 'function' || typeof p.handleError !== 'function' || typeof p.refreshMetadata !== 'function') {
    throw new BuslineError(
      ErrorCode.Unsupported,
      'this kafka-ts version is not the one busline fixes the producer retries of (1.5.x); install kafka-ts 1.5 or set kafka.producer.client: "kafkajs"',
    );
  }
  return p as KafkaTsProducerInternals;
}

export function applyKafkaTsRetryFix(producer: KafkaTsProducer, onFailedAttempt: () => void): void {
  const internals = kafkaTsInternals(producer);
  const retry = internals.retry;
  // Set before the first send: kafka-ts hands `retry` to each per-broker buffer when it creates it.
  internals.retry = (error, attempt) => {
    onFailedAttempt();
    return retry(error, attempt);
  };
  internals.handleError = async (error) => {
    // kafka-ts's own: the next attempt starts a new producer id.
    if (failureScope(error) === 'session') return;
    if (isConnectionError(error) || RETRIED_TYPES.has(protocolType(error) ?? '')) {
      await internals.refreshMetadata().catch(() => undefined);
      return;
    }
    throw error;
  };
}
