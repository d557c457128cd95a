/**
 * A burst of 5,000 concurrent publishes to a topic created on first use,
 * while members of a group on it start and close and the publishing bus
 * itself subscribes mid-burst (a consumer restart in the same client): every
 * publish that resolved is in the log exactly once (read back with a plain
 * kafkajs consumer), and none is refused (the producer never wedges on
 * "out of order sequence number"). Rounds: BUSLINE_KAFKA_BURST_ROUNDS
 * (default 5; the stress figure is 20).
 */
import { describe, expect, it } from 'vitest';
import kafkajs from 'kafkajs';
import type { EventBus } from '@busline/core';
import { BROKERS, NO_BROKER, kafkaBus, kafkaFixture, unique, until } from './helpers.js';

const ROUNDS = Number(process.env.BUSLINE_KAFKA_BURST_ROUNDS ?? 5);
const COUNT = 5_000;

/** How many times each ce_id is stored in `topic`, read until `expected` records arrived. */
async function storedIds(topic: string, expected: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  let total = 0;
  const reader = new kafkajs.Kafka({ brokers: BROKERS.split(','), logLevel: kafkajs.logLevel.NOTHING }).consumer({ groupId: unique('g-reader'), maxWaitTimeInMs: 100 });
  await reader.connect();
  await reader.subscribe({ topic, fromBeginning: true });
  await reader.run({
    eachMessage: async ({ message }) => {
      total++;
      const id = String(message.headers?.ce_id ?? message.headers?.['ce-id']);
      seen.set(id, (seen.get(id) ?? 0) + 1);
    },
  });
  await until(() => total >= expected, 60_000, () => `read ${total} of ${expected} records of ${topic}`);
  // Anything stored beyond what resolved (a duplicate) arrives right behind: read until the log end.
  const admin = new kafkajs.Kafka({ brokers: BROKERS.split(','), logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  const end = (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0);
  await admin.disconnect();
  await until(() => total >= end, 60_000, () => `read ${total} of the ${end} records in the log`);
  await reader.disconnect();
  return seen;
}

describe.skipIf(NO_BROKER)('kafka: a burst of concurrent publishes to a new topic', () => {
  const f = kafkaFixture();

  for (let round = 1; round <= ROUNDS; round++) {
    it(`round ${round}: 5,000 at once while group members start and close: every resolved publish stored exactly once`, async () => {
      const topic = unique('burst');
      f.topics.push(topic);
      const bus = await f.bus();
      await bus.start();
      const members: EventBus[] = [];
      for (let m = 0; m < 2; m++) {
        const member = await kafkaBus({ group: 'burst-members', logger: false });
        await member.subscribe(topic, () => undefined);
        members.push(member);
      }
      const starting = members.map((m) => m.start().catch(() => undefined));
      let closing: Promise<unknown> = Promise.resolve();
      const results = await Promise.allSettled(
        Array.from({ length: COUNT }, (_, i) => {
          if (i === COUNT / 5) void bus.subscribe(topic, () => undefined, { group: 'burst-self' }).catch(() => undefined);
          if (i === COUNT / 2) closing = Promise.all(members.map((m) => m.close({ timeoutMs: 5_000 })));
          return bus.publish(topic, { i }, { aggregateId: `k${i % 50}` });
        }),
      );
      await Promise.allSettled(starting);
      await closing;
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => String((r.reason as Error).message));
      expect(refused.slice(0, 3), 'refused publishes').toEqual([]);
      const ids = results.map((r) => (r as PromiseFulfilledResult<{ id: string }>).value.id);
      const stored = await storedIds(topic, ids.length);
      expect(ids.filter((id) => !stored.has(id)).length, 'resolved but not stored').toBe(0);
      expect([...stored.values()].filter((n) => n > 1).length, 'stored more than once').toBe(0);
      expect(stored.size).toBe(COUNT);
    });
  }
});
