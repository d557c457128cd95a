/** Counters kept by the bus; `metrics()` returns a snapshot of them. */
export class BusMetrics {
  /** Messages the broker stored. */
  published = 0;
  /** Messages a publish failed for. */
  publishFailed = 0;
  /** Messages the driver delivered to core (redeliveries included). */
  consumed = 0;
  /** Handler calls that succeeded (the message was acknowledged). */
  handled = 0;
  /** Handler calls that threw or rejected (each attempt counts). */
  failed = 0;
  /** Failed attempts that will be retried. */
  retried = 0;
  /** Messages dead-lettered (or dropped with dead letters off). */
  deadLettered = 0;
  /** Messages that could not be decoded into an envelope. */
  malformed = 0;
  /** The driver's own counters, by name. */
  readonly driver: Record<string, number> = {};

  /** Adds `by` to the driver counter `name` (shown in `metrics().driver`). */
  count(name: string, by = 1): void {
    this.driver[name] = (this.driver[name] ?? 0) + by;
  }
}

/** What `bus.metrics()` returns: counters since the bus was created. */
export interface MetricsSnapshot {
  /** Messages the broker stored. */
  published: number;
  /** Messages a publish failed for. */
  publishFailed: number;
  /** Messages delivered to this bus (redeliveries included). */
  consumed: number;
  /** Handler calls that succeeded. */
  handled: number;
  /** Handler calls that threw or rejected (each attempt counts). */
  failed: number;
  /** Failed attempts that will be retried. */
  retried: number;
  /** Messages dead-lettered (or dropped with dead letters off). */
  deadLettered: number;
  /** Messages that could not be decoded into an envelope. */
  malformed: number;
  /** Messages accepted by the ordering pool and not finished yet. */
  inFlight: number;
  /** Publishes awaiting the broker's acknowledgement (waiting for room included). */
  publishing: number;
  /** Of those, messages waiting for room in the publish window (publish.maxInFlight). */
  publishWaiting: number;
  /** The driver's own counters, by name (e.g. collapsed redeliveries, lease extensions). */
  driver: Record<string, number>;
}
