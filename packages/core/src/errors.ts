/**
 * Every error busline raises is a BuslineError with a stable `code`, so callers
 * branch on codes rather than on message text (which may improve over time).
 * Test with `isBuslineError(e)` or `e.code`: both hold for errors made by another
 * copy of @busline/core (an adapter with its own), where a class check would not.
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
  /** The message (with its headers) exceeds what the broker accepts; it must shrink. */
  MessageTooLarge: 'MESSAGE_TOO_LARGE',
  /** Too many publishes are waiting for room in the bus's publish window. */
  PublishQueueFull: 'PUBLISH_QUEUE_FULL',
  /**
   * The broker refused the client's credentials, or the client refused the
   * broker's TLS certificate: the security settings must change.
   */
  AuthFailed: 'AUTH_FAILED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Options every BuslineError takes. */
export interface BuslineErrorOptions {
  /** The underlying error (kept as the standard `cause`). */
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
  ErrorCode.MessageTooLarge,
  ErrorCode.AuthFailed,
]);

/** In the global symbol registry, so every copy of @busline/core brands its errors with the same key. */
const BRAND = Symbol.for('busline.error');

/**
 * The base of every error busline throws: a stable `code` to branch on, structured `details`, and
 * whether retrying may help (`retryable`). Check with `instanceof BuslineError` or `errorCode(e)`,
 * which both work across copies of core.
 */
export class BuslineError extends Error {
  static {
    // On the prototype, not the instance: invisible to equality checks and serialisation.
    Object.defineProperty(this.prototype, BRAND, { value: true });
  }

  /**
   * `e instanceof BuslineError` is true for a BuslineError from any copy of core (by brand).
   * Subclasses keep the ordinary prototype check, so `instanceof ConfigError` stays exact.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return this === BuslineError ? isBuslineError(value) : Function.prototype[Symbol.hasInstance].call(this, value);
  }

  /** What went wrong, stable across versions: branch on it rather than on the message. */
  readonly code: ErrorCode;
  /** Structured detail for logs and tests (never secrets). */
  readonly details: Record<string, unknown>;
  /** Whether trying the same operation again may succeed. */
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: BuslineErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? {};
    this.retryable = options.retryable ?? !PERMANENT_CODES.has(code);
  }
}

/**
 * A config or option is invalid (CONFIG_INVALID); `issues` names each bad field. Fix the input:
 * retrying cannot help.
 */
export class ConfigError extends BuslineError {
  /** One line per bad field: `path: what is wrong`. */
  readonly issues: string[];
  constructor(message: string, issues: string[], options: BuslineErrorOptions = {}) {
    super(ErrorCode.ConfigInvalid, `${message}\n  - ${issues.join('\n  - ')}`, options);
    this.issues = issues;
  }
}

/** A topic is invalid or cannot be provisioned; `topic` names it. */
export class TopicError extends BuslineError {
  /** The topic the error is about. */
  constructor(code: ErrorCode, readonly topic: string, message: string, options: BuslineErrorOptions = {}) {
    super(code, message, options);
  }
}

/** One topic setting that differs between what is wanted and what the broker has. */
export interface FieldDifference {
  /** The topic option that differs, e.g. `partitions`. */
  field: string;
  /** What the config asks for. */
  wanted: unknown;
  /** What the broker has (`null`: unlimited). */
  actual: unknown;
}

/**
 * A topic exists with settings other than the wanted ones (TOPIC_MISMATCH), with the `onMismatch:
 * 'fail'` policy or when the broker cannot change them.
 */
export class TopicMismatchError extends TopicError {
  /** Every option that differs. */
  constructor(topic: string, readonly differences: FieldDifference[], why = 'differs from the wanted options') {
    super(
      ErrorCode.TopicMismatch,
      topic,
      `topic "${topic}" ${why}: ${formatDifferences(differences)}`,
      { details: { differences } },
    );
  }
}

/** `field wanted x, actual y; …`: differences as one line for messages and logs. */
export function formatDifferences(differences: FieldDifference[]): string {
  return differences
    .map((d) => `${d.field} wanted ${JSON.stringify(d.wanted)}, actual ${JSON.stringify(d.actual)}`)
    .join('; ');
}

/**
 * A message or envelope is invalid (ENVELOPE_INVALID): a bad publish input, or a malformed message
 * on the wire.
 */
export class EnvelopeError extends BuslineError {
  /** One line per problem found (`field: what is wrong`). */
  constructor(message: string, readonly issues: string[] = [], options: BuslineErrorOptions = {}) {
    super(ErrorCode.EnvelopeInvalid, issues.length ? `${message}: ${issues.join('; ')}` : message, options);
  }
}

/** The bus (or a part of it) is closed (CLOSED): create a new bus to publish or subscribe again. */
export class ClosedError extends BuslineError {
  constructor(what = 'event bus') {
    super(ErrorCode.Closed, `${what} is closed; create a new one to publish or subscribe again`);
  }
}

/**
 * The broker did not acknowledge a publish in time (PUBLISH_TIMEOUT). The message may or may not be
 * stored: retry; adapters that dedupe by event id drop the duplicate.
 */
export class PublishTimeoutError extends BuslineError {
  constructor(topic: string, timeoutMs: number, cause?: unknown) {
    super(
      ErrorCode.PublishTimeout,
      `publish to "${topic}" was not acknowledged by the broker within ${timeoutMs} ms; it may or may not be stored — retry (duplicates are dropped where the adapter dedupes by event id)`,
      { retryable: true, cause, details: { topic, timeoutMs } },
    );
  }
}

/**
 * The broker cannot be reached or refused the operation for now (BROKER_UNAVAILABLE); retryable.
 */
export class BrokerUnavailableError extends BuslineError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCode.BrokerUnavailable, message, { retryable: true, cause });
  }
}

/**
 * The broker refused the client's credentials, or the client refused the broker's TLS certificate
 * (AUTH_FAILED): not retryable, the security settings must change. The message names them.
 */
export class AuthFailedError extends BuslineError {
  constructor(message: string, cause?: unknown, details: Record<string, unknown> = {}) {
    super(ErrorCode.AuthFailed, message, { cause, details });
  }
}

/** Node's TLS certificate verification failures (`error.code` of a failed TLS connect). */
const TLS_VERIFY_CODES: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * The TLS verification failure in `error` or its causes (e.g. `DEPTH_ZERO_SELF_SIGNED_CERT`: the
 * client does not trust the broker's certificate), or undefined. For drivers: such an error is
 * AUTH_FAILED, not an unavailable broker.
 */
export function tlsVerificationFailure(error: unknown): { code: string; message: string } | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 10 && current !== null && typeof current === 'object'; depth++) {
    const e = current as { code?: unknown; message?: unknown; cause?: unknown; originalError?: unknown };
    if (typeof e.code === 'string' && TLS_VERIFY_CODES.has(e.code)) return { code: e.code, message: String(e.message ?? '') };
    current = e.cause ?? e.originalError;
  }
  return undefined;
}

/**
 * AUTH_FAILED for an error whose cause is a broker TLS certificate the client did not trust, or
 * undefined: the message says what failed (`what`), Node's verification code and what to set
 * (`caSetting`, e.g. `kafka.ssl.ca`); `details.tlsError` holds the code. For drivers' connect errors.
 */
export function untrustedCertificate(error: unknown, what: string, caSetting: string): AuthFailedError | undefined {
  const tls = tlsVerificationFailure(error);
  if (tls === undefined) return undefined;
  return new AuthFailedError(
    `${what}: the broker's TLS certificate was not accepted (${tls.code}: ${tls.message}); set ${caSetting} to the CA that signed it, or connect by a name the certificate holds`,
    error,
    { tlsError: tls.code },
  );
}

/**
 * `createEventBus` could not import the adapter package for the config's type (ADAPTER_MISSING):
 * install it, or pass it as `{ adapter }`.
 */
export class AdapterMissingError extends BuslineError {
  /** The npm package to install (or to pass as `{ adapter }`). */
  constructor(readonly packageName: string, type: string, cause?: unknown) {
    super(
      ErrorCode.AdapterMissing,
      `config type "${type}" needs the package ${packageName}, which core could not import; install it: npm i ${packageName}` +
        ` (a bundled app, where packages are not importable by name at run time, passes the adapter instead:` +
        ` import { adapter } from '${packageName}'; createEventBus(cfg, { adapter }))`,
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

const CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/**
 * True for an error made by any copy of @busline/core (an adapter that pinned or
 * bundled its own): they carry the same registered brand, while their classes differ.
 */
export function isBuslineError(error: unknown): error is BuslineError {
  if (typeof error !== 'object' || error === null) return false;
  try {
    return (error as { [BRAND]?: unknown })[BRAND] === true;
  } catch {
    return false; // a hostile Proxy
  }
}

/** The busline error code of `error` (from any copy of core, see `isBuslineError`), else undefined. */
export function errorCode(error: unknown): ErrorCode | undefined {
  if (!isBuslineError(error)) return undefined;
  try {
    const code: unknown = error.code;
    return typeof code === 'string' && CODES.has(code) ? (code as ErrorCode) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether an error may succeed on retry: false only when it says `retryable: false` (e.g.
 * NonRetryableError, input errors); anything else thrown by a handler is retried.
 */
export function isRetryable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return true;
  try {
    return (error as { retryable?: unknown }).retryable !== false;
  } catch {
    return true;
  }
}

/**
 * A one-line description of anything a handler may throw or reject with: an
 * Error, a string, undefined, a Symbol, a BigInt, a function, a circular or
 * hostile object (a throwing getter or toString). Never throws.
 */
export function errorMessage(error: unknown): string {
  try {
    if (error instanceof Error) {
      const message = error.message;
      return typeof message === 'string' && message !== '' ? message : error.name || 'Error';
    }
    switch (typeof error) {
      case 'string':
        return error;
      case 'undefined':
        return 'undefined (the handler threw or rejected without a value)';
      case 'symbol':
        return error.toString();
      case 'bigint':
        return `${error.toString()}n`;
      case 'function':
        return `function ${error.name || '(anonymous)'}`;
      case 'object':
        if (error === null) return 'null';
        try {
          const json = JSON.stringify(error);
          if (json !== undefined) return json;
        } catch {
          // circular or a throwing toJSON: fall through to a shape description
        }
        return `[object ${Object.prototype.toString.call(error).slice(8, -1)}]`;
      default:
        return String(error);
    }
  } catch {
    return '(an unprintable thrown value)';
  }
}
