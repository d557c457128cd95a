/**
 * Two subscriptions of one topic and group on one bus share one kafkajs
 * consumer (partition p goes to subscription p % n). Unsubscribing A
 * mid-stream hands its partitions to B only once A settled what it held:
 * a key never runs in both handlers at once, and nothing is lost (records A
 * handed back go to B).
 */
import { describe, expect, it } from 'vitest';
import { NO_BROKER, kafkaFixture, unique, until } from './helpers.js';

describe.skipIf(NO_BROKER)('kafka: two subscriptions of one topic and group on one bus', () => {
  const f = kafkaFixture();

  it('unsubscribing A mid-stream: no key runs in A and B at once, nothing lost, per-key order kept', async () => {
    const topic = unique('handover');
    const group = unique('g-handover');
    f.topics.push(topic);
    const partitions = 4;
    const keys = 16;
    const total = 640;
    const publisher = await f.bus({ group: unique('g-pub'), topics: { [topic]: { partitions } } });
    await publisher.start();
    const bus = await f.bus({ group, topics: { [topic]: { partitions } } }, 100);

    const running = new Map<string, string>(); // key -> subscription running it
    const overlaps: string[] = [];
    const handled = new Map<number, string>(); // n -> subscription that handled it first
    const lastOfKey = new Map<string, number>();
    const orderViolations: string[] = [];
    const handler = (name: string) => async (payload: unknown, ctx: { envelope: { aggregateId?: string } }) => {
      const { n } = payload as { n: number };
      const key = ctx.envelope.aggregateId!;
      const other = running.get(key);
      if (other !== undefined) overlaps.push(`${key}: ${name} started n=${n} while ${other} ran it`);
      running.set(key, name);
      // A is slow, so it holds running records and a backlog of its partitions when it is
      // unsubscribed, while new records of the same keys keep arriving.
      await new Promise((resolve) => setTimeout(resolve, name === 'A' ? 40 : 2 + (n % 4)));
      if (running.get(key) === name) running.delete(key);
      const last = lastOfKey.get(key) ?? -1;
      if (n < last) orderViolations.push(`${key}: ${n} after ${last}`);
      lastOfKey.set(key, Math.max(last, n));
      if (!handled.has(n)) handled.set(n, name);
    };
    const a = await bus.subscribe(topic, handler('A'), { concurrency: 8, maxInFlight: 64 });
    await bus.subscribe(topic, handler('B'), { concurrency: 8, maxInFlight: 64 });
    await bus.start();

    // A live stream: 32 records (2 per key) every 20 ms.
    let published = 0;
    const publishing = (async () => {
      while (published < total) {
        const r = await publisher.publishBatch(topic, Array.from({ length: 32 }, (_, j) => ({ payload: { n: published + j }, aggregateId: `key-${(published + j) % keys}` })));
        expect(r.failed).toEqual([]);
        published += 32;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();

    await until(() => [...handled.values()].filter((s) => s === 'A').length >= 24, 60_000, () => `A handled ${handled.size}`);
    const byAAtUnsubscribe = [...handled.values()].filter((s) => s === 'A').length;
    await a.unsubscribe();
    await publishing;
    // Overlaps are reported even when records are missing, so wait without throwing first.
    await until(() => handled.size === total, 30_000, '').catch(() => undefined);

    const byA = [...handled.values()].filter((s) => s === 'A').length;
    console.log(`[kafka handover] A handled ${byA} (${byAAtUnsubscribe} before unsubscribe), B ${handled.size - byA}; ${JSON.stringify(bus.metrics().driver)}`);
    expect(overlaps.slice(0, 10), 'a key in A and B at once').toEqual([]);
    expect([...Array(total).keys()].filter((n) => !handled.has(n)).slice(0, 20), 'records never handled').toEqual([]);
    expect(orderViolations.slice(0, 10), 'per-key order').toEqual([]);
    expect(handled.size - byA, 'B took over').toBeGreaterThan(0);
  }, 120_000);
});
