/** Counters kept by the bus; `metrics()` returns a snapshot of them. */
export class BusMetrics {
  published = 0;
  publishFailed = 0;
  /** Messages the driver delivered to core (redeliveries included). */
  consumed = 0;
  /** Handler calls that succeeded (the message was acknowledged). */
  handled = 0;
  /** Handler calls that threw or rejected (each attempt counts). */
  failed = 0;
  retried = 0;
  deadLettered = 0;
  /** Messages that could not be decoded into an envelope. */
  malformed = 0;
  readonly driver: Record<string, number> = {};

  /** Adds `by` to the driver counter `name` (shown in `metrics().driver`). */
  count(name: string, by = 1): void {
    this.driver[name] = (this.driver[name] ?? 0) + by;
  }
}

/** What `bus.metrics()` returns: counters since the bus was created. */
export interface MetricsSnapshot {
  published: number;
  publishFailed: number;
  consumed: number;
  handled: number;
  failed: number;
  retried: number;
  deadLettered: number;
  malformed: number;
  /** Messages accepted by the ordering pool and not finished yet. */
  inFlight: number;
  /** Publishes awaiting the broker's acknowledgement (waiting for room included). */
  publishing: number;
  /** Of those, messages waiting for room in the publish window (publish.maxInFlight). */
  publishWaiting: number;
  driver: Record<string, number>;
}
