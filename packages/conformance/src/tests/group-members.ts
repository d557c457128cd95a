/**
 * Per-key order across a group, the way services run: several members (buses)
 * of one group, handlers that fail now and then and are retried, members
 * restarted one after another while messages flow. The OrderChecker judges
 * every handling of every member together.
 */
import type { EventBus } from '@busline/core';
import type { Harness } from '../harness.js';
import { runWithConcurrency, waitFor } from '../helpers.js';
import { OrderChecker } from '../order-checker.js';

/** Deterministic "transient failure" of about `percent` % of first attempts. */
function failsFirst(id: string, percent: number): boolean {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (Math.imul(h, 31) + id.charCodeAt(i)) | 0;
  return Math.abs(h) % 100 < percent;
}

export function registerGroupMemberTests(h: Harness): void {
  h.test(
    'three members of one group, restarted one after another while 20 keys flow, with 3% transient handler failures: no key runs twice at once, first handlings in publish order, nothing lost',
    { requires: ['keyAffinity', 'consumerGroups', 'persistent', 'perKeyOrder'], timeoutMs: 120_000 },
    async () => {
      const topic = h.topic('rolling');
      const group = h.group('rolling');
      const checker = new OrderChecker();
      const keys = Array.from({ length: 20 }, (_, i) => `acct-${i}`);
      const perKey = 40;
      const total = keys.length * perKey;

      let generation = 0;
      const join = async (): Promise<EventBus> => {
        const name = `member-${generation++}`;
        const bus = await h.bus();
        await bus.subscribe(
          topic,
          async (payload, ctx) => {
            const { key, seq } = payload as { key: string; seq: number };
            const end = checker.begin(name, key, seq);
            await new Promise((resolve) => setTimeout(resolve, Math.random() * 2));
            const fail = ctx.attempt === 1 && failsFirst(ctx.envelope.id, 3);
            end(!fail);
            if (fail) throw new Error('transient');
          },
          { group, concurrency: 8, retry: { maxAttempts: 5, initialDelayMs: 5, maxDelayMs: 50 } },
        );
        return bus;
      };

      const members = [await join(), await join(), await join()];
      const publisher = await h.bus();
      const publishing = runWithConcurrency(keys.length, keys.length, async (k) => {
        const key = keys[k]!;
        for (let seq = 0; seq < perKey; seq++) {
          await publisher.publish(topic, { key, seq }, { aggregateId: key });
          checker.publishedOne(key);
        }
      });

      for (let i = 0; i < members.length; i++) {
        const mark = Math.round(((i + 1) * total) / (members.length + 1));
        await waitFor(() => checker.handledCount >= mark, {
          timeoutMs: h.ms(60_000),
          message: () => `handled ${checker.handledCount} of ${mark} before restarting member ${i}`,
        });
        await h.close(members[i]!, { timeoutMs: h.ms(10_000) });
        members[i] = await join();
      }
      await publishing;
      await waitFor(() => checker.complete(), {
        timeoutMs: h.ms(60_000),
        message: () => `handled ${checker.handledCount} of ${total}`,
      });
      checker.assertHeld();
    },
  );
}
