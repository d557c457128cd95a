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
 */
import { EventEmitter } from 'eventemitter3';
import { ClosedError, ConfigError } from './errors.js';
import { Deque } from './deque.js';

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

interface Waiter {
  lane: Lane<any>;
  key: string | undefined;
  item: unknown;
  resolve: () => void;
  reject: (error: unknown) => void;
}

type Drainer = (drained: boolean) => void;

/**
 * Completion callbacks for one asynchronous run, bound once and reused, so an
 * async completion allocates nothing of ours. At most `concurrency` exist.
 */
class Slot {
  lane: Lane<any> | undefined = undefined;
  key: string | undefined = undefined;
  constructor(private readonly scheduler: Scheduler) {}
  readonly ok = (): void => {
    const lane = this.lane;
    if (lane === undefined) return;
    const key = this.key;
    this.lane = undefined;
    this.key = undefined;
    this.scheduler.freeSlots.push(this);
    lane.finish(key);
  };
  readonly fail = (error: unknown): void => {
    if (this.lane === undefined) return;
    this.ok();
    this.scheduler.reportError(error);
  };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function';
}

class Lane<T> implements PoolLane<T> {
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

function waitFor(drainers: Drainer[], timeoutMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done: Drainer = (drained) => {
      if (timer !== undefined) clearTimeout(timer);
      resolve(drained);
    };
    drainers.push(done);
    if (Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => {
        const i = drainers.indexOf(done);
        if (i >= 0) drainers.splice(i, 1);
        resolve(false);
      }, Math.max(0, timeoutMs));
    }
  });
}

function positiveInteger(value: unknown, name: string, issues: string[], allowInfinity = false): void {
  if (allowInfinity && value === Infinity) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    issues.push(`${name}: must be a positive integer${allowInfinity ? ' or Infinity' : ''}, got ${String(value)}`);
  }
}

/** The pool's state and dispatch loop, kept off the public class. */
class Scheduler {
  runningCount = 0;
  pendingCount = 0;
  pumping = false;
  closed = false;
  /** Lanes with runnable work and free lane capacity, served round-robin. */
  readonly readyLanes = new Deque<Lane<any>>(16);
  /** Submitters waiting for room, FIFO. */
  readonly waiters = new Deque<Waiter>(16);
  readonly lanes = new Set<Lane<any>>();
  readonly freeSlots: Slot[] = [];
  drainers: Drainer[] = [];
  private backpressured = false;
  /** Pending at or below which a backpressure episode ends: maxPending minus 1/8 (at least 1). */
  private readonly resumeAt: number;

  constructor(
    private readonly events: KeyedOrderingPool,
    readonly concurrency: number,
    readonly maxPending: number,
  ) {
    this.resumeAt = Number.isFinite(maxPending) ? maxPending - Math.max(1, Math.ceil(maxPending / 8)) : Infinity;
  }

  /** The dispatch loop: starts runnable items while there is capacity. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const readyLanes = this.readyLanes;
      while (this.runningCount < this.concurrency && readyLanes.length > 0) {
        const lane = readyLanes.shift() as Lane<any>;
        lane.queued = false;
        if (lane.ready.length === 0 || lane.running >= lane.cap) continue;
        // May complete synchronously; finish() then updates the queues and the loop goes on.
        lane.startOne();
        if (!lane.queued && lane.ready.length > 0 && lane.running < lane.cap) {
          lane.queued = true;
          readyLanes.push(lane);
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  afterFinish(): void {
    if (this.waiters.length > 0) this.admitWaiters();
    else if (this.backpressured) this.checkRelief();
    if (this.pendingCount === 0 && this.drainers.length > 0) {
      const drainers = this.drainers;
      this.drainers = [];
      for (const d of drainers) d(true);
    }
    if (!this.pumping) this.pump();
  }

  wait(lane: Lane<any>, key: string | undefined, item: unknown): Promise<void> {
    let waiter!: Waiter;
    const promise = new Promise<void>((resolve, reject) => {
      waiter = { lane, key, item, resolve, reject };
    });
    this.waiters.push(waiter);
    if (!this.backpressured) {
      this.backpressured = true;
      this.emit('backpressure', { pending: this.pendingCount, limit: this.maxPending, waiting: true });
    }
    // Not expected (someone waits only while the pool is full), but never strand a waiter.
    if (this.pendingCount < this.maxPending) this.admitWaiters();
    return promise;
  }

  dropWaiters(lane: Lane<any>): void {
    if (this.waiters.length === 0) return;
    const dropped = this.waiters.removeWhere((w) => w.lane === lane);
    for (const w of dropped) w.reject(new ClosedError('pool lane'));
    this.admitWaiters();
  }

  takeSlot(lane: Lane<any>, key: string | undefined): Slot {
    const slot = this.freeSlots.pop() ?? new Slot(this);
    slot.lane = lane;
    slot.key = key;
    return slot;
  }

  reportError(error: unknown): void {
    this.emit('error', error);
  }

  private admitWaiters(): void {
    const waiters = this.waiters;
    let admitted = false;
    while (waiters.length > 0 && this.pendingCount < this.maxPending) {
      const w = waiters.shift() as Waiter;
      this.pendingCount++;
      w.lane.pending++;
      w.lane.enqueue(w.key, w.item);
      w.resolve();
      admitted = true;
    }
    if (this.backpressured) this.checkRelief();
    if (admitted && !this.pumping) this.pump();
  }

  /**
   * Ends a backpressure episode once nobody waits and there is real room again
   * (pending at or below the resume mark), so a producer that keeps the pool
   * full gets one waiting:true ... waiting:false pair, not one per message.
   */
  private checkRelief(): void {
    if (this.waiters.length === 0 && this.pendingCount <= this.resumeAt) {
      this.backpressured = false;
      this.emit('backpressure', { pending: this.pendingCount, limit: this.maxPending, waiting: false });
    }
  }

  /** A throwing listener must not corrupt the pool's bookkeeping. */
  private emit<E extends keyof PoolEvents>(event: E, ...args: PoolEvents[E]): void {
    try {
      (this.events.emit as (event: E, ...args: PoolEvents[E]) => boolean).call(this.events, event, ...args);
    } catch {
      // A listener's failure is the listener's business; the pool keeps going.
    }
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
