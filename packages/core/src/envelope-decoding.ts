/**
 * Broker message → envelope, for both CloudEvents content modes and every
 * known header naming. Runs once per consumed message: the fast check first,
 * zod only to name what is wrong.
 */
import { z } from 'zod';
import { bindingOf, HTTP_BINDING, isStructured, type CloudEventsBinding, type CloudEventsHeaders } from './cloudevents-binding.js';
import { decodeStructured } from './cloudevents-structured.js';
import type { WireMessage } from './driver.js';
import { isValidAggregateId, isValidEnvelope, issuesOf } from './envelope-check.js';
import { Header } from './envelope-encoding.js';
import { BYTES_CONTENT_TYPE, envelopeSchema, JSON_CONTENT_TYPE, parseTime, type Envelope, type JsonValue, type Payload } from './envelope.js';
import { EnvelopeError, isBuslineError } from './errors.js';
import { strictUtf8 } from './strict-utf8.js';
import { traceIdOf } from './trace-context.js';

/**
 * Decoding accepts the headers busline itself sets (the `busline-dlq-*` ones
 * on dead letters), which publishers may not set by hand.
 */
const wireEnvelopeSchema = envelopeSchema.extend({ headers: z.record(z.string(), z.string()) });

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
