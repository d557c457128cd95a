import { describe, expect, it } from 'vitest';
import { carriesEvent, HTTP_BINDING, KAFKA_BINDING } from './cloudevents-binding.js';
import { decodeEnvelope } from './envelope-decoding.js';
import { encodeEnvelope, encodeNewEnvelope } from './envelope-encoding.js';
import type { Envelope } from './envelope.js';
import { foreignEnvelope, foreignPayload } from './foreign-message.js';

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const defaults = { type: 'orders', source: 'svc' };

describe('CloudEvents header naming per binding', () => {
  it('writes ce_ attribute headers for the Kafka binding and ce- by default', () => {
    const kafka = encodeNewEnvelope({ n: 1 }, { aggregateId: 'o-1', traceId: 't', headers: { 'x-a': '1' } }, defaults, KAFKA_BINDING);
    expect(Object.keys(kafka.headers).sort()).toEqual(
      ['ce_eventversion', 'ce_id', 'ce_source', 'ce_specversion', 'ce_subject', 'ce_time', 'ce_traceid', 'ce_type', 'content-type', 'x-a'].sort(),
    );
    expect(kafka.headers.ce_type).toBe('orders');
    const plain = encodeNewEnvelope({ n: 1 }, {}, defaults);
    expect(Object.keys(plain.headers).filter((n) => n.startsWith('ce_'))).toEqual([]);
    expect(plain.headers['ce-id']).toMatch(/\S/);
  });

  it('reads its own naming, and records written under the other prefix (the migration)', () => {
    const kafka = encodeNewEnvelope({ n: 1 }, { aggregateId: 'o-1', version: 3, headers: { 'x-a': '1' } }, defaults, KAFKA_BINDING);
    const legacy = encodeNewEnvelope({ n: 1 }, { aggregateId: 'o-1', version: 3, headers: { 'x-a': '1' } }, defaults);
    for (const [message, binding] of [
      [kafka, KAFKA_BINDING],
      [legacy, KAFKA_BINDING],
      [kafka, HTTP_BINDING],
    ] as const) {
      const r = decodeEnvelope(message, binding);
      expect(r.ok && r.envelope).toMatchObject({ type: 'orders', source: 'svc', aggregateId: 'o-1', version: 3, headers: { 'x-a': '1' }, payload: { n: 1 } });
      // No attribute header leaks into the user's headers, whatever the naming.
      expect(r.ok && Object.keys(r.envelope.headers)).toEqual(['x-a']);
    }
  });

  it('round-trips an envelope through encodeEnvelope for either binding', () => {
    const e: Envelope = { id: 'e-1', type: 't', source: 's', version: 1, time: new Date('2024-01-01T00:00:00Z'), headers: {}, payload: new Uint8Array([1, 2]) };
    for (const binding of [HTTP_BINDING, KAFKA_BINDING]) {
      const r = decodeEnvelope(encodeEnvelope(e, binding), binding);
      expect(r.ok && r.envelope).toEqual({ ...e, aggregateId: undefined, traceId: undefined, correlationId: undefined, causationId: undefined, tenantId: undefined });
    }
  });
});

describe('only the required CloudEvents attributes are required', () => {
  it('decodes a binary-mode event without time, with time undefined', () => {
    const headers = { 'ce-specversion': '1.0', 'ce-id': 'x-1', 'ce-type': 't', 'ce-source': '/s', 'content-type': 'application/json' };
    const r = decodeEnvelope({ headers, body: json({ a: 1 }) });
    expect(r.ok && r.envelope).toMatchObject({ id: 'x-1', payload: { a: 1 } });
    expect(r.ok && r.envelope.time).toBeUndefined();
  });

  it('encodes an envelope without time without a time header', () => {
    const wire = encodeEnvelope({ id: 'e', type: 't', source: 's', version: 1, headers: {}, payload: null }, KAFKA_BINDING);
    expect(wire.headers.ce_time).toBeUndefined();
    expect(wire.headers.ce_id).toBe('e');
  });

  it('keeps a subject that is no valid aggregate id as a header instead of refusing the event (both modes)', () => {
    const headers = { ce_specversion: '1.0', ce_id: 'x-2', ce_type: 't', ce_source: '/s', ce_subject: 'order 7, line 2' };
    const binary = decodeEnvelope({ headers, body: new Uint8Array() }, KAFKA_BINDING);
    expect(binary.ok && binary.envelope.aggregateId).toBeUndefined();
    expect(binary.ok && binary.envelope.headers).toEqual({ ce_subject: 'order 7, line 2' });
    const event = { specversion: '1.0', id: 'x-3', type: 't', source: '/s', subject: 'order 7, line 2' };
    const structured = decodeEnvelope({ headers: { 'content-type': 'application/cloudevents+json' }, body: json(event) });
    expect(structured.ok && structured.envelope.aggregateId).toBeUndefined();
    expect(structured.ok && structured.envelope.headers).toEqual({ 'ce-subject': 'order 7, line 2' });
  });

  it('still refuses a message without id or type', () => {
    const r = decodeEnvelope({ headers: { ce_type: 't', ce_specversion: '1.0' }, body: new Uint8Array() }, KAFKA_BINDING);
    expect(!r.ok && r.error.issues).toEqual(['header ce_id is missing']);
  });
});

describe('structured content mode', () => {
  const event = { specversion: '1.0', id: 's-1', type: 'com.example.t', source: '/src', subject: 'agg-1', eventversion: '2', traceid: 'tr', dataschema: 'urn:x', data: { ok: true } };

  it('reads the whole event from the body, with extensions it has no field for as headers', () => {
    const r = decodeEnvelope({ headers: { 'content-type': 'application/cloudevents+json; charset=UTF-8', 'x-h': 'v' }, body: json(event) }, KAFKA_BINDING);
    expect(r.ok && r.envelope).toMatchObject({
      id: 's-1',
      type: 'com.example.t',
      source: '/src',
      aggregateId: 'agg-1',
      version: 2,
      traceId: 'tr',
      time: undefined,
      headers: { 'x-h': 'v', ce_dataschema: 'urn:x' },
      payload: { ok: true },
    });
  });

  it('gives data_base64 as bytes and no data as null', () => {
    const { data: _data, ...bare } = event;
    const bytes = decodeEnvelope({ headers: { 'content-type': 'application/cloudevents+json' }, body: json({ ...bare, data_base64: 'AQID' }) });
    expect(bytes.ok && bytes.envelope.payload).toEqual(new Uint8Array([1, 2, 3]));
    const none = decodeEnvelope({ headers: { 'content-type': 'application/cloudevents+json' }, body: json(bare) });
    expect(none.ok && none.envelope.payload).toBeNull();
  });

  it('is malformed without a required attribute, or as another event format', () => {
    const { source: _source, ...noSource } = event;
    const r = decodeEnvelope({ headers: { 'content-type': 'application/cloudevents+json' }, body: json(noSource) });
    expect(!r.ok && r.error.issues).toEqual(['attribute source is missing']);
    const avro = decodeEnvelope({ headers: { 'content-type': 'application/cloudevents+avro' }, body: new Uint8Array([1]) });
    expect(avro.ok).toBe(false);
  });
});

describe('foreign messages', () => {
  it('carriesEvent tells a CloudEvent (any naming, either mode) from a foreign record', () => {
    expect(carriesEvent({ ce_id: '1' })).toBe(true);
    expect(carriesEvent({ 'ce-id': '1' })).toBe(true);
    expect(carriesEvent({ 'Content-Type': 'x', 'content-type': 'Application/CloudEvents+json' })).toBe(true);
    expect(carriesEvent({ 'content-type': 'application/json' })).toBe(false);
    expect(carriesEvent({})).toBe(false);
  });

  it('tells structured mode by a case-insensitive content type prefix, whatever came before', () => {
    for (const [contentType, structured] of [
      ['APPLICATION/CLOUDEVENTS+JSON', true],
      ['application/octet-stream', false],
      ['application/cloudevents', true],
      ['application/cloudevent', false],
      ['application/cloudevents-batch+json', true],
      ['application/cloudevEnts+json; charset=utf-8', true],
      ['application/cloudevfnts+json', false],
      ['', false],
    ] as const) {
      expect(carriesEvent({ 'content-type': contentType }), contentType).toBe(structured);
    }
  });

  it('reads a binary-mode body as JSON exactly when its content type is JSON, message after message (the answer is remembered)', () => {
    const bytes = json({ a: 1 });
    const cases = [
      ['application/json', true],
      ['application/octet-stream', false],
      ['application/octet-stream', false],
      ['Application/Vnd.Orders+JSON ; v=1', true],
      ['text/plain', false],
      ['application/json; charset=utf-8', true],
      ['application/json', true],
      ['application/x-protobuf', false],
    ] as const;
    for (const [contentType, isJson] of cases) {
      const r = decodeEnvelope({ headers: { ce_id: '1', ce_type: 't', 'content-type': contentType }, body: bytes }, KAFKA_BINDING);
      expect(r.ok && r.envelope.payload, contentType).toEqual(isJson ? { a: 1 } : bytes);
    }
  });

  it('keeps extension headers and drops every metadata header of the naming it reads, record after record', () => {
    for (const binding of [KAFKA_BINDING, HTTP_BINDING, KAFKA_BINDING]) {
      const p = binding.prefix;
      const r = decodeEnvelope({ headers: { [`${p}id`]: '1', [`${p}type`]: 't', [`${p}source`]: 's', 'x-user': 'u', [`${p}custom`]: 'c' }, body: json(1) }, binding);
      expect(r.ok && r.envelope.headers, p).toEqual({ 'x-user': 'u', [`${p}custom`]: 'c' });
    }
  });

  it('decodes the body as JSON when it parses, else text, else bytes', () => {
    expect(foreignPayload(json({ a: [1] }))).toEqual({ a: [1] });
    expect(foreignPayload(new TextEncoder().encode('42'))).toBe(42);
    expect(foreignPayload(new TextEncoder().encode('plain text'))).toBe('plain text');
    expect(foreignPayload(new Uint8Array([0xff, 0xfe]))).toEqual(new Uint8Array([0xff, 0xfe]));
  });

  it('takes id, key, time and type from the broker metadata', () => {
    const e = foreignEnvelope({ topic: 'legacy', key: 'k-1', headers: { h: '1' }, body: json({ a: 1 }), deliveryId: '0:17', timestamp: 1_700_000_000_000 });
    expect(e).toMatchObject({ id: 'legacy:0:17', type: 'legacy', source: 'legacy', aggregateId: 'k-1', version: 1, headers: { h: '1' }, payload: { a: 1 } });
    expect(e.time).toEqual(new Date(1_700_000_000_000));
    const bare = foreignEnvelope({ topic: 'legacy', key: 'has spaces', headers: {}, body: new Uint8Array() });
    expect(bare.aggregateId, 'a key that is no valid aggregate id').toBeUndefined();
    expect(bare.time).toBeUndefined();
    expect(bare.id).toMatch(/^[0-9a-f-]{36}$/);
  });
});
