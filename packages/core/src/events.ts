import type { ConnectionState } from './driver.js';
import type { Envelope } from './envelope.js';
import type { FieldDifference } from './errors.js';
import type { HealthEvent } from './health.js';
import type { PublishOutcomeEvent } from './publish-outcomes.js';
import type { PoolBackpressureEvent as BackpressureEvent } from './keyed-ordering-pool.js';

/** The `deadLetter` event: a message was dead-lettered (or dropped when dead letters are off). */
export interface DeadLetterEvent {
  /** The topic the message was consumed from. */
  topic: string;
  /** The group that gave up on it (each group dead-letters its own copy). */
  group: string;
  /** Undefined when dead-lettering is disabled and the message was dropped. */
  deadLetterTopic: string | undefined;
  /** The last error's message. */
  error: string;
  /** Handler attempts made. */
  attempts: number;
  /** Absent for messages that could not be decoded. */
  envelope?: Envelope;
}

/**
 * The `retry` event: a handler attempt failed and the message will be tried again after `delayMs`.
 */
export interface RetryEvent {
  /** The topic of the message being retried. */
  topic: string;
  /** The group retrying it. */
  group: string;
  /** The attempt that failed (1-based). */
  attempt: number;
  /** How long until the next attempt. */
  delayMs: number;
  /** What the failed attempt threw. */
  error: unknown;
}

/** The `topicMismatch` event: a topic differs from the wanted options and the policy is `warn`. */
export interface TopicMismatchEvent {
  /** The topic that differs. */
  topic: string;
  /** Each option that differs, wanted vs actual. */
  differences: FieldDifference[];
  /**
   * Always `warn`: with `fail` a TopicMismatchError is thrown instead, with `ignore` nothing is
   * emitted.
   */
  action: 'warn';
}

/** Events of an EventBus (eventemitter3; an unhandled 'error' never throws). */
export interface BusEvents {
  /** An asynchronous failure nobody awaits (a commit, a fetch), with where it happened. */
  error: [error: Error, context: string];
  /** `connection` names which one where the driver holds several (default `main`). */
  connection: [state: ConnectionState, detail?: string, connection?: string];
  /** A message was dead-lettered (see DeadLetterEvent). */
  deadLetter: [event: DeadLetterEvent];
  /** A topic differs from the wanted options and the policy is `warn`. */
  topicMismatch: [event: TopicMismatchEvent];
  /** The ordering pool is full (submitters wait) or has room again. */
  backpressure: [event: BackpressureEvent];
  /** A handler attempt failed and will be retried. */
  retry: [event: RetryEvent];
  /** Every publish result, one per message (ok or failed); for fire-and-forget publishers. */
  publishOutcome: [event: PublishOutcomeEvent];
  /** A subscription stalled or recovered, or its backlog crossed `health.backlogThreshold` (needs `health.checkIntervalMs`). */
  health: [event: HealthEvent];
}
