import { describe, expect, it } from 'vitest';
import { ClosedError, ConfigError } from './errors.js';
import { KeyedOrderingPool, type PoolBackpressureEvent, type PoolLane } from './keyed-ordering-pool.js';

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}
function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets queued microtasks and promise callbacks run (not a timing wait). */
async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Polls `predicate` each macrotask until it holds or the deadline passes. */
async function until(predicate: () => boolean, what: string, deadlineMs = 5000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((r) => setImmediate(r));
  }
}

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Submits like a fetch loop: awaits only when the pool asks it to. */
async function feed<T>(lane: PoolLane<T>, items: Iterable<[string | undefined, T]>): Promise<void> {
  for (const [key, item] of items) {
    const wait = lane.submit(key, item);
    if (wait) await wait;
  }
}

describe('KeyedOrderingPool', () => {
  it('validates its options', () => {
    expect(() => new KeyedOrderingPool({ concurrency: 0, maxPending: 10 })).toThrow(ConfigError);
    expect(() => new KeyedOrderingPool({ concurrency: 1.5, maxPending: 10 })).toThrow(/concurrency/);
    expect(() => new KeyedOrderingPool({ concurrency: 1, maxPending: -1 })).toThrow(/maxPending/);
    const pool = new KeyedOrderingPool({ concurrency: 1, maxPending: Infinity });
    expect(() => pool.lane(() => {}, { concurrency: 0 })).toThrow(ConfigError);
  });

  it('accepts at once without allocating a promise when there is room', () => {
    const pool = new KeyedOrderingPool({ concurrency: 4, maxPending: 10 });
    const seen: number[] = [];
    const lane = pool.lane<number>((n) => {
      seen.push(n);
    });
    expect(lane.submit('a', 1)).toBeUndefined();
    expect(lane.submit(undefined, 2)).toBeUndefined();
    // Synchronous runs complete inside submit.
    expect(seen).toEqual([1, 2]);
    expect(pool.pending).toBe(0);
    expect(pool.running).toBe(0);
  });

  it('keeps per-key order under random delays with many keys and concurrency > 1', async () => {
    const random = rng(42);
    const pool = new KeyedOrderingPool({ concurrency: 16, maxPending: 256 });
    const keys = 300;
    const perKey = 20;
    const seen = new Map<string, number[]>();
    const active = new Set<string>();
    let maxRunning = 0;
    let overlap = 0;
    const lane = pool.lane<{ key: string; seq: number }>(async ({ key, seq }) => {
      if (active.has(key)) overlap++;
      active.add(key);
      maxRunning = Math.max(maxRunning, pool.running);
      // A random amount of asynchronous work: microtask hops or a macrotask.
      const hops = Math.floor(random() * 4);
      for (let i = 0; i < hops; i++) {
        if (random() < 0.3) await new Promise<void>((r) => setImmediate(r));
        else await Promise.resolve();
      }
      const list = seen.get(key) ?? [];
      list.push(seq);
      seen.set(key, list);
      active.delete(key);
    });
    const next = new Array<number>(keys).fill(0);
    const items: [string, { key: string; seq: number }][] = [];
    for (let n = 0; n < keys * perKey; n++) {
      // Random interleaving of keys, each key's own sequence increasing.
      let k = Math.floor(random() * keys);
      while (next[k]! >= perKey) k = (k + 1) % keys;
      const key = `agg-${k}`;
      items.push([key, { key, seq: next[k]!++ }]);
    }
    await feed(lane, items);
    expect(await pool.drain(10_000)).toBe(true);
    expect(overlap).toBe(0);
    expect(maxRunning).toBeLessThanOrEqual(16);
    expect(maxRunning).toBeGreaterThan(1);
    expect(seen.size).toBe(keys);
    const want = Array.from({ length: perKey }, (_, i) => i);
    for (const [key, list] of seen) expect(list, key).toEqual(want);
  });

  it('does not let a slow key hold up other keys (no head-of-line blocking)', async () => {
    const pool = new KeyedOrderingPool({ concurrency: 2, maxPending: 1000 });
    const gate = deferred();
    const done: string[] = [];
    const lane = pool.lane<{ key: string; n: number }>(async ({ key, n }) => {
      if (key === 'slow' && n === 0) await gate.promise;
      done.push(`${key}:${n}`);
    });
    lane.submit('slow', { key: 'slow', n: 0 });
    for (let n = 1; n <= 5; n++) lane.submit('slow', { key: 'slow', n });
    // With hashing onto workers, some of these would sit behind 'slow'.
    for (let k = 0; k < 200; k++) lane.submit(`k${k}`, { key: `k${k}`, n: 0 });
    for (let k = 0; k < 200; k++) lane.submit(undefined, { key: 'unkeyed', n: k });
    await until(() => done.length === 400, 'every other item to finish');
    expect(done.some((d) => d.startsWith('slow'))).toBe(false);
    expect(pool.pending).toBe(6); // the slow key's six items only
    expect(pool.running).toBe(1);
    gate.resolve();
    expect(await pool.drain(5000)).toBe(true);
    expect(done.slice(400)).toEqual(['slow:0', 'slow:1', 'slow:2', 'slow:3', 'slow:4', 'slow:5']);
  });

  it('bounds memory: submit waits at maxPending, never drops, and emits edge-triggered backpressure', async () => {
    const limit = 10;
    const pool = new KeyedOrderingPool({ concurrency: 3, maxPending: limit });
    const events: PoolBackpressureEvent[] = [];
    pool.on('backpressure', (e) => events.push(e));
    const gates: Deferred[] = [];
    const ran: number[] = [];
    let maxPending = 0;
    const lane = pool.lane<number>(async (n) => {
      maxPending = Math.max(maxPending, pool.pending);
      const g = deferred();
      gates.push(g);
      await g.promise;
      ran.push(n);
    });
    const total = 50;
    let accepted = 0;
    let firstWait = -1;
    const producer = (async () => {
      for (let n = 0; n < total; n++) {
        const wait = lane.submit(`k${n % 7}`, n);
        if (wait) {
          if (firstWait < 0) firstWait = n;
          await wait;
        }
        accepted++;
        maxPending = Math.max(maxPending, pool.pending);
      }
    })();
    await until(() => pool.waiting === 1, 'the producer to wait');
    expect(firstWait).toBe(limit);
    expect(accepted).toBe(limit);
    expect(pool.pending).toBe(limit);
    expect(events).toEqual([{ pending: limit, limit, waiting: true }]);
    // Release work one item at a time; the producer is let in one at a time.
    while (ran.length < total) {
      await until(() => gates.length > 0, 'a running item');
      gates.shift()!.resolve();
      await settle(1);
      expect(pool.pending).toBeLessThanOrEqual(limit);
    }
    await producer;
    expect(await pool.drain(1000)).toBe(true);
    expect(maxPending).toBeLessThanOrEqual(limit);
    expect([...ran].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i));
    // One episode for the whole stretch of pressure, not one event per message.
    expect(events).toHaveLength(2);
    expect(events[1]).toMatchObject({ waiting: false, limit });
    expect(events[1]!.pending).toBeLessThan(limit);
  });

  it('serves waiting submitters first come, first served and keeps per-key order across waits', async () => {
    const pool = new KeyedOrderingPool({ concurrency: 1, maxPending: 1 });
    const order: string[] = [];
    const gate = deferred();
    const lane = pool.lane<string>(async (s) => {
      order.push(s);
      if (s === 'a') await gate.promise;
    });
    expect(lane.submit('k', 'a')).toBeUndefined();
    // Fire-and-forget submits (nobody awaits between them): all wait, in order.
    const waits = ['b', 'c', 'd'].map((s) => lane.submit('k', s));
    expect(waits.every((w) => w instanceof Promise)).toBe(true);
    expect(pool.waiting).toBe(3);
    gate.resolve();
    await Promise.all(waits);
    expect(await pool.drain(1000)).toBe(true);
    expect(order).toEqual(['a', 'b', 'c', 'd']);
  });

  it('caps a lane at its own concurrency while the pool has more', async () => {
    const pool = new KeyedOrderingPool({ concurrency: 10, maxPending: 100 });
    const gates: Deferred[] = [];
    let laneMax = 0;
    const capped = pool.lane<number>(async () => {
      laneMax = Math.max(laneMax, capped.running);
      const g = deferred();
      gates.push(g);
      await g.promise;
    }, { concurrency: 2 });
    const other = pool.lane<number>(async () => {
      const g = deferred();
      gates.push(g);
      await g.promise;
    });
    for (let i = 0; i < 10; i++) capped.submit(undefined, i);
    for (let i = 0; i < 5; i++) other.submit(`o${i}`, i);
    expect(capped.running).toBe(2);
    expect(capped.pending).toBe(10);
    expect(other.running).toBe(5);
    expect(pool.running).toBe(7);
    while (pool.pending > 0) {
      await until(() => gates.length > 0, 'a running item');
      gates.shift()!.resolve();
      await settle(1);
      expect(capped.running).toBeLessThanOrEqual(2);
    }
    expect(laneMax).toBe(2);
  });

  it('shares concurrency round-robin among lanes with work', async () => {
    const pool = new KeyedOrderingPool({ concurrency: 1, maxPending: 1000 });
    const order: string[] = [];
    const a = pool.lane<number>(async (n) => {
      order.push(`a${n}`);
    });
    const b = pool.lane<number>(async (n) => {
      order.push(`b${n}`);
    });
    const c = pool.lane<number>(async (n) => {
      order.push(`c${n}`);
    });
    // Lane a floods first; b and c arrive later with less work.
    for (let n = 0; n < 100; n++) a.submit(undefined, n);
    for (let n = 0; n < 3; n++) b.submit(`k${n}`, n);
    c.submit('x', 0);
    expect(await pool.drain(1000)).toBe(true);
    expect(order).toHaveLength(104);
    // b and c do not wait for a's backlog: each is served within a round.
    expect(order.indexOf('c0')).toBeLessThan(6);
    expect(order.indexOf('b2')).toBeLessThan(12);
    // Between a's items there is at most one item of each other lane.
    const firstRounds = order.slice(1, 10).map((s) => s[0]).join('');
    expect(firstRounds).toBe('abcababaa');
  });

  it('drain resolves only after all accepted work, and rejects new work', async () => {
    const pool = new KeyedOrderingPool({ concurrency: 2, maxPending: 4 });
    const gates: Deferred[] = [];
    const lane = pool.lane<number>(async () => {
      const g = deferred();
      gates.push(g);
      await g.promise;
    });
    for (let i = 0; i < 4; i++) lane.submit(`k${i}`, i);
    const waiting = lane.submit('k9', 9);
    expect(waiting).toBeInstanceOf(Promise);
    let drained: boolean | undefined;
    const draining = pool.drain().then((ok) => (drained = ok));
    // A submitter still waiting when the drain starts is refused; its item never runs.
    await expect(waiting).rejects.toBeInstanceOf(ClosedError);
    expect(() => lane.submit('k', 1)).toThrow(ClosedError);
    expect(() => pool.lane(() => {})).toThrow(ClosedError);
    let released = 0;
    while (released < 4) {
      await until(() => gates.length > 0, 'a running item');
      await settle(1);
      expect(drained).toBeUndefined();
      gates.shift()!.resolve();
      released++;
    }
    await draining;
    expect(drained).toBe(true);
    expect(pool.pending).toBe(0);
    expect(await pool.drain()).toBe(true); // idempotent
  });

  it('drain resolves false on timeout and work goes on afterwards', async () => {
    const pool = new KeyedOrderingPool({ concurrency: 2, maxPending: 4 });
    const gate = deferred();
    let finished = false;
    const lane = pool.lane<number>(async () => {
      await gate.promise;
      finished = true;
    });
    lane.submit('k', 1);
    expect(await pool.drain(10)).toBe(false);
    expect(await lane.drain(0)).toBe(false);
    gate.resolve();
    expect(await pool.drain(1000)).toBe(true);
    expect(finished).toBe(true);
  });

  it('drains one lane without closing the others', async () => {
    const pool = new KeyedOrderingPool({ concurrency: 2, maxPending: 4 });
    const gate = deferred();
    const ran: string[] = [];
    const one = pool.lane<string>(async (s) => {
      await gate.promise;
      ran.push(s);
    });
    const two = pool.lane<string>((s) => {
      ran.push(s);
    });
    one.submit('k', 'one-1');
    const draining = one.drain(5000);
    expect(() => one.submit('k', 'one-2')).toThrow(ClosedError);
    two.submit('k', 'two-1');
    expect(ran).toEqual(['two-1']);
    gate.resolve();
    expect(await draining).toBe(true);
    expect(one.pending).toBe(0);
    expect(ran).toEqual(['two-1', 'one-1']);
    expect(two.submit('k', 'two-2')).toBeUndefined();
  });

  it('reports a throwing or rejecting run and carries on with the next item', async () => {
    const pool = new KeyedOrderingPool({ concurrency: 2, maxPending: 10 });
    const errors: unknown[] = [];
    pool.on('error', (e) => errors.push(e));
    const ran: string[] = [];
    const lane = pool.lane<string>((s) => {
      ran.push(s);
      if (s === 'sync-boom') throw new Error('sync boom');
      if (s === 'async-boom') return Promise.reject(new Error('async boom'));
      return s.startsWith('async') ? Promise.resolve() : undefined;
    });
    for (const s of ['sync-boom', 'after-sync', 'async-boom', 'async-after']) lane.submit('same-key', s);
    expect(await pool.drain(1000)).toBe(true);
    expect(ran).toEqual(['sync-boom', 'after-sync', 'async-boom', 'async-after']);
    expect(errors.map((e) => (e as Error).message)).toEqual(['sync boom', 'async boom']);
    expect(pool.pending).toBe(0);
    expect(pool.running).toBe(0);
  });

  it('survives a listener that throws', async () => {
    const pool = new KeyedOrderingPool({ concurrency: 1, maxPending: 1 });
    pool.on('error', () => {
      throw new Error('bad listener');
    });
    pool.on('backpressure', () => {
      throw new Error('bad listener');
    });
    const ran: number[] = [];
    const lane = pool.lane<number>(async (n) => {
      ran.push(n);
      if (n === 0) throw new Error('boom');
    });
    await feed(lane, [['k', 0], ['k', 1], ['k', 2]]);
    expect(await pool.drain(1000)).toBe(true);
    expect(ran).toEqual([0, 1, 2]);
  });

  it('continues long synchronous chains without recursion or extra ticks', async () => {
    const pool = new KeyedOrderingPool({ concurrency: 1, maxPending: Infinity });
    const gate = deferred();
    let count = 0;
    const lane = pool.lane<number>((n) => {
      if (n === 0) return gate.promise;
      count++;
      return undefined;
    });
    lane.submit('k', 0);
    for (let n = 1; n <= 200_000; n++) lane.submit(n % 2 ? 'k' : undefined, n);
    expect(count).toBe(0);
    gate.resolve();
    await gate.promise;
    await settle(1);
    expect(count).toBe(200_000);
    expect(pool.pending).toBe(0);
  });

  it('allows a run to submit more work to its own lane', async () => {
    const pool = new KeyedOrderingPool({ concurrency: 2, maxPending: 100 });
    const seen: number[] = [];
    const lane: PoolLane<number> = pool.lane<number>((n) => {
      seen.push(n);
      if (n < 50) lane.submit('k', n + 1);
    });
    lane.submit('k', 0);
    expect(await pool.drain(1000)).toBe(true);
    expect(seen).toEqual(Array.from({ length: 51 }, (_, i) => i));
  });

  it('orders items a running item submits under its own key (sync and async runs)', async () => {
    const pool = new KeyedOrderingPool({ concurrency: 4, maxPending: 100 });
    const log: string[] = [];
    let active = 0;
    let overlap = 0;
    const gate = deferred();
    const lane: PoolLane<number> = pool.lane<number>(async (n) => {
      if (n !== 100 && ++active > 1) overlap++;
      log.push(`start ${n}`);
      if (n === 0) {
        lane.submit('k', 1); // queued behind 0 although 0 was started inline
        lane.submit('other', 100); // another key may run meanwhile
        await gate.promise;
      }
      if (n === 1) lane.submit('k', 2);
      log.push(`end ${n}`);
      if (n !== 100) active--;
    });
    lane.submit('k', 0);
    await until(() => log.includes('end 100'), 'the other key');
    expect(log).toEqual(['start 0', 'start 100', 'end 100']);
    gate.resolve();
    await until(() => log.includes('end 2'), 'the chain to finish');
    expect(await pool.drain(1000)).toBe(true);
    expect(log.filter((l) => l !== 'start 100' && l !== 'end 100')).toEqual(['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2']);
    expect(overlap).toBe(0);
  });

  it('holds every invariant under random multi-lane load', async () => {
    const random = rng(7);
    const concurrency = 8;
    const maxPending = 40;
    const pool = new KeyedOrderingPool({ concurrency, maxPending });
    const caps = [1, 3, undefined, 5];
    const violations: string[] = [];
    const seen = new Map<string, number[]>();
    const busy = new Set<string>();
    const lanes = caps.map((cap, l) => {
      const lane: PoolLane<{ key: string | undefined; seq: number }> = pool.lane(
        async ({ key, seq }) => {
          const id = `${l}/${key}`;
          if (pool.running > concurrency) violations.push(`pool running ${pool.running}`);
          if (cap !== undefined && lane.running > cap) violations.push(`lane ${l} running ${lane.running}`);
          if (pool.pending > maxPending) violations.push(`pending ${pool.pending}`);
          if (key !== undefined) {
            if (busy.has(id)) violations.push(`${id} overlapped`);
            busy.add(id);
          }
          const r = random();
          try {
            if (r < 0.6) await new Promise<void>((res) => setImmediate(res));
            else if (r < 0.8) await Promise.resolve();
          } finally {
            if (key !== undefined) {
              busy.delete(id);
              const list = seen.get(id) ?? [];
              list.push(seq);
              seen.set(id, list);
            }
          }
          // Failures (sync and async) must not disturb order or accounting.
          if (r < 0.1 || r > 0.9) throw new Error('handler failure');
        },
        { concurrency: cap },
      );
      return lane;
    });
    let errors = 0;
    pool.on('error', () => errors++);
    const next = new Map<string, number>();
    const producers = lanes.map(async (lane, l) => {
      for (let n = 0; n < 1500; n++) {
        const key = random() < 0.2 ? undefined : `k${Math.floor(random() * 50)}`;
        const id = `${l}/${key}`;
        const seq = next.get(id) ?? 0;
        next.set(id, seq + 1);
        const wait = lane.submit(key, { key, seq });
        if (wait) await wait;
        if (pool.pending > maxPending) violations.push(`pending ${pool.pending} after submit`);
      }
    });
    await Promise.all(producers);
    expect(await pool.drain(10_000)).toBe(true);
    expect(violations).toEqual([]);
    expect(errors).toBeGreaterThan(0);
    let keyed = 0;
    for (const [id, list] of seen) {
      keyed += list.length;
      expect(list, id).toEqual(Array.from({ length: next.get(id)! }, (_, i) => i));
    }
    const unkeyed = [...next].filter(([id]) => id.endsWith('/undefined')).reduce((sum, [, n]) => sum + n, 0);
    expect(keyed + unkeyed).toBe(4 * 1500);
  });

  it('keeps no per-key state for idle keys', async () => {
    const pool = new KeyedOrderingPool({ concurrency: 8, maxPending: 100 });
    const lane = pool.lane<number>(async () => {});
    await feed(lane, Array.from({ length: 10_000 }, (_, i): [string, number] => [`key-${i}`, i]));
    expect(await pool.drain(1000)).toBe(true);
    // Reach into the lane only to check that the key map emptied.
    expect((lane as unknown as { keys: Map<string, unknown> }).keys.size).toBe(0);
  });
});
