/**
 * Dead-letter inspection and replay. A payment handler refuses currencies it
 * does not support yet (NonRetryableError: no retries, straight to
 * `payments.dlq`). An operator's tool reads the dead letters with the error
 * busline recorded in their headers; once the fix is deployed, it republishes
 * each original to the topic it came from, where it is handled.
 *
 *   pnpm build && node examples/dist/dead-letter-replay.js
 */
import { createEventBus, DeadLetterHeader, NonRetryableError, type Envelope } from '@busline/core';

interface Payment {
  amount: number;
  currency: string;
}

const bus = await createEventBus({ url: process.env.BUSLINE_URL ?? 'memory://', source: 'payments', group: 'billing' });
bus.on('error', (error, context) => console.error(`error in ${context}: ${error.message}`));

// The "bug": USD is refused until the fix is deployed (below).
const supported = new Set(['EUR']);
const handled = new Map<string, () => void>();
const whenHandled = (order: string) => new Promise<void>((resolve) => handled.set(order, resolve));

await bus.subscribe<Payment>('payments', async (payment, { envelope }) => {
  if (!supported.has(payment.currency)) throw new NonRetryableError(`currency ${payment.currency} is not supported`);
  console.log(`handled ${envelope.aggregateId}: ${payment.amount} ${payment.currency}`);
  handled.get(envelope.aggregateId ?? '')?.();
});

// The operator's side: a group of its own on the dead-letter topic. It sees the
// envelope as written (payload, key, type) plus busline's `busline-dlq-*` headers.
const deadLetters: Envelope<Payment>[] = [];
let deadLettered!: () => void;
const firstDeadLetter = new Promise<void>((resolve) => (deadLettered = resolve));
await bus.subscribeEnvelope<Payment>(
  'payments.dlq',
  (letter) => {
    const h = letter.headers;
    console.log(
      `dead letter ${letter.aggregateId} from ${h[DeadLetterHeader.topic]} (group ${h[DeadLetterHeader.group]}): ` +
        `${h[DeadLetterHeader.errorCode] ?? 'handler error'} "${h[DeadLetterHeader.error]}" after ${h[DeadLetterHeader.attempts]} attempt(s), ` +
        `original event ${h[DeadLetterHeader.originalId]}`,
    );
    deadLetters.push(letter);
    deadLettered();
  },
  { group: 'dlq-inspector' },
);
await bus.start();

await bus.publish('payments', { amount: 10, currency: 'EUR' }, { aggregateId: 'order-1', type: 'PaymentRequested' });
const order2 = whenHandled('order-2');
await bus.publish('payments', { amount: 25, currency: 'USD' }, { aggregateId: 'order-2', type: 'PaymentRequested' });
await firstDeadLetter;

supported.add('USD'); // the fix is deployed

for (const letter of deadLetters) {
  // Republished as a new event (a fresh id: brokers that dedupe by id would drop
  // the original id within their window), pointing at the original through
  // causationId. The `busline-dlq-*` headers are not copied: they are busline's
  // own, and the replayed event is no dead letter.
  const original = letter.headers[DeadLetterHeader.topic] ?? 'payments';
  await bus.publish(original, letter.payload, {
    aggregateId: letter.aggregateId,
    type: letter.type,
    version: letter.version,
    correlationId: letter.correlationId,
    causationId: letter.headers[DeadLetterHeader.originalId] ?? letter.id,
  });
  console.log(`replayed ${letter.aggregateId} to ${original}`);
}

await order2;
await bus.close();
console.log('every dead letter replayed and handled');
