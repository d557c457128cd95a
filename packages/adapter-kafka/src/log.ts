/**
 * kafkajs's log, written to stderr when `logLevel` allows it. Entries are
 * redacted: a field that could carry a credential (SASL, TLS material) is
 * replaced before anything is printed.
 */
import type { logCreator, LogEntry } from 'kafkajs';

const SECRET_FIELD = /sasl|password|secret|token|credential|ssl|^key$|^cert$|^ca$|^pfx$|passphrase|authorization/i;
const LEVEL_NAMES: Record<number, string> = { 1: 'ERROR', 2: 'WARN', 4: 'INFO', 5: 'DEBUG' };

export function redact(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > 4) return value;
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_FIELD.test(k) ? '[redacted]' : redact(v, depth + 1);
  return out;
}

export function createLogCreator(write: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): logCreator {
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      const { message, timestamp: _timestamp, logger: _logger, ...extra } = log as Record<string, unknown> & { message: string };
      const fields = Object.keys(extra).length > 0 ? ` ${JSON.stringify(redact(extra))}` : '';
      write(`[busline:kafka] ${LEVEL_NAMES[level] ?? level} ${namespace}: ${message}${fields}`);
    };
}
