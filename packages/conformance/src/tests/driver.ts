/**
 * The driver contract itself (packages/core/src/driver.ts), exercised through
 * a started bus's driver with a sink of the test's own: what core relies on
 * from every adapter, checked below the EventBus.
 */
import { expect } from '../expect.js';
import { ErrorCode, type ConsumerSpec, type DeliveredMessage, type Driver, type DriverSubscription, type EventBus, type WireMessage } from '@busline/core';
import type { Harness } from '../harness.js';
import { deferred, waitFor } from '../helpers.js';

const TOPIC_OPTIONS = { persistence: 'persistent' } as const;

function wire(id: string, key = 'k', size = 8): WireMessage {
  return { key, headers: { 'ce-id': id, 'x-test': id }, body: new Uint8Array(size).fill(1) };
}

/** A sink that records every delivery (and can hold the fetch loop with a pending promise). */
class RecordingSink {
  readonly deliveries: DeliveredMessage[] = [];
  batches = 0;
  hold: Promise<void> | undefined;
  deliver(batch: DeliveredMessage[]): void | Promise<void> {
    this.batches++;
    this.deliveries.push(...batch);
    return this.hold;
  }
  of(id: string): DeliveredMessage[] {
    return this.deliveries.filter((m) => m.headers['ce-id'] === id);
  }
}

async function setup(h: Harness, label: string, deadline = false): Promise<{ bus: EventBus; driver: Driver; topic: string; spec: ConsumerSpec }> {
  const bus = await h.bus({}, { deadline });
  const topic = h.topic(label);
  await bus.configureTopic(topic, TOPIC_OPTIONS);
  const spec: ConsumerSpec = { topic, group: h.group(label), persistence: 'persistent', maxInFlight: 100, startFrom: 'earliest' };
  return { bus, driver: bus.driver, topic, spec };
}

async function publish(h: Harness, driver: Driver, topic: string, messages: WireMessage[]) {
  return driver.publish(topic, messages, { timeoutMs: h.ms(10_000), topic: { ...TOPIC_OPTIONS } as never });
}

export function registerDriverTests(h: Harness): void {
  h.test('driver: settling twice is a no-op; settling after close is a no-op and leaves the message to the next consumer', { requires: ['persistent', 'consumerGroups'] }, async () => {
    // The short-deadline bus: a broker that keeps an unsettled message until its deadline (NATS) hands it on within the test.
    const { driver, topic, spec } = await setup(h, 'drv-settle', true);
    const first = new RecordingSink();
    const sub: DriverSubscription = await driver.subscribe(spec, first);
    expect(await publish(h, driver, topic, [wire('acked'), wire('kept')])).toEqual([undefined, undefined]);
    await waitFor(() => first.deliveries.length >= 2, { timeoutMs: h.ms(20_000), message: () => `delivered ${first.deliveries.length} of 2` });
    const acked = first.of('acked')[0]!;
    acked.ack();
    expect(() => {
      acked.ack();
      acked.nack(0);
      acked.term();
    }).not.toThrow();
    await sub.stop();
    await sub.close();
    const kept = first.of('kept')[0]!;
    expect(() => kept.ack(), 'ack after close').not.toThrow();

    const second = new RecordingSink();
    const sub2 = await driver.subscribe(spec, second);
    try {
      await waitFor(() => second.of('kept').length > 0, { timeoutMs: h.ms(30_000), message: 'the message settled only after close is delivered again' });
      second.of('kept')[0]!.ack();
      expect(second.of('acked'), 'the acknowledged message').toEqual([]);
    } finally {
      await sub2.stop();
      await sub2.close();
    }
  });

  h.test("driver: no fetch while the sink's deliver() is pending", { requires: ['persistent'] }, async () => {
    const { driver, topic, spec } = await setup(h, 'drv-backpressure');
    const sink = new RecordingSink();
    const release = deferred();
    sink.hold = release.promise;
    const sub = await driver.subscribe(spec, sink);
    try {
      await publish(h, driver, topic, [wire('first')]);
      await waitFor(() => sink.batches === 1, { timeoutMs: h.ms(20_000), message: 'the first batch' });
      await publish(h, driver, topic, Array.from({ length: 20 }, (_, i) => wire(`later-${i}`, `k-${i}`)));
      // Ample time for a fetch loop that ignores backpressure to deliver the rest.
      await new Promise((resolve) => setTimeout(resolve, h.ms(500)));
      expect(sink.batches, 'batches delivered while deliver() was pending').toBe(1);
      sink.hold = undefined;
      release.resolve();
      await waitFor(() => sink.deliveries.length >= 21, { timeoutMs: h.ms(20_000), message: () => `delivered ${sink.deliveries.length} of 21 after release` });
      for (const m of sink.deliveries) m.ack();
    } finally {
      release.resolve();
      await sub.stop();
      await sub.close();
    }
  });

  h.test('driver: one publish call with a message too large in the middle: only that one fails (MESSAGE_TOO_LARGE), the others are stored', { requires: ['persistent'] }, async () => {
    const { driver, topic, spec } = await setup(h, 'drv-mixed');
    const outcomes = await publish(h, driver, topic, [wire('a', 'k1'), wire('big', 'k2', h.maxMessageBytes + 1_024), wire('c', 'k3')]);
    expect(outcomes[0]).toBeUndefined();
    expect(outcomes[1]?.code).toBe(ErrorCode.MessageTooLarge);
    expect(outcomes[1]?.retryable).toBe(false);
    expect(outcomes[2]).toBeUndefined();
    const sink = new RecordingSink();
    const sub = await driver.subscribe(spec, sink);
    try {
      await waitFor(() => sink.of('a').length > 0 && sink.of('c').length > 0, { timeoutMs: h.ms(20_000), message: 'the two stored messages' });
      expect(sink.of('big')).toEqual([]);
      for (const m of sink.deliveries) m.ack();
    } finally {
      await sub.stop();
      await sub.close();
    }
  });

  h.test(
    'driver: a nacked message comes again with the same deliveryId (at once where the broker redelivers, else to the next consumer), deliveryCount + 1 where the broker counts',
    { requires: ['persistent'] },
    async () => {
      const { driver, topic, spec } = await setup(h, 'drv-nack');
      const sink = new RecordingSink();
      let sub = await driver.subscribe(spec, sink);
      try {
        await publish(h, driver, topic, [wire('again')]);
        await waitFor(() => sink.of('again').length === 1, { timeoutMs: h.ms(20_000), message: 'first delivery' });
        const first = sink.of('again')[0]!;
        expect(first.deliveryCount).toBe(1);
        first.nack(0);
        if (!h.caps.nativeRedeliveryDelay) {
          // Kafka: a nacked record is read again by the partition's next consumer.
          await sub.stop();
          await sub.close();
          sub = await driver.subscribe(spec, sink);
        }
        await waitFor(() => sink.of('again').length === 2, { timeoutMs: h.ms(30_000), message: 'redelivery after nack' });
        const second = sink.of('again')[1]!;
        expect(second.deliveryId, 'deliveryId of the redelivery').toBe(first.deliveryId);
        if (h.caps.nativeRedeliveryDelay) expect(second.deliveryCount, 'deliveryCount of the redelivery').toBe(2);
        second.ack();
      } finally {
        await sub.stop();
        await sub.close();
      }
    },
  );
}
