/**
 * A publish failure stays with what caused it, on the real broker:
 * - a publish to a missing topic (topic strategy "skip") fails alone with
 *   TOPIC_NOT_FOUND, while 50 concurrent publishes to a healthy topic succeed;
 * - a record over the topic's max.message.bytes fails alone with
 *   MESSAGE_TOO_LARGE (not retryable), whether refused before sending (limit
 *   known) or by the broker (limit lowered after the driver looked it up),
 *   and the producer keeps working for the partitions of the failed request;
 * - an invalid per-call timeoutMs fails at once with CONFIG_INVALID.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, NO_DRIVER_HOOKS, type BuslineError, type EventBus } from '@busline/core';
import kafkajs from 'kafkajs';
import { kafkaConfigSchema, KafkaDriver } from '../src/index.js';
import { BROKERS, NO_BROKER, createTopic, kafkaFixture, locate, unique, until, withProducerClient } from './helpers.js';

const { ConfigResourceTypes } = kafkajs;

/**
 * The broker applies a topic config change a moment after the admin call
 * returns: a plain producer sends a 30 KB probe until the broker refuses it.
 * Returns how many probes it stored before that.
 */
async function untilTooLarge(topic: string): Promise<number> {
  const producer = new kafkajs.Kafka({ brokers: BROKERS.split(','), logLevel: kafkajs.logLevel.NOTHING }).producer({ retry: { retries: 0 } });
  await producer.connect();
  let stored = 0;
  try {
    await until(
      async () => {
        try {
          await producer.send({ topic, acks: -1, messages: [{ value: 'p'.repeat(30_000), headers: { ce_id: `probe-${stored}` } }] });
          stored++;
          return false;
        } catch (error) {
          if ((error as { type?: string }).type === 'MESSAGE_TOO_LARGE') return true;
          throw error;
        }
      },
      30_000,
      'the broker to apply max.message.bytes 20000',
    );
  } finally {
    await producer.disconnect();
  }
  return stored;
}

async function settle<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: BuslineError }> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error: error as BuslineError };
  }
}

describe.skipIf(NO_BROKER)('kafka publish isolation', () => {
  const f = kafkaFixture();

  async function makeTopic(topic: string, partitions: number, configEntries: { name: string; value: string }[] = []): Promise<void> {
    f.topics.push(topic);
    await createTopic(f.admin, { topic, numPartitions: partitions, configEntries });
  }

  it('one publish to a missing topic (strategy skip) fails alone; 50 concurrent publishes to a healthy topic succeed', async () => {
    // The missing topic must stay missing: scripts/brokers runs Kafka with auto.create.topics.enable=false.
    const { brokers } = await f.admin.describeCluster();
    const { resources } = await f.admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.BROKER, name: String(brokers[0]!.nodeId), configNames: ['auto.create.topics.enable'] }],
      includeSynonyms: false,
    });
    expect(resources[0]!.configEntries[0]?.configValue, 'this test needs a broker with auto.create.topics.enable=false (the scripts/brokers default)').toBe('false');

    const healthy = unique('healthy');
    const missing = unique('missing');
    await makeTopic(healthy, 3);
    const bus: EventBus = await f.bus({ topicStrategy: 'skip' });
    await bus.start();
    const started = Date.now();
    const healthyCalls = Array.from({ length: 50 }, (_, i) => settle(bus.publish(healthy, { i }, { aggregateId: `k-${i}` })));
    const missingCall = settle(bus.publish(missing, { lost: true }, { aggregateId: 'k-missing' }));
    const results = await Promise.all(healthyCalls);
    const failedHealthy = results.filter((r) => !r.ok).map((r) => (r.ok ? '' : `${r.error.code}: ${r.error.message}`));
    expect(failedHealthy, 'publishes to the healthy topic').toEqual([]);
    const missingResult = await missingCall;
    expect(missingResult.ok, 'the publish to the missing topic fails').toBe(false);
    if (!missingResult.ok) {
      expect(missingResult.error.code).toBe(ErrorCode.TopicNotFound);
      expect(missingResult.error.message).toContain(missing);
    }
    // Fails fast (one lookup), not after kafkajs's metadata retries or the publish timeout.
    expect(Date.now() - started).toBeLessThan(5_000);
    const where = await locate(healthy, 50);
    expect(where.size).toBe(50);

    // Mixed again, now that the healthy topic is known: the same result.
    const again = await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => settle(bus.publish(healthy, { i }, { aggregateId: `k-${i}` }))),
      settle(bus.publish(missing, { lost: true })),
    ]);
    expect(again.slice(0, 20).every((r) => r.ok)).toBe(true);
    expect(again[20]!.ok ? undefined : again[20]!.error.code).toBe(ErrorCode.TopicNotFound);
  });

  it('a record over max.message.bytes fails alone with MESSAGE_TOO_LARGE (not retryable), the rest of its batch and of other topics is stored', async () => {
    const small = unique('small-limit');
    const other = unique('other');
    await makeTopic(small, 3, [{ name: 'max.message.bytes', value: '20000' }]);
    await makeTopic(other, 3);
    const bus = await f.bus({ topicStrategy: 'skip' });
    await bus.start();
    const items = Array.from({ length: 6 }, (_, i) => ({ payload: { i, pad: i === 3 ? 'x'.repeat(30_000) : 'y' }, aggregateId: `k-${i}` }));
    const [batch, ...others] = await Promise.all([
      bus.publishBatch(small, items),
      ...Array.from({ length: 30 }, (_, i) => settle(bus.publish(other, { i }, { aggregateId: `o-${i}` }))),
    ]);
    expect(batch.failed.map((f) => [f.index, f.error.code, f.error.retryable])).toEqual([[3, ErrorCode.MessageTooLarge, false]]);
    expect(batch.published).toBe(5);
    expect(others.filter((r) => !r.ok)).toEqual([]);
    const where = await locate(small, 5);
    expect(batch.ids.filter((_, i) => i !== 3).every((id) => where.has(id))).toBe(true);
  });

  it('a record the broker refuses as too large (limit lowered after lookup) fails alone; the producer keeps working', async () => {
    const topic = unique('lowered');
    const other = unique('other2');
    await makeTopic(topic, 3);
    await makeTopic(other, 3);
    const bus = await f.bus({ topicStrategy: 'skip' });
    await bus.start();
    // The driver looks the topic up (1 MB limit) on its first publish...
    await bus.publish(topic, { warm: true }, { aggregateId: 'k-0' });
    await bus.publish(other, { warm: true }, { aggregateId: 'k-0' });
    // ...then the limit drops behind its back: only the broker can refuse now.
    await f.admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'max.message.bytes', value: '20000' }] }] });
    const probes = await untilTooLarge(topic);
    const items = Array.from({ length: 9 }, (_, i) => ({ payload: { i, pad: i === 4 ? 'x'.repeat(30_000) : 'y' }, aggregateId: `k-${i}` }));
    const [batch, ...others] = await Promise.all([
      bus.publishBatch(topic, items),
      ...Array.from({ length: 30 }, (_, i) => settle(bus.publish(other, { i }, { aggregateId: `o-${i}` }))),
    ]);
    expect(batch.failed.map((f) => [f.index, f.error.code, f.error.retryable])).toEqual([[4, ErrorCode.MessageTooLarge, false]]);
    expect(bus.metrics().driver.producerResets, 'the broker refused it: sent again record by record in a new producer session').toBe(1);
    expect(others.filter((r) => !r.ok).map((r) => (r.ok ? '' : `${r.error.code}: ${r.error.message}`))).toEqual([]);
    // The same partitions again: their idempotence sequence is still in order.
    const after = await bus.publishBatch(topic, Array.from({ length: 9 }, (_, i) => ({ payload: { i, after: true }, aggregateId: `k-${i}` })));
    expect(after.failed.map((f) => `${f.error.code}: ${f.error.message}`)).toEqual([]);
    const where = await locate(topic, 1 + 8 + 9 + probes);
    for (const [i, id] of batch.ids.entries()) if (i !== 4) expect(where.has(id), `item ${i} stored`).toBe(true);
    for (const id of after.ids) expect(where.has(id)).toBe(true);
  });

  it('an invalid per-call timeoutMs (0, -5, NaN, Infinity) fails at once with CONFIG_INVALID; nothing hangs', async () => {
    const topic = unique('timeouts');
    await makeTopic(topic, 1);
    const driver = new KafkaDriver(kafkaConfigSchema.parse(withProducerClient({ brokers: BROKERS.split(',') })));
    await driver.connect({ hooks: NO_DRIVER_HOOKS, plannedConsumers: [] });
    try {
      const message = { key: 'k', headers: { 'ce-id': 'x' }, body: new Uint8Array([1]) };
      for (const timeoutMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
        const started = Date.now();
        // Both paths: the topic not yet looked up (first round), and known.
        for (let round = 0; round < 2; round++) {
          const [outcome] = await driver.publish(topic, [message], { timeoutMs, topic: { persistence: 'persistent' } });
          expect(outcome?.code, `timeoutMs ${timeoutMs}`).toBe(ErrorCode.ConfigInvalid);
          expect(outcome?.retryable).toBe(false);
          if (round === 0) expect(await driver.publish(topic, [message], { timeoutMs: 10_000, topic: { persistence: 'persistent' } })).toEqual([undefined]);
        }
        expect(Date.now() - started).toBeLessThan(5_000);
      }
    } finally {
      await driver.close();
    }
  });
});
