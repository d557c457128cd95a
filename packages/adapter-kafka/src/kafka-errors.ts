/**
 * Maps kafkajs and kafka-ts errors onto busline's errors, so callers branch on stable codes:
 * connection loss → BrokerUnavailableError (retryable), broker or request
 * timeouts → PublishTimeoutError (retryable), a record over the topic's
 * `max.message.bytes` → MESSAGE_TOO_LARGE (not retryable), a missing topic →
 * TOPIC_NOT_FOUND, everything else the broker refused → PUBLISH_REJECTED with
 * the client's reason (retryable when kafkajs says so, or when Kafka counts
 * the protocol error as retriable). The client's error is kept as `cause`; no
 * config ever goes into a message.
 *
 * kafka-ts throws KafkaTSApiError (the broker's numeric `errorCode`),
 * ConnectionError (refused, lost or timed-out connections) and KafkaTSError
 * ("No seed brokers found"); they are read by name, like kafkajs's.
 */
import {
  AuthFailedError,
  BrokerUnavailableError,
  BuslineError,
  ErrorCode,
  PublishTimeoutError,
  TopicError,
  errorMessage,
  isBuslineError,
  untrustedCertificate,
} from '@busline/core/driver';

interface KafkaJSErrorLike {
  name?: string;
  message?: string;
  type?: string;
  /** kafka-ts: the broker's error code. */
  errorCode?: number;
  retriable?: boolean;
  cause?: unknown;
  originalError?: unknown;
}

const CONNECTION_ERRORS = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSBrokerNotFound',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSGroupCoordinatorNotFound',
  'KafkaJSMetadataNotLoaded',
]);

/**
 * The Kafka protocol's error codes busline branches on, by name as kafkajs
 * spells them (Kafka's Errors.java; wire constants that never change). kafka-ts
 * reports only the code.
 */
const PROTOCOL_ERROR_NAMES: Readonly<Record<number, string>> = {
  2: 'CORRUPT_MESSAGE',
  3: 'UNKNOWN_TOPIC_OR_PARTITION',
  5: 'LEADER_NOT_AVAILABLE',
  6: 'NOT_LEADER_OR_FOLLOWER',
  7: 'REQUEST_TIMED_OUT',
  8: 'BROKER_NOT_AVAILABLE',
  10: 'MESSAGE_TOO_LARGE',
  13: 'NETWORK_EXCEPTION',
  14: 'COORDINATOR_LOAD_IN_PROGRESS',
  15: 'COORDINATOR_NOT_AVAILABLE',
  16: 'NOT_COORDINATOR',
  17: 'INVALID_TOPIC_EXCEPTION',
  18: 'RECORD_LIST_TOO_LARGE',
  19: 'NOT_ENOUGH_REPLICAS',
  20: 'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  29: 'TOPIC_AUTHORIZATION_FAILED',
  31: 'CLUSTER_AUTHORIZATION_FAILED',
  33: 'UNSUPPORTED_SASL_MECHANISM',
  34: 'ILLEGAL_SASL_STATE',
  44: 'POLICY_VIOLATION',
  45: 'OUT_OF_ORDER_SEQUENCE_NUMBER',
  47: 'INVALID_PRODUCER_EPOCH',
  56: 'KAFKA_STORAGE_ERROR',
  58: 'SASL_AUTHENTICATION_FAILED',
  59: 'UNKNOWN_PRODUCER_ID',
  74: 'FENCED_LEADER_EPOCH',
  75: 'UNKNOWN_LEADER_EPOCH',
  87: 'INVALID_RECORD',
  90: 'PRODUCER_FENCED',
};

/**
 * Protocol errors Kafka's Java client retries (RetriableException): the
 * same request may succeed later. kafkajs flags them itself; kafka-ts does not.
 */
export const RETRIABLE_TYPES: ReadonlySet<string> = new Set([
  'CORRUPT_MESSAGE',
  'UNKNOWN_TOPIC_OR_PARTITION',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_OR_FOLLOWER',
  'REQUEST_TIMED_OUT',
  'NETWORK_EXCEPTION',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'KAFKA_STORAGE_ERROR',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
  'BROKER_NOT_AVAILABLE',
]);

const TIMEOUT_ERRORS = new Set(['KafkaJSRequestTimeoutError', 'KafkaJSTimeout', 'KafkaJSLockTimeout']);
const TIMEOUT_TYPES = new Set(['REQUEST_TIMED_OUT']);
const UNAVAILABLE_TYPES = new Set([
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
  'BROKER_NOT_AVAILABLE',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
  'NETWORK_EXCEPTION',
]);

/** The broker refused a record batch as too large: only a smaller record can succeed. */
const TOO_LARGE_TYPES = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);
/** Failures of one topic as a whole: the other topics of a request are not at fault. */
const TOPIC_TYPES = new Set([
  'UNKNOWN_TOPIC_OR_PARTITION',
  'TOPIC_AUTHORIZATION_FAILED',
  'INVALID_TOPIC_EXCEPTION',
  'POLICY_VIOLATION',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
]);

/**
 * What part of a failed `sendBatch` an error belongs to: the whole request
 * (connection, timeouts, anything unknown), one topic of it, or one record
 * (too large). The batcher re-sends the parts apart for the narrower scopes.
 */
/**
 * The idempotent producer's session no longer matches the broker's: kafkajs's
 * sequence numbers for a partition went out of step (it rolls them back when a
 * request fails, also for partitions the broker stored), or the broker forgot
 * the producer id (a restart that lost its state). Every later request of
 * the session would be refused the same way: a new session is the way out.
 */
const SESSION_TYPES = new Set(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED']);

export function failureScope(error: unknown): 'batch' | 'topic' | 'record' | 'session' {
  const type = protocolType(error);
  if (type !== undefined && SESSION_TYPES.has(type)) return 'session';
  if (type !== undefined && TOO_LARGE_TYPES.has(type)) return 'record';
  if (type !== undefined && TOPIC_TYPES.has(type)) return 'topic';
  return 'batch';
}

/** A record over the topic's limit, refused before it was sent (`limit` known) or by the broker. */
export function messageTooLarge(topic: string, size: number | undefined, limit: number | undefined, cause?: unknown): BuslineError {
  const what = size === undefined ? 'a record' : `a record of about ${size} bytes`;
  const max = limit === undefined ? "the topic's max.message.bytes" : `the topic's max.message.bytes (${limit})`;
  return new BuslineError(ErrorCode.MessageTooLarge, `publish to "${topic}" refused: ${what} exceeds ${max}; shrink the payload or headers`, {
    cause,
    retryable: false,
    details: { topic, ...(size === undefined ? {} : { size }), ...(limit === undefined ? {} : { limit }) },
  });
}

/**
 * A publish (or, with `what`, another call) on a topic the broker does not have (topic strategy
 * "skip", or deleted). Retryable: it may be created.
 */
export function topicNotFound(topic: string, cause?: unknown, what?: string): BuslineError {
  const message = what
    ? `${what}: the Kafka topic "${topic}" does not exist (create it, or use a topic strategy that does)`
    : `publish to "${topic}" failed: the Kafka topic does not exist (nothing was sent; create it, or use a topic strategy that does)`;
  return new TopicError(ErrorCode.TopicNotFound, topic, message, {
    cause,
    retryable: true,
    details: { topic },
  });
}

/** The chain of causes, outermost first (kafkajs wraps retries in KafkaJSNumberOfRetriesExceeded). */
export function causeChain(error: unknown): KafkaJSErrorLike[] {
  const chain: KafkaJSErrorLike[] = [];
  let current: unknown = error;
  while (current !== null && typeof current === 'object' && chain.length < 10) {
    const e = current as KafkaJSErrorLike;
    chain.push(e);
    current = e.cause ?? e.originalError;
  }
  return chain;
}

/** The protocol error name of one error of the chain: kafkajs's `type`, or kafka-ts's `errorCode` by name. */
function typeOf(e: KafkaJSErrorLike): string | undefined {
  if (typeof e.type === 'string') return e.type;
  if (e.name === 'KafkaTSApiError' && typeof e.errorCode === 'number') return PROTOCOL_ERROR_NAMES[e.errorCode] ?? `KAFKA_ERROR_${e.errorCode}`;
  return undefined;
}

/** kafka-ts: a request that got no answer in `requestTimeout` ("PRODUCE timed out"); a connect timeout names the address. */
function isKafkaTsRequestTimeout(e: KafkaJSErrorLike): boolean {
  return e.name === 'ConnectionError' && /^[A-Z_]+ timed out$/.test(e.message ?? '');
}

/** kafka-ts: a connection refused, lost or timed out, or no bootstrap broker answered. */
function isKafkaTsUnreachable(e: KafkaJSErrorLike): boolean {
  return e.name === 'ConnectionError' || (e.name === 'KafkaTSError' && /seed broker/i.test(e.message ?? ''));
}

export function isConnectionError(error: unknown): boolean {
  return causeChain(error).some((e) => CONNECTION_ERRORS.has(e.name ?? '') || UNAVAILABLE_TYPES.has(typeOf(e) ?? '') || isKafkaTsUnreachable(e));
}

export function protocolType(error: unknown): string | undefined {
  for (const e of causeChain(error)) {
    const type = typeOf(e);
    if (type !== undefined) return type;
  }
  return undefined;
}

/** The broker's answers to a failed SASL handshake or authentication. */
const SASL_TYPES: ReadonlySet<string> = new Set(['SASL_AUTHENTICATION_FAILED', 'UNSUPPORTED_SASL_MECHANISM', 'ILLEGAL_SASL_STATE']);

/**
 * AUTH_FAILED for a refused SASL authentication or a broker certificate the
 * client did not trust, saying which setting to change; undefined for any
 * other error. Neither is a broker being unavailable: retrying with the same
 * settings cannot succeed.
 */
export function authFailure(error: unknown, what: string): BuslineError | undefined {
  if (causeChain(error).some((e) => e.name === 'KafkaJSSASLAuthenticationError' || SASL_TYPES.has(typeOf(e) ?? ''))) {
    return new AuthFailedError(`${what}: the broker refused the SASL authentication (${errorMessage(error)}); check kafka.sasl (the mechanism, and the username and password or the token oauthBearerProvider gives)`, error);
  }
  return untrustedCertificate(error, what, 'kafka.ssl.ca');
}

/** A publish failure as the caller sees it. */
export function publishError(error: unknown, topic: string, timeoutMs: number): BuslineError {
  if (isBuslineError(error)) return error;
  const auth = authFailure(error, `publish to "${topic}" failed`);
  if (auth !== undefined) return auth;
  const chain = causeChain(error);
  const kafkaType = protocolType(error);
  if (kafkaType !== undefined && TOO_LARGE_TYPES.has(kafkaType)) return messageTooLarge(topic, undefined, undefined, error);
  if (kafkaType === 'UNKNOWN_TOPIC_OR_PARTITION') return topicNotFound(topic, error);
  if (chain.some((e) => TIMEOUT_ERRORS.has(e.name ?? '') || TIMEOUT_TYPES.has(typeOf(e) ?? '') || isKafkaTsRequestTimeout(e))) {
    return new PublishTimeoutError(topic, timeoutMs, error);
  }
  if (isConnectionError(error)) {
    return new BrokerUnavailableError(`publish to "${topic}" failed: the Kafka broker is unreachable (${errorMessage(error)})`, error);
  }
  const retryable =
    chain.some((e) => e.retriable === true && e.name !== 'KafkaJSNumberOfRetriesExceeded') ||
    chain[0]?.name === 'KafkaJSNumberOfRetriesExceeded' ||
    RETRIABLE_TYPES.has(kafkaType ?? '');
  const type = kafkaType;
  return new BuslineError(
    ErrorCode.PublishRejected,
    `Kafka refused the publish to "${topic}": ${errorMessage(error)}`,
    { cause: error, retryable, details: { topic, ...(type ? { kafkaError: type } : {}) } },
  );
}

/** Any other failure (admin calls, connect), with the code for its kind. */
export function kafkaError(error: unknown, what: string, code: ErrorCode = ErrorCode.BrokerUnavailable): BuslineError {
  if (isBuslineError(error)) return error;
  const auth = authFailure(error, what);
  if (auth !== undefined) return auth;
  if (isConnectionError(error)) return new BrokerUnavailableError(`${what}: the Kafka broker is unreachable (${errorMessage(error)})`, error);
  const type = protocolType(error);
  return new BuslineError(code, `${what}: ${errorMessage(error)}`, {
    cause: error,
    retryable: causeChain(error).some((e) => e.retriable === true) || RETRIABLE_TYPES.has(type ?? ''),
    details: type ? { kafkaError: type } : {},
  });
}

/**
 * What a close or unsubscribe left behind because the broker did not answer (CloseDeadline's
 * abandoned steps), and what that means for the group. `connectionsEnded`: the driver's close
 * ended the connections (kafkajs-sockets.ts); an unsubscribe leaves them to their request timeouts
 * or the driver's close.
 */
export function closeAbandoned(what: string, abandoned: readonly string[], connectionsEnded: boolean): BuslineError {
  return new BuslineError(
    ErrorCode.BrokerUnavailable,
    `${what}: the broker did not answer, so this gave up on ${abandoned.join('; ')}. ` +
      'Offsets not committed are delivered again to the group (the broker drops a silent member after consumer.sessionTimeoutMs); ' +
      (connectionsEnded ? 'the connections to the broker were closed.' : "the consumer's connections end when its requests time out (requestTimeoutMs) or the bus closes."),
    { retryable: false },
  );
}
