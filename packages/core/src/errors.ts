/**
 * Every error busline raises is a BuslineError with a stable `code`, so callers
 * branch on codes rather than on message text (which may improve over time).
 */
export const ErrorCode = {
  ConfigInvalid: 'CONFIG_INVALID',
  TopicInvalid: 'TOPIC_INVALID',
  TopicMismatch: 'TOPIC_MISMATCH',
  TopicNotFound: 'TOPIC_NOT_FOUND',
  EnvelopeInvalid: 'ENVELOPE_INVALID',
  PayloadInvalid: 'PAYLOAD_INVALID',
  Closed: 'CLOSED',
  NotStarted: 'NOT_STARTED',
  PublishTimeout: 'PUBLISH_TIMEOUT',
  PublishRejected: 'PUBLISH_REJECTED',
  BrokerUnavailable: 'BROKER_UNAVAILABLE',
  AdapterMissing: 'ADAPTER_MISSING',
  Unsupported: 'UNSUPPORTED',
  HandlerFailed: 'HANDLER_FAILED',
  DrainTimeout: 'DRAIN_TIMEOUT',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface BuslineErrorOptions {
  cause?: unknown;
  /** Structured detail for logs and tests (never secrets). */
  details?: Record<string, unknown>;
  /** Whether retrying the same operation may succeed; by default false only for input errors (config, topic, envelope). */
  retryable?: boolean;
}

/** Codes where trying the same thing again cannot help: the input must change. */
const PERMANENT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.ConfigInvalid,
  ErrorCode.TopicInvalid,
  ErrorCode.TopicMismatch,
  ErrorCode.EnvelopeInvalid,
  ErrorCode.PayloadInvalid,
  ErrorCode.AdapterMissing,
  ErrorCode.Unsupported,
]);

export class BuslineError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: BuslineErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? {};
    this.retryable = options.retryable ?? !PERMANENT_CODES.has(code);
  }
}

export class ConfigError extends BuslineError {
  /** One line per bad field: `path: what is wrong`. */
  readonly issues: string[];
  constructor(message: string, issues: string[], options: BuslineErrorOptions = {}) {
    super(ErrorCode.ConfigInvalid, `${message}\n  - ${issues.join('\n  - ')}`, options);
    this.issues = issues;
  }
}

export class TopicError extends BuslineError {
  constructor(code: ErrorCode, readonly topic: string, message: string, options: BuslineErrorOptions = {}) {
    super(code, message, options);
  }
}

export interface FieldDifference {
  field: string;
  wanted: unknown;
  actual: unknown;
}

export class TopicMismatchError extends TopicError {
  constructor(topic: string, readonly differences: FieldDifference[], why = 'differs from the wanted options') {
    super(
      ErrorCode.TopicMismatch,
      topic,
      `topic "${topic}" ${why}: ${formatDifferences(differences)}`,
      { details: { differences } },
    );
  }
}

export function formatDifferences(differences: FieldDifference[]): string {
  return differences
    .map((d) => `${d.field} wanted ${JSON.stringify(d.wanted)}, actual ${JSON.stringify(d.actual)}`)
    .join('; ');
}

export class EnvelopeError extends BuslineError {
  constructor(message: string, readonly issues: string[] = [], options: BuslineErrorOptions = {}) {
    super(ErrorCode.EnvelopeInvalid, issues.length ? `${message}: ${issues.join('; ')}` : message, options);
  }
}

export class ClosedError extends BuslineError {
  constructor(what = 'event bus') {
    super(ErrorCode.Closed, `${what} is closed; create a new one to publish or subscribe again`);
  }
}

export class PublishTimeoutError extends BuslineError {
  constructor(topic: string, timeoutMs: number, cause?: unknown) {
    super(
      ErrorCode.PublishTimeout,
      `publish to "${topic}" was not acknowledged by the broker within ${timeoutMs} ms; it may or may not be stored — retry (duplicates are dropped where the adapter dedupes by event id)`,
      { retryable: true, cause, details: { topic, timeoutMs } },
    );
  }
}

export class BrokerUnavailableError extends BuslineError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCode.BrokerUnavailable, message, { retryable: true, cause });
  }
}

export class AdapterMissingError extends BuslineError {
  constructor(readonly packageName: string, type: string, cause?: unknown) {
    super(
      ErrorCode.AdapterMissing,
      `config type "${type}" needs the package ${packageName}; install it: npm i ${packageName}`,
      { cause, details: { packageName } },
    );
  }
}

/**
 * Thrown by a handler to say "do not retry this message": it goes straight to
 * the dead-letter topic. Any error with `retryable === false` counts the same.
 */
export class NonRetryableError extends Error {
  readonly retryable = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NonRetryableError';
  }
}

export function isRetryable(error: unknown): boolean {
  return !(typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === false);
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === 'string' ? error : JSON.stringify(error);
}
