/**
 * Lifecycle details specific to the Kafka driver: start() may be retried after
 * it failed (the same driver connects again), and a topic mismatch
 * Kafka cannot fix is named.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, type BuslineError } from '@busline/core';
import { NO_BROKER, createTopic, kafkaFixture, unique, until } from './helpers.js';

describe.skipIf(NO_BROKER)('kafka lifecycle', () => {
  const f = kafkaFixture();

  it('start() can be retried after it failed', async () => {
    const topic = unique('retry-start');
    f.topics.push(topic);
    const bus = await f.bus({ topics: { [topic]: {} }, topicStrategy: 'validateOnly' });
    const got: string[] = [];
    await bus.subscribe(topic, async (_p, ctx) => void got.push(ctx.envelope.id));
    const error = await bus.start().then(
      () => undefined,
      (e: BuslineError) => e,
    );
    expect(error?.code).toBe(ErrorCode.TopicNotFound);

    await createTopic(f.admin, { topic, numPartitions: 2, replicationFactor: 1 });
    await until(async () => bus.start().then(() => true, () => false), 30_000, 'start() succeeds once the topic exists');
    const { id } = await bus.publish(topic, { ok: true });
    await until(() => got.includes(id), 30_000, 'the subscription made before the failed start receives messages');
  });

  it('fewer partitions or another replication factor is a mismatch that names the fields', async () => {
    const topic = unique('shrink');
    f.topics.push(topic);
    const bus = await f.bus({ topicStrategy: 'createOrUpdate' });
    await bus.start();
    expect((await bus.configureTopic(topic, { partitions: 4 })).action).toBe('created');
    const grown = await bus.configureTopic(topic, { partitions: 6, retentionMs: 3_600_000 });
    expect(grown.action).toBe('updated');
    const error = await bus.configureTopic(topic, { partitions: 2, replicas: 3 }, { onMismatch: 'fail' }).then(
      () => undefined,
      (e: BuslineError) => e,
    );
    expect(error?.code).toBe(ErrorCode.TopicMismatch);
    expect(error?.message).toContain('partitions');
    expect(error?.message).toContain('replicas');
    const verified = await bus.configureTopic(topic, { partitions: 6, retentionMs: 3_600_000 }, { strategy: 'validateOnly' });
    expect(verified).toEqual({ action: 'verified', differences: [] });
  });
});
