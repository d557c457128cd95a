/**
 * The seam between the bus and metric backends. Core measures only while a
 * recorder is attached (OpenTelemetry with `telemetry.metrics`, Prometheus
 * through `@busline/prometheus`, or your own via `bus.addMetricsRecorder`);
 * with none, the hot path reads one field and measures nothing.
 *
 * Durations are seconds (both OpenTelemetry and Prometheus conventions).
 * `errorType` is low-cardinality: a BuslineError's code, else the error's
 * class name, else `_OTHER`.
 */
import { errorCode } from './errors.js';

/**
 * Receives the bus's measurements as they happen (`bus.addMetricsRecorder`): implement it to feed a
 * metrics system busline has no exporter for (`@busline/prometheus` is one).
 */
export interface MetricsRecorder {
  /**
   * One publish call settled (a batch is one call): `stored` messages were
   * accepted, `failed` holds one error type per refused message; `seconds`
   * from the call (waiting for room included) to the broker's answer.
   */
  published(topic: string, seconds: number, stored: number, failed: readonly string[]): void;
  /** The broker delivered a message to a subscription (redeliveries included). */
  consumed(topic: string, group: string): void;
  /** Seconds a delivered message waited in core (its key's queue, the pool) before its handler first ran. */
  waited(topic: string, group: string, seconds: number): void;
  /** One handler call ended; `errorType` undefined when it succeeded. */
  processed(topic: string, group: string, seconds: number, errorType: string | undefined): void;
  /** From the envelope's `time` to the end of its successful handling. */
  endToEnd(topic: string, group: string, seconds: number): void;
  /** A failed handler attempt will be retried. */
  retried(topic: string, group: string): void;
  /** `malformed`: could not be decoded; `failed`: retries exhausted or not retryable. */
  deadLettered(topic: string, group: string, reason: 'failed' | 'malformed'): void;
}

/**
 * A low-cardinality label for an error: a BuslineError's code, else the error's class name, else
 * `_OTHER`.
 */
export function errorType(error: unknown): string {
  const code = errorCode(error);
  if (code !== undefined) return code;
  if (error instanceof Error) return error.name || 'Error';
  return '_OTHER';
}

/** Calls every attached recorder; what the bus holds when there are several. */
class FanOut implements MetricsRecorder {
  constructor(private readonly all: readonly MetricsRecorder[]) {}
  published(topic: string, seconds: number, stored: number, failed: readonly string[]): void {
    for (const r of this.all) r.published(topic, seconds, stored, failed);
  }
  consumed(topic: string, group: string): void {
    for (const r of this.all) r.consumed(topic, group);
  }
  waited(topic: string, group: string, seconds: number): void {
    for (const r of this.all) r.waited(topic, group, seconds);
  }
  processed(topic: string, group: string, seconds: number, type: string | undefined): void {
    for (const r of this.all) r.processed(topic, group, seconds, type);
  }
  endToEnd(topic: string, group: string, seconds: number): void {
    for (const r of this.all) r.endToEnd(topic, group, seconds);
  }
  retried(topic: string, group: string): void {
    for (const r of this.all) r.retried(topic, group);
  }
  deadLettered(topic: string, group: string, reason: 'failed' | 'malformed'): void {
    for (const r of this.all) r.deadLettered(topic, group, reason);
  }
}

/** The recorders attached to a bus, as the one field the hot path reads. */
export class RecorderSet {
  /** Undefined while none is attached; the single recorder, or a fan-out over several. */
  current: MetricsRecorder | undefined;
  private readonly list: MetricsRecorder[] = [];

  /** Attaches a recorder; returns the function that detaches it. */
  add(recorder: MetricsRecorder): () => void {
    this.list.push(recorder);
    this.refresh();
    return () => {
      const at = this.list.indexOf(recorder);
      if (at >= 0) this.list.splice(at, 1);
      this.refresh();
    };
  }

  private refresh(): void {
    this.current = this.list.length === 0 ? undefined : this.list.length === 1 ? this.list[0] : new FanOut([...this.list]);
  }
}
