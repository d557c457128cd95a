/**
 * Logging: a pino-compatible interface (level methods taking an object and a
 * message), so `pino()`, a pino child or a few lines around any other logger
 * can be passed as `config.logger`. By default core writes warnings and
 * errors to the console: a handler that always throws, or a message that
 * cannot be decoded, is never silent.
 *
 * Nothing logged from core carries a config section; text that may hold a
 * URL (error messages, connection details) has any `user:password@` removed.
 */
import { errorCode, errorMessage } from './errors.js';

type LogMethod = (obj: Record<string, unknown>, msg: string) => void;

/**
 * What `config.logger` takes: four level methods with pino's argument order (fields, then message),
 * so a pino logger fits as is.
 */
export interface Logger {
  /** Detail for debugging (backpressure changes). */
  debug: LogMethod;
  /** Things going as planned: retries, connection changes, recoveries. */
  info: LogMethod;
  /** Something to look at: connection trouble, topic mismatches, stalled subscriptions. */
  warn: LogMethod;
  /** Failures: dead letters and the `error` event. */
  error: LogMethod;
  /** pino's child loggers: bound fields on every entry. */
  child?(bindings: Record<string, unknown>): Logger;
}

/** A log level, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** True for an object with the four level methods (what `config.logger` accepts besides `false`). */
export function isLogger(value: unknown): value is Logger {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.debug === 'function' && typeof v.info === 'function' && typeof v.warn === 'function' && typeof v.error === 'function';
}

const noop: LogMethod = () => {};
/** Drops everything (`logger: false`). */
export const silentLogger: Logger = Object.freeze({ debug: noop, info: noop, warn: noop, error: noop, child: () => silentLogger });

/** Credentials in URLs (`scheme://user:pass@host`): the part before `@` is replaced. */
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi;

/**
 * Replaces the credentials in URLs (`scheme://user:pass@host`) in `text` with `***`, so errors and
 * connection details can be logged.
 */
export function redactSecrets(text: string): string {
  return text.includes('@') ? text.replace(URL_CREDENTIALS, '$1***@') : text;
}

/** An error as a log field: its code, name and redacted message (never its own enumerable fields, which may hold config). */
export function errorField(error: unknown): Record<string, unknown> {
  const code = errorCode(error);
  return {
    ...(code !== undefined ? { code } : {}),
    ...(error instanceof Error ? { name: error.name } : {}),
    message: redactSecrets(errorMessage(error)),
  };
}

/**
 * The default: `warn` and `error` to the console as one line each
 * (`busline warn: <msg> {json fields}`); `debug` and `info` are dropped.
 */
export function consoleLogger(bindings: Record<string, unknown> = {}): Logger {
  const line = (obj: Record<string, unknown>, msg: string) => {
    const fields = { ...bindings, ...obj };
    return Object.keys(fields).length > 0 ? `${msg} ${safeJson(fields)}` : msg;
  };
  return {
    debug: noop,
    info: noop,
    warn: (obj, msg) => console.warn(`busline warn: ${line(obj, msg)}`),
    error: (obj, msg) => console.error(`busline error: ${line(obj, msg)}`),
    child: (more) => consoleLogger({ ...bindings, ...more }),
  };
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
  } catch {
    return '"[unserializable]"';
  }
}

/** Warnings a process needs to see once, not once per bus or subscription. */
const warnedOnce = new Set<string>();

/** Logs `msg` at warn level the first time `key` is seen in this process. */
export function warnOnce(logger: Logger, key: string, obj: Record<string, unknown>, msg: string): void {
  if (warnedOnce.has(key)) return;
  warnedOnce.add(key);
  logger.warn(obj, msg);
}
