import { Buffer } from 'node:buffer';
import { z } from 'zod';
import { bindingOf, HTTP_BINDING, isStructured, type CloudEventsBinding, type CloudEventsHeaders } from './cloudevents-binding.js';
import { decodeStructured, encodeStructured } from './cloudevents-structured.js';
import { DEFAULT_CONTENT_MODE, type ContentMode } from './content-mode.js';
import { EnvelopeError, isBuslineError } from './errors.js';
import { newEventId } from './event-id.js';
import type { WireMessage } from './driver.js';
import { strictUtf8 } from './strict-utf8.js';
import { traceIdOf } from './trace-context.js';

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

/** The longest aggregate id accepted: it becomes a message key and header on every broker. */
export const MAX_AGGREGATE_ID_LENGTH = 256;
const AGGREGATE_ID_PATTERN = /^[A-Za-z0-9._:@/+=#|~-]+$/;
/** RFC 7230 token: what every broker accepts as a header name. */
const HEADER_NAME_PATTERN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
/** CR, LF and NUL would split or truncate a header on NATS and HTTP bridges. */
const HEADER_VALUE_FORBIDDEN = /[\r\n\0]/;
/** Header prefixes busline and the brokers use themselves (`ce_`: CloudEvents attributes on Kafka). */
const RESERVED_HEADER_PREFIXES = ['ce-', 'ce_', 'busline-', 'nats-', 'content-type'];

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

/**
 * Decoding accepts the headers busline itself sets (the `busline-dlq-*` ones
 * on dead letters), which publishers may not set by hand.
 */
const wireEnvelopeSchema = envelopeSchema.extend({ headers: z.record(z.string(), z.string()) });

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

let isoMsecs = NaN;
let isoText = '';
/** `new Date(ms).toISOString()`, remembered for the last millisecond asked (a batch shares it). */
function isoTime(ms: number): string {
  if (ms !== isoMsecs) {
    isoText = new Date(ms).toISOString();
    isoMsecs = ms;
  }
  return isoText;
}

function issuesOf(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'envelope'}: ${i.message}`);
}

const isText = (v: unknown, max: number): boolean =>
  typeof v === 'string' && v.length > 0 && v.length <= max && !HEADER_VALUE_FORBIDDEN.test(v);
const isOptionalText = (v: unknown, max: number): boolean => v === undefined || isText(v, max);

/**
 * `isText(v, 256)` for types and `isText(v, 512)` for sources, remembering the
 * last string that passed: a stream of messages mostly repeats one type and
 * one source, and validity depends on the text alone. (The seeds are valid.)
 */
let validType = 'x';
let validSource = 'x';
function isTypeText(v: unknown): boolean {
  if (v === validType) return true;
  if (!isText(v, 256)) return false;
  validType = v as string;
  return true;
}
function isSourceText(v: unknown): boolean {
  if (v === validSource) return true;
  if (!isText(v, 512)) return false;
  validSource = v as string;
  return true;
}

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

const isValidPayload = (v: unknown): boolean => v !== undefined && typeof v !== 'function' && typeof v !== 'symbol';

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

/**
 * Wire header names of the default (`ce-`) naming, the one the in-memory and
 * NATS drivers use. A driver on another CloudEvents binding (Kafka: `ce_`)
 * has its names in `driver.cloudEvents.headers`.
 */
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

/** The content type of a JSON payload. */
export const JSON_CONTENT_TYPE = 'application/json';
/** The content type of a bytes payload (a Uint8Array). */
export const BYTES_CONTENT_TYPE = 'application/octet-stream';


/** Encodes a payload as a message body with its content type. */
export function encodePayload(payload: Payload): { body: Uint8Array; contentType: string } {
  if (payload instanceof Uint8Array) return { body: payload, contentType: BYTES_CONTENT_TYPE };
  return { body: jsonBody(payload), contentType: JSON_CONTENT_TYPE };
}

/** A JSON payload's body; throws EnvelopeError when it cannot be serialized. */
function jsonBody(payload: JsonValue): Uint8Array {
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (cause) {
    throw new EnvelopeError('payload cannot be serialized as JSON', [String((cause as Error).message)], { cause });
  }
  if (text === undefined) throw new EnvelopeError('payload cannot be serialized as JSON', ['it serializes to nothing']);
  // Buffer is a Uint8Array; Buffer.from is much faster than TextEncoder for small strings.
  return Buffer.from(text, 'utf8');
}

function hasAny(headers: Record<string, string>): boolean {
  for (const _ in headers) return true;
  return false;
}

/**
 * Binary mode's wire headers: the user's headers first, then the envelope's metadata.
 * For the default naming without user headers the object is made as one
 * literal (one allocation, a stable shape) with the same entries in the same order.
 */
function wireHeaders(
  names: CloudEventsHeaders,
  user: Record<string, string> | undefined,
  id: string,
  type: string,
  source: string,
  time: string | undefined,
  version: number,
  contentType: string,
  aggregateId: string | undefined,
  traceId: string | undefined,
  correlationId: string | undefined,
  causationId: string | undefined,
  tenantId: string | undefined,
): Record<string, string> {
  const versionText = version === 1 ? '1' : String(version);
  let headers: Record<string, string>;
  if (names === HTTP_BINDING.headers && time !== undefined && (user === undefined || !hasAny(user))) {
    headers = {
      'ce-specversion': '1.0',
      'ce-id': id,
      'ce-type': type,
      'ce-source': source,
      'ce-time': time,
      'ce-eventversion': versionText,
      'content-type': contentType,
    };
  } else {
    headers = {};
    if (user !== undefined) for (const name in user) headers[name] = user[name]!;
    headers[names.specVersion] = '1.0';
    headers[names.id] = id;
    headers[names.type] = type;
    headers[names.source] = source;
    if (time !== undefined) headers[names.time] = time;
    headers[names.version] = versionText;
    headers[names.contentType] = contentType;
  }
  if (aggregateId !== undefined) headers[names.subject] = aggregateId;
  if (traceId !== undefined) headers[names.traceId] = traceId;
  if (correlationId !== undefined) headers[names.correlationId] = correlationId;
  if (causationId !== undefined) headers[names.causationId] = causationId;
  if (tenantId !== undefined) headers[names.tenantId] = tenantId;
  return headers;
}

/**
 * Valid envelope fields → a broker message in `mode`: binary (metadata in
 * headers named as `binding` names them, payload as the body) or structured
 * (the whole event as JSON in the body). The key is the aggregate id either way.
 */
function encodeFields(
  mode: ContentMode,
  binding: CloudEventsBinding,
  user: Record<string, string> | undefined,
  id: string,
  type: string,
  source: string,
  time: string | undefined,
  version: number,
  aggregateId: string | undefined,
  traceId: string | undefined,
  correlationId: string | undefined,
  causationId: string | undefined,
  tenantId: string | undefined,
  payload: Payload,
): WireMessage {
  if (mode === 'structured') {
    return encodeStructured(user, id, type, source, time, version, aggregateId, traceId, correlationId, causationId, tenantId, payload);
  }
  const bytes = payload instanceof Uint8Array;
  const body = bytes ? payload : jsonBody(payload);
  const contentType = bytes ? BYTES_CONTENT_TYPE : JSON_CONTENT_TYPE;
  const headers = wireHeaders(binding.headers, user, id, type, source, time, version, contentType, aggregateId, traceId, correlationId, causationId, tenantId);
  return { key: aggregateId, id, headers, body };
}

/**
 * Envelope → broker message in CloudEvents `mode` (default binary: metadata
 * in headers named as `binding` names them, payload as the body; structured:
 * the whole event as JSON in the body).
 */
export function encodeEnvelope(envelope: Envelope, binding: CloudEventsBinding = HTTP_BINDING, mode: ContentMode = DEFAULT_CONTENT_MODE): WireMessage {
  const time = envelope.time;
  return encodeFields(
    mode,
    binding,
    envelope.headers,
    envelope.id,
    envelope.type,
    envelope.source,
    time === undefined ? undefined : isoTime(time.getTime()),
    envelope.version,
    envelope.aggregateId,
    envelope.traceId,
    envelope.correlationId,
    envelope.causationId,
    envelope.tenantId,
    envelope.payload,
  );
}

/**
 * @internal The publish path: `encodeEnvelope(buildEnvelope(payload, options,
 * defaults), binding, mode)` in one step, without the intermediate envelope,
 * its Date and its headers object. Options that pass the same checks as
 * `isValidEnvelope` are encoded here; anything else takes the two-step path,
 * which validates with zod and throws the same errors it always did. The
 * event id is the message's `id`.
 */
export function encodeNewEnvelope(
  payload: Payload,
  options: EnvelopeOptions,
  defaults: { type: string; source: string },
  binding: CloudEventsBinding = HTTP_BINDING,
  mode: ContentMode = DEFAULT_CONTENT_MODE,
): WireMessage {
  const type = options.type ?? defaults.type;
  const source = options.source ?? defaults.source;
  const version = options.version ?? 1;
  const { id, aggregateId, time, traceId, correlationId, causationId, tenantId, headers } = options;
  if (
    (id === undefined || isText(id, 128)) &&
    isTypeText(type) &&
    isSourceText(source) &&
    isValidAggregateId(aggregateId) &&
    Number.isInteger(version) &&
    version >= 1 &&
    (time === undefined || (time instanceof Date && !Number.isNaN(time.getTime()))) &&
    isOptionalText(traceId, 256) &&
    isOptionalText(correlationId, 256) &&
    isOptionalText(causationId, 256) &&
    isOptionalText(tenantId, 256) &&
    (headers === undefined || isValidUserHeaders(headers)) &&
    isValidPayload(payload)
  ) {
    return encodeFields(
      mode,
      binding,
      headers,
      id ?? newEventId(),
      type,
      source,
      isoTime(time === undefined ? Date.now() : time.getTime()),
      version,
      aggregateId,
      traceId,
      correlationId,
      causationId,
      tenantId,
      payload,
    );
  }
  return encodeEnvelope(buildEnvelope(payload, options, defaults), binding, mode);
}

/**
 * A decoded envelope, or why the message is malformed (it is then dead-lettered, never handed to a
 * handler).
 */
export type DecodeResult = { ok: true; envelope: Envelope } | { ok: false; error: EnvelopeError };

/**
 * True for the header names `Header` lists (the envelope's metadata), plus the
 * NATS binding's `ce-datacontenttype`. A switch rather than a Set: property
 * names are internalized strings, so each case is a pointer comparison and no
 * hash lookup is made.
 */
function isReservedWireHeader(name: string): boolean {
  switch (name) {
    case Header.specVersion:
    case Header.id:
    case Header.type:
    case Header.source:
    case Header.time:
    case Header.subject:
    case Header.contentType:
    case Header.version:
    case Header.traceId:
    case Header.correlationId:
    case Header.causationId:
    case Header.tenantId:
    case HTTP_BINDING.headers.dataContentType:
      return true;
    default:
      return false;
  }
}
/** The metadata header check of each other naming (Kafka's `ce_`): a Set of its names. */
const reservedChecks = new WeakMap<CloudEventsHeaders, (name: string) => boolean>();
/** The check for the metadata header names of `names`, looked up once per message rather than per header. */
function reservedCheck(names: CloudEventsHeaders): (name: string) => boolean {
  if (names === HTTP_BINDING.headers) return isReservedWireHeader;
  let check = reservedChecks.get(names);
  if (check === undefined) {
    const reserved: ReadonlySet<string> = new Set(Object.values(names));
    check = (name) => reserved.has(name);
    reservedChecks.set(names, check);
  }
  return check;
}
/** Headers a broker adds for itself (NATS dedupe ids), not part of the envelope. */
const BROKER_HEADER = /^nats-/i;


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

/** A JSON media type: `application/json` (with parameters) or any `+json` suffix type. */
let lastContentType = '';
let lastIsJson = false;
/** JSON or `+json`; the answer is remembered for the last content type seen (a stream mostly repeats one). */
function isJsonContentType(contentType: string): boolean {
  if (contentType === lastContentType) return lastIsJson;
  let json = contentType === JSON_CONTENT_TYPE || contentType.startsWith(JSON_CONTENT_TYPE);
  if (!json) {
    const semi = contentType.indexOf(';');
    json = (semi < 0 ? contentType : contentType.slice(0, semi)).trimEnd().toLowerCase().endsWith('+json');
  }
  lastContentType = contentType;
  lastIsJson = json;
  return json;
}

/**
 * Broker message → envelope. Never throws: garbage (missing metadata, a body
 * that is not the JSON its content type claims) yields `{ ok: false }` so one
 * bad message cannot take a consumer loop down. Reads both CloudEvents content
 * modes, with attribute headers named by `binding` or any other known binding.
 */
export function decodeEnvelope(message: Pick<WireMessage, 'headers' | 'body'>, binding: CloudEventsBinding = HTTP_BINDING): DecodeResult {
  const result = decodeMessage(message, binding);
  return isBuslineError(result) ? { ok: false, error: result } : { ok: true, envelope: result };
}

/** Checks a decoded candidate: the fast check first, zod to name the problems. */
function checkedWireEnvelope(candidate: Envelope): Envelope | EnvelopeError {
  if (isValidEnvelope(candidate, true)) return candidate;
  const result = wireEnvelopeSchema.safeParse(candidate);
  if (!result.success) return new EnvelopeError('malformed message', issuesOf(result.error));
  return result.data as Envelope;
}

/** @internal `decodeEnvelope` without the result wrapper: the envelope, or the error. Never throws. */
export function decodeMessage(message: Pick<WireMessage, 'headers' | 'body'>, binding: CloudEventsBinding = HTTP_BINDING): Envelope | EnvelopeError {
  try {
    const h = message.headers ?? {};
    const body = message.body instanceof Uint8Array ? message.body : new Uint8Array(0);
    if (isStructured(h)) {
      const candidate = decodeStructured(h, body, binding.prefix);
      return isBuslineError(candidate) ? candidate : checkedWireEnvelope(candidate);
    }
    const names = (bindingOf(h, binding) ?? binding).headers;
    const id = h[names.id];
    const type = h[names.type];
    // `time` is optional in CloudEvents; id, type (and source, defaulted) are not.
    if (!id || !type) {
      const missing = [names.id, names.type].filter((name) => !h[name]);
      return new EnvelopeError('malformed message', missing.map((name) => `header ${name} is missing`));
    }
    const timeText = h[names.time];
    const versionText = h[names.version] ?? '1';
    const contentType = h[names.contentType] ?? h[names.dataContentType] ?? BYTES_CONTENT_TYPE;

    let payload: Payload;
    if (isJsonContentType(contentType)) {
      try {
        let text: string;
        try {
          text = strictUtf8.decode(body);
        } catch {
          // Invalid bytes are refused, never silently replaced.
          throw new Error('invalid UTF-8');
        }
        payload = JSON.parse(text) as JsonValue;
      } catch (cause) {
        return new EnvelopeError('malformed message', [`body is not valid UTF-8 JSON although content-type is ${contentType}`], { cause });
      }
    } else {
      payload = body;
    }
    const headers: Record<string, string> = {};
    const isReserved = reservedCheck(names);
    for (const name in h) {
      if (isReserved(name)) continue;
      const c = name.charCodeAt(0);
      if ((c === 110 || c === 78) /* n, N */ && BROKER_HEADER.test(name)) continue;
      headers[name] = h[name]!;
    }
    // A CloudEvents subject is any string; one that is no valid aggregate id stays a header instead of failing the event.
    let subject = h[names.subject];
    if (!isValidAggregateId(subject)) {
      headers[names.subject] = subject!;
      subject = undefined;
    }
    return checkedWireEnvelope({
      id,
      type,
      source: h[names.source] || 'unknown',
      aggregateId: subject,
      version: versionText === '1' ? 1 : Number(versionText),
      time: timeText === undefined ? undefined : parseTime(timeText),
      traceId: h[names.traceId] ?? traceIdOf(h.traceparent),
      correlationId: h[names.correlationId],
      causationId: h[names.causationId],
      tenantId: h[names.tenantId],
      headers,
      payload,
    });
  } catch (cause) {
    return new EnvelopeError('malformed message', [errorText(cause)], { cause });
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
