/**
 * A rebalance while records are in flight: a second member joins a group
 * that is consuming a live stream. Nothing is lost, no commit (sampled
 * throughout) covers a record that was not handled before the sample, and
 * the group ends committed at the end of every partition.
 */
import { describe, expect, it } from 'vitest';
import { NO_BROKER, committed, kafkaFixture, locate, unique, until } from './helpers.js';

describe.skipIf(NO_BROKER)('kafka rebalance', () => {
  const f = kafkaFixture();
  const bus = (group: string, extra: Record<string, unknown> = {}) => f.bus({ group, ...extra }, 100);

  it('a member joining a live stream: no loss, no commit past an unhandled record, all committed at the end', async () => {
    const topic = unique('rebalance');
    const group = unique('g-rebalance');
    f.topics.push(topic);
    const partitions = 6;
    const total = 6_000;
    const publisher = await bus(unique('g-pub'), { topics: { [topic]: { partitions } } });
    await publisher.start();

    const handledAt = new Map<string, number>();
    const byA = new Set<string>();
    const byB = new Set<string>();
    const slow = () => new Promise((resolve) => setTimeout(resolve, 1 + Math.random() * 3));
    const a = await bus(group);
    await a.start();
    await a.subscribe(topic, async (_p, ctx) => {
      await slow();
      byA.add(ctx.envelope.id);
      if (!handledAt.has(ctx.envelope.id)) handledAt.set(ctx.envelope.id, performance.now());
    }, { concurrency: 8, maxInFlight: 200 });

    // A live stream: 100 records every 50 ms.
    let published = 0;
    const publishing = (async () => {
      while (published < total) {
        const r = await publisher.publishBatch(topic, Array.from({ length: 100 }, (_, j) => ({ payload: { i: published + j }, aggregateId: `agg-${(published + j) % 200}` })));
        expect(r.failed).toEqual([]);
        published += 100;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();

    const samples: { at: number; offsets: Map<number, number> }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const offsets = await committed(f.admin, group, topic);
        samples.push({ at: performance.now(), offsets });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();

    await until(() => handledAt.size >= total / 6, 60_000, () => `member A handled ${handledAt.size}`);
    const b = await bus(group);
    await b.start();
    await b.subscribe(topic, async (_p, ctx) => {
      await slow();
      byB.add(ctx.envelope.id);
      if (!handledAt.has(ctx.envelope.id)) handledAt.set(ctx.envelope.id, performance.now());
    }, { concurrency: 8, maxInFlight: 200 });

    await publishing;
    await until(() => handledAt.size === total, 120_000, () => `handled ${handledAt.size} of ${total}`);
    const where = await locate(topic, total);
    const ends = new Map<number, number>();
    for (const { partition, offset } of where.values()) ends.set(partition, Math.max(ends.get(partition) ?? 0, offset + 1));
    await until(async () => {
      const offsets = await committed(f.admin, group, topic);
      return [...ends].every(([p, end]) => offsets.get(p) === end);
    }, 60_000, 'every partition committed to its end');
    sampling = false;
    await sampler;

    const violations: string[] = [];
    for (const sample of samples) {
      for (const [id, at] of where) {
        if (at.offset >= (sample.offsets.get(at.partition) ?? -1)) continue;
        const when = handledAt.get(id);
        if (when === undefined || when > sample.at) violations.push(`p${at.partition}@${at.offset} committed before it was handled`);
      }
    }
    const twice = [...byA].filter((id) => byB.has(id)).length;
    console.log(`[kafka rebalance] A ${JSON.stringify(a.metrics().driver)}; B ${JSON.stringify(b.metrics().driver)}; handled by A ${byA.size}, by B ${byB.size}, by both ${twice}; ${samples.length} commit samples`);
    expect(violations.slice(0, 5), 'commits never cover an unhandled record').toEqual([]);
    expect(byB.size, 'the new member took over some partitions').toBeGreaterThan(0);
    expect(a.metrics().driver.rebalances ?? 0, 'member A saw the rebalance').toBeGreaterThanOrEqual(1);
    // A drains before it rejoins, but records it handled after one it recalled (same partition, another key)
    // are read again by the new owner from the committed offset: at-least-once.
    expect(a.metrics().driver.abandonedOnRebalance ?? 0, 'nothing was left running on a lost partition').toBe(0);
    expect(twice, 'records handled by both members').toBeLessThanOrEqual(200);
  });
});
