/**
 * Pre-subscription: every topic subscribed before start() is consumed by one
 * group consumer that subscribed them all at once (no restart); a topic
 * added after start works through one controlled restart.
 */
import { describe, expect, it } from 'vitest';
import type { KafkaDriver } from '../src/index.js';
import { NO_BROKER, kafkaFixture, unique, until } from './helpers.js';

describe.skipIf(NO_BROKER)('kafka pre-subscription', () => {
  const f = kafkaFixture();

  it('five topics subscribed before start all receive messages; a sixth added after start works via one restart', async () => {
    const group = unique('g-pre');
    const five = Array.from({ length: 5 }, (_, i) => unique(`pre${i}`));
    f.topics.push(...five);
    const consumer = await f.bus({ group });
    const publisher = await f.bus({ group: unique('g-pub') });
    const got = new Map<string, Set<string>>();
    for (const topic of five) {
      got.set(topic, new Set());
      await consumer.subscribe(topic, async (_p, ctx) => void got.get(ctx.topic)!.add(ctx.envelope.id));
    }
    await consumer.start();
    await publisher.start();
    const driver = consumer.driver as KafkaDriver;
    expect(driver.consumerOf(group)!.snapshot().topics).toEqual([...five].sort());

    const sent = new Map<string, string[]>();
    for (const topic of five) {
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) ids.push((await publisher.publish(topic, { topic, i }, { aggregateId: `k-${i}` })).id);
      sent.set(topic, ids);
    }
    await until(() => five.every((t) => sent.get(t)!.every((id) => got.get(t)!.has(id))), 60_000, () =>
      five.map((t) => `${t}: ${got.get(t)!.size}/10`).join(', '),
    );
    expect(consumer.metrics().driver.consumerRestarts ?? 0, 'no restart for planned topics').toBe(0);

    const sixth = unique('pre5');
    f.topics.push(sixth);
    got.set(sixth, new Set());
    await consumer.subscribe(sixth, async (_p, ctx) => void got.get(ctx.topic)!.add(ctx.envelope.id));
    expect(consumer.metrics().driver.consumerRestarts, 'one controlled restart').toBe(1);
    expect(driver.consumerOf(group)!.snapshot().topics).toEqual([...five, sixth].sort());
    const more: [string, string][] = [];
    for (const topic of [...five, sixth]) more.push([topic, (await publisher.publish(topic, { after: true }, { aggregateId: 'k-after' })).id]);
    await until(() => more.every(([t, id]) => got.get(t)!.has(id)), 60_000, 'every topic after the restart');
  });
});
