/**
 * Lifecycle: close drains and loses nothing acknowledged as published, a
 * closed bus refuses work, and (where the broker survives a restart) messages
 * published before a broker restart are consumed after it (Watermill
 * TestContinueAfterSubscribeClose, TestPublisherClose, TestReconnect).
 */
import { expect } from '../expect.js';
import { BuslineError, ErrorCode, type EventBus } from '@busline/core';
import type { Harness } from '../harness.js';
import { Collector, deferred, jitter, rejection, waitFor } from '../helpers.js';

function expectCode(error: unknown, code: string, what: string): void {
  expect(error, `${what} rejects with a BuslineError`).toBeInstanceOf(Error);
  expect((error as BuslineError).code, `${what} error code`).toBe(code);
}

/** Publishes, retrying while the broker is coming back (retryable errors only). */
async function publishThroughOutage(h: Harness, bus: EventBus, topic: string, payload: unknown, key: string): Promise<string> {
  const deadline = Date.now() + h.ms(60_000);
  for (;;) {
    try {
      return (await bus.publish(topic, payload as never, { aggregateId: key })).id;
    } catch (error) {
      if (!(error instanceof Error) || (error as BuslineError).retryable !== true || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

export function registerLifecycleTests(h: Harness): void {
  h.test(
    'close while messages are in flight loses nothing acknowledged as published; the group continues on a new bus',
    { requires: ['persistent', 'consumerGroups'], timeoutMs: 90_000 },
    async () => {
      const publisher = await h.bus();
      const topic = h.topic('inflight');
      const group = h.group('inflight');
      // More than a subscription may hold unsettled (default maxInFlight 1,000), so close() happens
      // with messages handled, in flight, and not yet delivered.
      const total = 2_000;
      const ids: string[] = [];
      for (let i = 0; i < total; i += 100) {
        const result = await publisher.publishBatch(
          topic,
          Array.from({ length: 100 }, (_, j) => ({ payload: { i: i + j }, aggregateId: `k-${(i + j) % 50}` })),
        );
        expect(result.failed).toEqual([]);
        ids.push(...result.ids);
      }

      const first = new Collector();
      let closed = false;
      let startedAfterClose = 0;
      const bus1 = await h.bus();
      await bus1.subscribe(
        topic,
        async (_p, ctx) => {
          if (closed) startedAfterClose++;
          await jitter(3);
          first.add(ctx.envelope.id, null);
        },
        { group, concurrency: 8 },
      );
      await first.waitForCount(total / 10, h.ms(20_000), 'handled before close');
      await h.close(bus1);
      closed = true;
      const handledBeforeClose = first.size;

      const second = new Collector();
      const bus2 = await h.bus();
      await bus2.subscribe(topic, async (_p, ctx) => second.add(ctx.envelope.id, null), { group });
      await waitFor(() => ids.every((id) => first.has(id) || second.has(id)), {
        timeoutMs: h.ms(30_000),
        message: () => `union of both buses covers all ${total}: missing ${ids.filter((id) => !first.has(id) && !second.has(id)).length}`,
      });
      expect(startedAfterClose, 'handler calls started after close() resolved').toBe(0);
      expect(first.size, 'nothing handled by the closed bus after close()').toBe(handledBeforeClose);
      expect(handledBeforeClose).toBeLessThan(total);
      if (h.caps.exactlyOnce) expect([...first.items.keys()].filter((id) => second.has(id))).toEqual([]);
    },
  );

  h.test(
    'close during a retry backoff returns promptly and hands the message back: the group handles it on a new bus',
    { requires: ['persistent', 'consumerGroups'] },
    async () => {
      const publisher = await h.bus();
      const topic = h.topic('backoff-close');
      const group = h.group('backoff');
      const failed = deferred();
      const bus1 = await h.bus();
      await bus1.subscribe(
        topic,
        async () => {
          failed.resolve();
          throw new Error('fails on the first bus');
        },
        { group, retry: { maxAttempts: 5, initialDelayMs: 60_000, maxDelayMs: 60_000 } },
      );
      const { id } = await publisher.publish(topic, { x: 1 });
      await failed.promise;
      const closeStarted = Date.now();
      await h.close(bus1);
      expect(Date.now() - closeStarted, 'close() waited out a 60 s backoff').toBeLessThan(h.ms(10_000));

      const got = new Collector<number>();
      const bus2 = await h.bus();
      await bus2.subscribe(topic, async (_p, ctx) => got.add(ctx.envelope.id, ctx.attempt), { group });
      await got.waitForIds([id], h.ms(20_000), 'the message handed back by the closed bus');
    },
  );

  h.test("the 'connection' event reports connected after start() and closed after close()", {}, async () => {
    const bus = await h.bus({}, { start: false });
    const states: string[] = [];
    bus.on('connection', (state: string) => states.push(state));
    await bus.start();
    await waitFor(() => states.includes('connected'), { timeoutMs: h.ms(5_000), message: () => `'connected' among ${JSON.stringify(states)}` });
    await h.close(bus);
    await waitFor(() => states.at(-1) === 'closed', { timeoutMs: h.ms(5_000), message: () => `last state 'closed' in ${JSON.stringify(states)}` });
  });

  h.test('close waits for running handlers before it resolves', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('drain');
    const started = deferred();
    const log: string[] = [];
    await bus.subscribe(topic, async () => {
      started.resolve();
      await new Promise((resolve) => setTimeout(resolve, 50));
      log.push('handler finished');
    });
    await bus.publish(topic, { slow: true });
    await started.promise;
    await h.close(bus);
    log.push('close resolved');
    expect(log).toEqual(['handler finished', 'close resolved']);
  });

  h.test('publish, subscribe and configureTopic after close reject with CLOSED; close is idempotent', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('closed');
    await bus.publish(topic, { before: true });
    await h.close(bus);
    await bus.close();
    expect(typeof (bus as unknown as Record<symbol, unknown>)[Symbol.asyncDispose]).toBe('function');

    expectCode(await rejection(bus.publish(topic, { after: true })), ErrorCode.Closed, 'publish');
    expectCode(
      await rejection(
        bus.publishEnvelope(topic, {
          id: 'closed-1',
          type: 't',
          source: 's',
          version: 1,
          time: new Date(),
          headers: {},
          payload: null,
        }),
      ),
      ErrorCode.Closed,
      'publishEnvelope',
    );
    expectCode(await rejection(bus.subscribe(topic, async () => {})), ErrorCode.Closed, 'subscribe');
    expectCode(await rejection(bus.subscribeWire(topic, async () => {})), ErrorCode.Closed, 'subscribeWire');
    expectCode(await rejection(bus.configureTopic(topic, { retentionMs: 60_000 })), ErrorCode.Closed, 'configureTopic');

    // A batch may reject as a whole or report every item failed; either way nothing is published.
    try {
      const result = await bus.publishBatch(topic, [{ payload: 1 }, { payload: 2 }]);
      expect(result.published).toBe(0);
      expect(result.failed.map((f) => (f.error as BuslineError).code)).toEqual([ErrorCode.Closed, ErrorCode.Closed]);
    } catch (error) {
      expectCode(error, ErrorCode.Closed, 'publishBatch');
    }
  });

  h.test(
    'messages published before a broker restart are consumed after it; a live subscription resumes',
    { requires: ['persistent', 'survivesBrokerRestart'], hooks: ['restartBroker'], timeoutMs: 180_000 },
    async () => {
      const publisher = await h.bus();
      const topic = h.topic('restart');
      const liveGroup = h.group('live');
      const live = new Collector();
      await (await h.bus()).subscribe(topic, async (_p, ctx) => live.add(ctx.envelope.id, null), { group: liveGroup });

      const beforeIds: string[] = [];
      for (let i = 0; i < 50; i++) beforeIds.push((await publisher.publish(topic, { i, phase: 'before' }, { aggregateId: `k-${i % 5}` })).id);
      await live.waitForIds(beforeIds, h.ms(20_000), 'live subscription before restart');

      await h.options.hooks!.restartBroker!();
      const backAt = Date.now();

      // A group that never read the topic gets everything published before the restart.
      const late = new Collector();
      await (await h.bus()).subscribe(topic, async (_p, ctx) => late.add(ctx.envelope.id, null), { group: h.group('after') });
      await late.waitForIds(beforeIds, h.ms(60_000), 'pre-restart messages read after the restart');

      // The old bus publishes again once reconnected, and the old subscription receives it.
      const afterIds: string[] = [];
      for (let i = 0; i < 10; i++) afterIds.push(await publishThroughOutage(h, publisher, topic, { i, phase: 'after' }, `k-${i % 5}`));
      await live.waitForIds(afterIds, h.ms(60_000), 'live subscription after restart');
      // Within seconds of the broker being back, not a session timeout (measured: Kafka 0.5 s, NATS 1.0 s).
      const resumedMs = Date.now() - backAt;
      expect(resumedMs, 'ms from the broker back to the live subscription handling what was published after it').toBeLessThan(h.ms(15_000));
    },
  );
}
