/**
 * Consuming through a broker restart: a single private broker is stopped
 * long enough for kafkajs to give up on the group's consumer and restart it,
 * then started again. The restarted consumer must rejoin as the member it
 * was: joining as a new member, the coordinator (which loaded the group with
 * the old member in it) held the join until the old member's session expired,
 * and nothing was consumed for `sessionTimeoutMs` (30 s) after the broker was
 * back. Within 5 s here (backoff at most `retry.maxRetryTimeMs`, 1 s).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEventBus, type EventBus } from '@busline/core';
import { adapter } from '../src/index.js';
import { PrivateKafkaBroker } from './kafka-broker.js';
import { NO_BROKER, unique, until, withProducerClient } from './helpers.js';

describe.skipIf(NO_BROKER)('kafka: consuming through a broker restart', () => {
  let broker: PrivateKafkaBroker;
  beforeAll(async () => {
    broker = await PrivateKafkaBroker.start('restart-consume');
  }, 180_000);
  afterAll(async () => {
    await broker?.stop();
  });

  it('a consumer kafkajs restarted while the broker was down handles a new event within 5 s of the broker being back', { timeout: 180_000 }, async () => {
    const topic = unique('restart-consume');
    const bus: EventBus = await createEventBus(
      { url: `kafka://${broker.brokers}`, group: unique('g-restart'), logger: false, topics: { [topic]: { partitions: 3 } }, kafka: withProducerClient() },
      { adapter },
    );
    const handled = new Map<number, number>();
    try {
      await bus.subscribe(topic, async (payload) => void handled.set((payload as { i: number }).i, Date.now()));
      await bus.start();
      await bus.publish(topic, { i: 0 }, { aggregateId: 'k' });
      await until(() => handled.has(0), 30_000, 'the first event handled');
      await broker.halt();
      // kafkajs gives the consumer up while no broker answers, and restarts it: the case this test is about.
      await until(() => (bus.metrics().driver.consumerCrashes ?? 0) >= 1, 60_000, 'kafkajs to restart the consumer');
      await broker.resume();
      const readyAt = Date.now();
      await bus.publish(topic, { i: 1 }, { aggregateId: 'k', timeoutMs: 60_000 });
      await until(() => handled.has(1), 60_000, 'the event published after the restart handled');
      expect(handled.get(1)! - readyAt, 'ms from the broker ready to the event handled').toBeLessThan(5_000);
    } finally {
      await bus.close({ timeoutMs: 5_000 });
    }
  });
});
