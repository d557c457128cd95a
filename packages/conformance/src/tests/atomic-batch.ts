/**
 * Atomic batches: `publishBatch(..., { atomic: true })` stores every item or
 * none. "None" is checked the only way a reader can: a sentinel published on
 * the same key afterwards is handled, and no item of the refused batch came
 * before it.
 */
import { randomUUID } from 'node:crypto';
import { expect } from '../expect.js';
import { ErrorCode, type BatchItem, type BuslineError, type EventBus } from '@busline/core';
import type { Harness } from '../harness.js';
import { Collector, rejection } from '../helpers.js';

const KEY = 'atomic-key';

function items(count: number): (BatchItem & { id: string })[] {
  return Array.from({ length: count }, (_, i) => ({ id: randomUUID(), payload: { i }, aggregateId: KEY }));
}

/** Publishes a sentinel on KEY and waits for it: whatever of `refused` was stored before it has arrived by then. */
async function expectNoneStored(h: Harness, bus: EventBus, topic: string, got: Collector, refused: readonly { id: string }[]): Promise<void> {
  const { id: sentinel } = await bus.publish(topic, { sentinel: true }, { aggregateId: KEY });
  await got.waitForIds([sentinel], h.ms(10_000), 'the sentinel after the refused batch');
  expect(refused.filter((item) => got.has(item.id)), 'items of the refused atomic batch that were stored').toEqual([]);
}

export function registerAtomicBatchTests(h: Harness): void {
  h.test('an atomic batch is stored whole and handled in publish order', { requires: ['atomicBatch', 'perKeyOrder'] }, async () => {
    const bus = await h.bus();
    const topic = h.topic('atomic');
    const got = new Collector();
    await bus.subscribe(topic, async (_p, ctx) => got.add(ctx.envelope.id, null));
    const batch = items(200);
    const result = await bus.publishBatch(topic, batch, { atomic: true });
    expect(result).toEqual({ ids: batch.map((item) => item.id), published: 200, failed: [] });
    await got.waitForIds(result.ids, h.ms(15_000));
    expect(got.arrivals.filter((id, i, all) => all.indexOf(id) === i), 'first arrivals in publish order').toEqual(result.ids);
  });

  h.test('an atomic batch with one invalid item publishes none of it and says which item', { requires: ['atomicBatch', 'perKeyOrder'] }, async () => {
    const bus = await h.bus();
    const topic = h.topic('atomic-invalid');
    const got = new Collector();
    await bus.subscribe(topic, async (_p, ctx) => got.add(ctx.envelope.id, null));
    const batch = items(10);
    batch[6] = { ...batch[6]!, aggregateId: 'bad key with spaces' };
    const result = await bus.publishBatch(topic, batch, { atomic: true });
    expect(result.published).toBe(0);
    expect(result.failed.map((f) => f.index)).toEqual(batch.map((_, i) => i));
    expect(result.failed[6]!.error.code).toBe(ErrorCode.EnvelopeInvalid);
    expect(result.failed[0]!.error.message).toMatch(/item 6 .*atomic batch is invalid.*none of the batch/);
    await expectNoneStored(h, bus, topic, got, batch);
  });

  h.test('an atomic batch holding a message the broker refuses (too large) stores none of it', { requires: ['atomicBatch', 'perKeyOrder'] }, async () => {
    const bus = await h.bus();
    const topic = h.topic('atomic-large');
    const got = new Collector();
    await bus.subscribe(topic, async (_p, ctx) => got.add(ctx.envelope.id, null));
    const batch = items(10);
    batch[3] = { ...batch[3]!, payload: { big: 'x'.repeat(h.maxMessageBytes + 1_024) } };
    const result = await bus.publishBatch(topic, batch, { atomic: true });
    expect(result.published).toBe(0);
    expect(new Set(result.failed.map((f) => f.error.code))).toEqual(new Set([ErrorCode.MessageTooLarge]));
    await expectNoneStored(h, bus, topic, got, batch);
  });

  h.test('an atomic batch that repeats an event id already stored stores none of it', { requires: ['atomicBatch', 'dedupe', 'perKeyOrder'] }, async () => {
    const bus = await h.bus();
    const topic = h.topic('atomic-dup');
    const got = new Collector();
    await bus.subscribe(topic, async (_p, ctx) => got.add(ctx.envelope.id, null));
    const earlier = await bus.publish(topic, { earlier: true }, { aggregateId: KEY });
    const batch = items(5);
    batch[2] = { ...batch[2]!, id: earlier.id };
    const result = await bus.publishBatch(topic, batch, { atomic: true });
    expect(result.published).toBe(0);
    const error = result.failed[0]!.error;
    expect(error.code).toBe(ErrorCode.PublishRejected);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/already stored/);
    await expectNoneStored(
      h,
      bus,
      topic,
      got,
      batch.filter((item) => item.id !== earlier.id),
    );
    expect(got.arrivals.filter((id) => id === earlier.id), 'the earlier event, once').toHaveLength(1);
  });

  h.test('an atomic batch to an ephemeral topic is refused as UNSUPPORTED', { requires: ['atomicBatch', 'ephemeral'] }, async () => {
    const bus = await h.bus();
    const topic = h.topic('atomic-ephemeral');
    await bus.configureTopic(topic, { persistence: 'ephemeral' });
    const error = await rejection<BuslineError>(bus.publishBatch(topic, items(2), { atomic: true }));
    expect(error.code).toBe(ErrorCode.Unsupported);
    expect(error.message).toMatch(/ephemeral/);
  });

  h.test('an adapter without atomic batches refuses { atomic: true } as UNSUPPORTED and publishes nothing', { requiresNot: ['atomicBatch'] }, async () => {
    const bus = await h.bus();
    const topic = h.topic('atomic-unsupported');
    const before = bus.metrics().published;
    const error = await rejection<BuslineError>(bus.publishBatch(topic, items(2), { atomic: true }));
    expect(error.code).toBe(ErrorCode.Unsupported);
    expect(error.message).toMatch(/without `atomic`/);
    expect(bus.metrics().published).toBe(before);
  });
}
