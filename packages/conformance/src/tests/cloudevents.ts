/**
 * Interop with the official CloudEvents JS SDK (`cloudevents` v10), through
 * the protocol binding the adapter declares (`driver.cloudEvents`): its Kafka
 * binding where the adapter writes `ce_` headers, else its HTTP binding (the
 * `ce-` naming the NATS binding's binary mode shares). Busline handles what
 * the SDK produces in binary and structured mode, and the SDK parses what
 * busline puts on the wire, as a consumer reading the broker would see it.
 */
import { Buffer } from 'node:buffer';
import { CloudEvent, HTTP, Kafka, type Message } from 'cloudevents';
import type { Envelope, EventBus, WireMessage } from '@busline/core';
import { expect } from '../expect.js';
import type { Harness } from '../harness.js';
import { Collector } from '../helpers.js';

type Mode = 'binary' | 'structured';

/** The SDK binding matching the adapter's header naming. */
const sdkBindingOf = (bus: EventBus): 'kafka' | 'http' => (bus.driver.cloudEvents?.name === 'kafka' ? 'kafka' : 'http');

/** Bytes of an SDK message body or Kafka value (a string, bytes, or data the SDK left unserialized). */
function bodyBytes(body: unknown): Uint8Array {
  if (body instanceof Uint8Array) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  return Buffer.from(JSON.stringify(body), 'utf8');
}

/** A Kafka record as the SDK's Kafka binding makes and reads it (its types only say `Message`). */
interface SdkKafkaRecord {
  key?: unknown;
  headers: Record<string, unknown>;
  value: unknown;
  body?: unknown;
}

/** An event as the SDK puts it on the wire for `binding` and `mode`, as a busline wire message. */
export function sdkWireMessage(event: CloudEvent<unknown>, binding: 'kafka' | 'http', mode: Mode): WireMessage {
  let key: unknown;
  let headers: Record<string, unknown>;
  let body: unknown;
  if (binding === 'kafka') {
    const record = (mode === 'binary' ? Kafka.binary(event) : Kafka.structured(event)) as unknown as SdkKafkaRecord;
    ({ key, headers, value: body } = record);
  } else {
    ({ headers, body } = mode === 'binary' ? HTTP.binary(event) : HTTP.structured(event));
  }
  const wireHeaders: Record<string, string> = {};
  // The SDK leaves unset attributes in as undefined; a broker carries no such header.
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && value !== null) wireHeaders[name] = String(value);
  return { key: typeof key === 'string' ? key : undefined, headers: wireHeaders, body: bodyBytes(body) };
}

/** What the SDK makes of a message busline put on the wire. */
export function sdkEvent(message: WireMessage, binding: 'kafka' | 'http'): CloudEvent<unknown> {
  const body = Buffer.from(message.body);
  if (binding === 'kafka') {
    const record: SdkKafkaRecord = { key: message.key, headers: message.headers, value: body };
    return Kafka.toEvent(record as unknown as Message) as CloudEvent<unknown>;
  }
  // An HTTP server hands JSON bodies over as text, others as bytes.
  const json = (message.headers['content-type'] ?? '').includes('json');
  return HTTP.toEvent({ headers: message.headers, body: json ? body.toString('utf8') : body }) as CloudEvent<unknown>;
}

/** Drops the optional `time` attribute from an SDK wire message (the SDK always sets one). */
function withoutTime(message: WireMessage, mode: Mode): WireMessage {
  if (mode === 'structured') {
    const { time: _time, ...event } = JSON.parse(Buffer.from(message.body).toString('utf8')) as Record<string, unknown>;
    return { ...message, body: Buffer.from(JSON.stringify(event), 'utf8') };
  }
  const headers = { ...message.headers };
  delete headers['ce-time'];
  delete headers.ce_time;
  return { ...message, headers };
}

export function registerCloudEventsTests(h: Harness): void {
  h.test('the CloudEvents SDK parses what busline publishes, with its binding for this broker (JSON and bytes payloads)', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('ce-out');
    const binding = sdkBindingOf(bus);
    const wire = new Collector<WireMessage>();
    await bus.subscribeWire(topic, (m) => void wire.add(Buffer.from(m.body).toString('hex'), m), { group: h.group('raw') });
    const time = new Date('2024-05-06T07:08:09.010Z');
    const json = await bus.publish(topic, { total: 12 }, { aggregateId: 'order-7', time, version: 3, traceId: 'trace-1', headers: { 'x-app': 'a' } });
    const bytes = Uint8Array.from([0, 1, 2, 255]);
    const raw = await bus.publish(topic, bytes, { time });
    await wire.waitForCount(2, h.ms(20_000), 'the published messages, raw');

    const jsonMessage = wire.items.get(Buffer.from('{"total":12}').toString('hex'))!;
    if (binding === 'kafka') {
      const record: SdkKafkaRecord = { key: jsonMessage.key, headers: jsonMessage.headers, value: Buffer.from(jsonMessage.body) };
      expect(Kafka.isEvent(record as unknown as Message), 'the Kafka binding recognises the record as a CloudEvent').toBe(true);
    }
    const event = sdkEvent(jsonMessage, binding);
    expect(event.id).toBe(json.id);
    expect(event.specversion).toBe('1.0');
    expect(event.type).toBe(topic);
    expect(event.source).toMatch(/\S/);
    expect(event.subject).toBe('order-7');
    expect(event.time).toBe(time.toISOString());
    expect(event.datacontenttype).toBe('application/json');
    expect(event.data).toEqual({ total: 12 });
    expect(event.eventversion).toBe('3');
    expect(event.traceid).toBe('trace-1');

    const bytesEvent = sdkEvent(wire.items.get(Buffer.from(bytes).toString('hex'))!, binding);
    expect(bytesEvent.id).toBe(raw.id);
    expect(bytesEvent.datacontenttype).toBe('application/octet-stream');
    expect(Buffer.from(bytesEvent.data as Uint8Array).equals(Buffer.from(bytes))).toBe(true);
  });

  for (const mode of ['binary', 'structured'] as const) {
    h.test(`busline handles a CloudEvent the SDK produced in ${mode} mode, with and without the optional time`, {}, async () => {
      const bus = await h.bus();
      const topic = h.topic(`ce-in-${mode}`);
      const binding = sdkBindingOf(bus);
      const got = new Collector<Envelope>();
      await bus.subscribeEnvelope(topic, (e) => void got.add(e.id, e), { group: h.group('ce') });
      const before = bus.metrics();
      const event = new CloudEvent<unknown>({
        id: `sdk-${mode}-1`,
        type: 'com.example.order.placed',
        source: '/shop/orders',
        subject: 'order-9',
        time: '2024-01-02T03:04:05.006Z',
        datacontenttype: 'application/json',
        eventversion: '2',
        correlationid: 'corr-1',
        data: { sku: 'A-1', qty: 2 },
      });
      const untimed = event.cloneWith({ id: `sdk-${mode}-2` });
      await bus.publishWire(topic, sdkWireMessage(event, binding, mode));
      await bus.publishWire(topic, withoutTime(sdkWireMessage(untimed, binding, mode), mode));

      await got.waitForIds([event.id, untimed.id], h.ms(20_000), `the SDK's ${mode}-mode events`);
      expect(got.items.get(event.id)).toMatchObject({
        type: 'com.example.order.placed',
        source: '/shop/orders',
        aggregateId: 'order-9',
        version: 2,
        correlationId: 'corr-1',
        time: new Date('2024-01-02T03:04:05.006Z'),
        payload: { sku: 'A-1', qty: 2 },
      });
      const timeless = got.items.get(untimed.id)!;
      expect(timeless.time, 'a CloudEvent without time has no time').toBeUndefined();
      expect(timeless.payload).toEqual({ sku: 'A-1', qty: 2 });
      expect(bus.metrics().malformed - before.malformed, 'nothing dead-lettered as malformed').toBe(0);
    });
  }
}
