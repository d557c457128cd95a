import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  NO_DRIVER_HOOKS,
  ErrorCode,
  TopicMismatchError,
  type ConsumerSpec,
  type DeliveredMessage,
  type DriverHooks,
  type MessageSink,
  type PublishCallOptions,
  type TopicOptions,
  type WireMessage,
} from '@busline/core/driver';
import { MemoryDriver } from './memory-driver.js';
import { getMemoryBroker } from './memory-broker.js';
import type { MemoryConfigInput } from './config.js';

// ---------------------------------------------------------------------------
// helpers

let brokerSeq = 0;
const drivers: MemoryDriver[] = [];

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(drivers.splice(0).map((d) => d.close()));
});

interface Harness {
  driver: MemoryDriver;
  errors: Array<{ error: Error; context: string }>;
  counters: Record<string, number>;
}

async function connect(section: MemoryConfigInput = {}): Promise<Harness> {
  const driver = new MemoryDriver({ broker: `test-${process.pid}-${++brokerSeq}`, ...section });
  drivers.push(driver);
  const errors: Harness['errors'] = [];
  const counters: Record<string, number> = {};
  const hooks: DriverHooks = {
    connection() {},
    error(error, context) {
      errors.push({ error, context });
    },
    count(name, by = 1) {
      counters[name] = (counters[name] ?? 0) + by;
    },
    log: NO_DRIVER_HOOKS.log,
  };
  await driver.connect({ hooks, plannedConsumers: [] });
  return { driver, errors, counters };
}

/** A second driver on the same broker (another service in the same process). */
async function connectTo(h: Harness, section: MemoryConfigInput = {}): Promise<MemoryDriver> {
  const other = new MemoryDriver({ ...section, broker: h.driver.config.broker });
  drivers.push(other);
  await other.connect({ hooks: NO_DRIVER_HOOKS, plannedConsumers: [] });
  return other;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
let idSeq = 0;

function msg(text: string, key?: string, id = `id-${++idSeq}`): WireMessage {
  return { key, headers: { 'ce-id': id, 'x-text': text }, body: encoder.encode(text) };
}
const text = (m: WireMessage) => decoder.decode(m.body);

function pubOpts(topic: Partial<TopicOptions> = {}): PublishCallOptions {
  return { timeoutMs: 1_000, topic: { persistence: 'persistent', ...topic } };
}

function spec(topic: string, group = 'g', overrides: Partial<ConsumerSpec> = {}): ConsumerSpec {
  return { topic, group, persistence: 'persistent', maxInFlight: 1_000, startFrom: 'earliest', ...overrides };
}

/** Polls until `check` holds, failing after `timeoutMs` with `what`. */
async function until(check: () => boolean, what: string, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Waits one full turn of the event loop (delivery passes run on setImmediate). */
const turn = () => new Promise((r) => setTimeout(r, 5));

interface Collector extends MessageSink {
  received: DeliveredMessage[];
  batches: number[];
  texts(): string[];
}

/** A sink that records deliveries and (by default) acks each at once. */
function collector(settle: ((m: DeliveredMessage) => void) | 'none' = (m) => m.ack()): Collector {
  const c: Collector = {
    received: [],
    batches: [],
    texts: () => c.received.map(text),
    deliver(batch) {
      c.batches.push(batch.length);
      for (const m of batch) {
        c.received.push(m);
        if (settle !== 'none') settle(m);
      }
    },
  };
  return c;
}

async function publish(d: MemoryDriver, topic: string, messages: WireMessage[], topicOptions: Partial<TopicOptions> = {}) {
  const outcomes = await d.publish(topic, messages, pubOpts(topicOptions));
  expect(outcomes).toHaveLength(messages.length);
  return outcomes;
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from);

// ---------------------------------------------------------------------------

describe('MemoryDriver: topics', () => {
  it('declares its capabilities honestly', async () => {
    const { driver } = await connect();
    expect(driver.name).toBe('memory');
    expect(driver.capabilities).toEqual({
      persistent: true,
      survivesBrokerRestart: false,
      ephemeral: true,
      perKeyOrder: true,
      keyAffinity: true,
      consumerGroups: true,
      nativeRedeliveryDelay: true,
      dedupe: true,
      exactlyOnce: false,
      subscribeAfterStartRestartsConsumer: false,
      atomicBatch: true,
      redeliveryLimit: false,
    });
  });

  it('describes what a topic actually has: every field, null for unlimited', async () => {
    const { driver } = await connect();
    expect(await driver.describeTopic('orders', { persistence: 'persistent' })).toBeUndefined();
    await driver.createTopic('orders', { persistence: 'persistent', maxMessages: 10, description: 'order events' });
    expect(await driver.describeTopic('orders', { persistence: 'persistent' })).toEqual({
      persistence: 'persistent',
      retentionMs: null,
      maxMessages: 10,
      maxBytes: null,
      replicas: 1,
      partitions: 1,
      description: 'order events',
    });
    // createTopic never modifies an existing topic.
    await driver.createTopic('orders', { persistence: 'ephemeral' });
    expect((await driver.describeTopic('orders', { persistence: 'persistent' }))?.persistence).toBe('persistent');
  });

  it('updateTopic applies new retention at once and refuses partitions/replicas it cannot have', async () => {
    const { driver } = await connect();
    await driver.createTopic('t', { persistence: 'persistent' });
    await publish(driver, 't', range(10).map((i) => msg(`m${i}`)));
    await driver.updateTopic('t', { persistence: 'persistent', maxMessages: 4 }, []);
    expect(driver.broker.stats('t')?.messages).toBe(4);
    expect((await driver.describeTopic('t', { persistence: 'persistent' }))?.maxMessages).toBe(4);

    const update = driver.updateTopic('t', { persistence: 'persistent', maxMessages: 2, partitions: 3 }, []);
    await expect(update).rejects.toBeInstanceOf(TopicMismatchError);
    await expect(update).rejects.toMatchObject({ differences: [{ field: 'partitions', wanted: 3, actual: 1 }] });
    // The changeable part was still applied.
    expect(driver.broker.stats('t')?.messages).toBe(2);
  });

  it('a publish to a topic never created creates it (persistent by default) and keeps the messages', async () => {
    const { driver } = await connect();
    await publish(driver, 'never-created', [msg('a'), msg('b')]);
    expect(await driver.describeTopic('never-created', { persistence: 'persistent' })).toMatchObject({ persistence: 'persistent' });
    const c = collector();
    await driver.subscribe(spec('never-created'), c);
    await until(() => c.received.length === 2, '2 messages');
    expect(c.texts()).toEqual(['a', 'b']);
  });
});

describe('MemoryDriver: retention', () => {
  it('by count keeps the newest maxMessages', async () => {
    const { driver } = await connect();
    await driver.createTopic('t', { persistence: 'persistent', maxMessages: 3 });
    await publish(driver, 't', range(10).map((i) => msg(`m${i}`)));
    await publish(driver, 't', [msg('m10')]);
    expect(driver.broker.stats('t')).toMatchObject({ messages: 3, firstOffset: 8, nextOffset: 11 });
    const c = collector();
    await driver.subscribe(spec('t'), c);
    await until(() => c.received.length === 3, '3 messages');
    await turn();
    expect(c.texts()).toEqual(['m8', 'm9', 'm10']);
  });

  it('by bytes evicts from the head and rejects a message larger than the limit', async () => {
    const { driver } = await connect();
    // Each message: 10-byte body + headers "ce-id"+"idNN" and "x-text"+10 chars.
    const sized = (i: number) => ({ key: undefined, headers: { 'ce-id': `id${String(i).padStart(2, '0')}` }, body: new Uint8Array(10).fill(i) });
    const size = 10 + 'ce-id'.length + 'id00'.length; // 19
    await driver.createTopic('t', { persistence: 'persistent', maxBytes: size * 4 });
    await publish(driver, 't', range(10).map(sized));
    expect(driver.broker.stats('t')).toMatchObject({ messages: 4, bytes: size * 4, firstOffset: 6 });

    const [outcome] = await publish(driver, 't', [{ headers: {}, body: new Uint8Array(size * 4 + 1) }]);
    expect(outcome?.code).toBe(ErrorCode.PublishRejected);
    expect(driver.broker.stats('t')?.messages).toBe(4);

    const c = collector();
    await driver.subscribe(spec('t'), c);
    await until(() => c.received.length === 4, '4 messages');
    expect(c.received.map((m) => m.body[0])).toEqual([6, 7, 8, 9]);
  });

  it('by time is evaluated lazily on append and read (no timers)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(1_000_000);
    const { driver } = await connect();
    await driver.createTopic('t', { persistence: 'persistent', retentionMs: 1_000 });
    await publish(driver, 't', [msg('old1'), msg('old2')]);
    vi.setSystemTime(1_000_600);
    await publish(driver, 't', [msg('new1')]);
    expect(driver.broker.stats('t')?.messages).toBe(3);
    vi.setSystemTime(1_001_000); // old ones are now exactly retentionMs old
    expect(driver.broker.stats('t')).toMatchObject({ messages: 1, firstOffset: 2 });
    const c = collector();
    await driver.subscribe(spec('t'), c);
    await until(() => c.received.length === 1, '1 message');
    expect(c.texts()).toEqual(['new1']);
  });
});

describe('MemoryDriver: consumer groups', () => {
  it('every group gets every message', async () => {
    const { driver } = await connect();
    const a = collector();
    const b = collector();
    await driver.subscribe(spec('t', 'billing'), a);
    await driver.subscribe(spec('t', 'shipping'), b);
    await publish(driver, 't', range(100).map((i) => msg(`m${i}`, `k${i % 7}`)));
    await until(() => a.received.length === 100 && b.received.length === 100, 'both groups to get 100');
    await turn();
    expect(a.texts()).toEqual(range(100).map((i) => `m${i}`));
    expect(b.texts()).toEqual(range(100).map((i) => `m${i}`));
  });

  it('members of one group share the work, each key stays on one member, in order', async () => {
    const { driver } = await connect();
    const members = [collector(), collector(), collector()];
    for (const m of members) await driver.subscribe(spec('t'), m);
    const keys = 60;
    const perKey = 50;
    const messages = range(keys * perKey).map((i) => msg(`${i % keys}:${Math.floor(i / keys)}`, `key-${i % keys}`));
    for (let i = 0; i < messages.length; i += 500) await publish(driver, 't', messages.slice(i, i + 500));
    const total = () => members.reduce((n, m) => n + m.received.length, 0);
    await until(() => total() === keys * perKey, 'every message');
    await turn();
    expect(total()).toBe(keys * perKey); // no duplicates

    const owner = new Map<string, number>();
    members.forEach((m, index) => {
      expect(m.received.length).toBeGreaterThan(0);
      const last = new Map<string, number>();
      for (const d of m.received) {
        expect(owner.get(d.key!) ?? index).toBe(index);
        owner.set(d.key!, index);
        const seq = Number(text(d).split(':')[1]);
        expect(seq).toBe((last.get(d.key!) ?? -1) + 1);
        last.set(d.key!, seq);
      }
    });
    expect(owner.size).toBe(keys);
  });

  it('unkeyed messages are spread round-robin', async () => {
    const { driver } = await connect();
    const a = collector();
    const b = collector();
    await driver.subscribe(spec('t'), a);
    await driver.subscribe(spec('t'), b);
    await publish(driver, 't', range(1000).map((i) => msg(`m${i}`)));
    await until(() => a.received.length + b.received.length === 1000, '1000 messages');
    expect(a.received.length).toBeGreaterThan(250);
    expect(b.received.length).toBeGreaterThan(250);
  });

  it('a group that subscribes late to a persistent topic sees earlier messages; startFrom latest does not', async () => {
    const { driver } = await connect();
    await driver.createTopic('t', { persistence: 'persistent' });
    await publish(driver, 't', [msg('before1'), msg('before2')]);
    const early = collector();
    const late = collector();
    await driver.subscribe(spec('t', 'newcomer'), early);
    await driver.subscribe(spec('t', 'tail', { startFrom: 'latest' }), late);
    await publish(driver, 't', [msg('after')]);
    await until(() => early.received.length === 3 && late.received.length === 1, 'deliveries');
    expect(early.texts()).toEqual(['before1', 'before2', 'after']);
    expect(late.texts()).toEqual(['after']);
  });

  it('a group keeps its position when its members leave and come back', async () => {
    const { driver } = await connect();
    const first = collector();
    const sub = await driver.subscribe(spec('t'), first);
    await publish(driver, 't', [msg('a'), msg('b')]);
    await until(() => first.received.length === 2, 'a, b');
    await sub.stop();
    await sub.close();
    await publish(driver, 't', [msg('c')]);
    const second = collector();
    await driver.subscribe(spec('t'), second);
    await until(() => second.received.length === 1, 'c');
    await turn();
    expect(second.texts()).toEqual(['c']);
  });

  it('two drivers naming the same broker talk; different brokers are isolated', async () => {
    const h = await connect();
    const sameBroker = await connectTo(h);
    const otherBroker = await connect();
    const c = collector();
    const isolated = collector();
    await sameBroker.subscribe(spec('t', 'svc-b'), c);
    await otherBroker.driver.subscribe(spec('t', 'svc-b'), isolated);
    await publish(h.driver, 't', [msg('hello')]);
    await until(() => c.received.length === 1, 'cross-driver delivery');
    await turn();
    expect(isolated.received).toHaveLength(0);
    expect(getMemoryBroker(h.driver.config.broker)).toBe(sameBroker.broker);
  });
});

describe('MemoryDriver: redelivery', () => {
  it('nack(delay) redelivers after at least the delay with deliveryCount 2', async () => {
    const { driver } = await connect();
    const seen: Array<{ at: number; count: number }> = [];
    let nackedAt = 0;
    const c = collector((m) => {
      seen.push({ at: performance.now(), count: m.deliveryCount });
      if (m.deliveryCount === 1) {
        nackedAt = performance.now();
        m.nack(80);
      } else m.ack();
    });
    await driver.subscribe(spec('t'), c);
    await publish(driver, 't', [msg('retry-me', 'k')]);
    await until(() => seen.length === 2, 'the redelivery');
    expect(seen.map((s) => s.count)).toEqual([1, 2]);
    expect(seen[1]!.at - nackedAt).toBeGreaterThanOrEqual(79); // timer granularity
    await turn();
    expect(seen).toHaveLength(2); // acked: never again
    expect(driver.broker.stats('t')?.groups.g).toMatchObject({ unsettled: 0, delayed: 0, queued: 0 });
  });

  it('nack(0) puts the message back ahead of the rest of its key', async () => {
    const { driver } = await connect();
    let failed = false;
    const c = collector((m) => {
      if (text(m) === 'k:1' && !failed) {
        failed = true;
        m.nack(0);
      } else m.ack();
    });
    await driver.subscribe(spec('t', 'g', { maxInFlight: 1 }), c);
    await publish(driver, 't', range(4).map((i) => msg(`k:${i}`, 'k')));
    await until(() => c.received.length === 5, '5 deliveries');
    expect(c.received.map((m) => `${text(m)}#${m.deliveryCount}`)).toEqual(['k:0#1', 'k:1#1', 'k:1#2', 'k:2#1', 'k:3#1']);
  });

  it('unsettled messages of a closed member are redelivered to another member (deliveryCount 2), order kept', async () => {
    const { driver } = await connect();
    const hoarder = collector('none');
    const subA = await driver.subscribe(spec('t'), hoarder);
    await publish(driver, 't', range(5).map((i) => msg(`k:${i}`, 'k')));
    await until(() => hoarder.received.length === 5, 'first member to hold 5');
    const other = collector();
    await driver.subscribe(spec('t'), other);
    // A key stays with the member that has its messages in flight, even after another joins.
    await publish(driver, 't', [msg('k:5', 'k')]);
    await until(() => hoarder.received.length === 6, 'k:5 to the key owner');
    expect(other.received).toHaveLength(0);

    hoarder.received[0]!.ack();
    await subA.close();
    await until(() => other.received.length === 5, 'redelivery to the other member');
    expect(other.received.map((m) => `${text(m)}#${m.deliveryCount}`)).toEqual(['k:1#2', 'k:2#2', 'k:3#2', 'k:4#2', 'k:5#2']);
    // Settling a stale delivery after close is ignored.
    hoarder.received[1]!.ack();
    await publish(driver, 't', [msg('k:6', 'k')]);
    await until(() => other.received.length === 6, 'k:6');
    expect(driver.broker.stats('t')?.groups.g).toMatchObject({ unsettled: 0, parked: 0, queued: 0 });
  });

  it("newer messages of a stopped member's key wait until its in-flight ones settle (no overtaking)", async () => {
    const { driver } = await connect();
    const a = collector('none');
    const subA = await driver.subscribe(spec('t'), a);
    await publish(driver, 't', [msg('k:0', 'k'), msg('k:1', 'k')]);
    await until(() => a.received.length === 2, 'a to hold 2');
    const b = collector();
    await driver.subscribe(spec('t'), b);
    await subA.stop();
    await publish(driver, 't', [msg('k:2', 'k'), msg('j:0', 'j')]);
    await until(() => b.received.length === 1, 'the unrelated key');
    expect(b.texts()).toEqual(['j:0']);
    expect(driver.broker.stats('t')?.groups.g?.parked).toBe(1);
    a.received[0]!.ack();
    await turn();
    expect(b.received).toHaveLength(1);
    a.received[1]!.ack(); // the stopped member finished the key: it moves on
    await until(() => b.received.length === 2, 'k:2');
    expect(b.texts()).toEqual(['j:0', 'k:2']);
    await subA.close();
  });

  it('messages returned while a group has no members wait for its next member, in key order', async () => {
    const { driver } = await connect();
    const a = collector('none');
    const subA = await driver.subscribe(spec('t'), a);
    await publish(driver, 't', [msg('k:0', 'k'), msg('k:1', 'k'), msg('u:0')]);
    await until(() => a.received.length === 3, 'a to hold 3');
    await subA.close();
    await publish(driver, 't', [msg('k:2', 'k')]);
    expect(driver.broker.stats('t')?.groups.g).toMatchObject({ members: 0, parked: 3, undispatched: 1 });
    const b = collector();
    await driver.subscribe(spec('t'), b);
    await until(() => b.received.length === 4, 'all four');
    const keyed = b.received.filter((m) => m.key === 'k').map((m) => `${text(m)}#${m.deliveryCount}`);
    expect(keyed).toEqual(['k:0#2', 'k:1#2', 'k:2#1']);
    expect(b.received.find((m) => m.key === undefined)?.deliveryCount).toBe(2);
  });

  it('hands back tens of thousands of unsettled messages at once, in order', async () => {
    const { driver } = await connect({ deliveryBatchSize: 4096 });
    const a = collector('none');
    const subA = await driver.subscribe(spec('t', 'g', { maxInFlight: 50_000 }), a);
    const total = 40_000;
    await publish(driver, 't', range(total).map((i) => msg(`${i}`, i % 2 ? 'hot' : undefined)));
    await until(() => a.received.length === total, 'all held');
    const b = collector();
    await driver.subscribe(spec('t', 'g', { maxInFlight: 50_000 }), b);
    const started = performance.now();
    await subA.close();
    await until(() => b.received.length === total, 'all handed back', 5_000);
    expect(performance.now() - started).toBeLessThan(2_000);
    const hot = b.received.filter((m) => m.key === 'hot').map((m) => Number(text(m)));
    expect(hot).toEqual([...hot].sort((x, y) => x - y));
    expect(b.received.every((m) => m.deliveryCount === 2)).toBe(true);
  });

  it('a delayed redelivery whose member left goes to another member of the group', async () => {
    const { driver } = await connect();
    const a = collector((m) => m.nack(30));
    const subA = await driver.subscribe(spec('t'), a);
    await publish(driver, 't', [msg('k:0', 'k')]);
    await until(() => a.received.length === 1, 'first delivery');
    const b = collector();
    await driver.subscribe(spec('t'), b);
    await subA.close();
    await until(() => b.received.length === 1, 'redelivery to b');
    expect(b.received[0]!.deliveryCount).toBe(2);
    expect(a.received).toHaveLength(1);
  });

  it('stop() hands queued messages to other members while delivered ones can still be acked', async () => {
    const { driver } = await connect();
    const slow = collector('none');
    const subA = await driver.subscribe(spec('t', 'g', { maxInFlight: 2 }), slow);
    await publish(driver, 't', range(6).map((i) => msg(`m${i}`)));
    await until(() => slow.received.length === 2, '2 in flight');
    await subA.stop();
    const b = collector();
    await driver.subscribe(spec('t'), b);
    await until(() => b.received.length === 4, 'the rest');
    for (const m of slow.received) m.ack();
    await subA.close();
    await turn();
    expect(b.texts()).toEqual(['m2', 'm3', 'm4', 'm5']);
    expect(driver.broker.stats('t')?.groups.g).toMatchObject({ unsettled: 0, parked: 0, queued: 0 });
  });

  it('closing the driver returns unsettled messages to the group for the next consumer', async () => {
    const h = await connect();
    const c = collector('none');
    await h.driver.subscribe(spec('t'), c);
    await publish(h.driver, 't', [msg('x')]);
    await until(() => c.received.length === 1, 'x');
    const next = await connectTo(h);
    await h.driver.close();
    const d = collector();
    await next.subscribe(spec('t'), d);
    await until(() => d.received.length === 1, 'x again');
    expect(d.received[0]!.deliveryCount).toBe(2);
  });
});

describe('MemoryDriver: churn', () => {
  it('loses nothing and leaves no bookkeeping behind while members come and go and handlers fail', async () => {
    const { driver } = await connect({ deliveryBatchSize: 16 });
    let seed = Number(process.env.BUSLINE_CHURN_SEED ?? 42);
    const random = () => ((seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0) / 2 ** 32);
    const acked = new Set<string>();
    let order = 0;
    const violations: string[] = [];
    // Per key: the highest sequence acked. A first delivery (deliveryCount 1) must never come before one it follows.
    const firstSeen = new Map<string, number>();
    const makeSink = (): MessageSink => ({
      deliver(batch) {
        for (const m of batch) {
          const [key, seq] = text(m).split(':') as [string, string];
          if (m.deliveryCount === 1) {
            const prev = firstSeen.get(key) ?? -1;
            if (Number(seq) < prev) violations.push(`${key}:${seq} after ${prev}`);
            firstSeen.set(key, Math.max(prev, Number(seq)));
          }
          const roll = random();
          const settle = () => {
            if (roll < 0.1) m.nack(roll < 0.05 ? 0 : 3);
            else {
              acked.add(text(m));
              m.ack();
            }
          };
          if (roll < 0.5) settle();
          else setTimeout(settle, Math.floor(random() * 3));
        }
        order++;
        return order % 7 === 0 ? new Promise<void>((r) => setTimeout(r, 1)) : undefined;
      },
    });
    const subs = [await driver.subscribe(spec('t', 'g', { maxInFlight: 20 }), makeSink())];
    const total = 3_000;
    for (let i = 0; i < total; i += 100) {
      await publish(driver, 't', range(100, i).map((n) => msg(`key${n % 37}:${n}`, `key${n % 37}`)));
      if (random() < 0.4) subs.push(await driver.subscribe(spec('t', 'g', { maxInFlight: 20 }), makeSink()));
      if (subs.length > 1 && random() < 0.3) {
        const victim = subs.splice(Math.floor(random() * subs.length), 1)[0]!;
        if (random() < 0.5) await victim.stop();
        await victim.close();
      }
      await turn();
    }
    await until(() => acked.size === total, `all ${total} acked (have ${acked.size})`, 10_000);
    expect(violations).toEqual([]);
    await until(() => {
      const g = driver.broker.stats('t')!.groups.g!;
      return g.unsettled + g.queued + g.delayed + g.parked + g.undispatched + g.trackedKeys === 0;
    }, 'the group to settle down');
  });
});

describe('MemoryDriver: ephemeral topics', () => {
  it('deliver only to current subscribers, store nothing, never redeliver', async () => {
    const { driver } = await connect();
    await driver.createTopic('live', { persistence: 'ephemeral' });
    await publish(driver, 'live', [msg('nobody-listens')], { persistence: 'ephemeral' });
    const a = collector((m) => m.nack(0));
    const b = collector();
    await driver.subscribe(spec('live', 'g1', { persistence: 'ephemeral' }), a);
    await driver.subscribe(spec('live', 'g2', { persistence: 'ephemeral' }), b);
    await publish(driver, 'live', [msg('hello')], { persistence: 'ephemeral' });
    await until(() => a.received.length === 1 && b.received.length === 1, 'fan-out');
    await turn();
    expect(a.texts()).toEqual(['hello']); // nacked, not redelivered
    expect(b.texts()).toEqual(['hello']);
    expect(driver.broker.stats('live')).toMatchObject({ messages: 0, bytes: 0 });
    const late = collector();
    await driver.subscribe(spec('live', 'g3', { persistence: 'ephemeral' }), late);
    await turn();
    expect(late.received).toHaveLength(0);
  });
});

describe('MemoryDriver: dedupe', () => {
  it('stores a ce-id once within the window, again after it', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(5_000_000);
    const { driver } = await connect({ dedupeWindowMs: 1_000 });
    await publish(driver, 't', [msg('one', undefined, 'evt-1'), msg('dup', undefined, 'evt-1'), msg('two', undefined, 'evt-2')]);
    await publish(driver, 't', [msg('dup-again', undefined, 'evt-1')]);
    expect(driver.broker.stats('t')?.messages).toBe(2);
    vi.setSystemTime(5_000_999);
    await publish(driver, 't', [msg('still-dup', undefined, 'evt-2')]);
    expect(driver.broker.stats('t')?.messages).toBe(2);
    vi.setSystemTime(5_001_999); // evt-1 was seen 1,999 ms ago, evt-2 1,999 ms ago too
    await publish(driver, 't', [msg('one-again', undefined, 'evt-1')]);
    expect(driver.broker.stats('t')?.messages).toBe(3);
    vi.useRealTimers();
    const c = collector();
    await driver.subscribe(spec('t'), c);
    await until(() => c.received.length === 3, '3 stored');
    expect(c.texts()).toEqual(['one', 'two', 'one-again']);
  });

  it('dedupeWindowMs 0 turns it off', async () => {
    const { driver } = await connect({ dedupeWindowMs: 0 });
    await publish(driver, 't', [msg('a', undefined, 'same'), msg('b', undefined, 'same')]);
    expect(driver.broker.stats('t')?.messages).toBe(2);
  });
});

describe('MemoryDriver: flow control', () => {
  it('a pending promise from deliver stops further deliveries until it resolves (backpressure)', async () => {
    const { driver } = await connect({ deliveryBatchSize: 10 });
    const batches: DeliveredMessage[][] = [];
    let release: () => void = () => {};
    const sink: MessageSink = {
      deliver(batch) {
        batches.push(batch);
        for (const m of batch) m.ack();
        if (batches.length === 1) return new Promise<void>((r) => (release = r));
      },
    };
    await driver.subscribe(spec('t'), sink);
    await publish(driver, 't', range(50).map((i) => msg(`m${i}`)));
    await until(() => batches.length === 1, 'first batch');
    await turn();
    await turn();
    expect(batches).toHaveLength(1);
    expect(batches[0]).toHaveLength(10);
    release();
    await until(() => batches.flat().length === 50, 'the rest after release');
    expect(batches.flat().map(text)).toEqual(range(50).map((i) => `m${i}`));
  });

  it('never holds more than maxInFlight unsettled per consumer', async () => {
    const { driver } = await connect();
    const held: DeliveredMessage[] = [];
    let maxHeld = 0;
    let delivered = 0;
    await driver.subscribe(spec('t', 'g', { maxInFlight: 7 }), {
      deliver(batch) {
        delivered += batch.length;
        held.push(...batch);
        maxHeld = Math.max(maxHeld, held.length);
      },
    });
    await publish(driver, 't', range(40).map((i) => msg(`m${i}`, `k${i % 3}`)));
    await until(() => held.length === 7, '7 in flight');
    await turn();
    expect(delivered).toBe(7);
    // Settle in bursts; the broker refills up to the limit each time.
    while (delivered < 40) {
      held.splice(0, 3).forEach((m) => m.ack());
      const before = delivered;
      await until(() => delivered > before || delivered === 40, 'a refill');
    }
    held.splice(0).forEach((m) => m.ack());
    expect(maxHeld).toBe(7);
    expect(driver.broker.stats('t')?.groups.g).toMatchObject({ unsettled: 0, queued: 0, undispatched: 0 });
  });

  it('delivers in batches of at most deliveryBatchSize', async () => {
    const { driver } = await connect({ deliveryBatchSize: 64 });
    const c = collector();
    await driver.subscribe(spec('t'), c);
    await publish(driver, 't', range(1000).map((i) => msg(`m${i}`)));
    await until(() => c.received.length === 1000, '1000');
    expect(Math.max(...c.batches)).toBe(64);
  });
});

describe('MemoryDriver: message ownership', () => {
  it('stored headers are frozen: one consumer cannot change what another group reads', async () => {
    const { driver } = await connect();
    const a = collector();
    const b = collector();
    await driver.subscribe(spec('t', 'a'), a);
    await driver.subscribe(spec('t', 'b'), b);
    await publish(driver, 't', [msg('x')]);
    await until(() => a.received.length === 1 && b.received.length === 1, 'both');
    expect(() => {
      a.received[0]!.headers['x-text'] = 'changed';
    }).toThrow(TypeError);
    expect(b.received[0]!.headers['x-text']).toBe('x');
  });
});

describe('MemoryDriver: lifecycle', () => {
  it('publish after close yields ClosedError outcomes; subscribe rejects', async () => {
    const { driver } = await connect();
    await driver.close();
    const outcomes = await driver.publish('t', [msg('a'), msg('b')], pubOpts());
    expect(outcomes.map((o) => o?.code)).toEqual([ErrorCode.Closed, ErrorCode.Closed]);
    await expect(driver.subscribe(spec('t'), collector())).rejects.toMatchObject({ code: ErrorCode.Closed });
  });

  it('reports a sink that throws through hooks.error', async () => {
    const h = await connect();
    await h.driver.subscribe(spec('t'), {
      deliver() {
        throw new Error('boom');
      },
    });
    await publish(h.driver, 't', [msg('a')]);
    await until(() => h.errors.length === 1, 'an error report');
    expect(h.errors[0]!.error.message).toBe('boom');
    expect(h.errors[0]!.context).toContain('t/g');
  });
});
