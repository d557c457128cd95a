/**
 * Publish/subscribe basics: what goes in comes out intact, batches report
 * per-item failures, many subscribers and many topics work at once without
 * cross-talk (Watermill: TestPublishSubscribe, TestConcurrentSubscribe, TestTopic).
 */
import { randomUUID } from 'node:crypto';
import { expect } from '../expect.js';
import { BuslineError, ErrorCode, type Envelope } from '@busline/core';
import type { Harness } from '../harness.js';
import { Collector, runWithConcurrency, waitFor } from '../helpers.js';

interface Received {
  payload: unknown;
  envelope: Envelope;
  attempt: number;
  topic: string;
  group: string;
}

export function registerPubSubTests(h: Harness): void {
  h.test('round trip keeps a JSON payload and every envelope field intact', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('roundtrip');
    const group = h.group('rt');
    const got = new Collector<Received>();
    await bus.subscribe(
      topic,
      async (payload, ctx) => {
        got.add(ctx.envelope.id, { payload, envelope: ctx.envelope, attempt: ctx.attempt, topic: ctx.topic, group: ctx.group });
      },
      { group },
    );

    const id = randomUUID();
    const payload = { order: 'o-1', amount: 12.5, count: 3, tags: ['a', 'b'], nested: { ok: true, none: null }, text: 'héllo ✓ 日本' };
    const before = bus.metrics();
    const sentAt = Date.now();
    const result = await bus.publish(topic, payload, {
      id,
      aggregateId: 'order-1',
      type: 'order.created',
      version: 2,
      headers: { 'x-region': 'eu-west', 'x-request': 'r-42' },
      traceId: 'trace-abc',
      correlationId: 'corr-abc',
      causationId: 'cause-abc',
      tenantId: 'tenant-abc',
    });
    expect(result).toEqual({ id, topic });

    await got.waitForIds([id], h.ms(10_000));
    const r = got.items.get(id)!;
    expect(r.payload).toEqual(payload);
    expect(r.topic).toBe(topic);
    expect(r.group).toBe(group);
    expect(r.attempt).toBe(1);
    expect(r.envelope).toMatchObject({
      id,
      aggregateId: 'order-1',
      type: 'order.created',
      version: 2,
      traceId: 'trace-abc',
      correlationId: 'corr-abc',
      causationId: 'cause-abc',
      tenantId: 'tenant-abc',
      payload,
    });
    expect(r.envelope.headers).toMatchObject({ 'x-region': 'eu-west', 'x-request': 'r-42' });
    expect(typeof r.envelope.source).toBe('string');
    expect(r.envelope.source.length).toBeGreaterThan(0);
    expect(r.envelope.time).toBeInstanceOf(Date);
    expect(Math.abs(r.envelope.time!.getTime() - sentAt)).toBeLessThan(h.ms(60_000));

    await waitFor(() => bus.metrics().handled >= before.handled + 1, {
      timeoutMs: h.ms(5_000),
      message: () => `metrics().handled to grow from ${before.handled}; now ${bus.metrics().handled}`,
    });
    expect(bus.metrics().published).toBeGreaterThanOrEqual(before.published + 1);
    expect(bus.metrics().consumed).toBeGreaterThanOrEqual(before.consumed + 1);
  });

  h.test('round trip keeps JSON payloads of every kind (null, numbers, booleans, strings, arrays)', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('jsonkinds');
    const got = new Collector<unknown>();
    await bus.subscribe(topic, async (payload, ctx) => got.add(ctx.envelope.id, payload));
    const payloads: unknown[] = [null, 0, -1.5, 1e21, true, false, '', 'text with "quotes" and \\ backslash', [], [1, 'two', { three: 3 }], {}];
    const ids: string[] = [];
    for (const payload of payloads) ids.push((await bus.publish(topic, payload as never)).id);
    await got.waitForIds(ids, h.ms(10_000));
    ids.forEach((id, i) => expect(got.items.get(id), `payload #${i}`).toEqual(payloads[i]));
  });

  h.test('round trip keeps a bytes payload byte for byte (including empty)', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('bytes');
    const got = new Collector<{ payload: unknown; envelope: Envelope }>();
    await bus.subscribe(topic, async (payload, ctx) => got.add(ctx.envelope.id, { payload, envelope: ctx.envelope }));
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const text = new TextEncoder().encode('{"looks":"like json" but is not');
    const empty = new Uint8Array(0);
    const sent = [all, text, empty];
    const ids: string[] = [];
    for (const payload of sent) ids.push((await bus.publish(topic, payload, { aggregateId: 'bytes-key', headers: { 'x-kind': 'bytes' } })).id);
    await got.waitForIds(ids, h.ms(10_000));
    ids.forEach((id, i) => {
      const r = got.items.get(id)!;
      expect(r.payload, `payload #${i} is bytes`).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(r.payload as Uint8Array).equals(Buffer.from(sent[i]!)), `payload #${i} bytes equal`).toBe(true);
      expect(r.envelope.aggregateId).toBe('bytes-key');
      expect(r.envelope.headers).toMatchObject({ 'x-kind': 'bytes' });
    });
  });

  h.test('publishEnvelope round trip keeps a caller-built envelope (source, time, version) intact', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('envelope');
    const got = new Collector<Envelope>();
    await bus.subscribeEnvelope(topic, async (envelope) => got.add(envelope.id, envelope));
    const envelope: Envelope = {
      id: randomUUID(),
      type: 'invoice.issued',
      source: 'conformance-suite',
      aggregateId: 'invoice-7',
      version: 4,
      time: new Date('2024-01-02T03:04:05.678Z'),
      traceId: 't-1',
      correlationId: 'c-1',
      causationId: 'k-1',
      tenantId: 'acme',
      headers: { 'x-a': '1', 'x-b': 'two words' },
      payload: { total: 99.95, lines: [{ sku: 'A', qty: 2 }] },
    };
    const result = await bus.publishEnvelope(topic, envelope);
    expect(result).toEqual({ id: envelope.id, topic });
    await got.waitForIds([envelope.id], h.ms(10_000));
    const r = got.items.get(envelope.id)!;
    expect(r).toMatchObject({ ...envelope, headers: expect.objectContaining(envelope.headers) as unknown });
    expect(r.time!.toISOString()).toBe(envelope.time!.toISOString());
  });

  h.test('publishBatch publishes the valid items and reports each invalid one by index', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('batch');
    const got = new Collector<Envelope>();
    await bus.subscribeEnvelope(topic, async (envelope) => got.add(envelope.id, envelope));
    const items = Array.from({ length: 10 }, (_, i) => ({
      id: randomUUID(),
      payload: { n: i },
      aggregateId: i === 4 ? 'bad key with spaces' : 'batch-key',
      type: 'batch.item',
      headers: { 'x-n': String(i) },
    }));
    const result = await bus.publishBatch(topic, items);
    expect(result.published).toBe(9);
    expect(result.failed).toHaveLength(1);
    const failure = result.failed[0]!;
    expect(failure.index).toBe(4);
    expect(failure.error).toBeInstanceOf(Error);
    expect((failure.error as BuslineError).code).toBe(ErrorCode.EnvelopeInvalid);
    expect(failure.error.message).toMatch(/aggregateId/);
    // ids are positional: one per item, in order (the given id, also for the failed item).
    expect(result.ids).toEqual(items.map((i) => i.id));
    const valid = items.filter((_, i) => i !== 4);

    await got.waitForIds(
      valid.map((i) => i.id),
      h.ms(10_000),
    );
    expect(got.has(items[4]!.id), 'the invalid item must not be published').toBe(false);
    for (const item of valid) {
      const e = got.items.get(item.id)!;
      expect(e.payload).toEqual(item.payload);
      expect(e.headers).toMatchObject(item.headers);
    }
    if (h.caps.perKeyOrder) {
      const firstArrivals = [...new Set(got.arrivals)];
      expect(firstArrivals, 'batch items with one key arrive in batch order').toEqual(valid.map((i) => i.id));
    }
  });

  h.test('many concurrent subscribers in several groups each receive every message', {}, async () => {
    const publisher = await h.bus();
    const topic = h.topic('fanout');
    const buses = await Promise.all([h.bus(), h.bus(), h.bus()]);
    const collectors: Collector[] = [];
    // Nine subscriptions, each its own group, subscribed concurrently across three buses.
    await Promise.all(
      buses.flatMap((bus) =>
        [0, 1, 2].map(async () => {
          const c = new Collector();
          collectors.push(c);
          await bus.subscribe(topic, async (_p, ctx) => c.add(ctx.envelope.id, null), { group: h.group('fan'), concurrency: 8 });
        }),
      ),
    );
    const count = 200;
    const ids: string[] = [];
    await runWithConcurrency(count, 50, async (i) => {
      ids.push((await publisher.publish(topic, { i }, { aggregateId: `k-${i % 50}` })).id);
    });
    await Promise.all(collectors.map((c, n) => c.waitForIds(ids, h.ms(20_000), `subscriber ${n}`)));
    for (const c of collectors) expect(c.unexpected(ids)).toEqual([]);
    if (h.caps.exactlyOnce) for (const c of collectors) expect(c.duplicates()).toEqual([]);
  });

  h.test('many topics at once stay isolated (no cross-talk)', {}, async () => {
    const publisher = await h.bus();
    const consumer = await h.bus();
    const topics = Array.from({ length: 20 }, (_, i) => h.topic(`iso${i}`));
    const collectors = new Map<string, Collector<{ payloadTopic: string; ctxTopic: string }>>();
    await Promise.all(
      topics.map(async (topic) => {
        const c = new Collector<{ payloadTopic: string; ctxTopic: string }>();
        collectors.set(topic, c);
        await consumer.subscribe(topic, async (payload, ctx) => {
          c.add(ctx.envelope.id, { payloadTopic: (payload as { topic: string }).topic, ctxTopic: ctx.topic });
        });
      }),
    );
    const perTopic = 25;
    const sent = new Map<string, string[]>(topics.map((t) => [t, []]));
    await runWithConcurrency(topics.length * perTopic, 100, async (i) => {
      const topic = topics[i % topics.length]!;
      const { id } = await publisher.publish(topic, { topic, i }, { aggregateId: `k-${i % 7}` });
      sent.get(topic)!.push(id);
    });
    for (const topic of topics) {
      const c = collectors.get(topic)!;
      await c.waitForIds(sent.get(topic)!, h.ms(20_000), `topic ${topic}`);
    }
    for (const topic of topics) {
      const c = collectors.get(topic)!;
      expect(c.unexpected(sent.get(topic)!), `messages of other topics reached ${topic}`).toEqual([]);
      for (const r of c.items.values()) expect(r).toEqual({ payloadTopic: topic, ctxTopic: topic });
    }
  });

  h.test('subscriptions made before start() are opened at start, on several topics at once', {}, async () => {
    const publisher = await h.bus();
    const bus = await h.bus({}, { start: false });
    const topics = Array.from({ length: 5 }, (_, i) => h.topic(`prestart${i}`));
    const collectors = topics.map(() => new Collector());
    for (const [i, topic] of topics.entries()) {
      await bus.subscribe(topic, async (_p, ctx) => collectors[i]!.add(ctx.envelope.id, null));
    }
    await bus.start();
    const sent = await Promise.all(topics.map(async (topic) => (await publisher.publish(topic, { topic })).id));
    await Promise.all(collectors.map((c, i) => c.waitForIds([sent[i]!], h.ms(20_000), `topic ${topics[i]}`)));
  });

  h.test('a subscription never runs more handlers at once than its concurrency', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('concurrency');
    const got = new Collector();
    let running = 0;
    let maxRunning = 0;
    await bus.subscribe(
      topic,
      async (_p, ctx) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((resolve) => setTimeout(resolve, 1 + Math.random() * 3));
        running--;
        got.add(ctx.envelope.id, null);
      },
      { concurrency: 4 },
    );
    const result = await bus.publishBatch(
      topic,
      Array.from({ length: 200 }, (_, i) => ({ payload: { i }, aggregateId: `k-${i}` })),
    );
    expect(result.failed).toEqual([]);
    await got.waitForIds(result.ids, h.ms(20_000));
    expect(maxRunning, 'handlers running at once').toBeLessThanOrEqual(4);
    expect(maxRunning, 'distinct keys ran in parallel').toBeGreaterThan(1);
    await waitFor(() => bus.metrics().inFlight === 0, {
      timeoutMs: h.ms(5_000),
      message: () => `metrics().inFlight back to 0 once all is handled; it is ${bus.metrics().inFlight}`,
    });
  });

  h.test('ephemeral topics deliver to live subscribers', { requires: ['ephemeral'] }, async () => {
    const bus = await h.bus();
    const topic = h.topic('ephemeral');
    const result = await bus.configureTopic(topic, { persistence: 'ephemeral' });
    expect(['created', 'verified', 'updated']).toContain(result.action);
    const got = new Collector();
    await bus.subscribe(topic, async (_p, ctx) => got.add(ctx.envelope.id, null));
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await bus.publish(topic, { i })).id);
    await got.waitForIds(ids, h.ms(10_000));
  });

  h.test('a re-published event id is stored once', { requires: ['dedupe', 'perKeyOrder'] }, async () => {
    const bus = await h.bus();
    const topic = h.topic('dedupe');
    const got = new Collector();
    await bus.subscribe(topic, async (_p, ctx) => got.add(ctx.envelope.id, null));
    const id = randomUUID();
    await bus.publish(topic, { copy: 1 }, { id, aggregateId: 'dd' });
    await bus.publish(topic, { copy: 2 }, { id, aggregateId: 'dd' });
    // Same key, published after: once it is handled, both copies of `id` had their chance to arrive.
    const { id: sentinel } = await bus.publish(topic, { sentinel: true }, { aggregateId: 'dd' });
    await got.waitForIds([id, sentinel], h.ms(10_000));
    expect(got.arrivals.filter((a) => a === id)).toHaveLength(1);
  });
}
