/**
 * The driver contract's lease fields at driver level, against the real server,
 * on both client paths and both ack modes: `leaseMs` is the consumer's
 * ack_wait; `deliveryId` is the stream sequence; a message held past the ack
 * wait with `extendLease()` every third of it is not redelivered, one held
 * without it is; `extendLease()` after settling or after close sends nothing.
 * What the driver sends is read off the wire: a plain subscription on the
 * stream's ack subjects sees every +ACK / +WPI the driver writes.
 */
import { describe, expect, it } from 'vitest';
import type { Msg } from '@nats-io/transport-node';
import { deferred, uniqueName, waitFor } from '@busline/conformance';
import { NO_DRIVER_HOOKS, type DeliveredMessage } from '@busline/core';
import { NatsDriver, natsConfigSchema, type NatsConfigInput } from '../src/index.js';
import { parseAckSubject } from '../src/wire.js';
import { sharedServerFixture, PATHS, SHARED_URL, SKIP, streamOf, topicName, usePath } from './helpers.js';

const spec = (topic: string, group: string) => ({ topic, group, persistence: 'persistent' as const, maxInFlight: 100, startFrom: 'earliest' as const });
const ACK_WAIT_MS = 1_000;

describe.skipIf(SKIP).each(PATHS)('nats: leases ($label)', ({ internals }) => {
  usePath(internals);
  const f = sharedServerFixture();
  const { buses, drivers } = f;

  for (const ackMode of ['explicit', 'cumulative'] as const) {
    it(`${ackMode}: extendLease every ackWait/3 keeps a held message from redelivery; without it, it is redelivered; after ack or close it is a no-op`, async () => {
      const topic = topicName('lease');
      const group = uniqueName('g');
      const stream = streamOf(topic);
      const publisher = await buses.make(SHARED_URL);
      await publisher.publish(topic, { n: 1 }, { aggregateId: 'a' });
      await publisher.publish(topic, { n: 2 }, { aggregateId: 'b' });

      // Every acknowledgement the driver writes for this stream: [stream sequence, payload].
      const wire: [number, string][] = [];
      const spy = f.admin.nc.subscribe(`$JS.ACK.${stream}.>`, {
        callback: (_e: Error | null, m: Msg) => void wire.push([parseAckSubject(m.subject)!.streamSeq, m.string()]),
      });
      await f.admin.nc.flush();
      const driver = new NatsDriver(natsConfigSchema.parse({ servers: [SHARED_URL], ackMode, ackWaitMs: ACK_WAIT_MS } satisfies NatsConfigInput));
      drivers.push(driver);
      await driver.connect({ hooks: NO_DRIVER_HOOKS, plannedConsumers: [] });
      /** Everything the driver wrote so far has reached the spy. */
      const settled = async () => {
        await new Promise((resolve) => setImmediate(resolve)); // the driver's outbox is written once per turn
        await driver.connection!.flush();
        await f.admin.nc.flush();
      };

      const deliveries: DeliveredMessage[] = [];
      const both = deferred();
      const sub = await driver.subscribe(spec(topic, group), {
        deliver(batch) {
          deliveries.push(...batch);
          if (deliveries.length >= 2) both.resolve();
        },
      });
      let timer: NodeJS.Timeout | undefined;
      try {
        expect(sub.leaseMs, 'leaseMs is the ack wait').toBe(ACK_WAIT_MS);
        await both.promise;
        const [held, neglected] = deliveries as [DeliveredMessage, DeliveredMessage];
        expect([held.deliveryId, neglected.deliveryId], 'deliveryId is the stream sequence').toEqual([1, 2]);
        expect(held.extendLease).toBeTypeOf('function');
        timer = setInterval(() => held.extendLease!(), ACK_WAIT_MS / 3);
        const since = Date.now();

        // The one not extended comes back after the ack wait (the server counts it as redelivered).
        await waitFor(async () => (await f.admin.jsm.consumers.info(stream, group)).num_redelivered >= 1, {
          timeoutMs: 10 * ACK_WAIT_MS,
          intervalMs: 100,
          message: 'the message held without extendLease to be redelivered',
        });
        if (ackMode === 'explicit') {
          // Explicit: the copy reaches the sink, with the same deliveryId (core collapses it into the one held).
          await waitFor(() => deliveries.some((d, i) => i >= 2 && d.deliveryId === 2), { timeoutMs: 5_000, message: 'the copy in the sink' });
          expect(deliveries.find((d, i) => i >= 2 && d.deliveryId === 2)!.deliveryCount).toBe(2);
        }
        // Hold the extended one for three ack waits in all (an absence: it takes time by nature).
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, since + 3 * ACK_WAIT_MS - Date.now())));
        const info = await f.admin.jsm.consumers.info(stream, group);
        expect(info.num_redelivered, 'only the message without extendLease was redelivered').toBe(1);
        expect(deliveries.filter((d) => d.deliveryId === 1), 'the extended message was delivered once').toHaveLength(1);
        await settled();
        expect(wire.filter(([seq, p]) => seq === 1 && p === '+WPI').length, 'in-progress acks for the held message').toBeGreaterThanOrEqual(6);
        expect(wire.filter(([seq, p]) => seq === 2 && p === '+WPI'), 'none for the other').toEqual([]);

        clearInterval(timer);
        held.ack();
        for (const d of deliveries) if (d.deliveryId === 2) d.ack();
        await waitFor(async () => (await f.admin.jsm.consumers.info(stream, group)).num_ack_pending === 0, {
          timeoutMs: 10_000,
          intervalMs: 50,
          message: 'both acknowledged',
        });
        await settled();
        const before = wire.length;
        expect(() => held.extendLease!(), 'extendLease after ack').not.toThrow();
        await settled();
        expect(wire.slice(before), 'nothing sent for extendLease after ack').toEqual([]);
      } finally {
        clearInterval(timer);
        spy.unsubscribe();
      }
    }, 30_000);
  }

  it('extendLease after the subscription closed sends nothing and does not throw', async () => {
    const topic = topicName('lease-close');
    const group = uniqueName('g');
    const stream = streamOf(topic);
    const publisher = await buses.make(SHARED_URL);
    await publisher.publish(topic, { n: 1 });
    const wire: string[] = [];
    const spy = f.admin.nc.subscribe(`$JS.ACK.${stream}.>`, { callback: (_e: Error | null, m: Msg) => void wire.push(m.string()) });
    await f.admin.nc.flush();
    const driver = new NatsDriver(natsConfigSchema.parse({ servers: [SHARED_URL] }));
    drivers.push(driver);
    await driver.connect({ hooks: NO_DRIVER_HOOKS, plannedConsumers: [] });
    const got = deferred<DeliveredMessage>();
    const sub = await driver.subscribe(spec(topic, group), { deliver: (batch) => got.resolve(batch[0]!) });
    const message = await got.promise;
    await sub.close();
    expect(() => message.extendLease!()).not.toThrow();
    await new Promise((resolve) => setImmediate(resolve));
    await driver.connection!.flush();
    await f.admin.nc.flush();
    spy.unsubscribe();
    expect(wire.filter((p) => p === '+WPI')).toEqual([]);
  });
});
