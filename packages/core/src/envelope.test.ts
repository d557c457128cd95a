import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { decodeEnvelope } from './envelope-decoding.js';
import { encodeEnvelope, encodeNewEnvelope, Header } from './envelope-encoding.js';
import { buildEnvelope, envelopeSchema, validateEnvelope, type Envelope } from './envelope.js';
import { EnvelopeError, ErrorCode } from './errors.js';

const defaults = { type: 'orders', source: 'svc' };

describe('envelope', () => {
  it('defaults a UUIDv7 id, version 1, the topic as type, and the time', () => {
    const e = buildEnvelope({ a: 1 }, {}, defaults);
    expect(e.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(e).toMatchObject({ type: 'orders', source: 'svc', version: 1, headers: {}, payload: { a: 1 } });
    expect(e.time).toBeInstanceOf(Date);
  });

  it('round-trips every field through the wire form, metadata in headers and the payload as the body', () => {
    const e = buildEnvelope(
      { order: 42, items: ['a', 'b'], nested: { ok: true, n: null } },
      {
        aggregateId: 'order-42',
        type: 'OrderPlaced',
        version: 3,
        traceId: 't-1',
        correlationId: 'c-1',
        causationId: 'z-1',
        tenantId: 'acme',
        headers: { 'x-user': 'u1' },
        time: new Date('2026-01-02T03:04:05.678Z'),
      },
      defaults,
    );
    const wire = encodeEnvelope(e);
    expect(wire.key).toBe('order-42');
    expect(JSON.parse(new TextDecoder().decode(wire.body))).toEqual(e.payload);
    expect(wire.headers).toMatchObject({ 'ce-id': e.id, 'ce-type': 'OrderPlaced', 'ce-subject': 'order-42', 'content-type': 'application/json', 'x-user': 'u1' });
    const back = decodeEnvelope(wire);
    expect(back.ok).toBe(true);
    expect((back as { envelope: Envelope }).envelope).toEqual(e);
  });

  it('carries bytes untouched', () => {
    const bytes = new Uint8Array([0, 255, 1, 2, 3]);
    const back = decodeEnvelope(encodeEnvelope(buildEnvelope(bytes, {}, defaults)));
    expect(back.ok && back.envelope.payload).toEqual(bytes);
  });

  it.each([
    [{ aggregateId: '' }, 'aggregateId'],
    [{ aggregateId: 'a'.repeat(257) }, 'at most 256'],
    [{ aggregateId: 'has space' }, 'aggregateId may only contain'],
    [{ version: 0 }, 'version must be >= 1'],
    [{ version: 1.5 }, 'integer'],
    [{ headers: { 'ce-id': 'x' } }, 'reserved'],
    [{ headers: { 'bad name': 'x' } }, 'header names'],
    [{ headers: { ok: 'line\nbreak' } }, 'CR, LF'],
    [{ type: '' }, 'type'],
  ])('rejects %j with a message naming the field', (options, text) => {
    let error: unknown;
    try {
      buildEnvelope({}, options as never, defaults);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EnvelopeError);
    expect((error as EnvelopeError).code).toBe(ErrorCode.EnvelopeInvalid);
    expect((error as Error).message).toContain(text);
  });

  it('rejects payloads that cannot be JSON', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => encodeEnvelope(validateEnvelope({ ...buildEnvelope(null, {}, defaults), payload: cyclic }))).toThrow(EnvelopeError);
    expect(() => buildEnvelope(undefined as never, {}, defaults)).toThrow(/payload/);
  });

  it('decode of a message without metadata is a typed error, not a throw', () => {
    const r = decodeEnvelope({ headers: {}, body: new Uint8Array([1, 2]) });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.message).toContain('ce-id');
  });

  it('decode of a body that is not the JSON its content type claims is a typed error', () => {
    const wire = encodeEnvelope(buildEnvelope({ a: 1 }, {}, defaults));
    const r = decodeEnvelope({ headers: wire.headers, body: new TextEncoder().encode('{not json') });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.code).toBe(ErrorCode.EnvelopeInvalid);
  });

  it('property: decoding random bytes and random headers never throws and always yields a typed result', () => {
    const valid = encodeEnvelope(buildEnvelope({ a: 1 }, { aggregateId: 'k' }, defaults)).headers;
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 512 }),
        fc.dictionary(fc.constantFrom(...Object.values(Header), 'x', 'nats-msg-id'), fc.string()),
        fc.boolean(),
        (body, headers, keepValid) => {
          const r = decodeEnvelope({ body, headers: keepValid ? { ...valid, ...headers } : headers });
          if (r.ok) expect(typeof r.envelope.id).toBe('string');
          else expect(r.error).toBeInstanceOf(EnvelopeError);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('property: any JSON payload round-trips', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (payload) => {
        const e = buildEnvelope(payload as never, { aggregateId: 'k' }, defaults);
        const r = decodeEnvelope(encodeEnvelope(e));
        expect(r.ok).toBe(true);
        // JSON normalizes -0 to 0, as every JSON transport does.
        expect(r.ok && r.envelope.payload).toEqual(JSON.parse(JSON.stringify(payload)));
      }),
      { numRuns: 500 },
    );
  });
});

describe('envelope fast checks are never looser than the schemas', () => {
  // Characters that sit on the rules' edges: allowed ones, CR/LF/NUL, a space, non-ASCII.
  const edgy = fc.constantFrom('a', 'Z', '0', '-', '.', '_', ':', '@', '/', '+', '=', '#', '|', '~', ' ', '\r', '\n', '\0', 'é', '!', "'", '`', '^', '$');
  const text = fc.oneof(
    fc.string({ unit: edgy, maxLength: 12 }),
    fc.constantFrom(127, 128, 129, 255, 256, 257, 511, 512, 513).map((n) => 'a'.repeat(n)),
  );
  const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
  const headerName = fc.oneof(fc.string({ unit: edgy, maxLength: 8 }), fc.constantFrom('ce-id', 'CE-Type', 'busline-x', 'Nats-Msg-Id', 'content-type', 'x-user'));
  const options = fc.record(
    {
      type: maybe(text),
      source: maybe(text),
      aggregateId: maybe(text),
      version: maybe(fc.oneof(fc.integer({ min: -2, max: 3 }), fc.constantFrom(1.5, Number.NaN, Infinity))),
      traceId: maybe(text),
      correlationId: maybe(text),
      causationId: maybe(text),
      tenantId: maybe(text),
      headers: maybe(fc.dictionary(headerName, fc.string({ unit: edgy, maxLength: 6 }), { maxKeys: 3 })),
    },
    { requiredKeys: [] },
  );
  const payload = fc.oneof(fc.jsonValue(), fc.constant(new Uint8Array([1, 2])), fc.constant(undefined));

  it('property: encodeNewEnvelope accepts only what the schema accepts, and encodes it as encodeEnvelope(buildEnvelope()) does', () => {
    fc.assert(
      fc.property(options, payload, fc.boolean(), (opts, p, explicit) => {
        const o = explicit ? { ...opts, id: 'fixed-id', time: new Date('2026-01-02T03:04:05.678Z') } : opts;
        let fast: ReturnType<typeof encodeNewEnvelope> | undefined;
        let fastError: unknown;
        try {
          fast = encodeNewEnvelope(p as never, o as never, defaults);
        } catch (e) {
          fastError = e;
        }
        let slow: ReturnType<typeof encodeEnvelope> | undefined;
        let slowError: unknown;
        try {
          slow = encodeEnvelope(buildEnvelope(p as never, o as never, defaults));
        } catch (e) {
          slowError = e;
        }
        if (fastError !== undefined || slowError !== undefined) {
          expect(fastError).toBeInstanceOf(EnvelopeError);
          expect(slowError).toBeInstanceOf(EnvelopeError);
          expect((fastError as Error).message).toBe((slowError as Error).message);
          return;
        }
        // What passed must pass zod too.
        const candidate = {
          id: fast!.headers[Header.id],
          type: o.type ?? defaults.type,
          source: o.source ?? defaults.source,
          aggregateId: o.aggregateId,
          version: o.version ?? 1,
          time: new Date(fast!.headers[Header.time]!),
          traceId: o.traceId,
          correlationId: o.correlationId,
          causationId: o.causationId,
          tenantId: o.tenantId,
          headers: o.headers ?? {},
          payload: p,
        };
        expect(envelopeSchema.safeParse(candidate).success).toBe(true);
        if (explicit) expect(fast).toEqual(slow);
        else expect({ ...fast!.headers, [Header.id]: '', [Header.time]: '' }).toEqual({ ...slow!.headers, [Header.id]: '', [Header.time]: '' });
      }),
      { numRuns: 3000 },
    );
  });

  it('property: decodeEnvelope yields only envelopes the wire schema accepts', () => {
    const wireSchema = envelopeSchema.extend({ headers: z.record(z.string(), z.string()) });
    const valid = encodeEnvelope(buildEnvelope({ a: 1 }, { aggregateId: 'k', traceId: 't' }, defaults)).headers;
    const headerValue = fc.oneof(text, fc.constantFrom('0', '1', '2.5', '-1', 'x', '2026-01-02T03:04:05.678Z', 'not a date', '1e3'));
    fc.assert(
      fc.property(fc.dictionary(fc.oneof(fc.constantFrom(...Object.values(Header)), headerName), headerValue, { maxKeys: 4 }), (overrides) => {
        const r = decodeEnvelope({ headers: { ...valid, ...overrides }, body: new TextEncoder().encode('{"a":1}') });
        if (r.ok) expect(wireSchema.safeParse(r.envelope).success).toBe(true);
        else expect(r.error).toBeInstanceOf(EnvelopeError);
      }),
      { numRuns: 3000 },
    );
  });
});
