/**
 * Atomic batches (nats-server ≥ 2.12): what the conformance suite cannot say
 * for every broker. Streams busline makes allow them; a stream made without
 * `allow_atomic` and a batch over the server's max_batch_size are refused
 * with a message that says what to change, and nothing of either is stored; a
 * partitioned topic takes an atomic batch across its partitions.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '@busline/core';
import { ATOMIC_BATCH_SERVER, serverSupported } from '../src/server-version.js';
import { serverVersion, sharedServerFixture, SHARED_URL, SKIP, streamOf, topicName } from './helpers.js';

const VERSION = SKIP ? '' : await serverVersion(SHARED_URL);
const ATOMIC = !SKIP && serverSupported(VERSION, ATOMIC_BATCH_SERVER);
const items = (n: number) => Array.from({ length: n }, (_, i) => ({ payload: { n: i }, aggregateId: `k${i % 10}` }));

describe.skipIf(!ATOMIC)('nats: atomic batches (scripted server ≥ 2.12)', () => {
  const f = sharedServerFixture();
  const { buses } = f;

  it('streams made here allow atomic batches; a batch is stored whole, in call order', async () => {
    const topic = topicName('atomic');
    const bus = await buses.make(SHARED_URL);
    expect(bus.capabilities.atomicBatch).toBe(true);
    const result = await bus.publishBatch(topic, items(500), { atomic: true });
    expect(result.failed).toEqual([]);
    const info = await f.admin.info(streamOf(topic));
    expect((info.config as { allow_atomic?: boolean }).allow_atomic).toBe(true);
    expect(await f.admin.storedIds(streamOf(topic))).toEqual(result.ids);
    expect(bus.metrics().driver.atomic_batches).toBe(1);
  });

  it('a stream made without allow_atomic: refused, naming the setting; nothing stored', async () => {
    const topic = topicName('atomic-off');
    const bus = await buses.make(SHARED_URL);
    await bus.configureTopic(topic, { persistence: 'persistent' });
    const config = (await f.admin.info(streamOf(topic))).config;
    await f.admin.jsm.streams.update(streamOf(topic), { ...config, allow_atomic: false } as typeof config);
    const result = await bus.publishBatch(topic, items(5), { atomic: true });
    expect(result.published).toBe(0);
    const error = result.failed[0]!.error;
    expect(error.code).toBe(ErrorCode.PublishRejected);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/allow_atomic/);
    expect(await f.admin.count(streamOf(topic))).toBe(0);
  });

  it("a batch over the server's max_batch_size (1,000): refused, naming the limit; nothing stored", async () => {
    const topic = topicName('atomic-big');
    const bus = await buses.make(SHARED_URL);
    const result = await bus.publishBatch(topic, items(1_001), { atomic: true });
    expect(result.published).toBe(0);
    expect(result.failed).toHaveLength(1_001);
    expect(result.failed[1_000]!.error.message).toMatch(/max_batch_size/);
    expect(await f.admin.count(streamOf(topic))).toBe(0);
  });

  it('a partitioned topic takes an atomic batch across its partitions', async () => {
    const topic = topicName('atomic-parts');
    const bus = await buses.make(SHARED_URL);
    await bus.configureTopic(topic, { persistence: 'persistent', partitions: 4 });
    const result = await bus.publishBatch(topic, items(100), { atomic: true });
    expect(result.failed).toEqual([]);
    expect(await f.admin.storedIds(streamOf(topic))).toEqual(result.ids);
    const subjects = (await f.admin.jsm.streams.info(streamOf(topic), { subjects_filter: '>' })).state.subjects ?? {};
    const partitions = new Set(Object.keys(subjects).map((subject) => subject.split('.~k.')[1]!.split('.')[0]));
    expect(partitions.size, 'partitions the 10 keys landed in').toBeGreaterThan(1);
  });
});

describe.skipIf(SKIP || ATOMIC)(`nats: atomic batches on nats-server ${VERSION} (< ${ATOMIC_BATCH_SERVER})`, () => {
  const { buses } = sharedServerFixture();

  it('the capability is off and { atomic: true } is refused as UNSUPPORTED', async () => {
    const bus = await buses.make(SHARED_URL);
    expect(bus.capabilities.atomicBatch).toBe(false);
    await expect(bus.publishBatch(topicName('atomic-old'), items(2), { atomic: true })).rejects.toMatchObject({ code: ErrorCode.Unsupported });
  });
});
