/**
 * Delivery guarantees: redelivery after failure (Watermill TestResendOnError),
 * per-key order under concurrency (TestPublishSubscribeInOrder, at 1,000+
 * keys), consumer groups (TestConsumerGroups), persistence for late groups
 * (TestNewSubscriberReceivesOldMessages) and resuming a group
 * (TestContinueAfterSubscribeClose).
 */
import { expect } from '../expect.js';
import type { RetryEvent } from '@busline/core';
import type { Harness } from '../harness.js';
import { Collector, jitter, runWithConcurrency, shuffle, waitFor } from '../helpers.js';

export function registerDeliveryTests(h: Harness): void {
  for (const redelivery of ['inProcess', 'broker'] as const) {
    h.test(
      `a failed handler is retried (${redelivery} redelivery): attempt 1 fails, attempt 2 handles it`,
      { requires: redelivery === 'broker' ? ['nativeRedeliveryDelay'] : [] },
      async () => {
        const bus = await h.bus();
        const topic = h.topic(`retry-${redelivery}`);
        const attempts = new Map<string, { attempt: number; at: number }[]>();
        const handled = new Collector<number>();
        const retries: RetryEvent[] = [];
        bus.on('retry', (e: RetryEvent) => {
          if (e.topic === topic) retries.push(e);
        });
        const initialDelayMs = 30;
        await bus.subscribe(
          topic,
          async (_p, ctx) => {
            const list = attempts.get(ctx.envelope.id) ?? [];
            list.push({ attempt: ctx.attempt, at: Date.now() });
            attempts.set(ctx.envelope.id, list);
            if (list.length === 1) throw new Error(`transient failure of ${ctx.envelope.id}`);
            handled.add(ctx.envelope.id, ctx.attempt);
          },
          { retry: { maxAttempts: 3, initialDelayMs, maxDelayMs: 100, redelivery }, concurrency: 8 },
        );
        const before = bus.metrics();
        const ids: string[] = [];
        for (let i = 0; i < 20; i++) ids.push((await bus.publish(topic, { i }, { aggregateId: `k-${i % 5}` })).id);
        await handled.waitForIds(ids, h.ms(20_000), 'messages handled on retry');

        for (const id of ids) {
          const list = attempts.get(id)!;
          expect(list[0]!.attempt, `first delivery of ${id} is attempt 1`).toBe(1);
          expect(list[1]!.attempt, `redelivery of ${id} is attempt 2`).toBe(2);
          expect(handled.items.get(id), `${id} handled on attempt 2`).toBe(2);
          // Backoff was applied (allowing for up to 50% jitter and timer slack).
          expect(list[1]!.at - list[0]!.at, `backoff before attempt 2 of ${id}`).toBeGreaterThanOrEqual(initialDelayMs / 2 - 2);
        }
        await waitFor(() => retries.length >= ids.length, {
          timeoutMs: h.ms(5_000),
          message: () => `a 'retry' event per failure: ${retries.length} of ${ids.length}`,
        });
        expect(retries.every((e) => e.attempt === 1 && e.delayMs >= 0)).toBe(true);
        expect(bus.metrics().retried - before.retried).toBeGreaterThanOrEqual(ids.length);
        expect(bus.metrics().failed - before.failed).toBeGreaterThanOrEqual(ids.length);
      },
    );
  }

  h.test(
    'per-key order holds with 1,000+ keys interleaved, handler concurrency > 1 and in-process retries',
    { requires: ['perKeyOrder'], timeoutMs: 120_000 },
    async () => {
      const total = Math.max(h.options.messageCount?.order ?? 5_000, 2_000);
      const publisher = await h.bus();
      const consumer = await h.bus();
      const topic = h.topic('order');

      // 1,000 keys, every one used; 10 hot keys carry 40% of the traffic so messages of one key
      // sit close together (inside the concurrency window), where a broken pool would overlap them.
      const hot = Array.from({ length: 10 }, (_, i) => `hot-${i}`);
      const cold = Array.from({ length: 990 }, (_, i) => `agg-${i}`);
      const labels: string[] = [...hot, ...cold];
      for (let i = 0, nh = 0, nc = 0; labels.length < total; i++) {
        labels.push(i % 5 < 2 ? hot[nh++ % hot.length]! : cold[nc++ % cold.length]!);
      }
      shuffle(labels);
      const nextSeq = new Map<string, number>();
      const messages = labels.map((key) => {
        const seq = nextSeq.get(key) ?? 0;
        nextSeq.set(key, seq + 1);
        return { key, seq };
      });

      const maxSeq = new Map<string, number>();
      const running = new Set<string>();
      const violations: string[] = [];
      const failOnce = new Set<string>();
      const got = new Collector();
      let inFlight = 0;
      let maxInFlight = 0;
      let retried = 0;
      await consumer.subscribe(
        topic,
        async (payload, ctx) => {
          const { key, seq } = payload as { key: string; seq: number };
          if (running.has(key)) violations.push(`${key}: seq ${seq} started while another message of the key was running`);
          running.add(key);
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          try {
            const seen = maxSeq.get(key) ?? -1;
            if (seq > seen + 1) violations.push(`${key}: seq ${seq} handled before seq ${seen + 1}`);
            else if (seq <= seen && h.caps.exactlyOnce) violations.push(`${key}: seq ${seq} handled again (exactly-once adapter)`);
            await jitter(2);
            // About 3% of messages fail their first attempt: the retry must hold back the key's later messages.
            if (ctx.attempt === 1 && !failOnce.has(ctx.envelope.id) && Math.random() < 0.03) {
              failOnce.add(ctx.envelope.id);
              retried++;
              throw new Error(`planned failure of ${key}#${seq}`);
            }
            maxSeq.set(key, Math.max(seen, seq));
            got.add(ctx.envelope.id, null);
          } finally {
            inFlight--;
            running.delete(key);
          }
        },
        { ordering: 'key', concurrency: 16, retry: { maxAttempts: 5, initialDelayMs: 1, maxDelayMs: 5 } },
      );

      // Batches publish in order, so the publish order per key is the array order.
      const ids: string[] = [];
      for (let i = 0; i < messages.length; i += 500) {
        const chunk = messages.slice(i, i + 500);
        const result = await publisher.publishBatch(
          topic,
          chunk.map((m) => ({ payload: m, aggregateId: m.key })),
        );
        expect(result.failed).toEqual([]);
        ids.push(...result.ids);
      }
      await got.waitForIds(ids, h.ms(60_000), 'ordered messages');
      expect(violations.slice(0, 10), `${violations.length} order violations`).toEqual([]);
      for (const [key, count] of nextSeq) expect(maxSeq.get(key), `last seq of ${key}`).toBe(count - 1);
      expect(nextSeq.size).toBeGreaterThanOrEqual(1_000);
      expect(retried, 'some messages went through a retry').toBeGreaterThan(0);
      expect(maxInFlight, 'handlers ran concurrently across keys').toBeGreaterThan(1);
    },
  );

  h.test('two groups each receive every message', { requires: ['consumerGroups'] }, async () => {
    const publisher = await h.bus();
    const topic = h.topic('groups');
    const a = new Collector();
    const b = new Collector();
    await (await h.bus()).subscribe(topic, async (_p, ctx) => a.add(ctx.envelope.id, null), { group: h.group('ga') });
    await (await h.bus()).subscribe(topic, async (_p, ctx) => b.add(ctx.envelope.id, null), { group: h.group('gb') });
    const ids: string[] = [];
    await runWithConcurrency(100, 20, async (i) => {
      ids.push((await publisher.publish(topic, { i }, { aggregateId: `k-${i}` })).id);
    });
    await a.waitForIds(ids, h.ms(20_000), 'group A');
    await b.waitForIds(ids, h.ms(20_000), 'group B');
  });

  h.test('members of one group share the work: both get some, together they get all', { requires: ['consumerGroups'], timeoutMs: 90_000 }, async () => {
    const publisher = await h.bus();
    const topic = h.topic('members');
    // Brokers that shard a group by partition need more than one; others ignore the field.
    await publisher.configureTopic(topic, { partitions: 4 }, { onMismatch: 'ignore' });
    const group = h.group('shared');
    const m1 = new Collector();
    const m2 = new Collector();
    const all = new Collector();
    const member = async (c: Collector) =>
      (await h.bus()).subscribe(
        topic,
        async (_p, ctx) => {
          c.add(ctx.envelope.id, null);
          all.add(ctx.envelope.id, null);
        },
        { group },
      );
    await member(m1);
    await member(m2);

    // Publish in waves until both members have handled something (a group rebalance may take a
    // while on some brokers); every wave must be fully handled by the group before the next.
    const ids: string[] = [];
    const deadline = Date.now() + h.ms(60_000);
    let wave = 0;
    while (m1.size === 0 || m2.size === 0) {
      if (Date.now() > deadline) break;
      const waveIds: string[] = [];
      await runWithConcurrency(40, 20, async (i) => {
        waveIds.push((await publisher.publish(topic, { wave, i }, { aggregateId: `w${wave}-k${i}` })).id);
      });
      ids.push(...waveIds);
      await all.waitForIds(waveIds, h.ms(20_000), `wave ${wave} handled by the group`);
      wave++;
    }
    expect(m1.size, 'member 1 handled some').toBeGreaterThan(0);
    expect(m2.size, 'member 2 handled some').toBeGreaterThan(0);
    expect(all.missing(ids)).toEqual([]);
    // Competing consumers, not fan-out: a message goes to one member (rare redeliveries aside).
    const both = [...m1.items.keys()].filter((id) => m2.has(id));
    if (h.caps.exactlyOnce) expect(both, 'messages handled by both members').toEqual([]);
    else expect(both.length, 'messages handled by both members (fan-out instead of sharing?)').toBeLessThan(ids.length / 2);
  });

  h.test('a new group receives messages published before it subscribed', { requires: ['persistent'] }, async () => {
    const publisher = await h.bus();
    const topic = h.topic('old');
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push((await publisher.publish(topic, { i }, { aggregateId: `k-${i % 10}` })).id);
    for (const label of ['late1', 'late2']) {
      const c = new Collector();
      await (await h.bus()).subscribe(topic, async (_p, ctx) => c.add(ctx.envelope.id, null), {
        group: h.group(label),
        startFrom: 'earliest',
      });
      await c.waitForIds(ids, h.ms(20_000), `group ${label}`);
    }
  });

  h.test("startFrom 'latest': a new group skips what was published before it subscribed and gets what follows", { requires: ['persistent'] }, async () => {
    const publisher = await h.bus();
    const topic = h.topic('latest');
    const old: string[] = [];
    for (let i = 0; i < 10; i++) old.push((await publisher.publish(topic, { i, phase: 'old' }, { aggregateId: 'k' })).id);
    const got = new Collector();
    await (await h.bus()).subscribe(topic, async (_p, ctx) => got.add(ctx.envelope.id, null), {
      group: h.group('latest'),
      startFrom: 'latest',
    });
    // Published after subscribe() resolved: the subscription must be positioned by then.
    const fresh: string[] = [];
    for (let i = 0; i < 10; i++) fresh.push((await publisher.publish(topic, { i, phase: 'new' }, { aggregateId: 'k' })).id);
    await got.waitForIds(fresh, h.ms(20_000), 'messages published after subscribe');
    // Same key: any old message would have arrived before the new ones.
    expect(old.filter((id) => got.has(id)), 'old messages delivered to a latest group').toEqual([]);
  });

  h.test(
    'a group resumes where it stopped: unsubscribe, publish more, resubscribe — the rest arrives, the handled part is not replayed',
    { requires: ['persistent', 'consumerGroups'] },
    async () => {
      const publisher = await h.bus();
      const topic = h.topic('resume');
      const group = h.group('resume');
      const publishSome = async (from: number, n: number) => {
        const ids: string[] = [];
        for (let i = from; i < from + n; i++) ids.push((await publisher.publish(topic, { i }, { aggregateId: `k-${i % 5}` })).id);
        return ids;
      };
      const bus1 = await h.bus();
      const first = new Collector();
      let callsAfterUnsubscribe = 0;
      let unsubscribed = false;
      const sub1 = await bus1.subscribe(
        topic,
        async (_p, ctx) => {
          if (unsubscribed) callsAfterUnsubscribe++;
          first.add(ctx.envelope.id, null);
        },
        { group },
      );
      const batch1 = await publishSome(0, 30);
      await first.waitForIds(batch1, h.ms(20_000), 'first batch');
      await sub1.unsubscribe();
      unsubscribed = true;
      await h.close(bus1);

      const batch2 = await publishSome(30, 30);
      const bus2 = await h.bus();
      const second = new Collector();
      await bus2.subscribe(topic, async (_p, ctx) => second.add(ctx.envelope.id, null), { group });
      await second.waitForIds(batch2, h.ms(20_000), 'second batch');
      expect(callsAfterUnsubscribe, 'handler called after unsubscribe resolved').toBe(0);
      const replayed = batch1.filter((id) => second.has(id));
      expect(replayed.length, 'acknowledged messages replayed to the resumed group').toBeLessThan(batch1.length);
      if (h.caps.exactlyOnce) expect(replayed).toEqual([]);
    },
  );
}
