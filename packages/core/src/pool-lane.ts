/**
 * Lane: one consumer's part of a KeyedOrderingPool (see keyed-ordering-pool.ts
 * for the guarantees). It keeps per-key order — a ready queue with at most
 * one item per key, and the backlog behind each busy key — and runs its
 * items, inline from `submit` when nothing is queued anywhere; the shared
 * counts, waiting submitters and the dispatch loop are the Scheduler's
 * (pool-scheduler.ts).
 */
import { ClosedError } from './errors.js';
import { Deque } from './deque.js';
import type { PoolLane } from './keyed-ordering-pool.js';
import { waitFor, type Drainer, type Scheduler } from './pool-scheduler.js';

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function';
}

/** One lane: its ready queue and busy keys; it runs its items and reports each finish to the Scheduler. */
export class Lane<T> implements PoolLane<T> {
  pending = 0;
  running = 0;
  closed = false;
  /** In the pool's ready-lanes queue. */
  queued = false;
  /** The key of the item `submit` is running inline right now, if any. */
  private inlineKey: string | undefined = undefined;
  /** The inline run submitted more items under its own key. */
  private inlineTouched = false;
  /** Runnable now, as (key, item) pairs: at most one item per key. */
  readonly ready = new Deque<unknown>(32);
  /** Busy keys: null = one item queued-or-running and nothing behind it, else the backlog behind it. */
  readonly keys = new Map<string, Deque<T> | null>();
  private drainers: Drainer[] = [];

  constructor(
    private readonly pool: Scheduler,
    private readonly run: (item: T) => void | Promise<void>,
    readonly cap: number,
  ) {}

  submit(key: string | undefined, item: T): Promise<void> | undefined {
    if (this.closed) throw new ClosedError('pool lane');
    const pool = this.pool;
    if (pool.pendingCount < pool.maxPending && pool.waiters.length === 0) {
      pool.pendingCount++;
      this.pending++;
      if (
        !pool.pumping &&
        pool.runningCount < pool.concurrency &&
        this.running < this.cap &&
        pool.readyLanes.length === 0 &&
        (key === undefined || !this.keys.has(key))
      ) {
        // Nothing queued anywhere and room to run: start it right here.
        this.runInline(key, item);
      } else {
        this.enqueue(key, item);
        if (pool.runningCount < pool.concurrency && !pool.pumping) pool.pump();
      }
      return undefined;
    }
    return pool.wait(this, key, item);
  }

  /**
   * Runs an item from `submit` without queueing it. Its key is entered in the
   * busy-key map only if it is still running after `run` returns (a promise)
   * or if `run` submitted more work under the same key meanwhile, so a run
   * that completes synchronously costs one map lookup.
   */
  private runInline(key: string | undefined, item: T): void {
    const pool = this.pool;
    pool.runningCount++;
    this.running++;
    // Submits made by `run` itself are queued, and dispatched once it returns.
    pool.pumping = true;
    this.inlineKey = key;
    this.inlineTouched = false;
    let result: unknown;
    let failed = false;
    let error: unknown;
    try {
      result = this.run(item);
    } catch (e) {
      failed = true;
      error = e;
    }
    this.inlineKey = undefined;
    pool.pumping = false;
    if (!failed && isThenable(result)) {
      if (key !== undefined && !this.inlineTouched) this.keys.set(key, null);
      this.awaitRun(result, key);
      if (pool.readyLanes.length > 0) pool.pump();
    } else {
      this.finish(this.inlineTouched ? key : undefined);
      if (failed) pool.reportError(error);
    }
  }

  private awaitRun(result: PromiseLike<unknown>, key: string | undefined): void {
    const slot = this.pool.takeSlot(this, key);
    try {
      // A foreign thenable might call back twice; a native promise settles once.
      (result instanceof Promise ? result : Promise.resolve(result)).then(slot.ok, slot.fail);
    } catch (error) {
      // A broken thenable: count it as a failed run.
      slot.fail(error);
    }
  }

  /** Places an accepted item (pending already counted). */
  enqueue(key: string | undefined, item: T): void {
    if (key === undefined) {
      this.ready.push(undefined);
      this.ready.push(item);
    } else {
      const keys = this.keys;
      const backlog = keys.get(key);
      if (backlog === undefined) {
        if (key === this.inlineKey) {
          // Submitted by the inline run of the same key: wait behind it.
          this.inlineTouched = true;
          const ring = new Deque<T>(4);
          ring.push(item);
          keys.set(key, ring);
          return;
        }
        keys.set(key, null);
        this.ready.push(key);
        this.ready.push(item);
      } else if (backlog === null) {
        const ring = new Deque<T>(4);
        ring.push(item);
        keys.set(key, ring);
        return;
      } else {
        backlog.push(item);
        return; // the lane's runnable set did not change
      }
    }
    if (!this.queued && this.running < this.cap) {
      this.queued = true;
      this.pool.readyLanes.push(this);
    }
  }

  /** Starts the next runnable item; called by the pool's dispatch loop only. */
  startOne(): void {
    const ready = this.ready;
    const key = ready.shift() as string | undefined;
    const item = ready.shift() as T;
    const pool = this.pool;
    pool.runningCount++;
    this.running++;
    let result: unknown;
    try {
      result = this.run(item);
    } catch (error) {
      this.finish(key);
      pool.reportError(error);
      return;
    }
    if (isThenable(result)) {
      this.awaitRun(result, key);
    } else {
      this.finish(key);
    }
  }

  /** One item of this lane finished (successfully or not). */
  finish(key: string | undefined): void {
    const pool = this.pool;
    pool.runningCount--;
    pool.pendingCount--;
    this.running--;
    this.pending--;
    if (key !== undefined) {
      const backlog = this.keys.get(key);
      if (backlog && backlog.length > 0) {
        this.ready.push(key);
        this.ready.push(backlog.shift() as T);
      } else {
        this.keys.delete(key);
      }
    }
    if (!this.queued && this.ready.length > 0 && this.running < this.cap) {
      this.queued = true;
      pool.readyLanes.push(this);
    }
    if (this.closed && this.pending === 0) this.settleDrainers();
    pool.afterFinish();
  }

  drain(timeoutMs = Infinity): Promise<boolean> {
    this.close();
    if (this.pending === 0) {
      this.pool.lanes.delete(this);
      return Promise.resolve(true);
    }
    return waitFor(this.drainers, timeoutMs);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pool.dropWaiters(this);
  }

  private settleDrainers(): void {
    this.pool.lanes.delete(this);
    const drainers = this.drainers;
    if (drainers.length === 0) return;
    this.drainers = [];
    for (const d of drainers) d(true);
  }
}
