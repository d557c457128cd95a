import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HTTP_BINDING, KAFKA_BINDING } from './cloudevents-binding.js';
import { STRUCTURED_JSON_CONTENT_TYPE } from './cloudevents-structured.js';
import { configFromEnv } from './config.js';
import { CONTENT_MODES, DEFAULT_CONTENT_MODE } from './content-mode.js';
import { createEventBus } from './create-event-bus.js';
import { decodeEnvelope } from './envelope-decoding.js';
import { encodeEnvelope, encodeNewEnvelope } from './envelope-encoding.js';
import { buildEnvelope, type Envelope, type EnvelopeOptions, type Payload } from './envelope.js';
import { ConfigError, EnvelopeError, ErrorCode } from './errors.js';
import { deadLetterCopies, DeadLetterHeader } from './dead-letter.js';
import { topicOptionsSchema } from './topic.js';

const defaults = { type: 'orders', source: 'svc' };
const full: EnvelopeOptions = {
  aggregateId: 'order-42',
  type: 'OrderPlaced',
  version: 3,
  traceId: 't-1',
  correlationId: 'c-1',
  causationId: 'z-1',
  tenantId: 'acme',
  headers: { 'x-user': 'u1' },
  time: new Date('2026-01-02T03:04:05.678Z'),
};
const text = (body: Uint8Array): string => new TextDecoder().decode(body);
const decoded = (message: Parameters<typeof decodeEnvelope>[0], binding = HTTP_BINDING): Envelope => {
  const r = decodeEnvelope(message, binding);
  if (!r.ok) throw r.error;
  return r.envelope;
};

afterEach(() => vi.restoreAllMocks());

describe('structured content mode, written', () => {
  it('is the whole event as JSON in the body, one content-type header plus the user headers, the aggregate id as key', () => {
    for (const binding of [HTTP_BINDING, KAFKA_BINDING]) {
      const m = encodeNewEnvelope({ total: 12 }, { ...full, id: 'e-1' }, defaults, binding, 'structured');
      expect(m.key).toBe('order-42');
      expect(m.id).toBe('e-1');
      expect(m.headers).toEqual({ 'x-user': 'u1', 'content-type': STRUCTURED_JSON_CONTENT_TYPE });
      expect(JSON.parse(text(m.body))).toEqual({
        specversion: '1.0',
        id: 'e-1',
        type: 'OrderPlaced',
        source: 'svc',
        time: '2026-01-02T03:04:05.678Z',
        subject: 'order-42',
        datacontenttype: 'application/json',
        eventversion: '3',
        traceid: 't-1',
        correlationid: 'c-1',
        causationid: 'z-1',
        tenantid: 'acme',
        data: { total: 12 },
      });
    }
  });

  it('carries bytes as data_base64, and leaves out the attributes an event lacks', () => {
    const m = encodeNewEnvelope(Uint8Array.from([0, 1, 2, 255]), { id: 'e-2' }, defaults, KAFKA_BINDING, 'structured');
    expect(m.key).toBeUndefined();
    expect(m.headers).toEqual({ 'content-type': STRUCTURED_JSON_CONTENT_TYPE });
    const event = JSON.parse(text(m.body)) as Record<string, unknown>;
    expect(Object.keys(event).sort()).toEqual(['data_base64', 'datacontenttype', 'eventversion', 'id', 'source', 'specversion', 'time', 'type']);
    expect(event).toMatchObject({ datacontenttype: 'application/octet-stream', data_base64: 'AAEC/w==' });
  });

  it('serialises once: one JSON.stringify of the event, the payload never parsed back', () => {
    const stringify = vi.spyOn(JSON, 'stringify');
    const parse = vi.spyOn(JSON, 'parse');
    encodeNewEnvelope({ order: 1, lines: [{ sku: 'a' }] }, { aggregateId: 'k' }, defaults, KAFKA_BINDING, 'structured');
    expect(stringify).toHaveBeenCalledTimes(1);
    expect(parse).not.toHaveBeenCalled();
  });

  it('refuses a payload JSON cannot serialise, as binary mode does', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => encodeNewEnvelope(circular as Payload, {}, defaults, KAFKA_BINDING, 'structured')).toThrow(EnvelopeError);
    expect(() => encodeNewEnvelope({ n: 1n } as unknown as Payload, {}, defaults, KAFKA_BINDING, 'structured')).toThrow(/serialized as JSON/);
  });

  it('binary mode stays the default, and sets the message id too', () => {
    expect(DEFAULT_CONTENT_MODE).toBe('binary');
    const m = encodeNewEnvelope({ a: 1 }, { id: 'e-3' }, defaults, KAFKA_BINDING);
    expect(m.id).toBe('e-3');
    expect(m.headers.ce_id).toBe('e-3');
    expect(text(m.body)).toBe('{"a":1}');
  });
});

describe('structured content mode, read back', () => {
  const payloads = fc.oneof(fc.jsonValue(), fc.uint8Array({ maxLength: 64 }));
  const options = fc.record(
    {
      aggregateId: fc.stringMatching(/^[A-Za-z0-9._:@/+=#|~-]{1,40}$/),
      version: fc.integer({ min: 1, max: 1000 }),
      traceId: fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !/[\r\n\0]/.test(s)),
      correlationId: fc.constantFrom('c-1', 'corr/2'),
      causationId: fc.constantFrom('z-1'),
      tenantId: fc.constantFrom('acme', 'ümlaut'),
      headers: fc.dictionary(fc.stringMatching(/^x-[a-z0-9]{1,8}$/), fc.string({ maxLength: 10 }).filter((s) => !/[\r\n\0]/.test(s)), { maxKeys: 3 }),
      time: fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }),
    },
    { requiredKeys: [] },
  );

  it('decodes to the same envelope as binary mode, for every binding, field set and payload', () => {
    fc.assert(
      fc.property(payloads, options, fc.constantFrom(HTTP_BINDING, KAFKA_BINDING), (payload, opts, binding) => {
        const envelope = buildEnvelope(payload as Payload, opts, defaults);
        const binary = decoded(encodeEnvelope(envelope, binding, 'binary'), binding);
        const structured = decoded(encodeEnvelope(envelope, binding, 'structured'), binding);
        expect(structured).toEqual(binary);
        expect(structured.id).toBe(envelope.id);
        expect(structured.time).toEqual(envelope.time);
        expect(structured.aggregateId).toBe(envelope.aggregateId);
        expect(structured.headers).toEqual(envelope.headers);
        if (payload instanceof Uint8Array) expect(Buffer.from(structured.payload as Uint8Array).equals(Buffer.from(payload))).toBe(true);
        else expect(structured.payload).toEqual(binary.payload);
      }),
      { numRuns: 300 },
    );
  });

  it('takes an attribute the body lacks from a binary-mode header (the trace id tracing adds), the body winning otherwise', () => {
    const m = encodeNewEnvelope({ a: 1 }, { id: 'e-4' }, defaults, KAFKA_BINDING, 'structured');
    const added = decoded({ headers: { ...m.headers, ce_traceid: 'from-span', traceparent: '00-x' }, body: m.body }, KAFKA_BINDING);
    expect(added.traceId).toBe('from-span');
    expect(added.headers, 'trace context stays a header; the ce_ header is an attribute').toEqual({ traceparent: '00-x' });
    const own = encodeNewEnvelope({ a: 1 }, { traceId: 'publisher' }, defaults, KAFKA_BINDING, 'structured');
    expect(decoded({ headers: { ...own.headers, ce_traceid: 'from-span' }, body: own.body }, KAFKA_BINDING).traceId).toBe('publisher');
  });

  it('dead-letters a structured message with the event id it decoded to, as the original id and the copy id', () => {
    const m = encodeNewEnvelope({ a: 1 }, { id: 'e-5', aggregateId: 'k' }, defaults, KAFKA_BINDING, 'structured');
    const [copy] = deadLetterCopies({ message: m, error: new Error('no'), attempts: 1, topic: 't', group: 'g', binding: KAFKA_BINDING, eventId: 'e-5' });
    expect(copy!.headers[DeadLetterHeader.originalId]).toBe('e-5');
    expect(copy!.id).toMatch(/^dlq-/);
    expect(copy!.headers.ce_id, 'no id header is added to a structured copy').toBeUndefined();
    expect(copy!.key).toBe('k');
  });
});

describe('contentMode option', () => {
  it('is validated per topic and bus-wide, a wrong value naming both modes', async () => {
    for (const mode of CONTENT_MODES) expect(topicOptionsSchema.parse({ contentMode: mode }).contentMode).toBe(mode);
    expect(topicOptionsSchema.parse({}).contentMode, 'unset: the bus default applies').toBeUndefined();
    const error = await createEventBus({ type: 'memory', contentMode: 'json' as never, topics: { t: { contentMode: 'Structured' as never } } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe(ErrorCode.ConfigInvalid);
    const issues = (error as ConfigError).issues.join('\n');
    expect(issues).toMatch(/^contentMode: contentMode must be "binary" .* or "structured" .*; got "json"$/m);
    expect(issues).toMatch(/^topics\.t\.contentMode: .*got "Structured"$/m);
  });

  it('is read from BUSLINE_CONTENT_MODE', () => {
    expect(configFromEnv({ BUSLINE_CONTENT_MODE: 'structured' })).toEqual({ type: 'memory', contentMode: 'structured' });
  });
});
