/**
 * A throughput measurement, printed for every adapter so figures come from a
 * re-runnable script. Only a very generous floor is asserted: it catches a
 * collapse (the seed's 33 msg/s), not a slow CI machine.
 */
import { expect } from '../expect.js';
import type { Harness } from '../harness.js';
import { Collector, runWithConcurrency } from '../helpers.js';

export function registerThroughputTests(h: Harness): void {
  h.test('throughput: publish with many in flight, consume with per-key order', { timeoutMs: 180_000 }, async () => {
    const total = h.options.messageCount?.throughput ?? 20_000;
    const floor = h.options.throughputFloor ?? 200;
    const publisher = await h.bus();
    const consumer = await h.bus();
    const topic = h.topic('throughput');
    // Create the topic up front so the first publishes do not measure provisioning.
    await publisher.configureTopic(topic, {});
    const got = new Collector();
    let lastHandledAt = 0;
    await consumer.subscribe(
      topic,
      async (_p, ctx) => {
        if (got.has(ctx.envelope.id)) return;
        got.add(ctx.envelope.id, null);
        lastHandledAt = performance.now();
      },
      { ordering: 'key', concurrency: 64 },
    );
    const payload = { orderId: 'o-123456', customer: 'c-42', amount: 1234.5, currency: 'EUR', lines: 3 };
    const ids: string[] = new Array<string>(total);
    const start = performance.now();
    await runWithConcurrency(total, 1_000, async (i) => {
      ids[i] = (await publisher.publish(topic, payload, { aggregateId: `agg-${i % 1_000}`, type: 'order.placed' })).id;
    });
    const published = performance.now();
    await got.waitForIds(ids, h.ms(120_000), 'throughput messages');
    const publishRate = total / ((published - start) / 1000);
    const endToEndRate = total / ((Math.max(lastHandledAt, published) - start) / 1000);
    console.log(
      `[conformance:${h.options.name}] publish ${Math.round(publishRate)} msg/s, end-to-end ${Math.round(endToEndRate)} msg/s (${total} messages, 1000 keys)`,
    );
    expect(publishRate, 'publish msg/s').toBeGreaterThan(floor);
    expect(endToEndRate, 'end-to-end msg/s').toBeGreaterThan(floor);
  });
}
