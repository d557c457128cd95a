/**
 * PublishAdmission: the bus's bounded publish window, the same for every
 * broker. At most `maxInFlight` messages are handed to the driver and not yet
 * settled; publishes beyond it wait, first come first served, and at most
 * `maxWaiting` messages may wait. Past that a publish is refused at once with
 * PUBLISH_QUEUE_FULL, so a producer that outruns the broker (or a paused
 * broker) meets a clear error instead of an ever-growing heap. A publish that
 * waits longer than its own timeout fails with PUBLISH_TIMEOUT, never sent.
 */
import { BuslineError, ErrorCode, PublishTimeoutError } from './errors.js';

/** Limits of the publish window. */
export interface PublishAdmissionOptions {
  /** Messages handed to the broker and not yet acknowledged, at most. */
  maxInFlight: number;
  /** Messages waiting for room, at most; beyond it a publish fails with PUBLISH_QUEUE_FULL. */
  maxWaiting: number;
}

interface Waiter {
  count: number;
  resolve: () => void;
  reject: (error: BuslineError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * The bus's publish window: at most `maxInFlight` messages handed to the broker unacknowledged, up
 * to `maxWaiting` more waiting for room (each within its timeout), and PUBLISH_QUEUE_FULL beyond,
 * so a producer that outruns the broker never grows the heap without bound.
 */
export class PublishAdmission {
  private inFlightCount = 0;
  private waitingCount = 0;
  private readonly waiters: Waiter[] = [];
  private head = 0;

  constructor(private readonly options: PublishAdmissionOptions) {}

  /** Messages handed to the driver and not settled. */
  get inFlight(): number {
    return this.inFlightCount;
  }
  /** Messages waiting for room. */
  get waiting(): number {
    return this.waitingCount;
  }

  /**
   * Admits `count` messages: undefined when admitted now (the hot path makes
   * no promise), else a promise that resolves once admitted or rejects
   * (queue full, or not admitted within `timeoutMs`). A batch larger than the
   * window is admitted alone, once nothing else is in flight.
   */
  admit(count: number, topic: string, timeoutMs: number): Promise<void> | undefined {
    const { maxInFlight, maxWaiting } = this.options;
    if (this.waitingCount === 0 && (this.inFlightCount + count <= maxInFlight || this.inFlightCount === 0)) {
      this.inFlightCount += count;
      return undefined;
    }
    if (this.waitingCount + count > maxWaiting && this.waitingCount > 0) {
      return Promise.reject(
        new BuslineError(
          ErrorCode.PublishQueueFull,
          `publish to "${topic}" refused: ${this.inFlightCount} messages are in flight and ${this.waitingCount} wait for room (publish.maxInFlight ${maxInFlight}, publish.maxWaiting ${maxWaiting}); await earlier publishes or raise the limits`,
          { retryable: true, details: { topic, inFlight: this.inFlightCount, waiting: this.waitingCount } },
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { count, resolve, reject, timer: undefined };
      waiter.timer = setTimeout(() => this.expire(waiter, topic, timeoutMs), timeoutMs);
      this.waiters.push(waiter);
      this.waitingCount += count;
    });
  }

  /** `count` admitted messages settled. */
  release(count: number): void {
    this.inFlightCount -= count;
    this.admitWaiters();
  }

  private admitWaiters(): void {
    const { maxInFlight } = this.options;
    while (this.head < this.waiters.length) {
      const w = this.waiters[this.head]!;
      if (this.inFlightCount + w.count > maxInFlight && this.inFlightCount > 0) break;
      this.head++;
      this.waitingCount -= w.count;
      this.inFlightCount += w.count;
      clearTimeout(w.timer);
      w.resolve();
    }
    if (this.head > 1024 && this.head * 2 > this.waiters.length) {
      this.waiters.splice(0, this.head);
      this.head = 0;
    }
  }

  private expire(waiter: Waiter, topic: string, timeoutMs: number): void {
    const i = this.waiters.indexOf(waiter, this.head);
    if (i < 0) return;
    this.waiters.splice(i, 1);
    this.waitingCount -= waiter.count;
    waiter.reject(new PublishTimeoutError(topic, timeoutMs, 'still waiting for room in the publish window (never sent)'));
    // The head may now fit.
    this.admitWaiters();
  }
}
