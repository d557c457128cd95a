/**
 * DeliveryInlet: where a driver's deliveries enter core, for every broker.
 *
 * It owns the delivery bookkeeping that used to be rebuilt by each adapter:
 * - **settle once**: each held message is acked, nacked or termed exactly
 *   once; later calls are no-ops, and a driver whose settle call throws is
 *   reported, never retried through the handler.
 * - **in hand**: a message is held from delivery until settled. A redelivered
 *   copy (same `deliveryId`) of a message still held is collapsed into it: the
 *   copy's handle becomes the one that is settled, and the handler never runs
 *   on the copy (a broker deadline that expired while the message waited
 *   behind its key must not produce a second, out-of-order handling).
 * - **lease**: where the driver has a redelivery deadline (`leaseMs`), every
 *   held message is extended once it has been held for a third of it.
 * - **in-flight budget**: at most `maxInFlight` messages are held; past it
 *   `deliver` returns a promise, and the driver's fetch loop waits until a
 *   quarter of them are settled (so refills come in batches).
 * - **failure policy**: if handing a message on throws, the message goes back
 *   to the broker (nack) and the error is reported; the fetch loop never sees
 *   an exception from core.
 * - **recall**: the driver may take back everything delivered so far that has
 *   not started (`MessageSink.recall`). Every message is numbered when the
 *   driver delivers it; those below the recall mark are `recalled`, including
 *   ones of a batch the inlet has not handed on yet (nacked as they come up),
 *   and the processor nacks a recalled message instead of starting it.
 *
 * The processor (a subscription) receives `HeldMessage`s and settles them
 * through the held message, never through the driver's handle.
 */
import type { DeliveredMessage, MessageSink } from './driver.js';

/** What a DeliveryInlet hands held messages to (a subscription). */
export interface InletProcessor {
  /** The driver recalled what has not started (`MessageSink.recall`): end retry backoffs now. */
  recalled(): void;
  /**
   * Takes a new held message. May return a promise when it cannot accept more
   * now (backpressure); the inlet waits for it before taking the next one.
   */
  accept(message: HeldMessage): void | Promise<void>;
  /** Something the inlet could not hand on or settle; reported, never thrown. */
  report(error: unknown, context: string): void;
  /** A driver-level counter (collapsed redeliveries, lease extensions). */
  count(name: string, by?: number): void;
}

/** Limits of a DeliveryInlet. */
export interface InletOptions {
  /** Most messages held at once (the subscription's maxInFlight). */
  maxInFlight: number;
  /** Delay for a message handed back because accepting it failed. */
  failureDelayMs: number;
}

/** One message core holds, from delivery until it is settled. */
export class HeldMessage {
  /** The driver's handle that settling goes to: the newest delivery of the message. */
  private handle: DeliveredMessage;
  private settled = false;
  /** When the lease was last started or extended (ms since epoch). */
  leasedAt: number;
  /** When it was delivered (ms since epoch): the start of its queue wait. */
  readonly receivedAt: number;

  constructor(
    private readonly inlet: DeliveryInlet,
    first: DeliveredMessage,
    now: number,
    /** Its place in the order the driver delivered messages (recall marks are compared with it). */
    private readonly seq: number,
  ) {
    this.handle = first;
    this.leasedAt = now;
    this.receivedAt = now;
  }

  /** The topic the message was delivered from. */
  get topic(): string {
    return this.handle.topic;
  }
  /** The broker's key of the message (the aggregate id), if any. */
  get key(): string | undefined {
    return this.handle.key;
  }
  /** The message's headers, as delivered. */
  get headers(): Record<string, string> {
    return this.handle.headers;
  }
  /** The message body, as delivered. */
  get body(): Uint8Array {
    return this.handle.body;
  }
  /** The broker's identity of the message (stream sequence, partition:offset), where it has one. */
  get deliveryId(): string | number | undefined {
    return this.handle.deliveryId;
  }
  /** When the broker stored the message (ms since epoch), where it says. */
  get timestamp(): number | undefined {
    return this.handle.timestamp;
  }
  /** The broker's count for the newest delivery of this message (1 the first time). */
  get deliveryCount(): number {
    return this.handle.deliveryCount;
  }
  /** Whether the message was settled (acknowledged, handed back or terminated). */
  get isSettled(): boolean {
    return this.settled;
  }
  /** The driver recalled it (`MessageSink.recall`): it must not start (again); nack it instead. */
  get recalled(): boolean {
    return this.seq < this.inlet.recallMark;
  }

  /** Handled: never deliver again. */
  ack(): void {
    if (this.begin()) this.call('ack', (h) => h.ack());
  }
  /** Not handled: deliver again after `delayMs` (or at once). */
  nack(delayMs = 0): void {
    if (this.begin()) this.call('nack', (h) => h.nack(delayMs));
  }
  /** Poison or dead-lettered: never deliver again. */
  term(): void {
    if (this.begin()) this.call('term', (h) => h.term());
  }

  /** @internal A redelivered copy arrived while this message is held. */
  adopt(copy: DeliveredMessage, now: number): void {
    this.handle = copy;
    this.leasedAt = now;
  }

  /** @internal Tells the broker the message is still in hand. */
  extend(now: number): void {
    this.leasedAt = now;
    const handle = this.handle;
    if (handle.extendLease === undefined) return;
    try {
      handle.extendLease();
    } catch (error) {
      this.inlet.processor.report(error, `extending the lease of a message on "${handle.topic}"`);
    }
  }

  private begin(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.inlet.release(this);
    return true;
  }

  private call(what: string, settle: (handle: DeliveredMessage) => void): void {
    try {
      settle(this.handle);
    } catch (error) {
      this.inlet.processor.report(error, `${what} of a message on "${this.handle.topic}" (the driver threw)`);
    }
  }
}

export class DeliveryInlet implements MessageSink {
  /** Held messages by delivery id (only those whose driver gives one). */
  private readonly inHand = new Map<string | number, HeldMessage>();
  private heldCount = 0;
  private settledCount = 0;
  private busyAt = 0;
  private waitingDelivery = false;
  private leaseMs: number | undefined;
  private leaseTimer: ReturnType<typeof setInterval> | undefined;
  private roomWaiters: (() => void)[] = [];
  /** Messages the driver delivered so far (each one's `seq` is its index). */
  private deliveredCount = 0;
  private recalledBelow = 0;

  /** Held count at or below which a waiting fetch loop resumes: refills come in batches, not one by one. */
  private readonly resumeAt: number;

  constructor(
    readonly processor: InletProcessor,
    private readonly options: InletOptions,
  ) {
    this.resumeAt = options.maxInFlight - Math.max(1, Math.floor(options.maxInFlight / 4));
  }

  /** Messages held now (delivered, not settled). */
  get held(): number {
    return this.heldCount;
  }
  /** Messages settled so far (health: progress). */
  get settled(): number {
    return this.settledCount;
  }
  /** When the inlet last went from holding nothing to holding something (ms since epoch). */
  get busySince(): number {
    return this.busyAt;
  }
  /** Messages the driver delivered before its last `recall` (a held message numbered below it is recalled). */
  get recallMark(): number {
    return this.recalledBelow;
  }
  /** The driver's fetch loop is waiting for room (in-flight budget or the pool full). */
  get waitingForRoom(): boolean {
    return this.waitingDelivery;
  }

  /**
   * The driver's redelivery deadline, known once its subscription is open.
   * Starts one timer that extends every held message older than a third of it.
   */
  setLease(leaseMs: number | undefined): void {
    if (leaseMs === undefined || !(leaseMs > 0) || this.leaseMs !== undefined) return;
    this.leaseMs = leaseMs;
    const every = Math.max(50, Math.floor(leaseMs / 3));
    this.leaseTimer = setInterval(() => this.extendLeases(every), Math.max(25, Math.floor(every / 2)));
    this.leaseTimer.unref?.();
  }

  /** Takes a batch from the driver (see MessageSink.deliver). */
  deliver(batch: DeliveredMessage[]): void | Promise<void> {
    const now = Date.now();
    const first = this.deliveredCount;
    this.deliveredCount += batch.length;
    for (let i = 0; i < batch.length; i++) {
      const wait = this.take(batch[i]!, now, first + i);
      if (wait !== undefined) return this.deliverRest(wait, batch, i + 1, first);
    }
    if (this.heldCount >= this.options.maxInFlight) {
      this.waitingDelivery = true;
      return this.room();
    }
  }

  /** Takes back what has not started (see MessageSink.recall). */
  recall(): void {
    this.recalledBelow = this.deliveredCount;
    this.processor.recalled();
  }

  private async deliverRest(wait: Promise<void>, batch: DeliveredMessage[], from: number, first: number): Promise<void> {
    this.waitingDelivery = true;
    try {
      await wait;
      for (let i = from; i < batch.length; i++) {
        const next = this.take(batch[i]!, Date.now(), first + i);
        if (next !== undefined) await next;
      }
      if (this.heldCount >= this.options.maxInFlight) await this.room();
    } finally {
      this.waitingDelivery = false;
    }
  }

  /** Holds one delivery and hands it on; a copy of a held message is collapsed. Never throws. */
  private take(message: DeliveredMessage, now: number, seq: number): Promise<void> | undefined {
    const id = message.deliveryId;
    if (id !== undefined) {
      const held = this.inHand.get(id);
      if (held !== undefined) {
        held.adopt(message, now);
        this.processor.count('redelivery_collapsed');
        return undefined;
      }
    }
    const held = new HeldMessage(this, message, now, seq);
    if (id !== undefined) this.inHand.set(id, held);
    if (this.heldCount++ === 0) this.busyAt = now;
    if (seq < this.recalledBelow) {
      // Recalled while it waited in its batch: back without reaching the processor.
      held.nack(0);
      return undefined;
    }
    try {
      const wait = this.processor.accept(held);
      return wait === undefined ? undefined : wait.catch((error: unknown) => this.refuse(held, error));
    } catch (error) {
      this.refuse(held, error);
      return undefined;
    }
  }

  private refuse(held: HeldMessage, error: unknown): void {
    this.processor.report(error, `handing a message on "${held.topic}" to its handler (it goes back to the broker)`);
    held.nack(this.options.failureDelayMs);
  }

  /** @internal A held message was settled. */
  release(held: HeldMessage): void {
    this.heldCount--;
    this.settledCount++;
    const id = held.deliveryId;
    if (id !== undefined && this.inHand.get(id) === held) this.inHand.delete(id);
    if (this.roomWaiters.length > 0 && this.heldCount <= this.resumeAt) {
      this.waitingDelivery = false;
      const waiters = this.roomWaiters;
      this.roomWaiters = [];
      for (const resume of waiters) resume();
    }
  }

  private room(): Promise<void> {
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  private extendLeases(every: number): void {
    const now = Date.now();
    for (const held of this.inHand.values()) {
      if (now - held.leasedAt >= every) {
        held.extend(now);
        this.processor.count('lease_extended');
      }
    }
  }

  /** Stops the lease timer and lets a waiting fetch loop go (it will find the consumer stopped). */
  close(): void {
    if (this.leaseTimer !== undefined) clearInterval(this.leaseTimer);
    this.leaseTimer = undefined;
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const resume of waiters) resume();
  }
}
