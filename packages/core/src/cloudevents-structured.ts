/**
 * The CloudEvents structured content mode (JSON event format): the whole event
 * in the body, `content-type: application/cloudevents+json`. Busline writes
 * binary mode; it reads structured mode so events from other producers (the
 * official SDKs, Knative, bridges) reach handlers instead of the dead-letter topic.
 */
import { Buffer } from 'node:buffer';
import { aggregateIdSchema, type Envelope, type JsonValue, type Payload } from './envelope.js';
import { EnvelopeError } from './errors.js';
import { strictUtf8 } from './strict-utf8.js';


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
 * The payload as binary mode would give it: JSON data as is (also when no
 * `datacontenttype` says otherwise, as the JSON format specifies),
 * `data_base64` and text under a non-JSON content type as bytes, no data as null.
 */
function payloadOf(event: Record<string, unknown>): Payload {
  if (typeof event.data_base64 === 'string') return new Uint8Array(Buffer.from(event.data_base64, 'base64'));
  if (!('data' in event) || event.data === undefined) return null;
  const contentType = event.datacontenttype;
  if (typeof contentType === 'string' && !isJsonMediaType(contentType) && typeof event.data === 'string') {
    return new Uint8Array(Buffer.from(event.data, 'utf8'));
  }
  return event.data as JsonValue;
}

const text = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : typeof v === 'string' ? v : JSON.stringify(v));

/**
 * A structured-mode message → an envelope candidate (the caller validates it),
 * or why it is not one. Attributes without an envelope field (`dataschema`,
 * other extensions) go to `headers` as binary mode would carry them, under
 * `prefix`; the message's own headers are kept except CloudEvents ones (the
 * body is authoritative) and `content-type`.
 */
export function decodeStructured(headers: Record<string, string>, body: Uint8Array, prefix: string): Envelope | EnvelopeError {
  const contentType = headers['content-type']!;
  if (!/^application\/cloudevents\+json\s*(;|$)/i.test(contentType)) {
    return new EnvelopeError('malformed message', [`structured event format ${contentType} is not supported (only application/cloudevents+json)`]);
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
  const missing = ['id', 'type', 'source', 'specversion'].filter((name) => e[name] === undefined || e[name] === null || e[name] === '');
  if (missing.length > 0) return new EnvelopeError('malformed message', missing.map((name) => `attribute ${name} is missing`));

  const envelopeHeaders: Record<string, string> = {};
  for (const name in headers) {
    const lower = name.toLowerCase();
    if (lower === 'content-type' || lower.startsWith('ce-') || lower.startsWith('ce_') || lower.startsWith('nats-')) continue;
    envelopeHeaders[name] = headers[name]!;
  }
  // A subject that is no valid aggregate id stays a header, as in binary mode.
  const subject = aggregateIdSchema.safeParse(e.subject).success ? (e.subject as string) : undefined;
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
    time: e.time === undefined || e.time === null ? undefined : new Date(e.time as string),
    traceId: text(e.traceid),
    correlationId: text(e.correlationid),
    causationId: text(e.causationid),
    tenantId: text(e.tenantid),
    headers: envelopeHeaders,
    payload: payloadOf(e),
  };
}
