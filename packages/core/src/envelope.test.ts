import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildEnvelope, decodeEnvelope, encodeEnvelope, Header, validateEnvelope, type Envelope } from './envelope.js';
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
