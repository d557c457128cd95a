/**
 * deliveryId on the driver contract: `partition:offset`, the same on every
 * delivery of one record (core collapses a redelivered copy by it).
 */
import { describe, expect, it } from 'vitest';
import { NO_DRIVER_HOOKS, type DeliveredMessage, type DriverSubscription } from '@busline/core';
import { kafkaConfigSchema, KafkaDriver } from '../src/index.js';
import { BROKERS, NO_BROKER, kafkaFixture, unique, until } from './helpers.js';

describe.skipIf(NO_BROKER)('kafka deliveryId', () => {
  const f = kafkaFixture();

  it('is partition:offset on every delivered record and equal on its redelivery', async () => {
    const topic = unique('delivery-id');
    const group = unique('g-delivery-id');
    f.topics.push(topic);
    const driver = new KafkaDriver(kafkaConfigSchema.parse({ brokers: BROKERS.split(','), consumer: { commitIntervalMs: 100 } }));
    await driver.connect({ hooks: NO_DRIVER_HOOKS, plannedConsumers: [] });
    try {
      await driver.createTopic(topic, { persistence: 'persistent', partitions: 2 });
      const messages = Array.from({ length: 6 }, (_, i) => ({ key: `k-${i}`, headers: { 'ce-id': `id-${i}` }, body: new TextEncoder().encode(String(i)) }));
      expect(await driver.publish(topic, messages, { timeoutMs: 10_000, topic: { persistence: 'persistent' } })).toEqual(messages.map(() => undefined));
      const spec = { topic, group, persistence: 'persistent' as const, maxInFlight: 100, startFrom: 'earliest' as const };

      // First round: ack everything except id-0, which is nacked (left for the next owner).
      const first: DeliveredMessage[] = [];
      let sub: DriverSubscription = await driver.subscribe(spec, {
        deliver: (batch) => {
          for (const m of batch) {
            first.push(m);
            if (m.headers['ce-id'] === 'id-0') m.nack(0);
            else m.ack();
          }
        },
      });
      await until(() => first.length === 6, 30_000, () => `6 deliveries, got ${first.length}`);
      await sub.stop();
      await sub.close();
      // Where each record is, by the raw kafkajs view, per partition in offset order.
      const perPartition = new Map<string, number>();
      for (const m of first) {
        expect(m.deliveryId, `deliveryId of ${m.headers['ce-id']}`).toMatch(/^\d+:\d+$/);
        const [partition, offset] = String(m.deliveryId).split(':').map(Number) as [number, number];
        // Offsets of one partition are consecutive from 0 in delivery order.
        expect(offset).toBe(perPartition.get(String(partition)) ?? 0);
        perPartition.set(String(partition), offset + 1);
      }
      expect(new Set(first.map((m) => m.deliveryId)).size).toBe(6);
      const idOf = first.find((m) => m.headers['ce-id'] === 'id-0')!.deliveryId;

      // Second round, same group: id-0 (uncommitted) comes again with the same deliveryId.
      const second: DeliveredMessage[] = [];
      sub = await driver.subscribe(spec, {
        deliver: (batch) => {
          for (const m of batch) {
            second.push(m);
            m.ack();
          }
        },
      });
      await until(() => second.some((m) => m.headers['ce-id'] === 'id-0'), 30_000, 'id-0 redelivered');
      expect(second.find((m) => m.headers['ce-id'] === 'id-0')!.deliveryId).toBe(idOf);
      for (const m of second) expect(m.deliveryId).toBe(first.find((x) => x.headers['ce-id'] === m.headers['ce-id'])!.deliveryId);
      await sub.stop();
      await sub.close();
    } finally {
      await driver.close();
    }
  });
});
