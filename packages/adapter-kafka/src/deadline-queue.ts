/** setTimeout's largest delay; longer ones fire after 1 ms (and would loop). */
export const MAX_TIMER_MS = 2_147_483_647;

/** A call with a deadline (performance.now() ms) that may complete before it. */
export interface Deadlined {
  readonly done: boolean;
  readonly deadline: number;
}

/**
 * Open calls with one timeout value, oldest first, and one timer for the
 * oldest: each call not done by its deadline is expired, once.
 *
 * Calls complete roughly in the order they were made (one batch in flight),
 * so completed ones are dropped from the front whenever a call is added, not
 * only when the timer fires: the queue holds the open window, not every call
 * of the last timeout period. (It used to wait for the timer, armed for the
 * oldest call's deadline, 30 s by default: at 40,000 publishes a second it
 * held 1.2 million completed calls, ~300 MB of heap, and the old-space
 * growth made the publisher's garbage collection pauses reach 40 ms.)
 */
export class DeadlineQueue<T extends Deadlined> {
  private items: T[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly expire: (call: T) => void) {}

  /** Calls held: the open ones and completed ones not yet dropped (fewer than the open window plus 1,024). */
  get size(): number {
    return this.items.length - this.head;
  }

  add(call: T): void {
    this.dropDone();
    this.items.push(call);
    if (this.timer === undefined) this.arm();
  }

  clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.items = [];
    this.head = 0;
  }

  /** Drops completed calls from the front; compacts once the dropped part is most of the array. */
  private dropDone(): void {
    while (this.head < this.items.length && this.items[this.head]!.done) this.head++;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  private arm(): void {
    this.dropDone();
    if (this.head === this.items.length) return;
    // Capped: a longer delay would fire after 1 ms, and re-arm, in a loop.
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, this.items[this.head]!.deadline - performance.now()) + 1);
    this.timer = setTimeout(this.fire, delay);
    // A pending publish keeps the process alive through its socket; this timer alone must not.
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    const now = performance.now();
    while (this.head < this.items.length) {
      const call = this.items[this.head]!;
      if (!call.done && call.deadline > now) break;
      this.head++;
      if (!call.done) this.expire(call);
    }
    this.arm();
  };
}
