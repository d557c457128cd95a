/**
 * Rebalances with SLOW handlers never overlap a key across member processes.
 *
 * Member processes (conformance's MemberProcess: one bus per process, its
 * handlings reported to an OrderChecker here) consume a topic whose records
 * were all published up front, with few keys and handlers of up to 400 ms:
 * every member holds deep per-key queues in core and its fetch loop idles, so
 * kafkajs notices a rebalance in its fetch loop, not in our eachBatch. A
 * third member joins mid-stream, then one of the first two leaves (SIGTERM).
 * The checker must find no two handlings of one key running at once anywhere
 * in the group, first handlings in publish order, and nothing lost.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { MemberProcess, OrderChecker, runWithConcurrency, type MemberSpec } from '@busline/conformance';
import { applyKafkajsRejoinHook } from '../src/kafkajs-rejoin-hook.js';
import { BROKERS, NO_BROKER, kafkaFixture, unique, until } from './helpers.js';

describe.skipIf(NO_BROKER)('kafka rebalance with slow handlers, member processes', () => {
  const f = kafkaFixture();
  const members: MemberProcess[] = [];
  afterAll(async () => {
    await Promise.all(members.map((m) => m.stop()));
  }, 60_000);

  it('a member joins and one leaves while every member holds deep per-key queues: no key runs twice at once, first handlings in order, nothing lost', async () => {
    // kafkajs rejoins from its fetch loop only through the wrapped joinAndSync: another kafkajs must not silently lose it.
    expect(applyKafkajsRejoinHook(), 'ConsumerGroup.joinAndSync is wrapped').toBe(true);
    const topic = unique('slow-rebalance');
    const group = unique('g-slow-rebalance');
    f.topics.push(topic);
    const publisher = await f.bus({ group: unique('g-pub'), topics: { [topic]: { partitions: 6 } } });
    await publisher.start();
    await publisher.configureTopic(topic, { persistence: 'persistent', partitions: 6 }, { onMismatch: 'ignore' });

    const checker = new OrderChecker();
    const spec: MemberSpec = {
      config: {
        type: 'kafka',
        kafka: { brokers: BROKERS.split(','), consumer: { sessionTimeoutMs: 6_000, heartbeatIntervalMs: 1_000, rebalanceTimeoutMs: 20_000, commitIntervalMs: 200 } },
      },
      adapterModule: new URL('../dist/index.js', import.meta.url).href,
      topic,
      group,
      handlerMs: 400,
      failPercent: 0,
    };
    let n = 0;
    const start = async () => {
      const m = await MemberProcess.start(`member-${n++}`, spec, checker, 90_000);
      members.push(m);
      return m;
    };
    const first = await start();
    await start();

    const keys = Array.from({ length: 8 }, (_, i) => `acct-${i}`);
    const perKey = 50;
    const total = keys.length * perKey;
    await runWithConcurrency(keys.length, keys.length, async (k) => {
      const key = keys[k]!;
      for (let seq = 0; seq < perKey; seq++) {
        await publisher.publish(topic, { key, seq }, { aggregateId: key });
        checker.publishedOne(key);
      }
    });
    const at = (fraction: number, what: string) =>
      until(() => checker.handledCount >= total * fraction, 120_000, () => `handled ${checker.handledCount} of ${Math.round(total * fraction)} before ${what}`);

    await at(0.2, 'adding a member');
    await start();
    await at(0.5, 'removing a member');
    await first.stop();
    await until(() => checker.complete(), 180_000, () => `handled ${checker.handledCount} of ${total}`);
    await Promise.all(members.map((m) => m.stop()));

    const report = checker.report();
    const metrics = members.map((m) => m.driverMetrics ?? {});
    const sum = (name: string) => metrics.reduce((s, d) => s + (d[name] ?? 0), 0);
    console.log(
      `[kafka slow rebalance] ${report.handlings} handlings of ${total} messages (${report.repeated} repeated); concurrent ${report.concurrent.length}, out of order ${report.outOfOrder.length}, missing ${report.missing.length}; ` +
        `per member: ${metrics.map((d) => JSON.stringify(d)).join(' ')}`,
    );
    checker.assertHeld('per-key order across member processes through rebalances with slow handlers');
    expect(sum('rebalances'), 'the members saw rebalances').toBeGreaterThanOrEqual(2);
    expect(sum('abandonedOnRebalance'), 'no record was left running on a lost partition').toBe(0);
    expect(members.flatMap((m) => m.errors).filter((e) => e.includes('rebalance')), 'no drain hit its bound').toEqual([]);
  }, 420_000);
});
