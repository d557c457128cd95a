/**
 * What happens when a publish settles, for everyone watching: the bus-wide
 * `publishOutcome` event (one per message, for fire-and-forget callers), the
 * metric recorders and the send span. Nobody watching costs one check per
 * publish call and no allocation: `begin` then returns undefined.
 */
import type { PublishOutcome, WireMessage } from './driver.js';
import type { CloudEventsHeaders } from './cloudevents-binding.js';
import type { BuslineError } from './errors.js';
import { errorType, type RecorderSet } from './metrics-recorder.js';
import type { MessageTracer } from './tracing.js';
import type { Span } from '@opentelemetry/api';

/** The `publishOutcome` event: one per message of every publish, publishBatch, publishEnvelope and publishWire call. */
export interface PublishOutcomeEvent {
  topic: string;
  /** The event id ('' for a wire message without `ce-id`, or an item invalid before it had one). */
  id: string;
  /** True once the broker durably accepted it. */
  ok: boolean;
  /** Why not (absent when ok). */
  error?: BuslineError;
  /** From the publish call to the outcome (waiting for room in the publish window included). */
  durationMs: number;
}

/** What one publish call needs to report its outcome. */
export interface PublishWatch {
  readonly startedAt: number;
  readonly span: Span | undefined;
}

const NO_FAILURES: readonly string[] = Object.freeze([]);

/**
 * Reports each settled publish call to the recorders, the tracer and the `publishOutcome` event.
 */
export class PublishOutcomes {
  constructor(
    private readonly recorders: RecorderSet,
    private readonly tracer: MessageTracer | undefined,
    private readonly listening: () => boolean,
    private readonly emit: (event: PublishOutcomeEvent) => void,
    /** The broker binding's header names (the event id is `ce_id` on Kafka). */
    private readonly names: CloudEventsHeaders,
  ) {}

  /** Before the call reaches the driver: starts the clock and the send span (which injects the trace context). */
  begin(topic: string, messages: readonly WireMessage[]): PublishWatch | undefined {
    const tracer = this.tracer;
    if (tracer === undefined && this.recorders.current === undefined && !this.listening()) return undefined;
    return { startedAt: performance.now(), span: tracer?.send(topic, messages) };
  }

  /** The call settled: one outcome per message. */
  settle(watch: PublishWatch, topic: string, messages: readonly WireMessage[], outcomes: readonly PublishOutcome[]): void {
    const ms = performance.now() - watch.startedAt;
    if (watch.span !== undefined) this.tracer?.sent(watch.span, outcomes);
    const recorder = this.recorders.current;
    if (recorder !== undefined) {
      let failed: string[] | undefined;
      for (const outcome of outcomes) if (outcome !== undefined) (failed ??= []).push(errorType(outcome));
      recorder.published(topic, ms / 1000, outcomes.length - (failed?.length ?? 0), failed ?? NO_FAILURES);
    }
    if (!this.listening()) return;
    outcomes.forEach((error, i) => this.emit(outcomeEvent(topic, eventIdOf(messages[i], this.names), error, ms)));
  }

  /** Refused before reaching the driver (invalid input, not started, closed): the event only; nothing was sent. */
  refused(topic: string, ids: readonly string[], error: BuslineError | readonly BuslineError[]): void {
    if (!this.listening()) return;
    ids.forEach((id, i) => this.emit(outcomeEvent(topic, id, Array.isArray(error) ? error[i] : (error as BuslineError), 0)));
  }
}

function outcomeEvent(topic: string, id: string, error: BuslineError | undefined, durationMs: number): PublishOutcomeEvent {
  return error === undefined ? { topic, id, ok: true, durationMs } : { topic, id, ok: false, error, durationMs };
}

/** A sent message's event id: the one core encoded it with, else its id header ('' for a wire message without one). */
function eventIdOf(message: WireMessage | undefined, names: CloudEventsHeaders): string {
  return message?.id ?? message?.headers[names.id] ?? '';
}
