/**
 * Handlers that misbehave: throw values that are not Errors, never return,
 * or take longer than the broker's redelivery deadline with a backlog behind
 * them on one key. None of it may kill the consumer, block other keys or
 * topics, lose a message, or run a message of a key twice at once.
 */
import { expect } from '../expect.js';
import { DeadLetterHeader } from '@busline/core';
import type { Harness } from '../harness.js';
import { Collector, deferred, readDeadLetters, waitFor } from '../helpers.js';
import { OrderChecker } from '../order-checker.js';

/** Values a handler may throw or reject with, none of them an Error. */
function thrownValues(): Record<string, () => unknown> {
  const circular: Record<string, unknown> = { name: 'circular' };
  circular.self = circular;
  return {
    undefined: () => undefined,
    null: () => null,
    string: () => 'plain string',
    number: () => 42,
    symbol: () => Symbol('thrown symbol'),
    bigint: () => 10n ** 20n,
    function: () => function thrownFunction() {},
    circular: () => circular,
    hostile: () => ({
      get message(): string {
        throw new Error('hostile getter');
      },
      get retryable(): boolean {
        throw new Error('hostile getter');
      },
      toJSON(): never {
        throw new Error('hostile toJSON');
      },
    }),
    'error without message': () => new Error(''),
  };
}

export function registerHandlerFaultTests(h: Harness): void {
  for (const how of ['throws', 'rejects with'] as const) {
    h.test(
      `a handler that ${how} anything at all (undefined, a Symbol, a BigInt, a function, a circular or hostile object) dead-letters that message and the key goes on`,
      { requires: ['persistent'] },
      async () => {
        const bus = await h.bus();
        const topic = h.topic('throws-anything');
        const values = thrownValues();
        const dead = await readDeadLetters(h, bus, `${topic}.dlq`);
        const handled = new Collector();
        const order: string[] = [];
        await bus.subscribe(
          topic,
          (payload, ctx) => {
            const kind = (payload as { kind: string }).kind;
            order.push(kind);
            if (kind === 'ok') {
              handled.add(ctx.envelope.id, null);
              return undefined;
            }
            const value = values[kind]!();
            if (how === 'throws') throw value;
            return Promise.reject(value);
          },
          { retry: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 5 } },
        );
        const ids = new Map<string, string>();
        for (const kind of Object.keys(values)) ids.set(kind, (await bus.publish(topic, { kind }, { aggregateId: 'one-key' })).id);
        const ok = await bus.publish(topic, { kind: 'ok' }, { aggregateId: 'one-key' });
        await dead.waitForIds([...ids.values()], h.ms(20_000), 'a dead letter per thrown value');
        await handled.waitForIds([ok.id], h.ms(20_000), 'the message after them on the same key');
        for (const [kind, id] of ids) {
          const letter = dead.items.get(id)!;
          expect(letter.headers[DeadLetterHeader.error], `error header for a thrown ${kind}`).toMatch(/\S/);
          expect(letter.headers[DeadLetterHeader.attempts], `attempts for a thrown ${kind}`).toBe('2');
        }
        // Each value was tried twice, in publish order, before the next message of the key ran.
        const kinds = Object.keys(values);
        expect(order).toEqual([...kinds.flatMap((k) => [k, k]), 'ok']);
      },
    );
  }

  h.test(
    'a backlog on one key that takes longer than the broker deadline to handle: every message handled once, in order, never two at once',
    { requires: ['perKeyOrder'], timeoutMs: 60_000 },
    async () => {
      const deadlineMs = h.options.deadline?.ms ?? 1_000;
      const bus = await h.bus({}, { deadline: true });
      const topic = h.topic('slow-backlog');
      const checker = new OrderChecker();
      const count = 24;
      // The whole backlog takes ~2.5 deadlines; every message but the first waits in core longer than one.
      const handlerMs = Math.ceil((deadlineMs * 2.5) / count);
      await bus.subscribe(
        topic,
        async (payload) => {
          const end = checker.begin('member', 'k', (payload as { seq: number }).seq);
          await new Promise((resolve) => setTimeout(resolve, handlerMs));
          end();
        },
        { concurrency: 16 },
      );
      for (let seq = 0; seq < count; seq++) {
        await bus.publish(topic, { seq }, { aggregateId: 'k' });
        checker.publishedOne('k');
      }
      await waitFor(() => checker.complete(), { timeoutMs: h.ms(30_000), message: () => `backlog handled: ${checker.handledCount} of ${count}` });
      // Redelivered copies that arrive late must not be handled either: wait out one more deadline.
      await new Promise((resolve) => setTimeout(resolve, deadlineMs + 200));
      const report = checker.assertHeld();
      expect(report.repeated, 'messages handled more than once').toBe(0);
    },
  );

  h.test(
    'a handler call that never returns holds its key only: other keys and other topics keep flowing, and it is never run twice at once',
    { requires: ['perKeyOrder'], timeoutMs: 60_000 },
    async () => {
      const deadlineMs = h.options.deadline?.ms ?? 1_000;
      const bus = await h.bus({ concurrency: 8 }, { deadline: true });
      const stuckTopic = h.topic('stuck');
      const otherTopic = h.topic('flowing');
      const release = deferred();
      const stuckCalls: number[] = [];
      const stuckHandled = new Collector();
      try {
        await bus.subscribe(stuckTopic, async (payload, ctx) => {
          const seq = (payload as { seq: number }).seq;
          stuckCalls.push(seq);
          if (seq === 0) await release.promise;
          stuckHandled.add(ctx.envelope.id, null);
        });
        const other = new Collector();
        await bus.subscribe(otherTopic, async (_p, ctx) => {
          other.add(ctx.envelope.id, null);
        });
        for (let seq = 0; seq < 20; seq++) await bus.publish(stuckTopic, { seq }, { aggregateId: seq < 10 ? 'stuck-key' : `free-${seq}` });
        // The free keys of the same topic finish while the stuck key waits.
        await waitFor(() => stuckCalls.filter((s) => s >= 10).length === 10, { timeoutMs: h.ms(10_000), message: () => `free keys handled: ${stuckCalls.filter((s) => s >= 10).length} of 10` });
        // Several broker deadlines pass with the call stuck.
        await new Promise((resolve) => setTimeout(resolve, 3 * deadlineMs));
        const ids: string[] = [];
        for (let i = 0; i < 50; i++) ids.push((await bus.publish(otherTopic, { i }, { aggregateId: `o-${i % 10}` })).id);
        await other.waitForIds(ids, h.ms(20_000), 'the other topic, while one call is stuck');
        expect(stuckCalls.filter((s) => s === 0), 'the stuck message ran once (no redelivered copy ran)').toEqual([0]);
        expect(stuckCalls.filter((s) => s > 0 && s < 10), 'nothing of the stuck key ran behind it').toEqual([]);
      } finally {
        release.resolve();
      }
      await waitFor(() => stuckCalls.filter((s) => s < 10).length >= 10, { timeoutMs: h.ms(20_000), message: () => 'the stuck key, released' });
      expect(stuckCalls.filter((s) => s < 10)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    },
  );
}
