import { Buffer, isUtf8 } from 'node:buffer';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import { EnvelopeError } from './errors.js';
import type { WireMessage } from './driver.js';

/** A payload is any JSON value, or raw bytes carried untouched. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type Payload = JsonValue | Uint8Array;

/**
 * The unit that travels. Field names follow CloudEvents (id, type, source,
 * time, subject = aggregateId, datacontenttype) so a CloudEvents mapping is a
 * straight line; on the wire the metadata rides in headers and the body is the
 * payload alone.
 */
export interface Envelope<P = Payload> {
  id: string;
  type: string;
  source: string;
  /** The ordering key: events with the same aggregate id are handled in publish order. */
  aggregateId?: string | undefined;
  version: number;
  time: Date;
  traceId?: string | undefined;
  correlationId?: string | undefined;
  causationId?: string | undefined;
  tenantId?: string | undefined;
  headers: Record<string, string>;
  payload: P;
}

export const MAX_AGGREGATE_ID_LENGTH = 256;
const AGGREGATE_ID_PATTERN = /^[A-Za-z0-9._:@/+=#|~-]+$/;
/** RFC 7230 token: what every broker accepts as a header name. */
const HEADER_NAME_PATTERN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
/** CR, LF and NUL would split or truncate a header on NATS and HTTP bridges. */
const HEADER_VALUE_FORBIDDEN = /[\r\n\0]/;
/** Header prefixes busline and the brokers use themselves. */
const RESERVED_HEADER_PREFIXES = ['ce-', 'busline-', 'nats-', 'content-type'];

const headerSafeText = (max: number) =>
  z
    .string()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`)
    .refine((v) => !HEADER_VALUE_FORBIDDEN.test(v), 'must not contain CR, LF or NUL');

export const aggregateIdSchema = z
  .string()
  .min(1, 'aggregateId must not be empty')
  .max(MAX_AGGREGATE_ID_LENGTH, `aggregateId must be at most ${MAX_AGGREGATE_ID_LENGTH} characters`)
  .regex(AGGREGATE_ID_PATTERN, 'aggregateId may only contain letters, digits and . _ : @ / + = # | ~ -');

/** Checked entry by entry so each bad header is named with its reason. */
export const headersSchema = z.record(z.string(), z.string()).superRefine((headers, ctx) => {
  for (const [name, value] of Object.entries(headers)) {
    if (!HEADER_NAME_PATTERN.test(name)) {
      ctx.addIssue({ code: 'custom', path: [name], message: "header names must be tokens (letters, digits, !#$%&'*+.^_`|~-)" });
    } else if (RESERVED_HEADER_PREFIXES.some((p) => name.toLowerCase().startsWith(p))) {
      ctx.addIssue({ code: 'custom', path: [name], message: `header names starting with ${RESERVED_HEADER_PREFIXES.join(', ')} are reserved` });
    }
    if (HEADER_VALUE_FORBIDDEN.test(value)) {
      ctx.addIssue({ code: 'custom', path: [name], message: 'header values must not contain CR, LF or NUL' });
    }
  }
});

const payloadSchema = z.custom<Payload>((v) => v !== undefined && typeof v !== 'function' && typeof v !== 'symbol', {
  message: 'payload must be a JSON value or a Uint8Array (undefined is not a payload; use null)',
});

export const envelopeSchema = z.object({
  id: headerSafeText(128),
  type: headerSafeText(256),
  source: headerSafeText(512),
  aggregateId: aggregateIdSchema.optional(),
  version: z.number().int('version must be an integer').min(1, 'version must be >= 1'),
  time: z.date().refine((d) => !Number.isNaN(d.getTime()), 'time must be a valid date'),
  traceId: headerSafeText(256).optional(),
  correlationId: headerSafeText(256).optional(),
  causationId: headerSafeText(256).optional(),
  tenantId: headerSafeText(256).optional(),
  headers: headersSchema,
  payload: payloadSchema,
});

/**
 * Decoding accepts the headers busline itself sets (the `busline-dlq-*` ones
 * on dead letters), which publishers may not set by hand.
 */
const wireEnvelopeSchema = envelopeSchema.extend({ headers: z.record(z.string(), z.string()) });

/** What a publisher may set; everything else gets a default. */
export interface EnvelopeOptions {
  id?: string;
  type?: string;
  source?: string;
  aggregateId?: string;
  version?: number;
  time?: Date;
  traceId?: string;
  correlationId?: string;
  causationId?: string;
  tenantId?: string;
  headers?: Record<string, string>;
}

export function newEventId(): string {
  return uuidv7();
}

function issuesOf(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'envelope'}: ${i.message}`);
}

const isText = (v: unknown, max: number): boolean =>
  typeof v === 'string' && v.length > 0 && v.length <= max && !HEADER_VALUE_FORBIDDEN.test(v);
const isOptionalText = (v: unknown, max: number): boolean => v === undefined || isText(v, max);

function isValidUserHeaders(headers: unknown): boolean {
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
function isValidEnvelope(e: Envelope, wire: boolean): boolean {
  return (
    isText(e.id, 128) &&
    isText(e.type, 256) &&
    isText(e.source, 512) &&
    (e.aggregateId === undefined ||
      (typeof e.aggregateId === 'string' &&
        e.aggregateId.length <= MAX_AGGREGATE_ID_LENGTH &&
        AGGREGATE_ID_PATTERN.test(e.aggregateId))) &&
    Number.isInteger(e.version) &&
    e.version >= 1 &&
    e.time instanceof Date &&
    !Number.isNaN(e.time.getTime()) &&
    isOptionalText(e.traceId, 256) &&
    isOptionalText(e.correlationId, 256) &&
    isOptionalText(e.causationId, 256) &&
    isOptionalText(e.tenantId, 256) &&
    (wire || isValidUserHeaders(e.headers)) &&
    e.payload !== undefined &&
    typeof e.payload !== 'function' &&
    typeof e.payload !== 'symbol'
  );
}

/** Validates an envelope, throwing EnvelopeError naming every bad field. */
export function validateEnvelope(envelope: unknown): Envelope {
  if (typeof envelope === 'object' && envelope !== null && isValidEnvelope(envelope as Envelope, false)) {
    return envelope as Envelope;
  }
  const result = envelopeSchema.safeParse(envelope);
  if (!result.success) throw new EnvelopeError('invalid envelope', issuesOf(result.error));
  return result.data as Envelope;
}

export function buildEnvelope(payload: Payload, options: EnvelopeOptions, defaults: { type: string; source: string }): Envelope {
  return validateEnvelope({
    id: options.id ?? uuidv7(),
    type: options.type ?? defaults.type,
    source: options.source ?? defaults.source,
    aggregateId: options.aggregateId,
    version: options.version ?? 1,
    time: options.time ?? new Date(),
    traceId: options.traceId,
    correlationId: options.correlationId,
    causationId: options.causationId,
    tenantId: options.tenantId,
    headers: options.headers ?? {},
    payload,
  });
}

/** Wire header names (CloudEvents binary mode, lower case). */
export const Header = {
  specVersion: 'ce-specversion',
  id: 'ce-id',
  type: 'ce-type',
  source: 'ce-source',
  time: 'ce-time',
  subject: 'ce-subject',
  contentType: 'content-type',
  version: 'ce-eventversion',
  traceId: 'ce-traceid',
  correlationId: 'ce-correlationid',
  causationId: 'ce-causationid',
  tenantId: 'ce-tenantid',
} as const;

export const JSON_CONTENT_TYPE = 'application/json';
export const BYTES_CONTENT_TYPE = 'application/octet-stream';


export function encodePayload(payload: Payload): { body: Uint8Array; contentType: string } {
  if (payload instanceof Uint8Array) return { body: payload, contentType: BYTES_CONTENT_TYPE };
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (cause) {
    throw new EnvelopeError('payload cannot be serialized as JSON', [String((cause as Error).message)], { cause });
  }
  if (text === undefined) throw new EnvelopeError('payload cannot be serialized as JSON', ['it serializes to nothing']);
  // Buffer is a Uint8Array; Buffer.from is much faster than TextEncoder for small strings.
  return { body: Buffer.from(text, 'utf8'), contentType: JSON_CONTENT_TYPE };
}

/** Envelope → broker message: metadata in headers, payload as the body. */
export function encodeEnvelope(envelope: Envelope): WireMessage {
  const { body, contentType } = encodePayload(envelope.payload);
  const headers: Record<string, string> = {};
  for (const name in envelope.headers) headers[name] = envelope.headers[name]!;
  headers[Header.specVersion] = '1.0';
  headers[Header.id] = envelope.id;
  headers[Header.type] = envelope.type;
  headers[Header.source] = envelope.source;
  headers[Header.time] = envelope.time.toISOString();
  headers[Header.version] = String(envelope.version);
  headers[Header.contentType] = contentType;
  if (envelope.aggregateId !== undefined) headers[Header.subject] = envelope.aggregateId;
  if (envelope.traceId !== undefined) headers[Header.traceId] = envelope.traceId;
  if (envelope.correlationId !== undefined) headers[Header.correlationId] = envelope.correlationId;
  if (envelope.causationId !== undefined) headers[Header.causationId] = envelope.causationId;
  if (envelope.tenantId !== undefined) headers[Header.tenantId] = envelope.tenantId;
  return { key: envelope.aggregateId, headers, body };
}

export type DecodeResult = { ok: true; envelope: Envelope } | { ok: false; error: EnvelopeError };

const RESERVED_WIRE_HEADERS = new Set<string>(Object.values(Header));
/** Headers a broker adds for itself (NATS dedupe ids), not part of the envelope. */
const BROKER_HEADER = /^nats-/i;

/**
 * Broker message → envelope. Never throws: garbage (missing metadata, a body
 * that is not the JSON its content type claims) yields `{ ok: false }` so one
 * bad message cannot take a consumer loop down.
 */
export function decodeEnvelope(message: Pick<WireMessage, 'headers' | 'body'>): DecodeResult {
  try {
    const h = message.headers ?? {};
    const id = h[Header.id];
    const type = h[Header.type];
    const timeText = h[Header.time];
    if (!id || !type || !timeText) {
      const missing = [Header.id, Header.type, Header.time].filter((name) => !h[name]);
      return { ok: false, error: new EnvelopeError('malformed message', missing.map((name) => `header ${name} is missing`)) };
    }
    const versionText = h[Header.version] ?? '1';
    const contentType = h[Header.contentType] ?? BYTES_CONTENT_TYPE;

    const body = message.body instanceof Uint8Array ? message.body : new Uint8Array(0);
    let payload: Payload;
    if (contentType.startsWith(JSON_CONTENT_TYPE)) {
      try {
        // isUtf8 rejects invalid bytes that a lenient decode would silently replace.
        if (!isUtf8(body)) throw new Error('invalid UTF-8');
        payload = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')) as JsonValue;
      } catch (cause) {
        return { ok: false, error: new EnvelopeError('malformed message', [`body is not valid UTF-8 JSON although content-type is ${contentType}`], { cause }) };
      }
    } else {
      payload = body;
    }
    const headers: Record<string, string> = {};
    for (const name in h) {
      if (!RESERVED_WIRE_HEADERS.has(name) && !BROKER_HEADER.test(name)) headers[name] = h[name]!;
    }
    const candidate: Envelope = {
      id,
      type,
      source: h[Header.source] || 'unknown',
      aggregateId: h[Header.subject],
      version: Number(versionText),
      time: new Date(timeText),
      traceId: h[Header.traceId],
      correlationId: h[Header.correlationId],
      causationId: h[Header.causationId],
      tenantId: h[Header.tenantId],
      headers,
      payload,
    };
    if (isValidEnvelope(candidate, true)) return { ok: true, envelope: candidate };
    const result = wireEnvelopeSchema.safeParse(candidate);
    if (!result.success) return { ok: false, error: new EnvelopeError('malformed message', issuesOf(result.error)) };
    return { ok: true, envelope: result.data as Envelope };
  } catch (cause) {
    return { ok: false, error: new EnvelopeError('malformed message', [errorText(cause)], { cause }) };
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
