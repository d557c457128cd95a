/** The pull consumer at driver level and through the bus: redelivery with delay (fast path and public-API fallback), poison → dead letter → term, recovery, settling after close. */
import { describe, expect, it } from 'vitest';
import type { Msg } from '@nats-io/transport-node';
import { Collector, deferred, uniqueName, waitFor } from '@busline/conformance';
import { NO_DRIVER_HOOKS, type DeliveredMessage, type DriverHooks } from '@busline/core';
import { NatsDriver, natsConfigSchema, type NatsConfigInput } from '../src/index.js';
import { sharedServerFixture, PATHS, SHARED_URL, SKIP, streamOf, topicName, usePath, watchPublishCalls } from './helpers.js';

const hooks = (errors: Error[] = []): DriverHooks => ({ ...NO_DRIVER_HOOKS, error: (e) => void errors.push(e) });

async function driverFor(config: NatsConfigInput = {}): Promise<NatsDriver> {
  const driver = new NatsDriver(natsConfigSchema.parse({ servers: [SHARED_URL], ...config }));
  await driver.connect({ hooks: hooks(), plannedConsumers: [] });
  return driver;
}

const spec = (topic: string, group: string) => ({ topic, group, persistence: 'persistent' as const, maxInFlight: 100, startFrom: 'earliest' as const });

describe.skipIf(SKIP).each(PATHS)('nats: nak with delay ($label)', ({ internals }) => {
  usePath(internals);
  const f = sharedServerFixture();
  const { buses, drivers } = f;

  for (const ackMode of ['explicit', 'cumulative'] as const) {
    it(`${ackMode}: nack(delay) makes the server redeliver after the delay, with deliveryCount 2; then nothing is pending`, async () => {
      const topic = topicName('cons-nak');
      const group = uniqueName('g');
      const publisher = await buses.make(SHARED_URL);
      const { id } = await publisher.publish(topic, { n: 1 }, { aggregateId: 'k1' });
      const driver = await driverFor({ ackMode });
      drivers.push(driver);
      const publishCalls = watchPublishCalls(driver);
      const deliveries: { at: number; count: number; message: DeliveredMessage }[] = [];
      const second = deferred();
      await driver.subscribe(spec(topic, group), {
        deliver(batch) {
          for (const message of batch) {
            deliveries.push({ at: Date.now(), count: message.deliveryCount, message });
            if (deliveries.length === 1) message.nack(400);
            else {
              message.ack();
              second.resolve();
            }
          }
        },
      });
      await second.promise;
      expect(deliveries.map((d) => d.count)).toEqual([1, 2]);
      expect(deliveries[0]!.message.headers['ce-id']).toBe(id);
      expect(deliveries[1]!.at - deliveries[0]!.at, 'redelivered after the nak delay').toBeGreaterThanOrEqual(380);
      await waitFor(async () => (await f.admin.jsm.consumers.info(streamOf(topic), group)).num_ack_pending === 0, {
        timeoutMs: 10_000,
        intervalMs: 50,
        message: 'the redelivered message to be acknowledged',
      });
      const acks = publishCalls.filter((s) => s.startsWith('$JS.ACK.')).length;
      if (internals) expect(acks, 'fast path: acks written through the protocol writer, not publish()').toBe(0);
      else expect(acks, 'fallback: the nak and the ack each through publish()').toBe(2);
    });
  }
});

describe.skipIf(SKIP)('nats: pull consumer', () => {
  const f = sharedServerFixture();
  const { buses, drivers } = f;

  it('explicit: a poison message goes to the dead-letter topic, then is terminated (TERM advisory), never redelivered', async () => {
    const topic = topicName('cons-poison');
    const group = uniqueName('g');
    const stream = streamOf(topic);
    const terminated: string[] = [];
    const advisories = f.admin.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${stream}.${group}`, {
      callback: (_e: Error | null, m: Msg) => void terminated.push(m.string()),
    });
    await f.admin.nc.flush();
    try {
      const bus = await buses.make(SHARED_URL, { group, nats: { ackWaitMs: 1_000 } });
      const dead = new Collector();
      await bus.subscribeWire(`${topic}.dlq`, async (m) => dead.add(Buffer.from(m.body).toString('hex'), m), { group: uniqueName('dlq') });
      const handled = new Collector();
      await bus.subscribe(topic, async (_p, ctx) => handled.add(ctx.envelope.id, null));
      await bus.publishWire(topic, { key: 'p', headers: { 'x-not': 'an envelope' }, body: Uint8Array.of(1, 2, 3) });
      const good = await bus.publish(topic, { ok: true }, { aggregateId: 'p' });
      await handled.waitForIds([good.id], 10_000);
      await dead.waitForCount(1, 10_000, 'the dead letter');
      await waitFor(() => terminated.length === 1, { timeoutMs: 10_000, message: 'a MSG_TERMINATED advisory' });
      await waitFor(async () => (await f.admin.jsm.consumers.info(stream, group)).num_ack_pending === 0, {
        timeoutMs: 10_000,
        intervalMs: 50,
        message: 'nothing pending',
      });
      const info = await f.admin.jsm.consumers.info(stream, group);
      expect(info.num_redelivered, 'the poison message was never redelivered').toBe(0);
      expect(bus.metrics().malformed).toBe(1);
    } finally {
      advisories.unsubscribe();
    }
  });

  it('cumulative: a poison message is dead-lettered and covered by the ack-all (a TERM would ack everything below it)', async () => {
    const topic = topicName('cons-poison-cum');
    const group = uniqueName('g');
    const bus = await buses.make(SHARED_URL, { group, nats: { ackMode: 'cumulative' } });
    const dead = new Collector();
    await bus.subscribeWire(`${topic}.dlq`, async (m) => dead.add(Buffer.from(m.body).toString('hex'), m), { group: uniqueName('dlq') });
    const handled = new Collector();
    await bus.subscribe(topic, async (_p, ctx) => handled.add(ctx.envelope.id, null));
    await bus.publishWire(topic, { key: 'p', headers: {}, body: Uint8Array.of(9) });
    const ids = (await bus.publishBatch(topic, Array.from({ length: 50 }, (_, i) => ({ payload: { i }, aggregateId: 'p' })))).ids;
    await handled.waitForIds(ids, 10_000);
    await dead.waitForCount(1, 10_000);
    await waitFor(
      async () => {
        const info = await f.admin.jsm.consumers.info(streamOf(topic), group);
        return info.num_ack_pending === 0 && info.ack_floor.stream_seq === 51;
      },
      { timeoutMs: 10_000, intervalMs: 50, message: 'everything acknowledged up to the last message' },
    );
  });

  it('a consumer deleted on the server is re-created and the subscription carries on', async () => {
    const topic = topicName('cons-deleted');
    const group = uniqueName('g');
    const bus = await buses.make(SHARED_URL, { group, nats: { idleHeartbeatMs: 500, pullExpiresMs: 2_000 } });
    const got = new Collector();
    await bus.subscribe(topic, async (_p, ctx) => got.add(ctx.envelope.id, null));
    const before = (await bus.publishBatch(topic, Array.from({ length: 10 }, (_, i) => ({ payload: { i } })))).ids;
    await got.waitForIds(before, 10_000);
    await f.admin.jsm.consumers.delete(streamOf(topic), group);
    const after = (await bus.publishBatch(topic, Array.from({ length: 10 }, (_, i) => ({ payload: { i } })))).ids;
    await got.waitForIds(after, 20_000, 'messages after the consumer was deleted');
    expect((await f.admin.jsm.consumers.info(streamOf(topic), group)).config.durable_name).toBe(group);
  });

  it('settling after the driver closed does not throw', async () => {
    for (const ackMode of ['explicit', 'cumulative'] as const) {
      const topic = topicName('cons-late');
      const publisher = await buses.make(SHARED_URL);
      await publisher.publishBatch(topic, Array.from({ length: 4 }, (_, i) => ({ payload: { i } })));
      const driver = await driverFor({ ackMode });
      const got: DeliveredMessage[] = [];
      const four = deferred();
      await driver.subscribe(spec(topic, uniqueName('g')), {
        deliver(batch) {
          got.push(...batch);
          if (got.length >= 4) four.resolve();
        },
      });
      await four.promise;
      await driver.close();
      expect(() => {
        got[0]!.ack();
        got[1]!.nack(10);
        got[2]!.term();
        got[3]!.ack();
        got[3]!.ack();
      }).not.toThrow();
    }
  });

  it('shared stream mode: topics are subjects of one stream; groups, acks and describe work', async () => {
    const shared = `BL_bl-cons-shared-${Date.now().toString(36)}`;
    const t1 = topicName('cons-sh1');
    const t2 = topicName('cons-sh2');
    const bus = await buses.make(SHARED_URL, { nats: { streamMode: 'shared', sharedStream: shared } });
    await bus.configureTopic(t1, { retentionMs: 3_600_000 });
    await bus.configureTopic(t2, { retentionMs: 3_600_000 });
    const info = await f.admin.jsm.streams.info(shared);
    expect(info.config.subjects).toEqual([t1, t2]);
    const c1 = new Collector();
    const c2 = new Collector();
    await bus.subscribe(t1, async (_p, ctx) => c1.add(ctx.envelope.id, null));
    await bus.subscribe(t2, async (_p, ctx) => c2.add(ctx.envelope.id, null));
    const ids1 = (await bus.publishBatch(t1, Array.from({ length: 20 }, (_, i) => ({ payload: { i } })))).ids;
    const ids2 = (await bus.publishBatch(t2, Array.from({ length: 30 }, (_, i) => ({ payload: { i } })))).ids;
    await c1.waitForIds(ids1, 10_000);
    await c2.waitForIds(ids2, 10_000);
    expect(c1.unexpected(ids1)).toEqual([]);
    expect(c2.unexpected(ids2)).toEqual([]);
    const mismatch = await bus.configureTopic(t1, { retentionMs: 60_000 }, { strategy: 'createOrUpdate', onMismatch: 'ignore' });
    expect(mismatch.action).toBe('mismatch');
  });
});
