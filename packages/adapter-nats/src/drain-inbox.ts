import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { clientInternals } from './wire.js';

/**
 * How a pull loop's inbox is ended when it stops (PullConsumer.stop) without
 * losing messages already on their way. Kept apart because it reaches into
 * the client's subscription internals (see "Client internals" in the README).
 */

interface SubscriptionInternals {
  protocol?: { unsub?(sub: unknown): void; subscriptions?: { cancel?(sub: unknown): void } };
}

/**
 * Ends an inbox's interest without losing what the server already sent to it.
 * The server checks interest when it hands a message to a waiting pull
 * request, but that runs beside the connection that processes our UNSUB: a
 * message can be queued to us just after the PONG of the UNSUB's round trip.
 * So the UNSUB is sent first, the subscription keeps receiving through two
 * round trips, and only then is it removed locally. (The client's own
 * `drain()` removes it after one round trip, which under load loses the odd
 * message until the ack wait.) Falls back to `drain()` if the client's
 * internals are not as expected.
 */
export async function drainInbox(nc: NatsConnection, sub: Subscription): Promise<void> {
  const protocol = clientInternals ? (sub as unknown as SubscriptionInternals).protocol : undefined;
  if (typeof protocol?.unsub !== 'function' || typeof protocol.subscriptions?.cancel !== 'function') {
    await sub.drain().catch(() => undefined);
    return;
  }
  try {
    protocol.unsub(sub);
    await nc.flush();
    await nc.flush();
  } catch {
    // disconnected or closed: nothing more will arrive on this connection anyway
  }
  protocol.subscriptions.cancel(sub);
}
