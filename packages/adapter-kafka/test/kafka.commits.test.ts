/**
 * No loss and no premature commit, checked against the broker's committed
 * offsets (admin.fetchOffsets):
 * - a record whose handler keeps failing holds its partition's commit back
 *   while later records are handled; once it is handled (or dead-lettered)
 *   the commit moves past it;
 * - a consumer killed mid-batch (left the group without draining or a final
 *   commit) and replaced: everything below the committed offsets was handled
 *   by the first consumer, and the replacement handles everything else.
 */
import { describe, expect, it } from 'vitest';
import type { KafkaDriver } from '../src/index.js';
import { NO_BROKER, committed, kafkaFixture, locate, unique, until } from './helpers.js';

describe.skipIf(NO_BROKER)('kafka commits: no loss, no premature commit', () => {
  const f = kafkaFixture();
  const bus = (group: string, extra: Record<string, unknown> = {}) => f.bus({ group, ...extra }, 100);

  it('a failing record holds the commit back while later records are handled; handled, it is passed', async () => {
    const topic = unique('holdback');
    const group = unique('g-holdback');
    f.topics.push(topic, `${topic}.dlq`);
    const b = await bus(group, { topics: { [topic]: { partitions: 1 } } });
    await b.start();
    let released = false;
    const handled = new Set<number>();
    let attemptsOfFailing = 0;
    await b.subscribe(
      topic,
      async (payload) => {
        const { n } = payload as { n: number };
        if (n === 5 && !released) {
          attemptsOfFailing++;
          throw new Error('not yet');
        }
        handled.add(n);
      },
      { retry: { maxAttempts: 1_000_000, initialDelayMs: 5, maxDelayMs: 20, jitter: 0 } },
    );
    // Distinct keys: the records after the failing one are not blocked behind it.
    for (let n = 0; n < 20; n++) await b.publish(topic, { n }, { aggregateId: `k-${n}` });
    await until(() => handled.size === 19, 30_000, () => `19 records handled, got ${handled.size}`);
    expect(handled.has(5)).toBe(false);

    // Let several commits happen after everything but offset 5 was handled.
    const commitsNow = b.metrics().driver.commits ?? 0;
    await until(() => (b.metrics().driver.commits ?? 0) >= commitsNow + 3 || attemptsOfFailing > 50, 30_000, 'more commit rounds');
    await until(async () => (await committed(f.admin, group, topic)).get(0) === 5, 30_000, 'the commit reaches offset 5');
    expect((await committed(f.admin, group, topic)).get(0), 'never past the failing record').toBe(5);
    const snapshot = (b.driver as KafkaDriver).consumerOf(group)!.snapshot();
    expect(snapshot.partitions.find((p) => p.topic === topic)?.watermark).toBe(4);

    released = true;
    await until(() => handled.has(5), 30_000, 'the failing record handled once released');
    await until(async () => (await committed(f.admin, group, topic)).get(0) === 20, 30_000, 'the commit passes it');
  });

  it('a record that exhausts its retries is dead-lettered, then the commit passes it', async () => {
    const topic = unique('deadletter');
    const group = unique('g-deadletter');
    f.topics.push(topic, `${topic}.dlq`);
    const b = await bus(group, { topics: { [topic]: { partitions: 1 } } });
    await b.start();
    const handled = new Set<number>();
    const dead: string[] = [];
    b.on('deadLetter', (e) => dead.push(String((e.envelope?.payload as { n: number } | undefined)?.n)));
    await b.subscribe(
      topic,
      async (payload) => {
        const { n } = payload as { n: number };
        if (n === 3) throw new Error('poison');
        handled.add(n);
      },
      { retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 5 } },
    );
    for (let n = 0; n < 10; n++) await b.publish(topic, { n }, { aggregateId: `k-${n % 4}` });
    await until(() => handled.size === 9 && dead.length === 1, 30_000, () => `handled ${handled.size}, dead ${dead.length}`);
    expect(dead).toEqual(['3']);
    await until(async () => (await committed(f.admin, group, topic)).get(0) === 10, 30_000, 'the commit passes the dead-lettered record');
  });

  it('a consumer killed mid-batch and replaced: committed offsets cover only handled records, the replacement handles the rest', async () => {
    const topic = unique('kill');
    const group = unique('g-kill');
    f.topics.push(topic);
    const partitions = 3;
    const total = 3_000;
    const setup = await bus(unique('g-setup'), { topics: { [topic]: { partitions } } });
    await setup.start();
    const published: string[] = [];
    for (let i = 0; i < total; i += 500) {
      const r = await setup.publishBatch(
        topic,
        Array.from({ length: 500 }, (_, j) => ({ payload: { i: i + j }, aggregateId: `agg-${(i + j) % 100}` })),
      );
      expect(r.failed).toEqual([]);
      published.push(...r.ids);
    }

    const where = await locate(topic, total);

    const first = new Set<string>();
    const a = await bus(group);
    await a.start();
    await a.subscribe(
      topic,
      async (_p, ctx) => {
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 4));
        first.add(ctx.envelope.id);
      },
      { concurrency: 32, maxInFlight: 300 },
    );
    await until(() => first.size >= total / 3, 60_000, () => `first consumer handled ${first.size}`);
    // A commit round must have moved an offset before the kill (on a loaded machine the third could be handled
    // before the first progress commit; the first commits of an ownership store attempt marks at the start).
    await until(async () => [...(await committed(f.admin, group, topic)).values()].some((o) => o > 0), 30_000, 'a commit that moved an offset');
    // Kill: leave the group now, no drain, no final commit; handlers still running finish unacknowledged.
    await (a.driver as KafkaDriver).consumerOf(group)!.kill();
    const handledAtKill = new Set(first);
    const offsets = await committed(f.admin, group, topic);

    let committedCount = 0;
    for (const [id, at] of where) {
      const c = offsets.get(at.partition) ?? -1;
      if (at.offset < c) {
        committedCount++;
        expect(handledAtKill.has(id) || first.has(id), `committed offset ${c} of partition ${at.partition} covers ${at.offset}, which was never handled`).toBe(true);
      }
    }
    expect(committedCount, 'something was committed before the kill').toBeGreaterThan(0);
    expect(committedCount, 'not everything was committed (the kill was mid-stream)').toBeLessThan(total);

    const second = new Set<string>();
    const b = await bus(group);
    await b.start();
    await b.subscribe(topic, async (_p, ctx) => void second.add(ctx.envelope.id), { concurrency: 32 });
    const uncommitted = [...where].filter(([, at]) => at.offset >= (offsets.get(at.partition) ?? -1)).map(([id]) => id);
    await until(() => uncommitted.every((id) => second.has(id)), 60_000, () => `replacement handled ${uncommitted.filter((id) => second.has(id)).length} of ${uncommitted.length} uncommitted`);
    expect(published.every((id) => first.has(id) || second.has(id)), 'every published record was handled').toBe(true);
    await until(async () => {
      const now = await committed(f.admin, group, topic);
      return [...Array(partitions).keys()].every((p) => (now.get(p) ?? -1) >= 0) &&
        [...now.values()].reduce((s, v) => s + v, 0) === total;
    }, 30_000, 'the replacement commits everything');
  });
});
