/**
 * Compile-time tests (built by `tsc -b`, never run): typed events, payloads
 * typed by interfaces and classes, and adapter config sections typed by the
 * adapters' augmentation of AdapterConfigs. Each `@ts-expect-error` fails the
 * build if the line below it compiles.
 */
import { createEventBus, defineEvent, type EventBus, type EventPayload, type Payload } from '@busline/core';
import type {} from '@busline/adapter-memory';
import type {} from '@busline/adapter-nats';
import type {} from '@busline/adapter-kafka';
import { expectTypeOf } from 'vitest';
import { z } from 'zod';

declare const bus: EventBus;

// ---- payloads typed by interfaces and classes --------------------------------

interface Order {
  id: string;
  total: number;
  note?: string;
  lines: { sku: string; qty: number }[];
}
declare const order: Order;
void bus.publish('orders', order);

class Shipment {
  constructor(
    readonly orderId: string,
    private readonly secret: string,
  ) {}
  label(): string {
    return `${this.orderId}/${this.secret}`;
  }
}
void bus.publish('shipments', new Shipment('o-1', 'x'));
void bus.publish('raw', new Uint8Array([1, 2]));
void bus.publish('n', 42);
void bus.publish('json', { a: [1, 'b', null] } as Payload);
void bus.publishBatch('orders', [{ payload: order, aggregateId: order.id }]);
void bus.publishBatch('mixed', [{ payload: { small: true } }, { payload: new Uint8Array(4) }, { payload: order }]);
// @ts-expect-error a Date field in a batch item
void bus.publishBatch('orders', [{ payload: order }, { payload: dated }]);

interface Dated {
  id: string;
  at: Date;
}
declare const dated: Dated;
// @ts-expect-error a Date field would arrive as a string
void bus.publish('orders', dated);
// @ts-expect-error an optional Date field too
void bus.publish('orders', { id: 'x', at: undefined } as { id: string; at?: Date | null });
void bus.publish('orders', { pair: ['a', 1] } as { pair: readonly [string, number] });
void bus.publish('orders', { byId: { a: order } } as { byId: Record<string, Order> });
void bus.publish('orders', null as Order | null);
// @ts-expect-error bytes inside JSON
void bus.publish('orders', { image: new Uint8Array(1) });
// @ts-expect-error a bigint is not JSON
void bus.publish('orders', { n: 1n });
// @ts-expect-error undefined is not a payload
void bus.publish('orders', undefined);
// @ts-expect-error unknown publish option (did you mean aggregateId?)
void bus.publish('orders', order, { key: 'k' });

// ---- typed events -------------------------------------------------------------

const OrderPlaced = defineEvent({
  name: 'order.placed',
  version: 2,
  topic: 'orders',
  schema: z.object({ orderId: z.string(), total: z.number(), placedAt: z.coerce.date() }),
  upcast: { 1: (v1: { orderId: string; amount: number }) => ({ ...v1, total: v1.amount }) },
});
expectTypeOf<EventPayload<typeof OrderPlaced>>().toEqualTypeOf<{ orderId: string; total: number; placedAt: Date }>();

void bus.publish(OrderPlaced, { orderId: 'o-1', total: 3, placedAt: new Date() });
// @ts-expect-error total must be a number
void bus.publish(OrderPlaced, { orderId: 'o-1', total: '3', placedAt: new Date() });
// @ts-expect-error the version comes from the definition
void bus.publish(OrderPlaced, { orderId: 'o-1', total: 3, placedAt: 'now' }, { version: 3 });

void bus.subscribe(OrderPlaced, (payload, context) => {
  expectTypeOf(payload).toEqualTypeOf<{ orderId: string; total: number; placedAt: Date }>();
  expectTypeOf(context.envelope.id).toBeString();
});
// Without an event the payload type is asserted by the caller (documented as unchecked).
void bus.subscribe<Order>('orders', (payload) => expectTypeOf(payload).toEqualTypeOf<Order>());
void bus.subscribe('orders', (payload) => expectTypeOf(payload).toEqualTypeOf<Payload>());

// ---- adapter config sections ---------------------------------------------------

void createEventBus({ url: 'nats://127.0.0.1:4222', nats: { ackMode: 'cumulative', tls: {} } });
// @ts-expect-error not an ack mode
void createEventBus({ url: 'nats://127.0.0.1:4222', nats: { ackMode: 'x' } });
// @ts-expect-error unknown nats option
void createEventBus({ url: 'nats://127.0.0.1:4222', nats: { pullBatchSize: 5 } });
void createEventBus({ url: 'kafka://127.0.0.1:9092', kafka: { clientId: 'orders', sasl: { mechanism: 'plain', username: 'u', password: 'p' } } });
// @ts-expect-error not a SASL mechanism
void createEventBus({ url: 'kafka://127.0.0.1:9092', kafka: { sasl: { mechanism: 'gssapi', username: 'u', password: 'p' } } });
void createEventBus({ type: 'memory', memory: { broker: 'test' } });
// @ts-expect-error broker is a name
void createEventBus({ type: 'memory', memory: { broker: 1 } });
