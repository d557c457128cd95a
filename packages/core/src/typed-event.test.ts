/** Typed events on the in-memory broker: validation on both sides, dead letters, upcasting. */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createEventBus } from './create-event-bus.js';
import { DeadLetterHeader } from './dead-letter.js';
import { ErrorCode, type BuslineError } from './errors.js';
import type { EventBus } from './event-bus.js';
import type { DeadLetterEvent } from './events.js';
import { defineEvent, PayloadError, type EventPayload } from './typed-event.js';

let n = 0;
async function startedBus(): Promise<EventBus> {
  const bus = await createEventBus({ type: 'memory', memory: { broker: `typed-event-test-${process.pid}-${++n}` }, retry: { maxAttempts: 5, initialDelayMs: 1 } });
  await bus.start();
  return bus;
}

const OrderPlaced = defineEvent({
  name: 'order.placed',
  version: 2,
  topic: 'orders',
  schema: z.object({ orderId: z.string(), total: z.number().nonnegative(), placedAt: z.coerce.date() }),
  upcast: { 1: (v1: { orderId: string; amount: number; placedAt: string }) => ({ orderId: v1.orderId, total: v1.amount, placedAt: v1.placedAt }) },
});
type Order = EventPayload<typeof OrderPlaced>;

function nextEvent<T>(bus: EventBus, name: 'deadLetter'): Promise<T> {
  return new Promise((resolve) => bus.once(name, (event: DeadLetterEvent) => resolve(event as T)));
}

describe('typed events', () => {
  it('publish validates and sends the schema output; subscribe gets it validated, with its type and version on the envelope', async () => {
    const bus = await startedBus();
    const got: { payload: Order; type: string; version: number }[] = [];
    const done = new Promise<void>((resolve) => {
      void bus.subscribe(OrderPlaced, (payload, { envelope }) => {
        got.push({ payload, type: envelope.type, version: envelope.version });
        resolve();
      });
    });
    const placedAt = new Date('2026-01-02T03:04:05.000Z');
    const receipt = await bus.publish(OrderPlaced, { orderId: 'o-1', total: 12, placedAt });
    expect(receipt.topic).toBe('orders');
    await done;
    expect(got).toEqual([{ payload: { orderId: 'o-1', total: 12, placedAt }, type: 'order.placed', version: 2 }]);
    await bus.close();
  });

  it('publish refuses an invalid payload with PAYLOAD_INVALID naming the event and each bad field, and sends nothing', async () => {
    const bus = await startedBus();
    const error = (await bus.publish(OrderPlaced, { orderId: 7, total: -1, placedAt: 'x' } as never).catch((e: unknown) => e)) as PayloadError;
    expect(error).toBeInstanceOf(PayloadError);
    expect(error.code).toBe(ErrorCode.PayloadInvalid);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/^order\.placed v2 payload is invalid \(not published\): orderId: .+; total: .+; placedAt: .+/);
    expect(error.issues.map((i) => i.path)).toEqual(['orderId', 'total', 'placedAt']);
    expect(bus.metrics().published).toBe(0);
    await bus.close();
  });

  it('consume dead-letters an invalid payload at once (PAYLOAD_INVALID, one attempt) and goes on with the next message', async () => {
    const bus = await startedBus();
    const handled: string[] = [];
    const second = new Promise<void>((resolve) => {
      void bus.subscribe(OrderPlaced, (order) => {
        handled.push(order.orderId);
        resolve();
      });
    });
    const dlq: Record<string, string>[] = [];
    await bus.subscribeWire('orders.dlq', (m) => void dlq.push(m.headers));
    const dead = nextEvent<DeadLetterEvent>(bus, 'deadLetter');
    // A publisher without the schema (another service, an old build) sends a bad one.
    await bus.publish('orders', { orderId: 'bad', total: 'lots' }, { type: 'order.placed', version: 2, aggregateId: 'a' });
    await bus.publish(OrderPlaced, { orderId: 'good', total: 1, placedAt: new Date() }, { aggregateId: 'a' });
    const event = await dead;
    await second;
    expect(event.attempts).toBe(1);
    expect(event.error).toMatch(/^order\.placed v2 payload is invalid \(not handled\): total: .+; placedAt: .+/);
    expect(handled).toEqual(['good']);
    await expect.poll(() => dlq.length).toBe(1);
    expect(dlq[0]![DeadLetterHeader.errorCode]).toBe(ErrorCode.PayloadInvalid);
    expect(bus.metrics().retried).toBe(0);
    await bus.close();
  });

  it('upcasts an older version before validating; a newer or unreachable version is dead-lettered with the reason', async () => {
    const bus = await startedBus();
    const handled: Order[] = [];
    await bus.subscribe(OrderPlaced, (order) => void handled.push(order));
    await bus.publish('orders', { orderId: 'v1', amount: 5, placedAt: '2026-01-01T00:00:00Z' }, { type: 'order.placed', version: 1 });
    await expect.poll(() => handled.length).toBe(1);
    expect(handled[0]).toEqual({ orderId: 'v1', total: 5, placedAt: new Date('2026-01-01T00:00:00Z') });

    const dead = nextEvent<DeadLetterEvent>(bus, 'deadLetter');
    await bus.publish('orders', { orderId: 'v3' }, { type: 'order.placed', version: 3 });
    expect((await dead).error).toContain('published as version 3, but this service knows versions up to 2');
    await bus.close();
  });

  it('acknowledges other event types on the topic without calling the handler', async () => {
    const bus = await startedBus();
    const handled: string[] = [];
    await bus.subscribe(OrderPlaced, (order) => void handled.push(order.orderId));
    await bus.publish('orders', { orderId: 'c-1' }, { type: 'order.cancelled' });
    await bus.publish(OrderPlaced, { orderId: 'p-1', total: 1, placedAt: new Date() });
    await expect.poll(() => handled).toEqual(['p-1']);
    expect(bus.metrics()).toMatchObject({ handled: 2, failed: 0, deadLettered: 0 });
    await bus.close();
  });

  it('works with any Standard Schema, also an asynchronous one', async () => {
    const evenSchema: StandardSchemaV1<number> = {
      '~standard': {
        version: 1,
        vendor: 'hand-written',
        validate: async (value) => (typeof value === 'number' && value % 2 === 0 ? { value } : { issues: [{ message: 'must be an even number' }] }),
      },
    };
    const Even = defineEvent({ name: 'even', schema: evenSchema });
    const bus = await startedBus();
    const got: number[] = [];
    await bus.subscribe(Even, (value) => void got.push(value));
    await bus.publish(Even, 4);
    const error = (await bus.publish(Even, 3).catch((e: unknown) => e)) as BuslineError;
    expect(error.message).toBe('even v1 payload is invalid (not published): (payload): must be an even number');
    await expect.poll(() => got).toEqual([4]);
    await bus.close();
  });

  it('works with valibot the same way (nested paths included)', async () => {
    const Shipped = defineEvent({ name: 'order.shipped', schema: v.object({ orderId: v.string(), parcel: v.object({ weightKg: v.pipe(v.number(), v.minValue(0)) }) }) });
    const bus = await startedBus();
    const got: string[] = [];
    await bus.subscribe(Shipped, (s) => void got.push(`${s.orderId}:${s.parcel.weightKg}`));
    await bus.publish(Shipped, { orderId: 'o-1', parcel: { weightKg: 2 } });
    const error = (await bus.publish(Shipped, { orderId: 'o-2', parcel: { weightKg: -1 } }).catch((e: unknown) => e)) as PayloadError;
    expect(error.code).toBe(ErrorCode.PayloadInvalid);
    expect(error.issues.map((i) => i.path)).toEqual(['parcel.weightKg']);
    await expect.poll(() => got).toEqual(['o-1:2']);
    await bus.close();
  });

  it('defineEvent refuses a definition that cannot work, naming each problem', () => {
    const bad = () => defineEvent({ name: '', version: 2, schema: {} as StandardSchemaV1, upcast: { 2: () => 1 } });
    expect(bad).toThrow(expect.objectContaining({ code: ErrorCode.ConfigInvalid }));
    expect(bad).toThrow(/name: .*; schema: must be a Standard Schema.*; upcast\.2: upcasters read versions 1 to 1/);
    expect(() => defineEvent({ name: 'x', schema: z.string(), topic: 'bad topic' })).toThrow(expect.objectContaining({ code: ErrorCode.TopicInvalid }));
  });

  it('a topic that is not a string is still TOPIC_INVALID; an object that is no event is CONFIG_INVALID', async () => {
    const bus = await startedBus();
    await expect(bus.publish(undefined as never, 1)).rejects.toMatchObject({ code: ErrorCode.TopicInvalid });
    await expect(bus.subscribe(5 as never, () => undefined)).rejects.toMatchObject({ code: ErrorCode.TopicInvalid });
    await expect(bus.publish({ name: 'x' } as never, 1)).rejects.toMatchObject({ code: ErrorCode.ConfigInvalid, message: expect.stringContaining('defineEvent') });
    await expect(bus.subscribe({ name: 'x' } as never, () => undefined)).rejects.toMatchObject({ code: ErrorCode.ConfigInvalid });
    await bus.close();
  });

  it('refuses the name and version as publish options of a typed event', async () => {
    const bus = await startedBus();
    const error = (await bus
      .publish(OrderPlaced, { orderId: 'o', total: 1, placedAt: new Date() }, { version: 9 } as never)
      .catch((e: unknown) => e)) as BuslineError;
    expect(error.code).toBe(ErrorCode.ConfigInvalid);
    expect(error.message).toContain('"version"');
    await bus.close();
  });
});
