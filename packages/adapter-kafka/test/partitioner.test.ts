/**
 * One aggregate always lands on one partition, the one the Java client
 * would choose: toPositive(murmur2(key)) % partitions. The hashes are the
 * vectors of Kafka's own UtilsTest.testMurmur2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import kafkajs, { type Admin } from 'kafkajs';
import kafkaTs from 'kafka-ts';
import type { EventBus } from '@busline/core';
import { NO_BROKER, kafkaBus, newAdmin, unique } from './helpers.js';

/** key → Utils.murmur2(key.getBytes()) in the Java client. */
const JAVA_MURMUR2: [string, number][] = [
  ['21', -973932308],
  ['foobar', -790332482],
  ['a-little-bit-long-string', -985981536],
  ['a-little-bit-longer-string', -1486304829],
  ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
  ['abc', 479470107],
];

const javaPartition = (hash: number, partitions: number) => (hash & 0x7fffffff) % partitions;

describe('partitioner agrees with the Java client', () => {
  it('kafkajs DefaultPartitioner (the one the producer uses) picks the Java partition for known murmur2 vectors', () => {
    const partitioner = kafkajs.Partitioners.DefaultPartitioner();
    for (const partitions of [1, 2, 3, 7, 12, 100]) {
      const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({ partitionId: i, leader: 0 }));
      for (const [key, hash] of JAVA_MURMUR2) {
        const chosen = partitioner({ topic: 't', partitionMetadata: partitionMetadata as never, message: { key, value: null } });
        expect(chosen, `${key} with ${partitions} partitions`).toBe(javaPartition(hash, partitions));
      }
    }
  });

  it('kafka-ts defaultPartitioner (the kafka-ts producer uses it) picks the Java partition for the same vectors', () => {
    for (const partitions of [1, 2, 3, 7, 12, 100]) {
      const metadata = { getTopicPartitions: () => ({ t: Array.from({ length: partitions }, (_, i) => i) }) };
      const partition = kafkaTs.defaultPartitioner({ metadata } as never);
      for (const [key, hash] of JAVA_MURMUR2) {
        expect(partition({ topic: 't', key, value: null }), `${key} with ${partitions} partitions`).toBe(javaPartition(hash, partitions));
      }
    }
  });

  describe.skipIf(NO_BROKER)('on the broker', () => {
    let bus: EventBus;
    let admin: Admin;
    const topic = unique('partitioner');

    beforeAll(async () => {
      admin = newAdmin();
      await admin.connect();
      bus = await kafkaBus({ topics: { [topic]: { partitions: 7 } } });
      await bus.start();
    });

    afterAll(async () => {
      await bus?.close();
      await admin?.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin?.disconnect();
    });

    /** High watermarks; retried while a just-created topic's leaders settle (NOT_LEADER for a moment on KRaft). */
    const offsets = async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await admin.fetchTopicOffsets(topic);
        } catch (error) {
          if (attempt >= 50) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    };

    it('a published aggregate id lands on the partition Java computes', async () => {
      for (const [key, hash] of JAVA_MURMUR2) {
        const before = await offsets();
        await bus.publish(topic, { key }, { aggregateId: key });
        const after = await offsets();
        const grew = after.filter((p) => Number(p.high) > Number(before.find((b) => b.partition === p.partition)!.high)).map((p) => p.partition);
        expect(grew, `partition of ${key}`).toEqual([javaPartition(hash, 7)]);
      }
    });
  });
});
