/**
 * A member of a consumer group: one subscription's delivery queue, the
 * batches it hands to its sink within maxInFlight, its unsettled deliveries
 * and their settlement.
 */
import type { ConsumerSpec, MessageSink } from '@busline/core/driver';
import { DEFAULT_DELIVERY_BATCH_SIZE } from './config.js';
import { OUTSTANDING, SETTLED, insertByOffset, type Delivery } from './delivery.js';
import type { Group } from './group.js';

/** How a member of a memory group receives its deliveries. */
export interface MemberOptions {
  /** Most messages per `deliver` call. */
  batchSize?: number;
  /** Asynchronous problems no caller awaits (a sink that threw). */
  onError?: (error: Error, context: string) => void;
  /** Counters (e.g. `ephemeral_dropped`). */
  count?: (name: string, by?: number) => void;
}

export class Member {
  active = true;
  closed = false;
  /** Delivered and not settled. */
  unsettled = 0;
  private readonly maxInFlight: number;
  private readonly batchSize: number;
  /** Dispatch from the log pauses for this member once this many messages wait in its queue. */
  readonly queueLimit: number;
  /** Waiting deliveries in offset order; `queue[qh]` is next. */
  queue: (Delivery | undefined)[] = [];
  qh = 0;
  /** Unsettled deliveries, oldest first (intrusive list). */
  private first: Delivery | null = null;
  private last: Delivery | null = null;
  private waiting = false;

  constructor(
    readonly group: Group,
    private readonly sink: MessageSink,
    spec: Pick<ConsumerSpec, 'maxInFlight'>,
    private readonly options: MemberOptions,
  ) {
    this.maxInFlight = Math.max(1, spec.maxInFlight);
    this.batchSize = Math.max(1, options.batchSize ?? DEFAULT_DELIVERY_BATCH_SIZE);
    this.queueLimit = Math.max(2 * Math.min(this.batchSize, this.maxInFlight), 16);
  }

  get queued(): number {
    return this.queue.length - this.qh;
  }

  get full(): boolean {
    return this.queue.length - this.qh >= this.queueLimit;
  }

  /** Appends a delivery newer than everything queued (dispatch from the log). */
  push(d: Delivery): void {
    this.queue.push(d);
  }

  /** Places a redelivery among the queue by offset (ahead of newer messages). */
  insert(d: Delivery): void {
    d._member = this;
    insertByOffset(this.queue, this.qh, d);
  }

  /** Takes every waiting delivery out of the queue (the member is leaving). */
  takeQueued(): Delivery[] {
    const taken = this.queue.slice(this.qh) as Delivery[];
    this.queue = [];
    this.qh = 0;
    return taken;
  }

  count(name: string, by = 1): void {
    this.options.count?.(name, by);
  }

  /** Hands queued messages to the sink in batches, within maxInFlight, until the sink pushes back. */
  pump(): number {
    if (!this.active || this.waiting) return 0;
    let delivered = 0;
    while (this.queue.length > this.qh && this.unsettled < this.maxInFlight) {
      const n = Math.min(this.queue.length - this.qh, this.maxInFlight - this.unsettled, this.batchSize);
      const batch: Delivery[] = [];
      const queue = this.queue;
      let qh = this.qh;
      for (let k = 0; k < n; k++) {
        const d = queue[qh]!;
        queue[qh++] = undefined;
        d._state = OUTSTANDING;
        d._prev = this.last;
        if (this.last === null) this.first = d;
        else this.last._next = d;
        this.last = d;
        batch.push(d);
      }
      if (qh === queue.length) {
        this.queue = [];
        this.qh = 0;
      } else if (qh >= 4096 && qh * 2 >= queue.length) {
        this.queue = queue.slice(qh);
        this.qh = 0;
      } else {
        this.qh = qh;
      }
      this.unsettled += n;
      delivered += n;
      let result: void | Promise<void>;
      try {
        result = this.sink.deliver(batch);
      } catch (error) {
        this.reportError(error, 'delivering a batch (the sink threw; the batch stays unsettled until settled or the consumer closes)');
        result = undefined;
      }
      if (result !== undefined && result !== null && typeof (result as Promise<void>).then === 'function') {
        this.waiting = true;
        (result as Promise<void>).then(this.resume, this.resumeAfterError);
        break;
      }
      if (!this.active) break;
    }
    return delivered;
  }

  private readonly resume = (): void => {
    this.waiting = false;
    this.group.wake();
  };

  private readonly resumeAfterError = (error: unknown): void => {
    this.reportError(error, 'delivering a batch (the sink rejected)');
    this.resume();
  };

  private reportError(error: unknown, context: string): void {
    const e = error instanceof Error ? error : new Error(String(error));
    if (this.options.onError) this.options.onError(e, context);
  }

  private unlink(d: Delivery): void {
    const { _prev: prev, _next: next } = d;
    if (prev === null) this.first = next;
    else prev._next = next;
    if (next === null) this.last = prev;
    else next._prev = prev;
    d._prev = d._next = null;
  }

  /** ack / term (`redeliver` false) or nack. */
  settle(d: Delivery, redeliver: boolean, delayMs: number): void {
    d._state = SETTLED;
    this.unlink(d);
    this.unsettled--;
    const group = this.group;
    if (redeliver && !d._msg.ephemeral) {
      if (delayMs > 0) group.delay(d, delayMs);
      else group.redeliver(d._again());
    } else {
      const ks = d._ks;
      if (ks !== null && --ks.outstanding === 0) group.release(ks);
    }
    group.wake();
  }

  /** Stops intake: waiting deliveries go back to the group. Unsettled ones may still be settled. */
  stop(): void {
    if (!this.active) return;
    this.active = false;
    this.group.leave(this);
  }

  /** Leaves for good: unsettled deliveries are redelivered to the other (or next) members. */
  close(): void {
    this.stop();
    if (this.closed) return;
    this.closed = true;
    const returned: Delivery[] = [];
    for (let d = this.first; d !== null; d = d._next) {
      d._state = SETTLED;
      if (!d._msg.ephemeral) returned.push(d._again());
      else this.count('ephemeral_dropped');
    }
    // Clear the links only after the walk above.
    for (let d = this.first; d !== null; ) {
      const next: Delivery | null = d._next;
      d._prev = d._next = null;
      d = next;
    }
    this.first = this.last = null;
    this.unsettled = 0;
    this.group.returnFromClosed(this, returned);
  }
}
