/**
 * The CloudEvents structured content mode (JSON event format): the whole event
 * in the body, `content-type: application/cloudevents+json`. Busline writes it
 * for topics whose `contentMode` is `structured`, and reads it whatever the
 * topic writes, so events from other producers (the official SDKs, Knative,
 * bridges) reach handlers instead of the dead-letter topic.
 */
import { Buffer } from 'node:buffer';
import type { WireMessage } from './driver.js';
import { BYTES_CONTENT_TYPE, isValidAggregateId, JSON_CONTENT_TYPE, parseTime, type Envelope, type JsonValue, type Payload } from './envelope.js';
import { EnvelopeError } from './errors.js';
import { strictUtf8 } from './strict-utf8.js';
import { traceIdOf } from './trace-context.js';

/** The content type of a structured-mode message as busline writes it. */
export const STRUCTURED_JSON_CONTENT_TYPE = 'application/cloudevents+json; charset=utf-8';

/**
 * An envelope's fields → a structured-mode message: the publisher's own
 * headers and `content-type`, and the event as one JSON text made by one
 * `JSON.stringify` (the payload is serialised inside it, never parsed back).
 * Attributes are the ones binary mode writes as headers, with the same values
 * (`eventversion` as text, `subject` = aggregate id); absent ones are left
 * out, as `JSON.stringify` drops undefined members. A JSON payload is `data`,
 * bytes are `data_base64`.
 */
export function encodeStructured(
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
  const bytes = payload instanceof Uint8Array;
  // One literal, every member present (undefined where absent): one shape for every event.
  const event = {
    specversion: '1.0',
    id,
    type,
    source,
    time,
    subject: aggregateId,
    datacontenttype: bytes ? BYTES_CONTENT_TYPE : JSON_CONTENT_TYPE,
    eventversion: version === 1 ? '1' : String(version),
    traceid: traceId,
    correlationid: correlationId,
    causationid: causationId,
    tenantid: tenantId,
    data: bytes ? undefined : payload,
    data_base64: bytes ? Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('base64') : undefined,
  };
  let text: string;
  try {
    text = JSON.stringify(event);
  } catch (cause) {
    // Every attribute is a string: whatever fails is in the payload.
    throw new EnvelopeError('payload cannot be serialized as JSON', [String((cause as Error).message)], { cause });
  }
  let headers: Record<string, string>;
  if (user === undefined) headers = { 'content-type': STRUCTURED_JSON_CONTENT_TYPE };
  else {
    headers = {};
    for (const name in user) headers[name] = user[name]!;
    headers['content-type'] = STRUCTURED_JSON_CONTENT_TYPE;
  }
  return { key: aggregateId, id, headers, body: Buffer.from(text, 'utf8') };
}


/** Attributes that map onto envelope fields (or are the format's own). */
const MAPPED = new Set([
  'specversion',
  'id',
  'type',
  'source',
  'subject',
  'time',
  'datacontenttype',
  'data',
  'data_base64',
  'eventversion',
  'traceid',
  'correlationid',
  'causationid',
  'tenantid',
]);

const isJsonMediaType = (contentType: string): boolean => {
  const semi = contentType.indexOf(';');
  const type = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  return type === 'application/json' || type === 'text/json' || type.endsWith('+json');
};

/**
 * A plain Uint8Array over a decoded Buffer's bytes, as binary mode gives bytes. A view, not a copy: a small
 * ArrayBuffer of its own costs V8 about 1 µs, more than decoding the base64 (the view shares Node's pool slab,
 * as binary mode's payload shares the fetched bytes).
 */
const bytesView = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.length);

/**
 * The payload as binary mode would give it: JSON data as is (also when no
 * `datacontenttype` says otherwise, as the JSON format specifies),
 * `data_base64` and text under a non-JSON content type as bytes, no data as null.
 */
function payloadOf(event: Record<string, unknown>): Payload {
  if (typeof event.data_base64 === 'string') return bytesView(Buffer.from(event.data_base64, 'base64'));
  if (!('data' in event) || event.data === undefined) return null;
  const contentType = event.datacontenttype;
  if (typeof contentType === 'string' && !isJsonMediaType(contentType) && typeof event.data === 'string') {
    return bytesView(Buffer.from(event.data, 'utf8'));
  }
  return event.data as JsonValue;
}

const REQUIRED = ['id', 'type', 'source', 'specversion'] as const;
const absent = (v: unknown): boolean => v === undefined || v === null || v === '';
/** The last content type found to be the JSON event format: a topic's messages repeat one, so the pattern runs once. */
let lastEventFormat: string | undefined;

const text = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : typeof v === 'string' ? v : JSON.stringify(v));

/**
 * A structured-mode message → an envelope candidate (the caller validates it),
 * or why it is not one. Attributes without an envelope field (`dataschema`,
 * other extensions) go to `headers` as binary mode would carry them, under
 * `prefix`; the message's own headers are kept except CloudEvents ones
 * (attributes: they fill what the body lacks, the body wins) and `content-type`.
 */
export function decodeStructured(headers: Record<string, string>, body: Uint8Array, prefix: string): Envelope | EnvelopeError {
  const contentType = headers['content-type']!;
  if (contentType !== lastEventFormat) {
    if (!/^application\/cloudevents\+json\s*(;|$)/i.test(contentType)) {
      return new EnvelopeError('malformed message', [`structured event format ${contentType} is not supported (only application/cloudevents+json)`]);
    }
    lastEventFormat = contentType;
  }
  let event: unknown;
  try {
    event = JSON.parse(strictUtf8.decode(body));
  } catch (cause) {
    return new EnvelopeError('malformed message', ['body is not a UTF-8 JSON CloudEvent although content-type is application/cloudevents+json'], { cause });
  }
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    return new EnvelopeError('malformed message', ['a structured CloudEvent must be a JSON object']);
  }
  const e = event as Record<string, unknown>;
  const envelopeHeaders: Record<string, string> = {};
  for (const name in headers) {
    const lower = name.toLowerCase();
    if (lower === 'content-type' || lower.startsWith('nats-')) continue;
    if (lower.startsWith('ce-') || lower.startsWith('ce_')) {
      // The bindings allow binary-mode headers on a structured message too (Kafka binding 3.3.3). The body wins;
      // a header fills an attribute the body lacks (the trace id tracing adds after the body was written).
      const attribute = lower.slice(3);
      if (e[attribute] === undefined) e[attribute] = headers[name];
      continue;
    }
    envelopeHeaders[name] = headers[name]!;
  }
  if (absent(e.id) || absent(e.type) || absent(e.source) || absent(e.specversion)) {
    const missing = REQUIRED.filter((name) => absent(e[name]));
    return new EnvelopeError('malformed message', missing.map((name) => `attribute ${name} is missing`));
  }
  // A subject that is no valid aggregate id stays a header, as in binary mode.
  const subject = e.subject !== undefined && isValidAggregateId(e.subject) ? (e.subject as string) : undefined;
  for (const name in e) {
    if (MAPPED.has(name) && !(name === 'subject' && subject === undefined)) continue;
    const value = text(e[name]);
    if (value !== undefined) envelopeHeaders[`${prefix}${name}`] = value;
  }
  return {
    id: e.id as string,
    type: e.type as string,
    source: e.source as string,
    aggregateId: subject,
    version: e.eventversion === undefined ? 1 : Number(e.eventversion),
    time: e.time === undefined || e.time === null ? undefined : parseTime(e.time),
    traceId: text(e.traceid) ?? traceIdOf(headers.traceparent),
    correlationId: text(e.correlationid),
    causationId: text(e.causationid),
    tenantId: text(e.tenantid),
    headers: envelopeHeaders,
    payload: payloadOf(e),
  };
}
