/**
 * The bound of a rebalance drain. A member whose handler outlives the drain
 * waits rebalanceTimeoutMs − heartbeatIntervalMs − max(maxWaitTimeMs, idleFetchWaitMs) − 2 s
 * (REJOIN_ALLOWANCE_MS), heartbeating meanwhile, so it stays in the group even
 * though the wait is longer than its session timeout; then it rejoins without
 * that handler, reports DRAIN_TIMEOUT naming rebalanceTimeoutMs and counts
 * `rebalanceDrainTimeouts`. Both members live in this process, so this also
 * shows that each kafkajs consumer reaches its own bus's drain.
 */
import type { EventBus } from '@busline/core';
import { describe, expect, it } from 'vitest';
import { rebalanceDrainBoundMs } from '../src/rebalance-drain.js';
import { consumerConfigSchema } from '../src/config.js';
import { BROKERS, NO_BROKER, kafkaFixture, unique, until } from './helpers.js';

describe.skipIf(NO_BROKER)('kafka rebalance drain bound', () => {
  const f = kafkaFixture();

  it('a handler longer than the bound: the member heartbeats past its session timeout, rejoins at the bound, keeps its membership, reports and counts it', async () => {
    const topic = unique('drain-bound');
    const group = unique('g-drain-bound');
    f.topics.push(topic);
    const consumer = { sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, rebalanceTimeoutMs: 15_000, maxWaitTimeMs: 100, commitIntervalMs: 200 };
    const bound = rebalanceDrainBoundMs(consumerConfigSchema.parse(consumer));
    expect(bound, "less a heartbeat, the idle fetch wait (the longer fetch wait) and the rejoin allowance").toBe(15_000 - 500 - 1_000 - 2_000);
    expect(bound, 'the drain outlasts the session timeout').toBeGreaterThan(consumer.sessionTimeoutMs);

    const publisher = await f.bus({ group: unique('g-pub'), topics: { [topic]: { partitions: 2 } } });
    await publisher.start();
    await publisher.configureTopic(topic, { persistence: 'persistent', partitions: 2 }, { onMismatch: 'ignore' });

    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const handled = new Map<string, string[]>();
    const member = async (name: string): Promise<{ bus: EventBus; errors: { code: string | undefined; message: string; at: number }[] }> => {
      const bus = await f.bus({ group, kafka: { brokers: [BROKERS], consumer } });
      const errors: { code: string | undefined; message: string; at: number }[] = [];
      bus.on('error', (error) => errors.push({ code: (error as { code?: string }).code, message: error.message, at: performance.now() }));
      await bus.start();
      await bus.subscribe(topic, async (payload: unknown) => {
        const { id } = payload as { id: string };
        handled.set(id, [...(handled.get(id) ?? []), name]);
        if (id === 'stuck' && name === 'A') await released;
      });
      return { bus, errors };
    };

    const a = await member('A');
    await publisher.publish(topic, { id: 'stuck' }, { aggregateId: 'k' });
    await until(() => handled.has('stuck'), 60_000, 'A started the stuck handler');
    const before = await f.admin.describeGroups([group]);
    const memberA = before.groups[0]!.members.map((m) => m.memberId);
    expect(memberA.length).toBe(1);
    const joinedAt = performance.now();
    const b = await member('B');
    await until(() => a.errors.some((e) => e.code === 'DRAIN_TIMEOUT'), 60_000, () => `A's errors: ${JSON.stringify(a.errors)}`);
    const timeout = a.errors.find((e) => e.code === 'DRAIN_TIMEOUT')!;
    expect(timeout.message).toMatch(/rebalanceTimeoutMs/);
    expect(timeout.at - joinedAt, 'A waited (about) the bound before it gave up').toBeGreaterThanOrEqual(bound - 1_000);
    expect(a.bus.metrics().driver.rebalanceDrainTimeouts).toBe(1);

    let members: string[] = [];
    await until(async () => {
      const { groups } = await f.admin.describeGroups([group]);
      members = groups[0]!.state === 'Stable' ? groups[0]!.members.map((m) => m.memberId) : [];
      return members.length === 2;
    }, 30_000, () => `the group is stable with both members: ${members.join()}`);
    // Expired by its session timeout, A would have rejoined under a new member id.
    expect(members, 'A heartbeated through the drain and kept its membership').toContain(memberA[0]);
    release();
    await until(() => (handled.get('stuck') ?? []).length >= 1, 30_000, 'stuck handled');
    await publisher.publish(topic, { id: 'after' }, { aggregateId: 'k' });
    await until(() => handled.has('after'), 60_000, 'a record after the rebalance is handled');
    expect(b.errors.filter((e) => e.code === 'DRAIN_TIMEOUT')).toEqual([]);
  }, 180_000);
});
