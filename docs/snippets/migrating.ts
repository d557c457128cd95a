/**
 * The busline side of docs/migrating.md, region by region as the guide shows
 * it (docs/test/snippets.test.ts checks the guide quotes these regions
 * verbatim). Compiled by `tsc -b`, never run.
 */
import { createEventBus, NonRetryableError, type EventBus } from '@busline/core';
import type {} from '@busline/adapter-kafka';
import type {} from '@busline/adapter-nats';

interface Order {
  orderId: string;
  total: number;
}
declare function ship(order: Order): Promise<void>;
declare function isValid(order: Order): boolean;
declare const order: Order;

export async function connect(): Promise<EventBus> {
  // #region connect
  const bus = await createEventBus({
    url: process.env.BUSLINE_URL ?? 'kafka://127.0.0.1:9092', // or nats://127.0.0.1:4222, memory://
    source: 'orders-service', // CloudEvents source of what this service publishes
    group: 'shipping', // the consumer group of subscriptions that name none
  });
  // #endregion connect
  return bus;
}

export async function publishWithKey(bus: EventBus): Promise<void> {
  // #region publish
  // Resolves once the broker stored it (Kafka acks, JetStream PubAck); rejects with a typed error.
  const { id } = await bus.publish('orders', order, {
    aggregateId: order.orderId, // the ordering key (on Kafka, the record key)
    type: 'order.placed',
    headers: { 'x-tenant': 'acme' }, // your own headers, beside busline's CloudEvents ones
  });
  // #endregion publish
  console.log(id);
}

export async function consumeInGroup(bus: EventBus): Promise<void> {
  // #region consume
  await bus.subscribe<Order>(
    'orders',
    async (order, { envelope, attempt }) => {
      if (!isValid(order)) throw new NonRetryableError('invalid order'); // no retry: straight to orders.dlq
      await ship(order); // returning = ack; throwing = retry with backoff, then orders.dlq
      console.log(envelope.id, envelope.aggregateId, attempt);
    },
    {
      group: 'shipping', // members of one group share the messages
      concurrency: 16, // handlers at once; one key never runs twice at once
      retry: { maxAttempts: 5, initialDelayMs: 200 }, // then the dead-letter topic
    },
  );
  await bus.start(); // subscriptions made before start() join their groups together
  // #endregion consume
}

export async function deadLetters(bus: EventBus): Promise<void> {
  // #region dead-letters
  bus.on('deadLetter', (e) => console.warn(`dead-lettered ${e.envelope?.id} from ${e.topic}: ${e.error}`));
  await bus.subscribeEnvelope<Order>(
    'orders.dlq',
    (letter) => console.log(letter.headers['busline-dlq-error'], letter.headers['busline-dlq-attempts'], letter.payload),
    { group: 'dlq-inspector' },
  );
  // #endregion dead-letters
}

export function gracefulShutdown(bus: EventBus): void {
  // #region shutdown
  const stop = async () => {
    // Stops intake, lets running handlers finish (up to 10 s), flushes acks/commits, disconnects.
    await bus.close({ timeoutMs: 10_000 });
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // #endregion shutdown
}

// #region nest
// A NestJS provider (add @Injectable() and list it in a module's providers):
// Nest calls these lifecycle methods by name; `app.enableShutdownHooks()` makes
// SIGTERM reach onApplicationShutdown.
export class OrdersBus {
  private bus!: EventBus;

  async onModuleInit(): Promise<void> {
    this.bus = await createEventBus({ url: process.env.BUSLINE_URL ?? 'kafka://127.0.0.1:9092', group: 'shipping' });
    await this.bus.subscribe<Order>('orders', (order) => ship(order));
    await this.bus.start();
  }

  publishOrder(order: Order): Promise<unknown> {
    return this.bus.publish('orders', order, { aggregateId: order.orderId, type: 'order.placed' });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.bus.close({ timeoutMs: 10_000 });
  }
}
// #endregion nest

export async function foreignRecords(bus: EventBus): Promise<void> {
  // #region foreign
  // Records other producers write without an envelope (plain JSON, with or without a key):
  await bus.subscribe('legacy-orders', (payload, { envelope }) => console.log(envelope.aggregateId, payload), {
    group: 'shipping',
    foreign: true, // id, key, time and type come from the broker's own metadata
  });
  // #endregion foreign
}
