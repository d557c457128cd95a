/**
 * Publishing through broker restarts (default config, idempotent producer):
 * 10,000 publishes with many in flight while a private broker is restarted
 * twice. A publish may fail (timeout, broker unavailable), but every one that
 * resolved is in the log exactly once, the producer works again afterwards
 * (no wedge on "out of order sequence number"), and each key's stored records
 * are in publish order. Rounds: BUSLINE_KAFKA_RESTART_ROUNDS (default 1; the
 * issue's stress figure is 20).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import kafkajs from 'kafkajs';
import { createEventBus, type EventBus } from '@busline/core';
import { adapter } from '../src/index.js';
import { PrivateKafkaBroker } from './kafka-broker.js';
import { NO_BROKER, unique, until, withProducerClient } from './helpers.js';

const ROUNDS = Number(process.env.BUSLINE_KAFKA_RESTART_ROUNDS ?? 1);
const COUNT = 10_000;
const KEYS = 20;

/** Every record of `topic`: its ce_id and the `i` of its payload, by key, in log order. */
async function readAll(brokers: string, topic: string): Promise<{ ids: Map<string, number>; byKey: Map<string, number[]> }> {
  const kafka = new kafkajs.Kafka({ brokers: [brokers], logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const end = (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0);
  await admin.disconnect();
  const ids = new Map<string, number>();
  const byKey = new Map<string, number[]>();
  let total = 0;
  const reader = kafka.consumer({ groupId: unique('g-reader'), maxWaitTimeInMs: 100 });
  await reader.connect();
  await reader.subscribe({ topic, fromBeginning: true });
  await reader.run({
    eachMessage: async ({ message }) => {
      total++;
      const id = String(message.headers?.ce_id);
      ids.set(id, (ids.get(id) ?? 0) + 1);
      const key = String(message.key);
      const list = byKey.get(key) ?? [];
      list.push((JSON.parse(String(message.value)) as { i: number }).i);
      byKey.set(key, list);
    },
  });
  await until(() => total >= end, 120_000, () => `read ${total} of ${end} records`);
  await reader.disconnect();
  return { ids, byKey };
}

describe.skipIf(NO_BROKER)('kafka: publishing through broker restarts', () => {
  let broker: PrivateKafkaBroker;
  beforeAll(async () => {
    broker = await PrivateKafkaBroker.start('restart-publish');
  }, 180_000);
  afterAll(async () => {
    await broker?.stop();
  });
  /** A bus on the private broker, `topic` with 3 partitions. */
  const openBus = (topic: string): Promise<EventBus> =>
    createEventBus({ url: `kafka://${broker.brokers}`, logger: false, topics: { [topic]: { partitions: 3 } }, kafka: withProducerClient() }, { adapter });

  it('a publish made while the broker is down resolves within 3 s of the broker being back (backoff at most 1 s)', { timeout: 120_000 }, async () => {
    const topic = unique('restart-resume');
    const bus = await openBus(topic);
    try {
      await bus.start();
      await bus.publish(topic, { i: 0 }, { aggregateId: 'k' });
      await broker.halt();
      let resolvedAt = 0;
      const publishing = bus.publish(topic, { i: 1 }, { aggregateId: 'k', timeoutMs: 60_000 }).then(() => (resolvedAt = Date.now()));
      // A 12 s outage: a backoff doubling to 10 s (the old cap) tries at 6.3, 12.7 and 22.7 s, so it idled ~8 s after the broker was back.
      await new Promise((resolveOutage) => setTimeout(resolveOutage, 12_000));
      expect(resolvedAt, 'resolved while the broker was down').toBe(0);
      await broker.resume();
      const readyAt = Date.now();
      await publishing;
      expect(resolvedAt - readyAt, 'ms from the broker ready to the publish resolved').toBeLessThan(3_000);
    } finally {
      await bus.close({ timeoutMs: 5_000 });
    }
  });

  for (let round = 1; round <= ROUNDS; round++) {
    it(`round ${round}: 10,000 publishes, the broker restarted twice: every resolved publish stored once, keys in order, the producer usable after`, { timeout: 300_000 }, async () => {
      const topic = unique('restart-pub');
      const bus = await openBus(topic);
      try {
        await bus.start();
        let next = 0;
        const resolved: string[] = [];
        const failed: string[] = [];
        // 8 lanes of 256 in flight each, like a busy service; the restarts land while they run.
        const lane = async () => {
          while (next < COUNT) {
            const chunk = Array.from({ length: Math.min(256, COUNT - next) }, () => next++);
            const results = await Promise.allSettled(chunk.map((i) => bus.publish(topic, { i }, { aggregateId: `k${i % KEYS}`, timeoutMs: 60_000 })));
            for (const r of results) {
              if (r.status === 'fulfilled') resolved.push(r.value.id);
              else failed.push(String((r.reason as Error).message));
            }
          }
        };
        const lanes = Promise.all(Array.from({ length: 8 }, lane));
        await until(() => next >= COUNT / 4, 120_000, 'a quarter published');
        await broker.restart();
        await until(() => next >= COUNT / 2, 120_000, 'half published');
        await broker.restart();
        await lanes;
        // The producer is usable after the restarts (a wedged one refuses every publish).
        const after = await bus.publish(topic, { i: COUNT }, { aggregateId: 'after' });
        resolved.push(after.id);
        const { ids, byKey } = await readAll(broker.brokers, topic);
        expect(resolved.filter((id) => !ids.has(id)).length, `resolved but not stored (${failed.length} failed: ${failed.slice(0, 2).join(' | ')})`).toBe(0);
        expect([...ids.entries()].filter(([, n]) => n > 1).length, 'stored more than once').toBe(0);
        for (const [key, seq] of byKey) expect(seq.every((v, j) => j === 0 || v > seq[j - 1]!), `key ${key} stored in publish order`).toBe(true);
      } finally {
        await bus.close({ timeoutMs: 5_000 });
      }
    });
  }
});
