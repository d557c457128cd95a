/**
 * The envelope's `traceId` from W3C trace context. With tracing on, a message
 * carries its creation context in `traceparent`; a consumer reads the trace id
 * from there when the publisher set no `traceId` of its own, so the trace id
 * does not travel twice (a header costs several µs per record on Kafka).
 */
const HEX32 = /^[0-9a-f]{32}$/;
const INVALID = '0'.repeat(32);

/** The trace id of a `traceparent` header (`00-<trace id>-<parent id>-<flags>`), if it is a valid one. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  if (traceparent === undefined || traceparent.length < 55 || traceparent[2] !== '-' || traceparent[35] !== '-') return undefined;
  const id = traceparent.slice(3, 35);
  return HEX32.test(id) && id !== INVALID ? id : undefined;
}
