/**
 * The envelope: what travels (CloudEvents attributes plus the payload), what
 * a publisher may set, and its validation. Wire encoding and decoding are in
 * envelope-encoding.ts and envelope-decoding.ts.
 */
import { z } from 'zod';
import {
  AGGREGATE_ID_PATTERN,
  HEADER_NAME_PATTERN,
  HEADER_VALUE_FORBIDDEN,
  isValidEnvelope,
  issuesOf,
  MAX_AGGREGATE_ID_LENGTH,
  RESERVED_HEADER_PREFIXES,
} from './envelope-check.js';
import { EnvelopeError } from './errors.js';
import { newEventId } from './event-id.js';

export { isValidAggregateId, MAX_AGGREGATE_ID_LENGTH } from './envelope-check.js';

/** A payload is any JSON value, or raw bytes carried untouched. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
/**
 * What a handler receives and `publish` takes: JSON (sent as `application/json`) or raw bytes
 * (`application/octet-stream`).
 */
export type Payload = JsonValue | Uint8Array;

/**
 * The unit that travels. Field names follow CloudEvents (id, type, source,
 * time, subject = aggregateId, datacontenttype) so a CloudEvents mapping is a
 * straight line; on the wire the metadata rides in headers and the body is the
 * payload alone.
 */
export interface Envelope<P = Payload> {
  /**
   * Unique event id (CloudEvents `id`); brokers that dedupe (NATS, memory) store one message per id
   * within their window.
   */
  id: string;
  /**
   * What happened, e.g. `order.placed` (CloudEvents `type`); the topic name unless the publisher
   * sets one.
   */
  type: string;
  /** Who published it (CloudEvents `source`); the bus's `source` unless the publisher sets one. */
  source: string;
  /** The ordering key: events with the same aggregate id are handled in publish order. */
  aggregateId?: string | undefined;
  /**
   * The version of the payload's shape (extension `eventversion`), for upcasting old payloads; 1
   * unless set.
   */
  version: number;
  /**
   * When the event happened. Busline always sets it on publish; undefined only
   * for a CloudEvent from another producer that carried no `time` (optional in
   * the CloudEvents spec), and for a foreign message whose broker gave no timestamp.
   */
  time?: Date | undefined;
  /**
   * Trace id carried as an extension attribute (`traceid`), for correlating logs without
   * OpenTelemetry.
   */
  traceId?: string | undefined;
  /** Id shared by every event of one business flow (extension `correlationid`). */
  correlationId?: string | undefined;
  /**
   * Id of the event that caused this one (extension `causationid`), e.g. the original of a replayed
   * dead letter.
   */
  causationId?: string | undefined;
  /** The tenant the event belongs to (extension `tenantid`). */
  tenantId?: string | undefined;
  /**
   * The publisher's own headers (no `ce-`, `ce_`, `busline-`, `nats-` or `content-type` names); on
   * a dead letter also the `busline-dlq-*` ones.
   */
  headers: Record<string, string>;
  /** The data: decoded JSON, or the bytes as published. */
  payload: P;
}

const headerSafeText = (max: number) =>
  z
    .string()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`)
    .refine((v) => !HEADER_VALUE_FORBIDDEN.test(v), 'must not contain CR, LF or NUL');

/**
 * Validates an aggregate id (the ordering key): bounded, and characters every broker takes in a
 * key.
 */
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

/** Validates a whole envelope before it is encoded or after it is decoded. */
export const envelopeSchema = z.object({
  id: headerSafeText(128),
  type: headerSafeText(256),
  source: headerSafeText(512),
  aggregateId: aggregateIdSchema.optional(),
  version: z.number().int('version must be an integer').min(1, 'version must be >= 1'),
  time: z
    .date()
    .refine((d) => !Number.isNaN(d.getTime()), 'time must be a valid date')
    .optional(),
  traceId: headerSafeText(256).optional(),
  correlationId: headerSafeText(256).optional(),
  causationId: headerSafeText(256).optional(),
  tenantId: headerSafeText(256).optional(),
  headers: headersSchema,
  payload: payloadSchema,
});

/** What a publisher may set; everything else gets a default. */
export interface EnvelopeOptions {
  /**
   * The event id; default a new time-ordered UUID. Set it to make a retried publish idempotent
   * where the broker dedupes.
   */
  id?: string;
  /** The event type; default the topic name. */
  type?: string;
  /** The event source; default the bus's `source`. */
  source?: string;
  /**
   * The ordering key: events with the same aggregate id are handled in publish order (the Kafka
   * record key).
   */
  aggregateId?: string;
  /** The payload's shape version; default 1. */
  version?: number;
  /** When the event happened; default now. */
  time?: Date;
  /** See Envelope.traceId. */
  traceId?: string;
  /** See Envelope.correlationId. */
  correlationId?: string;
  /** See Envelope.causationId. */
  causationId?: string;
  /** See Envelope.tenantId. */
  tenantId?: string;
  /**
   * Headers of your own; reserved prefixes (`ce-`, `ce_`, `busline-`, `nats-`, `content-type`) are
   * refused.
   */
  headers?: Record<string, string>;
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

/**
 * Makes a validated envelope for `payload` (id and time generated unless given); throws
 * EnvelopeError naming the bad fields.
 */
export function buildEnvelope(payload: Payload, options: EnvelopeOptions, defaults: { type: string; source: string }): Envelope {
  return validateEnvelope({
    id: options.id ?? newEventId(),
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

/** The content type of a JSON payload. */
export const JSON_CONTENT_TYPE = 'application/json';
/** The content type of a bytes payload (a Uint8Array). */
export const BYTES_CONTENT_TYPE = 'application/octet-stream';

let lastTimeText = '';
let lastTimeMs = NaN;
/** @internal `new Date(text)`; the parse is remembered for the last text seen (a batch usually shares one). */
export function parseTime(text: unknown): Date {
  if (typeof text !== 'string') return new Date(text as string);
  if (text !== lastTimeText) {
    lastTimeMs = Date.parse(text);
    lastTimeText = text;
  }
  return new Date(lastTimeMs);
}
