/**
 * How CloudEvents attributes are named on a broker's messages. Each CloudEvents
 * protocol binding names the binary-mode attribute headers with its own prefix:
 * `ce-` for HTTP and NATS, `ce_` for Kafka. The data content type travels in
 * `content-type` in all three as busline writes them (the NATS binding's
 * 1.0.3 draft also names a `ce-datacontenttype` header; busline reads it).
 *
 * A driver names its binding (`Driver.cloudEvents`); core writes that naming
 * and reads every known one, so records written under another prefix (Kafka
 * records from busline before the `ce_` change) keep decoding.
 */

/** The wire header names of one binding, for the attributes busline reads and writes. */
export interface CloudEventsHeaders {
  /** Always `1.0` as busline writes it. */
  readonly specVersion: string;
  /** The header of the event id (CloudEvents `id`). */
  readonly id: string;
  /** The header of the event type. */
  readonly type: string;
  /** The header of the event source. */
  readonly source: string;
  /** Optional in CloudEvents: absent when the event has no time. */
  readonly time: string;
  /** The envelope's aggregateId. */
  readonly subject: string;
  /** The `datacontenttype` attribute header; busline writes `contentType` instead and reads both. */
  readonly dataContentType: string;
  /** The plain `content-type` header, which busline writes for the data's media type. */
  readonly contentType: string;
  /** Extension attributes carrying the envelope's own fields. */
  readonly version: string;
  readonly traceId: string;
  readonly correlationId: string;
  readonly causationId: string;
  readonly tenantId: string;
}

/** A CloudEvents protocol binding's header naming, as a driver declares it (`Driver.cloudEvents`). */
export interface CloudEventsBinding {
  /** The protocol binding, e.g. `http` or `kafka`. */
  readonly name: string;
  /** The binary-mode attribute header prefix (`ce-`, `ce_`). */
  readonly prefix: string;
  /** The header name of each attribute in this binding. */
  readonly headers: CloudEventsHeaders;
}

function headersWithPrefix(p: string): CloudEventsHeaders {
  return Object.freeze({
    specVersion: `${p}specversion`,
    id: `${p}id`,
    type: `${p}type`,
    source: `${p}source`,
    time: `${p}time`,
    subject: `${p}subject`,
    dataContentType: `${p}datacontenttype`,
    contentType: 'content-type',
    version: `${p}eventversion`,
    traceId: `${p}traceid`,
    correlationId: `${p}correlationid`,
    causationId: `${p}causationid`,
    tenantId: `${p}tenantid`,
  });
}

/** `ce-` headers: the HTTP binding's naming, and the NATS binding's binary mode. The default. */
export const HTTP_BINDING: CloudEventsBinding = Object.freeze({ name: 'http', prefix: 'ce-', headers: headersWithPrefix('ce-') });

/** `ce_` headers: the Kafka protocol binding (section 3.2.3.1). */
export const KAFKA_BINDING: CloudEventsBinding = Object.freeze({ name: 'kafka', prefix: 'ce_', headers: headersWithPrefix('ce_') });

const KNOWN_BINDINGS = [HTTP_BINDING, KAFKA_BINDING] as const;

/** The structured content mode's media type prefix (matched case-insensitively). */
export const STRUCTURED_CONTENT_TYPE = 'application/cloudevents';

/**
 * The naming a binary-mode message uses: `preferred` when its id header is
 * there, else the first known binding whose id header is (a record written
 * under an older prefix), else undefined (no binary-mode event).
 */
export function bindingOf(headers: Record<string, string>, preferred: CloudEventsBinding): CloudEventsBinding | undefined {
  if (headers[preferred.headers.id] !== undefined) return preferred;
  for (const binding of KNOWN_BINDINGS) if (headers[binding.headers.id] !== undefined) return binding;
  return undefined;
}

/** True for a structured-mode message (`content-type: application/cloudevents…`). */
export function isStructured(headers: Record<string, string>): boolean {
  const contentType = headers['content-type'];
  if (contentType === undefined || contentType.length < STRUCTURED_CONTENT_TYPE.length) return false;
  // Case-insensitive prefix check, char by char: no lower-cased copy per message.
  for (let i = 0; i < STRUCTURED_CONTENT_TYPE.length; i++) {
    let c = contentType.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== STRUCTURED_CONTENT_TYPE.charCodeAt(i)) return false;
  }
  return true;
}

/** True when a message carries a CloudEvent in either mode, under any known naming. */
export function carriesEvent(headers: Record<string, string>): boolean {
  return isStructured(headers) || bindingOf(headers, HTTP_BINDING) !== undefined;
}
