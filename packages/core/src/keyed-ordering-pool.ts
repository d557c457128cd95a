/**
 * KeyedOrderingPool: per-key ordering with shared, bounded concurrency.
 *
 * - Items with the same key in one lane run strictly one after another, in
 *   submit order. Different keys run in parallel; unkeyed items run
 *   concurrently. There is no head-of-line blocking across keys: a lane keeps a
 *   ready queue of items that may run now (at most one per key, plus unkeyed
 *   items) and, per busy key, a FIFO backlog of the items waiting behind it.
 *   A key is in the lane's Map only while it has an item queued or running, so
 *   an idle key costs nothing (no worker, timer or entry kept alive).
 * - Concurrency is shared by every lane (one lane per subscription) and handed
 *   out round-robin among lanes that have runnable work and free lane capacity.
 * - Memory is bounded: at most `maxPending` items are accepted and unfinished
 *   across the pool. Beyond that `submit` returns a promise that resolves once
 *   the item is accepted; waiting submitters are served first come, first
 *   served, and their items are held in the waiter record (so the pool holds at
 *   most maxPending + waiting submitters items). Nothing is ever dropped.
 * - A `run` that throws or rejects does not break anything: the pool emits
 *   'error' and carries on with the next item (callers are expected to handle
 *   their own errors inside `run`).
 *
 * Hot path: accepting an item when there is room allocates no promise and no
 * closure. When nothing is queued and there is capacity, `submit` calls `run`
 * right away, and a key whose run completes synchronously never even enters
 * the busy-key map. Completions of asynchronous runs reuse pre-bound callback
 * slots (at most `concurrency` of them). Runs that complete synchronously are
 * continued in the same dispatch loop: no extra tick, no recursion (a `run`
 * that submits more work only queues it; the loop picks it up).
 *
 * Parts: Lane (pool-lane.ts: one lane's keys and queues) and Scheduler
 * (pool-scheduler.ts: the shared counts, waiting submitters, dispatch loop).
 */
import { EventEmitter } from 'eventemitter3';
import { ClosedError, ConfigError } from './errors.js';
import { Lane } from './pool-lane.js';
import { Scheduler, waitFor } from './pool-scheduler.js';

/** Limits of a KeyedOrderingPool. */
export interface KeyedOrderingPoolOptions {
  /** Max tasks running at once across all lanes. */
  concurrency: number;
  /** Max items accepted but not finished (queued + running) across all lanes; beyond it submit waits. */
  maxPending: number;
}

/**
 * The `backpressure` event of a KeyedOrderingPool: emitted when submitters start and stop waiting.
 */
export interface PoolBackpressureEvent {
  /** Items accepted and not finished when the event fired. */
  pending: number;
  /** The pool's maxPending. */
  limit: number;
  /**
   * true: a submitter had to wait (the pool is full). false: nobody waits and
   * the pool has room again (pending <= maxPending - max(1, ceil(maxPending / 8))).
   * Edge-triggered: one pair per stretch of pressure.
   */
  waiting: boolean;
}

/** Events of a KeyedOrderingPool. */
export interface PoolEvents {
  /** Submitters started or stopped waiting for room. */
  backpressure: [PoolBackpressureEvent];
  /** A task threw; the pool reports it here and carries on. */
  error: [error: unknown];
}

/** Options of one lane of a KeyedOrderingPool. */
export interface PoolLaneOptions {
  /** Max items of this lane running at once (default: no lane cap, only the pool's). */
  concurrency?: number;
}

/**
 * A lane of a KeyedOrderingPool (one subscription's handler): items of one key run in order within
 * it, sharing the pool's concurrency and pending budget with other lanes.
 */
export interface PoolLane<T> {
  /**
   * Accept `item` under `key` (undefined key = unordered). Returns undefined
   * when accepted at once (no promise allocated), or a promise that resolves
   * once accepted when the pool is full (backpressure; waiters are served
   * FIFO). Items with the same key in one lane run strictly one after another
   * in submit order. Throws ClosedError after close/drain started; a submit
   * still waiting when the lane or pool starts draining rejects with
   * ClosedError (its item was not accepted and will never run).
   *
   * `run` may be called synchronously from within `submit`.
   */
  submit(key: string | undefined, item: T): Promise<void> | undefined;
  /** Items of this lane accepted and not finished (queued + running). */
  readonly pending: number;
  /** Items of this lane running now. */
  readonly running: number;
  /** Stop accepting on this lane and wait for its accepted items; true if drained in time. */
  drain(timeoutMs?: number): Promise<boolean>;
}

function positiveInteger(value: unknown, name: string, issues: string[], allowInfinity = false): void {
  if (allowInfinity && value === Infinity) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    issues.push(`${name}: must be a positive integer${allowInfinity ? ' or Infinity' : ''}, got ${String(value)}`);
  }
}

/**
 * Per-key ordered, concurrency-limited, memory-bounded dispatch shared by
 * several consumers (lanes). See the file comment for the guarantees.
 */
export class KeyedOrderingPool extends EventEmitter<PoolEvents> {
  /** Most tasks running at once, across lanes. */
  readonly concurrency: number;
  /** Most items accepted and not finished, across lanes. */
  readonly maxPending: number;
  readonly #s: Scheduler;

  constructor(options: KeyedOrderingPoolOptions) {
    super();
    const issues: string[] = [];
    positiveInteger(options?.concurrency, 'concurrency', issues);
    positiveInteger(options?.maxPending, 'maxPending', issues, true);
    if (issues.length) throw new ConfigError('invalid KeyedOrderingPool options', issues);
    this.concurrency = options.concurrency;
    this.maxPending = options.maxPending;
    this.#s = new Scheduler(this, options.concurrency, options.maxPending);
  }

  /** Tasks running now, across all lanes. */
  get running(): number {
    return this.#s.runningCount;
  }

  /** Items accepted and not finished (queued + running), across all lanes. */
  get pending(): number {
    return this.#s.pendingCount;
  }

  /** Submitters waiting for room (their items are not counted in `pending`). */
  get waiting(): number {
    return this.#s.waiters.length;
  }

  /**
   * A lane is one consumer (subscription) sharing the pool; it has its own run
   * function and optional own concurrency cap. A drained lane leaves the pool.
   */
  lane<T>(run: (item: T) => void | Promise<void>, options: PoolLaneOptions = {}): PoolLane<T> {
    const s = this.#s;
    if (s.closed) throw new ClosedError('keyed ordering pool');
    const issues: string[] = [];
    if (typeof run !== 'function') issues.push('run: must be a function');
    if (options.concurrency !== undefined) positiveInteger(options.concurrency, 'concurrency', issues, true);
    if (issues.length) throw new ConfigError('invalid pool lane options', issues);
    const lane = new Lane<T>(s, run, options.concurrency ?? Infinity);
    s.lanes.add(lane);
    return lane;
  }

  /**
   * Stop accepting everywhere (submitters still waiting are rejected with
   * ClosedError) and wait until every accepted item finished; resolves true if
   * drained, false on timeout (accepted work keeps running after a timeout).
   */
  drain(timeoutMs = Infinity): Promise<boolean> {
    const s = this.#s;
    s.closed = true;
    for (const lane of [...s.lanes]) lane.close();
    if (s.pendingCount === 0) return Promise.resolve(true);
    return waitFor(s.drainers, timeoutMs);
  }
}
