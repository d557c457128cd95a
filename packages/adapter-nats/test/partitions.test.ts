/**
 * Partitioned topics and pinned group consumers on the scripted server
 * (nats-server ≥ 2.11): the stream layout (subjects, transform, one pinned
 * durable per partition), keys mapped to one partition each by the server,
 * the partitions split between live members, a partition handed over on
 * unsubscribe, and the refusals (fewer partitions, a plain stream
 * repartitioned, shared stream mode).
 */
import { describe, expect, it } from 'vitest';
import { Collector, uniqueName, waitFor } from '@busline/conformance';
import { assignedPartitions } from '../src/group-membership.js';
import { keyToken, partitionsOf, partitionTransform, publishSubject } from '../src/partition-layout.js';
import type { PartitionedConsumer } from '../src/partitioned-consumer.js';
import { serverPins, sharedServerFixture, SHARED_URL, SKIP, streamOf, topicName } from './helpers.js';

describe('partition layout', () => {
  it('key tokens are subject-safe and distinct for distinct keys', () => {
    const keys = ['o-1', 'a.b', 'a_b', '~x', 'ü', 'with space', '*', '>', '', 'x'.repeat(300), 'user:7@eu', 'a~b'];
    const tokens = keys.map(keyToken);
    expect(new Set(tokens).size).toBe(keys.length);
    for (const t of tokens) expect(t).toMatch(/^[^\s.*>]+$/);
    expect(keyToken('o-1'), 'plain keys stay readable').toBe('o-1');
    expect(publishSubject('orders', 'a.b')).toBe(`orders.~k.${keyToken('a.b')}`);
  });

  it('reads the partition count back from the transform it writes; a plain stream has 1', () => {
    expect(partitionsOf('orders', { subject_transform: partitionTransform('orders', 12), subjects: [] })).toBe(12);
    expect(partitionsOf('orders', { subjects: ['orders'] })).toBe(1);
    expect(partitionsOf('orders', { subject_transform: partitionTransform('other', 12), subjects: [] })).toBe(1);
  });

  it('spreads the partitions over the sorted members, each to exactly one', () => {
    const members = ['c', 'a', 'b'].sort();
    const owned = members.map((m) => assignedPartitions(members, m, 8));
    expect(owned).toEqual([[0, 3, 6], [1, 4, 7], [2, 5]]);
    expect(assignedPartitions(members, 'z', 8), 'not a member: nothing').toEqual([]);
    expect(assignedPartitions(['a'], 'a', 3)).toEqual([0, 1, 2]);
  });
});

// Partitions need a server that pins (≥ 2.11); `pnpm test:nats-min` runs this file on an older one.
const PINS = !SKIP && (await serverPins(SHARED_URL));

describe.skipIf(!PINS)('nats: partitioned topics (scripted server)', () => {
  const f = sharedServerFixture();
  const { buses } = f;

  it('a topic with 4 partitions: the stream transforms key subjects, each key lands in one partition, one pinned durable per partition', async () => {
    const topic = topicName('parts');
    const bus = await buses.make(SHARED_URL);
    expect((await bus.configureTopic(topic, { persistence: 'persistent', partitions: 4 })).action).toBe('created');
    const info = await f.admin.info(streamOf(topic));
    expect(info.config.subjects).toEqual([`${topic}.~k.*`]);
    expect(info.config.subject_transform).toEqual(partitionTransform(topic, 4));
    expect(await bus.configureTopic(topic, { persistence: 'persistent', partitions: 4 }, { onMismatch: 'fail' })).toMatchObject({ differences: [] });

    const group = uniqueName('g');
    const got = new Collector<string>();
    await bus.subscribe(topic, (payload, ctx) => void got.add(`${ctx.envelope.aggregateId}#${(payload as { n: number }).n}`, ctx.envelope.aggregateId!), { group });
    const keys = Array.from({ length: 12 }, (_, i) => `k.${i}`);
    for (let n = 0; n < 5; n++) for (const key of keys) await bus.publish(topic, { n }, { aggregateId: key });
    await got.waitForCount(60, 10_000);

    // Every message of a key is stored under one partition (the server's hash of the key token).
    const partitionOf = new Map<string, Set<string>>();
    const consumer = await f.admin.jsm.consumers.add(streamOf(topic), { ack_policy: 'none' as never });
    const messages = await (await import('@nats-io/jetstream')).jetstream(f.admin.nc).consumers.get(streamOf(topic), consumer.name);
    const it = await messages.fetch({ max_messages: 60, expires: 5_000 });
    for await (const m of it) {
      const [, , partition] = m.subject.slice(topic.length + 1).split('.');
      const key = m.headers?.get('ce-subject') ?? '';
      const set = partitionOf.get(key) ?? new Set<string>();
      set.add(partition!);
      partitionOf.set(key, set);
    }
    expect(partitionOf.size).toBe(12);
    for (const [key, partitions] of partitionOf) expect([...partitions], key).toHaveLength(1);
    expect(new Set([...partitionOf.values()].map((s) => [...s][0])).size, '12 keys use more than one of the 4 partitions').toBeGreaterThan(1);

    const durables = (await f.admin.jsm.consumers.list(streamOf(topic)).next()).filter((c) => c.name.startsWith(group));
    expect(durables.map((c) => c.name).sort()).toEqual([0, 1, 2, 3].map((p) => `${group}-p${p}`));
    for (const c of durables) {
      expect(c.config.priority_policy).toBe('pinned_client');
      expect(c.config.filter_subject).toMatch(new RegExp(`^${topic.replace(/\./g, '\\.')}\\.~k\\.\\d\\.\\*$`));
    }
  });

  it('two members split the partitions; when one unsubscribes the other takes all of them', async () => {
    const topic = topicName('split');
    const group = uniqueName('g');
    const a = await buses.make(SHARED_URL, { topics: { [topic]: { persistence: 'persistent', partitions: 6 } } });
    const b = await buses.make(SHARED_URL, { topics: { [topic]: { persistence: 'persistent', partitions: 6 } } });
    const byMember = { a: new Set<string>(), b: new Set<string>() };
    const seen = new Collector<string>();
    const subA = await a.subscribe(topic, (_p, ctx) => void (byMember.a.add(ctx.envelope.aggregateId!), seen.add(ctx.envelope.id, 'a')), { group });
    await b.subscribe(topic, (_p, ctx) => void (byMember.b.add(ctx.envelope.aggregateId!), seen.add(ctx.envelope.id, 'b')), { group });
    const partitionsOfB = () => (subscriptionsOf(b)[0] as PartitionedConsumer | undefined)?.partitions ?? [];
    // A partition moves once its first owner's open pull requests ended (pinned requests expire within 2 s).
    await waitFor(() => partitionsOfB().length === 3, { timeoutMs: 30_000, message: () => `b pulls ${JSON.stringify(partitionsOfB())}` });
    const keys = Array.from({ length: 24 }, (_, i) => `acct-${i}`);
    for (const key of keys) await a.publish(topic, { key }, { aggregateId: key });
    await seen.waitForCount(24, 15_000);
    expect(byMember.a.size, 'a handled some keys').toBeGreaterThan(0);
    expect(byMember.b.size, 'b handled some keys').toBeGreaterThan(0);
    for (const key of byMember.a) expect(byMember.b.has(key), `${key} went to one member only`).toBe(false);

    await subA.unsubscribe(10_000);
    await waitFor(() => partitionsOfB().length === 6, { timeoutMs: 30_000, message: () => `b pulls ${JSON.stringify(partitionsOfB())}` });
    for (const key of keys) await a.publish(topic, { key, again: true }, { aggregateId: key });
    await seen.waitForCount(48, 20_000);
    expect([...seen.items.values()].slice(24).every((m) => m === 'b'), 'after a left, b handles every key').toBe(true);
  });

  it('a blocked member keeps its pin with short pulls, and unsubscribing waits for every request it sent to end', async () => {
    const topic = topicName('blocked');
    const bus = await buses.make(SHARED_URL, { topics: { [topic]: { persistence: 'persistent', partitions: 1 } } });
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const started = new Collector<number>();
    const sub = await bus.subscribe(topic, async (payload) => (started.add(String((payload as { n: number }).n), (payload as { n: number }).n), await released), { group: uniqueName('g'), maxInFlight: 1 });
    for (const n of [1, 2]) await bus.publish(topic, { n }, { aggregateId: 'k' });
    await started.waitForCount(1, 15_000);
    // The loop holds 2 and may take no more: only the pin refresh pulls now (after 5 s with the default ack wait).
    const refreshes = () => bus.metrics().driver.pin_refreshes ?? 0;
    await waitFor(() => refreshes() >= 1, { timeoutMs: 20_000, message: () => JSON.stringify(bus.metrics().driver) });
    // The handler finishes only once the server holds no request of ours: a message it then frees could otherwise end the request.
    const waiting = async () => {
      let n = 0;
      for await (const c of await f.admin.jsm.consumers.list(streamOf(topic))) n += c.num_waiting;
      return n;
    };
    await waitFor(async () => (await waiting()) === 1, { timeoutMs: 1_500, intervalMs: 20, message: 'the refresh pull to reach the server' });
    const closing = sub.unsubscribe(15_000);
    await waitFor(async () => (await waiting()) === 0, { timeoutMs: 15_000, intervalMs: 50, message: 'the member\'s requests to end' });
    release();
    await closing;
    expect(bus.metrics().driver.pull_requests_outlived_stop, 'the refresh pull ended before the inbox went').toBeUndefined();
  });

  it('refuses fewer partitions, and partitions for a stream made without them', async () => {
    const bus = await buses.make(SHARED_URL);
    const parted = topicName('shrink');
    await bus.configureTopic(parted, { persistence: 'persistent', partitions: 4 });
    await expect(bus.configureTopic(parted, { persistence: 'persistent', partitions: 2 }, { strategy: 'createOrUpdate', onMismatch: 'fail' })).rejects.toMatchObject({
      code: 'TOPIC_MISMATCH',
      message: expect.stringMatching(/fewer partitions/),
    });
    const grown = await bus.configureTopic(parted, { persistence: 'persistent', partitions: 8 }, { strategy: 'createOrUpdate', onMismatch: 'fail' });
    expect(grown.action).toBe('updated');
    expect((await f.admin.info(streamOf(parted))).config.subject_transform).toEqual(partitionTransform(parted, 8));

    const plain = topicName('plain');
    await bus.configureTopic(plain, { persistence: 'persistent' });
    await expect(bus.configureTopic(plain, { persistence: 'persistent', partitions: 4 }, { strategy: 'createOrUpdate', onMismatch: 'fail' })).rejects.toMatchObject({
      code: 'TOPIC_MISMATCH',
      message: expect.stringMatching(/made without partitions/),
    });
  });

  it('shared stream mode cannot hold a partitioned topic: a config error naming streamMode', async () => {
    const bus = await buses.make(SHARED_URL, { nats: { streamMode: 'shared', sharedStream: uniqueName('SHARED').replace(/-/g, '_') } });
    await expect(bus.configureTopic(topicName('shared-parts'), { persistence: 'persistent', partitions: 3 })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/streamMode 'perTopic'/),
    });
  });
});

/** The driver subscriptions of a bus, read from its private SubscriptionRegistry (core's subscription-registry.ts). */
function subscriptionsOf(bus: object): unknown[] {
  const registry = (bus as { subscriptions?: { all?: Set<{ driverSubscription?: unknown }> } }).subscriptions;
  if (!(registry?.all instanceof Set)) throw new Error('EventBus no longer keeps its subscriptions in subscriptions.all: update subscriptionsOf');
  return [...registry.all].map((s) => s.driverSubscription).filter(Boolean);
}
