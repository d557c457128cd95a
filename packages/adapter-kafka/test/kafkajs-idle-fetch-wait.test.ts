/**
 * The idle long-poll (src/kafkajs-idle-fetch-wait.ts) on a real broker, with a
 * plain kafkajs consumer whose member registers an idle wait:
 * - idle, it fetches about once per idle wait, not once per maxWaitTime;
 * - a record published during the idle long poll is answered at once;
 * - while a partition is paused it keeps the short wait (a resumed partition
 *   must not wait for a long poll it is not part of), and resumed, its
 *   records arrive promptly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import kafkajs, { type Consumer, type Producer } from 'kafkajs';
import { applyKafkajsIdleFetchWait, registerIdleFetchWait } from '../src/kafkajs-idle-fetch-wait.js';
import { BROKERS, NO_BROKER, createTopic, newAdmin, unique, until } from './helpers.js';

const IDLE_WAIT = 3_000;
const SHORT_WAIT = 100;

describe.skipIf(NO_BROKER)('kafkajs idle fetch wait', () => {
  const topic = unique('idle-fetch');
  const group = unique('g-idle-fetch');
  const admin = newAdmin();
  const kafka = new kafkajs.Kafka({ brokers: BROKERS.split(','), clientId: 'idle-fetch-test', logLevel: kafkajs.logLevel.NOTHING });
  let consumer: Consumer;
  let producer: Producer;
  const fetches: { at: number; duration: number }[] = [];
  const received: { partition: number; at: number }[] = [];

  beforeAll(async () => {
    expect(applyKafkajsIdleFetchWait()).toBe(true);
    await admin.connect();
    await createTopic(admin, { topic, numPartitions: 2 });
    producer = kafka.producer();
    await producer.connect();
    consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: SHORT_WAIT });
    let unregister: (() => void) | undefined;
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      unregister?.();
      unregister = registerIdleFetchWait(group, payload.memberId, IDLE_WAIT);
    });
    consumer.on(consumer.events.FETCH, ({ payload }) => fetches.push({ at: performance.now(), duration: payload.duration }));
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({ eachMessage: async ({ partition }) => void received.push({ partition, at: performance.now() }) });
    await until(() => fetches.length > 0, 30_000, 'a first fetch');
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled([consumer?.disconnect(), producer?.disconnect()]);
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  });

  /** Fetches that ended in the next `ms`. */
  async function fetchesOver(ms: number): Promise<{ at: number; duration: number }[]> {
    const from = performance.now();
    const seen = fetches.length;
    await new Promise((resolve) => setTimeout(resolve, ms));
    return fetches.slice(seen).filter((f) => f.at >= from);
  }

  it('idle, it long-polls the idle wait (about 1 fetch per 3 s, not 30 at 100 ms)', async () => {
    await until(() => fetches.some((f) => f.duration >= IDLE_WAIT - 500), 30_000, 'an idle-length fetch');
    const window = await fetchesOver(6_000);
    expect(window.length).toBeLessThanOrEqual(4);
  }, 60_000);

  it('a record published during the idle long poll is handled at once', async () => {
    await until(() => fetches.length > 0 && performance.now() - fetches[fetches.length - 1]!.at < 1_000, 30_000, 'a fresh long poll');
    const sentAt = performance.now();
    await producer.send({ topic, messages: [{ value: 'wake', partition: 1 }] });
    await until(() => received.some((r) => r.at >= sentAt), 30_000, 'the record');
    expect(received.find((r) => r.at >= sentAt)!.at - sentAt).toBeLessThan(IDLE_WAIT / 2);
  }, 60_000);

  it('with a partition paused it keeps the short wait; resumed, its records arrive promptly', async () => {
    consumer.pause([{ topic, partitions: [0] }]);
    // Let the long poll that started before the pause end.
    await until(() => fetches.some((f) => f.at > performance.now() - 200 && f.duration < IDLE_WAIT / 2), 30_000, 'a short fetch');
    const window = await fetchesOver(2_000);
    expect(window.length).toBeGreaterThanOrEqual(5);
    await producer.send({ topic, messages: [{ value: 'held', partition: 0 }] });
    const resumedAt = performance.now();
    consumer.resume([{ topic, partitions: [0] }]);
    await until(() => received.some((r) => r.partition === 0 && r.at >= resumedAt), 30_000, 'the record of the resumed partition');
    expect(received.find((r) => r.partition === 0 && r.at >= resumedAt)!.at - resumedAt).toBeLessThan(IDLE_WAIT / 2);
  }, 60_000);
});
