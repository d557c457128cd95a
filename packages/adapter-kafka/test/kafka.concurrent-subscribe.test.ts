/**
 * Several buses subscribe, at the same moment, groups of their own to a topic
 * none of them has created yet. One creates it; the others find it exists
 * (TOPIC_ALREADY_EXISTS, or a describe that sees it half made) while the
 * broker may still answer UNKNOWN_TOPIC_OR_PARTITION for it. Every subscribe
 * must resolve, and every group must receive what is published afterwards.
 * Rounds: BUSLINE_KAFKA_SUBSCRIBE_ROUNDS (default 8).
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, type BuslineError } from '@busline/core';
import { NO_BROKER, createTopic, kafkaFixture, unique, until } from './helpers.js';

const ROUNDS = Number(process.env.BUSLINE_KAFKA_SUBSCRIBE_ROUNDS ?? 8);
const BUSES = 4;
const GROUPS_PER_BUS = 3;

describe.skipIf(NO_BROKER)('kafka: concurrent first subscribes to a new topic', () => {
  const f = kafkaFixture();

  it(`${ROUNDS} rounds of ${BUSES * GROUPS_PER_BUS} groups subscribing at once on ${BUSES} buses: all resolve and all receive`, async () => {
    const buses = await Promise.all(Array.from({ length: BUSES }, () => f.bus({ logger: false })));
    const publisher = await f.bus({ logger: false });
    await Promise.all([...buses, publisher].map((b) => b.start()));
    for (let round = 0; round < ROUNDS; round++) {
      const topic = unique(`first-sub${round}`);
      f.topics.push(topic);
      const got: Set<string>[] = [];
      const outcomes = await Promise.allSettled(
        buses.flatMap((bus) =>
          Array.from({ length: GROUPS_PER_BUS }, () => {
            const seen = new Set<string>();
            got.push(seen);
            return bus.subscribe(topic, (_p, ctx) => void seen.add(ctx.envelope.id), { group: unique('g-first') });
          }),
        ),
      );
      const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [String(o.reason)] : []));
      expect(failures, `round ${round}: subscribes that failed`).toEqual([]);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await publisher.publish(topic, { i }, { aggregateId: `k-${i}` })).id);
      await until(() => got.every((s) => ids.every((id) => s.has(id))), 30_000, () => `round ${round}: ${got.map((s) => s.size).join(',')} of 5`);
    }
  });

  it('a subscribe waits a bounded time for a topic the broker does not know yet, then says it does not exist', async () => {
    const bus = await f.bus({ topicStrategy: 'skip', logger: false });
    await bus.start();
    const late = unique('late');
    f.topics.push(late);
    const got = new Set<string>();
    const subscribed = bus.subscribe(late, (_p, ctx) => void got.add(ctx.envelope.id), { group: unique('g-late') });
    await new Promise((resolve) => setTimeout(resolve, 300)); // the broker answers "unknown topic" meanwhile
    await createTopic(f.admin, { topic: late, numPartitions: 2, replicationFactor: 1 });
    await subscribed;
    const id = (await bus.publish(late, { late: true }, { aggregateId: 'k' })).id;
    await until(() => got.has(id), 30_000, 'the message published to the late topic');

    const started = Date.now();
    const error = (await bus.subscribe(unique('never'), () => undefined, { group: unique('g-never') }).catch((e: unknown) => e)) as BuslineError;
    expect(error.code).toBe(ErrorCode.TopicNotFound);
    expect(error.message).toMatch(/does not exist/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(4_000);
  });
});
