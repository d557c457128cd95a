/**
 * Publishing under pressure and with odd input: a bounded publish window
 * (waiting callers, then a clear refusal, never an unbounded heap), per-call
 * timeouts that make no sense, and wire messages whose key and headers belong
 * to the caller.
 */
import { expect } from '../expect.js';
import { ErrorCode, type BuslineError } from '@busline/core';
import type { Harness } from '../harness.js';
import { Collector, rejection, waitFor } from '../helpers.js';

export function registerPublishingTests(h: Harness): void {
  h.test(
    'publishes beyond publish.maxInFlight wait, beyond publish.maxWaiting they are refused with PUBLISH_QUEUE_FULL; every accepted one is stored',
    {},
    async () => {
      const bus = await h.bus({ publish: { maxInFlight: 50, maxWaiting: 100 } });
      const topic = h.topic('window');
      const handled = new Collector();
      await bus.subscribe(topic, (_p, ctx) => {
        handled.add(ctx.envelope.id, null);
      });
      const results = await Promise.allSettled(Array.from({ length: 1_000 }, (_, i) => bus.publish(topic, { i }, { aggregateId: `k-${i % 20}` })));
      const stored = results.filter((r) => r.status === 'fulfilled').map((r) => r.value.id);
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as BuslineError);
      expect(stored.length, 'in flight at once plus waiting').toBe(150);
      expect(new Set(refused.map((e) => e.code))).toEqual(new Set([ErrorCode.PublishQueueFull]));
      expect(refused[0]!.retryable).toBe(true);
      expect(refused[0]!.message).toMatch(/maxWaiting/);
      await handled.waitForIds(stored, h.ms(20_000), 'every accepted publish');
      expect(bus.metrics().publishing).toBe(0);
      // Room again: the next publish goes through.
      await bus.publish(topic, { after: true });
    },
  );

  h.test('a per-call timeoutMs that is not a positive number of milliseconds rejects CONFIG_INVALID on every publish call', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('bad-timeout');
    for (const timeoutMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      const calls: [string, () => Promise<unknown>][] = [
        ['publish', () => bus.publish(topic, { x: 1 }, { timeoutMs })],
        ['publishBatch', () => bus.publishBatch(topic, [{ payload: { x: 1 } }], { timeoutMs })],
        ['publishWire', () => bus.publishWire(topic, { headers: {}, body: new Uint8Array(1) }, { timeoutMs })],
      ];
      for (const [call, run] of calls) {
        let error: BuslineError;
        try {
          const result = await run();
          // publishBatch reports per item rather than rejecting.
          error = (result as { failed: { error: BuslineError }[] }).failed[0]!.error;
        } catch (e) {
          error = e as BuslineError;
        }
        expect(error?.code, `${call} with timeoutMs ${timeoutMs}`).toBe(ErrorCode.ConfigInvalid);
        expect(error.message).toMatch(/timeoutMs/);
      }
    }
    expect(bus.metrics().publishing).toBe(0);
  });

  h.test(
    "publishWire: the message's key orders delivery like an aggregate id, and the caller's headers object is neither frozen nor changed",
    { requires: ['perKeyOrder'] },
    async () => {
      const bus = await h.bus({ concurrency: 16 });
      const topic = h.topic('wire-key');
      const seen: { key: string | undefined; seq: number }[] = [];
      const running = new Map<string, number>();
      let overlaps = 0;
      await bus.subscribeWire(
        topic,
        async (message) => {
          const key = message.key ?? '';
          running.set(key, (running.get(key) ?? 0) + 1);
          if (running.get(key)! > 1) overlaps++;
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
          seen.push({ key: message.key, seq: Number(new TextDecoder().decode(message.body)) });
          running.set(key, running.get(key)! - 1);
        },
        { concurrency: 16 },
      );
      const headers = { 'x-origin': 'legacy-producer' };
      for (let seq = 0; seq < 30; seq++) {
        await bus.publishWire(topic, { key: `wire-${seq % 2}`, headers, body: new TextEncoder().encode(String(seq)) });
      }
      expect(Object.isFrozen(headers), "the caller's headers are not frozen").toBe(false);
      expect(headers).toEqual({ 'x-origin': 'legacy-producer' });
      await waitFor(() => seen.length >= 30, { timeoutMs: h.ms(20_000), message: () => `wire messages handled: ${seen.length} of 30` });
      expect(new Set(seen.map((s) => s.key)), 'the key arrives with the message').toEqual(new Set(['wire-0', 'wire-1']));
      for (const key of ['wire-0', 'wire-1']) {
        const order = seen.filter((s) => s.key === key).map((s) => s.seq);
        expect(order, `order of ${key}`).toEqual([...order].sort((a, b) => a - b));
      }
      expect(overlaps, 'two handlers of one key at once').toBe(0);
    },
  );

  h.test('publishWire refuses a header value that is not a string and a key that is not a string (ENVELOPE_INVALID)', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('wire-bad');
    const badHeader = await rejection(bus.publishWire(topic, { headers: { n: 1 as unknown as string }, body: new Uint8Array(1) }));
    expect(badHeader.code).toBe(ErrorCode.EnvelopeInvalid);
    expect(badHeader.message).toMatch(/header "n"/);
    const badKey = await rejection(bus.publishWire(topic, { key: 7 as unknown as string, headers: {}, body: new Uint8Array(1) }));
    expect(badKey.code).toBe(ErrorCode.EnvelopeInvalid);
  });
}
