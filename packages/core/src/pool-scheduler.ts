/**
 * Scheduler: the state a KeyedOrderingPool shares across its lanes — running
 * and pending counts against `concurrency` and `maxPending`, the lanes with
 * runnable work (served round-robin), the submitters waiting for room, and
 * the pre-bound completion slots — and the dispatch loop that starts items.
 * Lanes (pool-lane.ts) call into it on every submit and finish; it calls each
 * lane back to start its next item.
 */
import type { EventEmitter } from 'eventemitter3';
import { ClosedError } from './errors.js';
import { Deque } from './deque.js';
import type { PoolEvents } from './keyed-ordering-pool.js';
import type { Lane } from './pool-lane.js';

interface Waiter {
  lane: Lane<any>;
  key: string | undefined;
  item: unknown;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export type Drainer = (drained: boolean) => void;

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

/** A promise of `drained` that resolves false after `timeoutMs` (its drainer is then removed). */
export function waitFor(drainers: Drainer[], timeoutMs: number): Promise<boolean> {
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

/** The pool's state and dispatch loop, kept off the public class. */
export class Scheduler {
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
    private readonly events: EventEmitter<PoolEvents>,
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
