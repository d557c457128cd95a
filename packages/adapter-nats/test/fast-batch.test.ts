/**
 * Fast-ingest batches (nats-server ≥ 2.14): a publishBatch of 32+ messages
 * goes as one flow-controlled batch. Every message resolves only once stored,
 * the stream holds them once each in call order, a resend of the same event
 * ids stores nothing new, and a batch the server cuts short (a message over
 * the stream's max_msg_size) leaves the rest to the per-message path: the
 * good messages stored in order, the bad one refused with MESSAGE_TOO_LARGE.
 */
import { describe, expect, it } from 'vitest';
import { FAST_BATCH_SERVER, serverSupported } from '../src/server-version.js';
import { serverVersion, sharedServerFixture, SHARED_URL, SKIP, streamOf, topicName } from './helpers.js';

const BATCHES = !SKIP && serverSupported(await serverVersion(SHARED_URL), FAST_BATCH_SERVER);

describe.skipIf(!BATCHES)('nats: fast-ingest batches (scripted server ≥ 2.14)', () => {
  const f = sharedServerFixture();
  const { buses } = f;
  const items = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ payload: { n: from + i }, aggregateId: `k${(from + i) % 7}` }));

  it('a publishBatch of 2,000 goes as one batch: stored once each, in call order; a resend of the same ids stores nothing new', async () => {
    const topic = topicName('fast');
    const bus = await buses.make(SHARED_URL);
    await bus.configureTopic(topic, { persistence: 'persistent' });
    const info = await f.admin.info(streamOf(topic));
    expect((info.config as { allow_batched?: boolean }).allow_batched, 'streams made here allow fast batches').toBe(true);

    const result = await bus.publishBatch(topic, items(2_000));
    expect(result.failed).toEqual([]);
    expect(bus.metrics().driver.fast_batches).toBe(1);
    expect(await f.admin.storedIds(streamOf(topic))).toEqual(result.ids);

    const again = await bus.publishBatch(topic, result.ids.map((id, i) => ({ id, payload: { n: i }, aggregateId: `k${i % 7}` })));
    expect(again.failed).toEqual([]);
    expect(await f.admin.count(streamOf(topic)), 'the resend was deduped').toBe(2_000);
  });

  it('a batch cut short by the server: the rest goes per message, the bad message is refused, the others stored in order', async () => {
    const topic = topicName('fast-cut');
    const bus = await buses.make(SHARED_URL);
    await bus.configureTopic(topic, { persistence: 'persistent' });
    await f.admin.jsm.streams.update(streamOf(topic), { ...(await f.admin.info(streamOf(topic))).config, max_msg_size: 2_000 });
    const batch = items(200);
    batch[120] = { payload: { n: 120, big: 'x'.repeat(4_000) } as never, aggregateId: 'k1' };
    const result = await bus.publishBatch(topic, batch);
    expect(result.failed.map((x) => [x.index, x.error.code])).toEqual([[120, 'MESSAGE_TOO_LARGE']]);
    expect(bus.metrics().driver.fast_batch_rest_resent, 'the server cut the batch at the bad message').toBeGreaterThan(0);
    expect(await f.admin.storedIds(streamOf(topic))).toEqual(result.ids.filter((_, i) => i !== 120));
  });

  it('fastBatches: false publishes per message', async () => {
    const topic = topicName('fast-off');
    const bus = await buses.make(SHARED_URL, { nats: { fastBatches: false } });
    const result = await bus.publishBatch(topic, items(100));
    expect(result.failed).toEqual([]);
    expect(bus.metrics().driver.fast_batches).toBeUndefined();
    expect(await f.admin.storedIds(streamOf(topic))).toEqual(result.ids);
  });
});
