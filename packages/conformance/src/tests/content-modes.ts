/**
 * The two CloudEvents content modes busline writes (`contentMode`): a topic
 * in structured mode (the whole event as JSON in the body) delivers the same
 * envelopes and payloads as one in binary mode (attributes as headers), keeps
 * the aggregate id as the broker's key, and is read by the official SDK as
 * the same event; dedupe and dead letters work without an id header.
 */
import { Buffer } from 'node:buffer';
import { Kafka, type Message } from 'cloudevents';
import { DeadLetterHeader, STRUCTURED_JSON_CONTENT_TYPE, type BatchItem, type ContentMode, type Envelope, type EventBus, type WireMessage } from '@busline/core';
import { expect } from '../expect.js';
import type { Harness } from '../harness.js';
import { Collector, readDeadLetters } from '../helpers.js';
import { sdkEvent } from './cloudevents.js';

const TIME = new Date('2024-05-06T07:08:09.010Z');
const BYTES = Uint8Array.from([0, 1, 2, 127, 128, 255]);

/** What each test publishes to a topic: JSON and bytes, one at a time, as an envelope, and in a batch. Resolves the ids by aggregate id. */
async function publishSet(bus: EventBus, topic: string): Promise<string[]> {
  const ids: string[] = [];
  const all = { time: TIME, version: 3, traceId: 'trace-1', correlationId: 'corr-1', causationId: 'cause-1', tenantId: 'acme', headers: { 'x-app': 'a' } };
  ids.push((await bus.publish(topic, { total: 12, lines: [{ sku: 'A-1', qty: 2 }], note: 'ü €', none: null }, { ...all, id: 'json-1', type: 'order.placed', aggregateId: 'agg-json' })).id);
  ids.push((await bus.publish(topic, BYTES, { id: 'bytes-1', type: 'blob.stored', aggregateId: 'agg-bytes', time: TIME })).id);
  const envelope: Envelope = { id: 'env-1', type: 'order.shipped', source: 'elsewhere', aggregateId: 'agg-env', version: 1, time: TIME, headers: {}, payload: 'just text' };
  await bus.publishEnvelope(topic, envelope);
  ids.push(envelope.id);
  const items: BatchItem[] = [
    { id: 'batch-0', type: 'batch.item', payload: { i: 0 }, aggregateId: 'agg-b0', time: TIME, correlationId: 'corr-b' },
    { id: 'batch-1', type: 'batch.item', payload: Uint8Array.from([9, 8, 7]), aggregateId: 'agg-b1', time: TIME },
    { id: 'batch-2', type: 'batch.item', payload: [1, 'two', { three: 3 }], time: TIME, headers: { 'x-batch': 'yes' } },
  ];
  const batch = await bus.publishBatch(topic, items);
  expect(batch.failed, 'the batch is stored whole').toEqual([]);
  ids.push(...batch.ids);
  return ids;
}

const hasCeHeader = (headers: Record<string, string>): string[] => Object.keys(headers).filter((name) => /^ce[-_]/i.test(name));
const bytesOf = (payload: unknown): Buffer => Buffer.from(payload as Uint8Array);

/** The SDK's binding for this adapter's header naming. */
const sdkBindingOf = (bus: EventBus): 'kafka' | 'http' => (bus.driver.cloudEvents?.name === 'kafka' ? 'kafka' : 'http');

export function registerContentModeTests(h: Harness): void {
  h.test('a structured-mode topic delivers the same envelopes as a binary-mode one (JSON and bytes, publish, publishEnvelope, batches)', {}, async () => {
    const binary = h.topic('mode-binary');
    const structured = h.topic('mode-structured');
    const bus = await h.bus({ topics: { [binary]: { contentMode: 'binary' }, [structured]: { contentMode: 'structured' } } });
    const got: Record<ContentMode, Collector<Envelope>> = { binary: new Collector(), structured: new Collector() };
    const raw = new Collector<WireMessage>();
    await bus.subscribeEnvelope(binary, (e) => void got.binary.add(e.id, e), { group: h.group('bin') });
    await bus.subscribeEnvelope(structured, (e) => void got.structured.add(e.id, e), { group: h.group('str') });
    await bus.subscribeWire(structured, (m) => void raw.add(Buffer.from(m.body).toString('hex'), m), { group: h.group('raw') });
    const before = bus.metrics();

    const ids = await publishSet(bus, binary);
    expect(await publishSet(bus, structured), 'same ids on both topics').toEqual(ids);
    await got.binary.waitForIds(ids, h.ms(20_000), 'binary-mode events');
    await got.structured.waitForIds(ids, h.ms(20_000), 'structured-mode events');
    await raw.waitForCount(ids.length, h.ms(20_000), 'structured-mode messages, raw');

    for (const id of ids) {
      const a = got.binary.items.get(id)!;
      const b = got.structured.items.get(id)!;
      expect({ ...b, payload: undefined }, `envelope ${id}`).toEqual({ ...a, payload: undefined });
      if (a.payload instanceof Uint8Array) {
        expect(b.payload, `payload of ${id} is bytes`).toBeInstanceOf(Uint8Array);
        expect(bytesOf(b.payload).equals(bytesOf(a.payload)), `bytes of ${id}`).toBe(true);
      } else {
        expect(b.payload, `payload of ${id}`).toEqual(a.payload);
      }
    }
    // Equal to each other, and to what was published (so both cannot be wrong the same way).
    expect(got.structured.items.get('json-1')).toMatchObject({
      type: 'order.placed',
      aggregateId: 'agg-json',
      version: 3,
      time: TIME,
      traceId: 'trace-1',
      correlationId: 'corr-1',
      causationId: 'cause-1',
      tenantId: 'acme',
      headers: { 'x-app': 'a' },
      payload: { total: 12, lines: [{ sku: 'A-1', qty: 2 }], note: 'ü €', none: null },
    });
    expect(bytesOf(got.structured.items.get('bytes-1')!.payload).equals(Buffer.from(BYTES))).toBe(true);
    expect(got.structured.items.get('env-1')).toMatchObject({ source: 'elsewhere', payload: 'just text', headers: {} });
    expect(got.structured.items.get('batch-2')).toMatchObject({ aggregateId: undefined, headers: { 'x-batch': 'yes' }, payload: [1, 'two', { three: 3 }] });

    const keyOf = new Map([...got.structured.items.values()].map((e) => [e.id, e.aggregateId]));
    for (const message of raw.items.values()) {
      expect(message.headers['content-type'], 'one content type for the whole event').toBe(STRUCTURED_JSON_CONTENT_TYPE);
      expect(hasCeHeader(message.headers), 'no attribute headers in structured mode').toEqual([]);
      const event = JSON.parse(Buffer.from(message.body).toString('utf8')) as { id: string; data?: unknown; data_base64?: string };
      // The key is the aggregate id, as in binary mode: partitioning and per-key order do not change.
      if (keyOf.get(event.id) !== undefined) expect(message.key, `key of ${event.id}`).toBe(keyOf.get(event.id));
      expect('data' in event !== 'data_base64' in event, `${event.id} has data or data_base64`).toBe(true);
    }
    expect(bus.metrics().malformed - before.malformed, 'nothing malformed').toBe(0);
  });

  h.test('a bus-wide structured contentMode: the CloudEvents SDK reads each message as the same event as a binary-mode one', {}, async () => {
    const binary = h.topic('sdk-binary');
    const structured = h.topic('sdk-structured');
    // Bus-wide structured; one topic back to binary: both directions of the override.
    const bus = await h.bus({ contentMode: 'structured', topics: { [binary]: { contentMode: 'binary' } } });
    const binding = sdkBindingOf(bus);
    const wire: Record<ContentMode, Collector<WireMessage>> = { binary: new Collector(), structured: new Collector() };
    for (const [mode, topic] of [['binary', binary], ['structured', structured]] as const) {
      await bus.subscribeWire(topic, (m) => void wire[mode].add(Buffer.from(m.body).toString('hex'), m), { group: h.group(`sdk-${mode}`) });
    }
    const ids = await publishSet(bus, binary);
    await publishSet(bus, structured);
    await wire.binary.waitForCount(ids.length, h.ms(20_000), 'binary-mode messages');
    await wire.structured.waitForCount(ids.length, h.ms(20_000), 'structured-mode messages');

    const events = (mode: ContentMode) => new Map([...wire[mode].items.values()].map((m) => [sdkEvent(m, binding).id, { message: m, event: sdkEvent(m, binding) }]));
    const fromBinary = events('binary');
    const fromStructured = events('structured');
    expect([...fromStructured.keys()].sort()).toEqual([...ids].sort());
    for (const id of ids) {
      const { event: a } = fromBinary.get(id)!;
      const { event: b, message } = fromStructured.get(id)!;
      expect(hasCeHeader(message.headers), 'the structured record has no attribute headers').toEqual([]);
      if (binding === 'kafka') {
        const record = { key: message.key, headers: message.headers, value: Buffer.from(message.body) };
        expect(Kafka.isEvent(record as unknown as Message), 'the Kafka binding recognises the record').toBe(true);
      }
      for (const attribute of ['specversion', 'id', 'type', 'source', 'subject', 'time', 'datacontenttype', 'eventversion', 'traceid', 'correlationid', 'causationid', 'tenantid'] as const) {
        expect(b[attribute], `${attribute} of ${id}`).toEqual(a[attribute]);
      }
      if (a.datacontenttype === 'application/octet-stream') expect(bytesOf(b.data).equals(bytesOf(a.data)), `bytes of ${id}`).toBe(true);
      else expect(b.data, `data of ${id}`).toEqual(a.data);
    }
    expect(fromStructured.get('json-1')!.event).toMatchObject({ subject: 'agg-json', time: TIME.toISOString(), eventversion: '3', traceid: 'trace-1' });
  });

  h.test('structured mode: a re-published event id is stored once (no id header to dedupe on)', { requires: ['dedupe', 'perKeyOrder'] }, async () => {
    const bus = await h.bus({ contentMode: 'structured' });
    const topic = h.topic('mode-dedupe');
    const got = new Collector();
    await bus.subscribe(topic, async (_p, ctx) => got.add(ctx.envelope.id, null));
    const id = `dd-${Math.random().toString(36).slice(2)}`;
    await bus.publish(topic, { copy: 1 }, { id, aggregateId: 'dd' });
    await bus.publish(topic, { copy: 2 }, { id, aggregateId: 'dd' });
    // Same key, published after: once it is handled, both copies of `id` had their chance to arrive.
    const { id: sentinel } = await bus.publish(topic, { sentinel: true }, { aggregateId: 'dd' });
    await got.waitForIds([id, sentinel], h.ms(10_000));
    expect(got.arrivals.filter((a) => a === id)).toHaveLength(1);
  });

  h.test('structured mode: a dead letter names the original event id and keeps the event', {}, async () => {
    const bus = await h.bus({ contentMode: 'structured' });
    const topic = h.topic('mode-dlq');
    const dead = await readDeadLetters(h, bus, `${topic}.dlq`);
    await bus.subscribe(
      topic,
      async () => {
        throw new Error('cannot handle it');
      },
      { group: h.group('dlq'), retry: { maxAttempts: 1, initialDelayMs: 1, maxDelayMs: 5 } },
    );
    const poison = await bus.publish(topic, { poison: true }, { aggregateId: 'acct-9', headers: { 'x-origin': 'suite' } });
    await dead.waitForIds([poison.id], h.ms(20_000), 'dead letter');
    const letter = dead.items.get(poison.id)!;
    expect(letter.headers[DeadLetterHeader.originalId]).toBe(poison.id);
    expect(letter.headers[DeadLetterHeader.error]).toContain('cannot handle it');
    expect(letter.headers['x-origin']).toBe('suite');
    expect(letter.key).toBe('acct-9');
    expect(JSON.parse(Buffer.from(letter.body).toString('utf8')), 'the event, whole').toMatchObject({ id: poison.id, subject: 'acct-9', data: { poison: true } });
  });
}
