/**
 * Per-key order across a group, the way services run: several members (buses)
 * of one group, handlers that fail now and then and are retried, members
 * restarted one after another while messages flow. The OrderChecker judges
 * every handling of every member together.
 */
import { expect } from '../expect.js';
import type { EventBus } from '@busline/core';
import type { Harness } from '../harness.js';
import { failsFirst, runWithConcurrency, waitFor } from '../helpers.js';
import { MemberProcess, type MemberSpec } from '../member-process.js';
import { OrderChecker } from '../order-checker.js';


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

  h.test(
    'two subscriptions of one topic and group on one bus: unsubscribing one mid-stream hands its keys to the other without overlap or loss',
    { requires: ['keyAffinity', 'consumerGroups', 'persistent', 'perKeyOrder'], timeoutMs: 90_000 },
    async () => {
      const bus = await h.bus();
      const topic = h.topic('two-subs');
      const group = h.group('two-subs');
      await bus.configureTopic(topic, { persistence: 'persistent', partitions: 4 }, { onMismatch: 'ignore' });
      const checker = new OrderChecker();
      const subscribe = (name: string, ms: number) =>
        bus.subscribe(
          topic,
          async (payload) => {
            const { key, seq } = payload as { key: string; seq: number };
            const end = checker.begin(name, key, seq);
            await new Promise((resolve) => setTimeout(resolve, ms));
            end();
          },
          { group, concurrency: 8 },
        );
      const a = await subscribe('A', 20);
      await subscribe('B', 1);
      const keys = Array.from({ length: 16 }, (_, i) => `k-${i}`);
      const perKey = 30;
      const publishing = runWithConcurrency(keys.length, keys.length, async (k) => {
        const key = keys[k]!;
        for (let seq = 0; seq < perKey; seq++) {
          await bus.publish(topic, { key, seq }, { aggregateId: key });
          checker.publishedOne(key);
        }
      });
      await waitFor(() => checker.report().handlings >= 60, { timeoutMs: h.ms(30_000), message: () => `handlings before unsubscribing A: ${checker.report().handlings}` });
      await a.unsubscribe(h.ms(10_000));
      await publishing;
      await waitFor(() => checker.complete(), { timeoutMs: h.ms(60_000), message: () => `handled ${checker.handledCount} of ${keys.length * perKey}` });
      checker.assertHeld();
    },
  );

  h.test(
    'member processes of one group: kill -9 of one, SIGTERM restart of another, one added and one removed while 20 keys flow: no key runs twice at once anywhere, first handlings in publish order, nothing lost',
    { requires: ['keyAffinity', 'consumerGroups', 'persistent', 'perKeyOrder'], memberProcess: true, timeoutMs: 180_000 },
    async () => {
      const topic = h.topic('members');
      const group = h.group('members');
      const checker = new OrderChecker();
      const spec: MemberSpec = { ...h.options.memberProcess!, topic, group, handlerMs: 3, failPercent: 3 };
      // Create the topic first, so members that start together do not race to create it.
      const publisher = await h.bus();
      await publisher.configureTopic(topic, { persistence: 'persistent' });
      let n = 0;
      const start = () => MemberProcess.start(`member-${n++}`, spec, checker, h.ms(60_000));
      const members = await Promise.all([start(), start(), start()]);
      try {
        const keys = Array.from({ length: 20 }, (_, i) => `acct-${i}`);
        const perKey = 60;
        const total = keys.length * perKey;
        const publishing = runWithConcurrency(keys.length, keys.length, async (k) => {
          const key = keys[k]!;
          for (let seq = 0; seq < perKey; seq++) {
            await publisher.publish(topic, { key, seq }, { aggregateId: key });
            checker.publishedOne(key);
          }
        });
        const at = async (fraction: number, what: string) =>
          waitFor(() => checker.handledCount >= total * fraction, {
            timeoutMs: h.ms(90_000),
            message: () => `handled ${checker.handledCount} of ${Math.round(total * fraction)} before ${what}`,
          });
        await at(0.2, 'kill -9');
        await members[0]!.kill();
        members[0] = await start();
        await at(0.45, 'the SIGTERM restart');
        await members[1]!.stop();
        members[1] = await start();
        await at(0.7, 'adding a member');
        members.push(await start());
        await at(0.8, 'removing a member');
        await members[2]!.stop();
        await publishing;
        await waitFor(() => checker.complete(), { timeoutMs: h.ms(90_000), message: () => `handled ${checker.handledCount} of ${total}` });
        const report = checker.assertHeld();
        expect(report.handlings).toBeGreaterThanOrEqual(total);
      } finally {
        await MemberProcess.stopAll(members);
      }
    },
  );
}
