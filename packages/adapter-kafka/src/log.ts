/**
 * kafkajs's log, handed to the bus's logger (`config.logger`, through the
 * driver hooks) when `logLevel` allows it. Entries are redacted: a field that
 * could carry a credential (SASL, TLS material) is replaced first.
 */
import type { logCreator, LogEntry } from 'kafkajs';
import type { Logger } from '@busline/core/driver';

const SECRET_FIELD = /sasl|password|secret|token|credential|ssl|^key$|^cert$|^ca$|^pfx$|passphrase|authorization/i;
const LEVELS: Record<number, keyof Logger> = { 1: 'error', 2: 'warn', 4: 'info', 5: 'debug' };

export function redact(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > 4) return value;
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_FIELD.test(k) ? '[redacted]' : redact(v, depth + 1);
  return out;
}

export function createLogCreator(logger: Logger): logCreator {
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      const { message, timestamp: _timestamp, logger: _logger, ...extra } = log as Record<string, unknown> & { message: string };
      const method = LEVELS[level] ?? 'info';
      (logger[method] as (obj: Record<string, unknown>, msg: string) => void).call(logger, { kafkajs: namespace, ...(redact(extra) as Record<string, unknown>) }, message);
    };
}
