/**
 * Envelope → broker message (`WireMessage`), in binary or structured content
 * mode, with the header naming of the driver's CloudEvents binding. The
 * publish path encodes straight from the options (`encodeNewEnvelope`).
 */
import { Buffer } from 'node:buffer';
import { HTTP_BINDING, type CloudEventsBinding, type CloudEventsHeaders } from './cloudevents-binding.js';
import { encodeStructured } from './cloudevents-structured.js';
import { DEFAULT_CONTENT_MODE, type ContentMode } from './content-mode.js';
import type { WireMessage } from './driver.js';
import { isOptionalText, isSourceText, isText, isTypeText, isValidAggregateId, isValidPayload, isValidUserHeaders } from './envelope-check.js';
import { buildEnvelope, BYTES_CONTENT_TYPE, JSON_CONTENT_TYPE, type Envelope, type EnvelopeOptions, type JsonValue, type Payload } from './envelope.js';
import { EnvelopeError } from './errors.js';
import { newEventId } from './event-id.js';

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
