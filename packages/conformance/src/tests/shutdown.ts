/**
 * Stopping in the middle of things: close and unsubscribe while a key's
 * message waits out a retry, while handlers run with more queued behind them,
 * and while `start()` is still opening the subscription. A key's later
 * message is never handled ahead of an earlier one that was given back, no
 * handler starts after close or unsubscribe resolved, and no subscription is
 * lost or left attached.
 *
 * The hand-over tests need `keyAffinity`: whether the next member gets a
 * key's given-back messages in order is the broker's side of the promise (a
 * shared NATS consumer redelivers naks in no guaranteed order).
 */
import { expect } from '../expect.js';
import type { EventBus, Subscription } from '@busline/core';
import type { Harness } from '../harness.js';
import { Collector, deferred, nextEvent, waitFor } from '../helpers.js';
import { OrderChecker } from '../order-checker.js';

/** Subscribes a member that records every handling of `{ seq }` payloads under the message's aggregate id. */
function member(bus: EventBus, topic: string, group: string, checker: OrderChecker, name: string, handle: (seq: number, attempt: number) => Promise<void> | void, options: Record<string, unknown> = {}): Promise<Subscription> {
  return bus.subscribe(
    topic,
    async (payload, ctx) => {
      const end = checker.begin(name, ctx.envelope.aggregateId!, (payload as { seq: number }).seq);
      try {
        await handle((payload as { seq: number }).seq, ctx.attempt);
      } catch (error) {
        end(false);
        throw error;
      }
      end();
    },
    { group, ...options },
  );
}

/** A new member of the group takes over: everything is handled, and per-key order held across both members. */
async function nextMemberHandlesAll(h: Harness, topic: string, group: string, checker: OrderChecker): Promise<void> {
  const bus = await h.bus();
  await member(bus, topic, group, checker, 'second', () => undefined);
  await waitFor(() => checker.complete(), { timeoutMs: h.ms(30_000), message: () => `handled ${checker.handledCount} of 10` });
  checker.assertHeld();
}

export function registerShutdownTests(h: Harness): void {
  for (const how of ['close', 'unsubscribe'] as const) {
    h.test(
      `${how} while a key's message waits out an in-process retry: the key's later messages are not handled ahead of it; the next member handles them all in order`,
      { requires: ['persistent', 'consumerGroups', 'perKeyOrder', 'keyAffinity'], timeoutMs: 60_000 },
      async () => {
        const topic = h.topic(`retry-${how}`);
        const group = h.group('retry-stop');
        const checker = new OrderChecker();
        const bus1 = await h.bus();
        const failedOnce = deferred();
        const sub1 = await member(
          bus1,
          topic,
          group,
          checker,
          'first',
          (seq) => {
            if (seq === 0) {
              failedOnce.resolve();
              throw new Error('transient');
            }
          },
          { retry: { maxAttempts: 5, initialDelayMs: 60_000, maxDelayMs: 60_000, jitter: 0 }, concurrency: 8 },
        );
        const publisher = await h.bus();
        for (let seq = 0; seq < 10; seq++) {
          await publisher.publish(topic, { seq }, { aggregateId: 'k' });
          checker.publishedOne('k');
        }
        await failedOnce.promise;
        if (how === 'close') await h.close(bus1, { timeoutMs: h.ms(5_000) });
        else await sub1.unsubscribe(h.ms(5_000));
        await nextMemberHandlesAll(h, topic, group, checker);
      },
    );
  }

  h.test(
    'close({ timeoutMs }) shorter than a running handler: nothing queued behind it starts, before or after close resolves',
    { requires: ['persistent', 'consumerGroups', 'perKeyOrder', 'keyAffinity'], timeoutMs: 60_000 },
    async () => {
      const topic = h.topic('close-slow');
      const group = h.group('close-slow');
      const checker = new OrderChecker();
      const bus1 = await h.bus();
      const started = deferred();
      const finished = deferred();
      const calls: number[] = [];
      await member(bus1, topic, group, checker, 'first', async (seq) => {
        calls.push(seq);
        if (seq === 0) {
          started.resolve();
          await new Promise((resolve) => setTimeout(resolve, 600));
          finished.resolve();
        }
      });
      for (let seq = 0; seq < 10; seq++) {
        await bus1.publish(topic, { seq }, { aggregateId: 'k' });
        checker.publishedOne('k');
      }
      await started.promise;
      await h.close(bus1, { timeoutMs: 100 });
      const callsAtClose = calls.length;
      await finished.promise;
      // One more moment for anything that the finished call would have let start.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(calls.slice(callsAtClose), 'handler calls after close() resolved').toEqual([]);
      expect(calls, 'only the running call').toEqual([0]);
      await nextMemberHandlesAll(h, topic, group, checker);
    },
  );

  h.test(
    'unsubscribe() ends in-process retries: no handler call after it resolved, and hundreds of messages in backoff add no listeners',
    {},
    async () => {
      const warnings: string[] = [];
      const onWarning = (w: Error) => warnings.push(w.name);
      process.on('warning', onWarning);
      try {
        const bus = await h.bus();
        const topic = h.topic('unsub-retry');
        let calls = 0;
        let callsAfter = 0;
        let resolved = false;
        const sub = await bus.subscribe(
          topic,
          () => {
            calls++;
            if (resolved) callsAfter++;
            throw new Error('always');
          },
          { retry: { maxAttempts: 1_000, initialDelayMs: 20, maxDelayMs: 40 }, concurrency: 256, maxInFlight: 1_000 },
        );
        const result = await bus.publishBatch(topic, Array.from({ length: 300 }, (_, i) => ({ payload: { i }, aggregateId: `k-${i}` })));
        expect(result.failed).toEqual([]);
        await waitFor(() => calls >= 600, { timeoutMs: h.ms(20_000), message: () => `retries running: ${calls} calls` });
        await sub.unsubscribe(h.ms(5_000));
        resolved = true;
        // Several backoff periods: a retry that survived unsubscribe would have run by now.
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(callsAfter, 'handler calls after unsubscribe() resolved').toBe(0);
        expect(warnings.filter((w) => w === 'MaxListenersExceededWarning')).toEqual([]);
      } finally {
        process.off('warning', onWarning);
      }
    },
  );

  for (const when of ['right after start()', "on start()'s connection event"] as const) {
    h.test(
      `unsubscribe() of one subscription while start() opens it (${when}): the others open, it never attaches, publishing to its topic does not hang`,
      {},
      async () => {
        const bus = await h.bus({}, { start: false });
        const gone = h.topic('gone');
        const kept = h.topic('kept');
        let goneCalls = 0;
        const keptHandled = new Collector();
        const subGone = await bus.subscribe(gone, () => {
          goneCalls++;
        });
        await bus.subscribe(kept, (_p, ctx) => {
          keptHandled.add(ctx.envelope.id, null);
        });
        let unsubscribing: Promise<void> | undefined;
        if (when === 'right after start()') {
          const starting = bus.start();
          unsubscribing = subGone.unsubscribe();
          await starting;
        } else {
          const connected = nextEvent(bus, 'connection', { timeoutMs: h.ms(20_000) });
          const starting = bus.start();
          await connected;
          unsubscribing = subGone.unsubscribe();
          await starting;
        }
        await unsubscribing;
        const id = (await bus.publish(kept, { ok: true })).id;
        await keptHandled.waitForIds([id], h.ms(20_000), 'the subscription opened beside the unsubscribed one');
        await bus.publish(gone, { ignored: true });
        expect(goneCalls, 'handler calls of the unsubscribed subscription').toBe(0);
        await h.close(bus, { timeoutMs: h.ms(5_000) });
      },
    );
  }
}
