/**
 * The core README's snippets for typed events, payload types and typed
 * adapter sections, as written there (compiled by `tsc -b`, never run).
 */
import { createEventBus, defineEvent, type EventPayload } from '@busline/core';
import type {} from '@busline/adapter-nats';
import { z } from 'zod';

// ---- Typed events
export const OrderPlaced = defineEvent({
  name: 'order.placed', // the envelope type
  version: 2, // the envelope version; default 1
  topic: 'orders', // default: the name
  schema: z.object({ orderId: z.string(), total: z.number().nonnegative(), placedAt: z.coerce.date() }),
  // Payloads published as version 1 are brought to version 2 before the schema sees them.
  upcast: { 1: (v1: { orderId: string; amount: number; placedAt: string }) => ({ ...v1, total: v1.amount }) },
});
export type Order = EventPayload<typeof OrderPlaced>; // { orderId: string; total: number; placedAt: Date }

const bus = await createEventBus({ url: 'memory://', group: 'shipping' });
await bus.subscribe(OrderPlaced, async (order, { envelope }) => {
  console.log(order.placedAt.toISOString(), envelope.version); // validated: a Date, whatever version was sent
});
await bus.start();
await bus.publish(OrderPlaced, { orderId: 'o-1', total: 42, placedAt: new Date() }, { aggregateId: 'o-1' });

// ---- Payload types (in a block: its Order is another than the one above)
{
  interface Order { id: string; total: number; placedAt: Date }
  const order = {} as Order;
  // @ts-expect-error a Date field would arrive as a string
  await bus.publish('orders', order);
  await bus.publish('orders', { ...order, placedAt: order.placedAt.toISOString() }); // fine
}

// ---- Configuration: typed adapter sections
const nats = await createEventBus({ url: 'nats://127.0.0.1:4222', nats: { ackMode: 'cumulative' } }); // checked
export { nats };
