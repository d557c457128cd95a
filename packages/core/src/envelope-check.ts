/**
 * What a valid envelope is, checked without zod: the rules of envelope.ts's
 * schemas written out for the paths that run them per message (publish,
 * decode), and the patterns both share. A check may only be stricter than
 * the schema, never looser: what it refuses goes through zod, which decides
 * and names the problems. The package exports only `isValidAggregateId` and
 * `MAX_AGGREGATE_ID_LENGTH` from here (through envelope.ts).
 */
import type { z } from 'zod';
import type { Envelope } from './envelope.js';

/** The longest aggregate id accepted: it becomes a message key and header on every broker. */
export const MAX_AGGREGATE_ID_LENGTH = 256;
export const AGGREGATE_ID_PATTERN = /^[A-Za-z0-9._:@/+=#|~-]+$/;
/** RFC 7230 token: what every broker accepts as a header name. */
export const HEADER_NAME_PATTERN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
/** CR, LF and NUL would split or truncate a header on NATS and HTTP bridges. */
export const HEADER_VALUE_FORBIDDEN = /[\r\n\0]/;
/** Header prefixes busline and the brokers use themselves (`ce_`: CloudEvents attributes on Kafka). */
export const RESERVED_HEADER_PREFIXES = ['ce-', 'ce_', 'busline-', 'nats-', 'content-type'];

/** zod's issues as `field: problem` lines, for EnvelopeError. */
export function issuesOf(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'envelope'}: ${i.message}`);
}

export const isText = (v: unknown, max: number): boolean =>
  typeof v === 'string' && v.length > 0 && v.length <= max && !HEADER_VALUE_FORBIDDEN.test(v);
export const isOptionalText = (v: unknown, max: number): boolean => v === undefined || isText(v, max);

/**
 * `isText(v, 256)` for types and `isText(v, 512)` for sources, remembering the
 * last string that passed: a stream of messages mostly repeats one type and
 * one source, and validity depends on the text alone. (The seeds are valid.)
 */
let validType = 'x';
let validSource = 'x';
export function isTypeText(v: unknown): boolean {
  if (v === validType) return true;
  if (!isText(v, 256)) return false;
  validType = v as string;
  return true;
}
export function isSourceText(v: unknown): boolean {
  if (v === validSource) return true;
  if (!isText(v, 512)) return false;
  validSource = v as string;
  return true;
}

export function isValidUserHeaders(headers: unknown): boolean {
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) return false;
  for (const name in headers) {
    const value = (headers as Record<string, unknown>)[name];
    if (typeof value !== 'string' || HEADER_VALUE_FORBIDDEN.test(value) || !HEADER_NAME_PATTERN.test(name)) return false;
    const lower = name.toLowerCase();
    for (const prefix of RESERVED_HEADER_PREFIXES) if (lower.startsWith(prefix)) return false;
  }
  return true;
}

/**
 * The hot-path check: the same rules as `envelopeSchema`, written out so a
 * valid envelope costs a few hundred nanoseconds instead of a zod parse. It
 * may only be stricter than the schema, never looser: anything it refuses
 * goes through zod, which decides and names the problems.
 */
export function isValidEnvelope(e: Envelope, wire: boolean): boolean {
  return (
    isText(e.id, 128) &&
    isTypeText(e.type) &&
    isSourceText(e.source) &&
    isValidAggregateId(e.aggregateId) &&
    Number.isInteger(e.version) &&
    e.version >= 1 &&
    (e.time === undefined || (e.time instanceof Date && !Number.isNaN(e.time.getTime()))) &&
    isOptionalText(e.traceId, 256) &&
    isOptionalText(e.correlationId, 256) &&
    isOptionalText(e.causationId, 256) &&
    isOptionalText(e.tenantId, 256) &&
    (wire || isValidUserHeaders(e.headers)) &&
    isValidPayload(e.payload)
  );
}

/** 1 at the char codes AGGREGATE_ID_PATTERN allows. */
const AGGREGATE_ID_CHAR = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@/+=#|~-') AGGREGATE_ID_CHAR[c.charCodeAt(0)] = 1;

/**
 * @internal Absent, or 1..256 characters each allowed by AGGREGATE_ID_PATTERN: `aggregateIdSchema`'s check
 * without zod or a regex call (a table lookup per char), for the paths that run it per message.
 */
export function isValidAggregateId(v: unknown): boolean {
  if (v === undefined) return true;
  if (typeof v !== 'string') return false;
  const n = v.length;
  if (n === 0 || n > MAX_AGGREGATE_ID_LENGTH) return false;
  for (let i = 0; i < n; i++) if (AGGREGATE_ID_CHAR[v.charCodeAt(i)] !== 1) return false;
  return true;
}

export const isValidPayload = (v: unknown): boolean => v !== undefined && typeof v !== 'function' && typeof v !== 'symbol';

