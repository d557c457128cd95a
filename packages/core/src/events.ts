import type { ConnectionState } from './driver.js';
import type { Envelope } from './envelope.js';
import type { FieldDifference } from './errors.js';
import type { HealthEvent } from './health.js';
import type { PublishOutcomeEvent } from './publish-outcomes.js';
import type { PoolBackpressureEvent as BackpressureEvent } from './keyed-ordering-pool.js';

/** The `deadLetter` event: a message was dead-lettered (or dropped when dead letters are off). */
export interface DeadLetterEvent {
  topic: string;
  group: string;
  /** Undefined when dead-lettering is disabled and the message was dropped. */
  deadLetterTopic: string | undefined;
  error: string;
  attempts: number;
  /** Absent for messages that could not be decoded. */
  envelope?: Envelope;
}

/**
 * The `retry` event: a handler attempt failed and the message will be tried again after `delayMs`.
 */
export interface RetryEvent {
  topic: string;
  group: string;
  /** The attempt that failed (1-based). */
  attempt: number;
  delayMs: number;
  error: unknown;
}

/** The `topicMismatch` event: a topic differs from the wanted options and the policy is `warn`. */
export interface TopicMismatchEvent {
  topic: string;
  differences: FieldDifference[];
  action: 'warn';
}

/** Events of an EventBus (eventemitter3; an unhandled 'error' never throws). */
export interface BusEvents {
  error: [error: Error, context: string];
  /** `connection` names which one where the driver holds several (default `main`). */
  connection: [state: ConnectionState, detail?: string, connection?: string];
  deadLetter: [event: DeadLetterEvent];
  topicMismatch: [event: TopicMismatchEvent];
  backpressure: [event: BackpressureEvent];
  retry: [event: RetryEvent];
  /** Every publish result, one per message (ok or failed); for fire-and-forget publishers. */
  publishOutcome: [event: PublishOutcomeEvent];
  /** A subscription stalled or recovered, or its backlog crossed `health.backlogThreshold` (needs `health.checkIntervalMs`). */
  health: [event: HealthEvent];
}
