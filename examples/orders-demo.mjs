// A small order service on the embedded in-memory broker: events carry an
// aggregate id (the order), each order's events are handled in publish order,
// and a handler that fails once is retried. Point BUSLINE_URL at
// nats://127.0.0.1:4222 or kafka://127.0.0.1:9092 to run the same code on a broker.
import { createEventBus } from '@busline/core';

const bus = await createEventBus({
  url: process.env.BUSLINE_URL ?? 'memory://',
  source: 'orders-demo',
  group: 'shipping',
  topics: { 'orders.events': { retentionMs: 24 * 3600_000 } },
  retry: { maxAttempts: 3, initialDelayMs: 50 },
});
bus.on('retry', (e) => console.log(`  retry: ${e.topic} attempt ${e.attempt} failed (${e.error.message}); again in ${e.delayMs} ms`));
bus.on('deadLetter', (e) => console.log(`  dead letter: ${e.error}`));
bus.on('error', (e, ctx) => console.error(`  error in ${ctx}: ${e.message}`));

const orders = ['order-1', 'order-2', 'order-3'];
const steps = ['OrderPlaced', 'OrderPaid', 'OrderShipped'];
const seen = new Map();
let failedOnce = false;
let done;
const finished = new Promise((resolve) => (done = resolve));

await bus.subscribe(
  'orders.events',
  async (payload, { envelope, attempt }) => {
    if (envelope.type === 'OrderPaid' && envelope.aggregateId === 'order-2' && !failedOnce) {
      failedOnce = true;
      throw new Error('payment service briefly unavailable');
    }
    const history = seen.get(envelope.aggregateId) ?? [];
    history.push(envelope.type);
    seen.set(envelope.aggregateId, history);
    console.log(`handled ${envelope.aggregateId} ${envelope.type} (attempt ${attempt}) amount=${payload.amount}`);
    if ([...seen.values()].reduce((n, h) => n + h.length, 0) === orders.length * steps.length) done();
  },
  { concurrency: 8 },
);
await bus.start();

for (const step of steps) {
  await Promise.all(orders.map((aggregateId, i) => bus.publish('orders.events', { amount: (i + 1) * 10 }, { aggregateId, type: step })));
}
await finished;

let ok = true;
for (const [order, history] of seen) {
  const inOrder = history.join() === steps.join();
  ok &&= inOrder;
  console.log(`${order}: ${history.join(' -> ')} ${inOrder ? '(in order)' : '(OUT OF ORDER)'}`);
}
await bus.close();
console.log('metrics', bus.metrics());
process.exit(ok ? 0 : 1);
