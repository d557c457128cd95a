/**
 * Tracing per the OpenTelemetry messaging semantic conventions, through
 * `@opentelemetry/api` only (the application registers an SDK).
 *
 * - A publish call is one `send <topic>` span (kind PRODUCER). Its context is
 *   the messages' creation context: injected into each message's headers by
 *   the propagator (W3C `traceparent`/`tracestate` with the SDK's default);
 *   a consumer takes the envelope's `traceId` from `traceparent` when the
 *   publisher set none (trace-context.ts), so no second header carries it. A structured-mode message gets that header too (the
 *   body is written before the span exists); decoding takes it when the body
 *   has no `traceid`. The propagator's headers are headers in both modes, as
 *   the CloudEvents distributed-tracing extension and OpenTelemetry expect. A message that already carries a trace context keeps
 *   it (a custom creation context is never modified); the span links to it.
 * - Each handler call is one `process <topic>` span (kind CONSUMER). It links
 *   to the creation context and, by default, is its child, so one trace
 *   follows a message from publisher to handler (conventions: "MAY use the
 *   creation context as parent" for single messages; documented here). It is
 *   never a child of whatever context the consumer loop happened to start in.
 * - The handler runs inside `context.with(processContext)`: `trace.getActiveSpan()`
 *   is its span, and spans it starts (publishes included) are children.
 */
import {
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type TextMapPropagator,
  type Tracer,
} from '@opentelemetry/api';
import type { PublishOutcome, WireMessage } from './driver.js';
import type { CloudEventsHeaders } from './cloudevents-binding.js';
import { errorField } from './logger.js';
import { errorType } from './metrics-recorder.js';
import { processAttributes, sendAttributes } from './messaging-attributes.js';

/** A span's name and the attributes it is started with, made once per topic (and group). */
interface SpanStart {
  readonly name: string;
  readonly attributes: Attributes;
}

/**
 * Spans start with the attributes the conventions list as sampling-relevant,
 * from one object per topic and group; the per-message ones are set only on
 * spans that record. The SDK copies and checks every attribute given at start
 * before it asks the sampler, so a span the sampler leaves out would pay for
 * them all.
 */
export class MessageTracer {
  private readonly sends = new Map<string, SpanStart>();
  private readonly processes = new Map<string, Map<string, SpanStart>>();

  constructor(
    private readonly tracer: Tracer,
    private readonly propagator: TextMapPropagator,
    private readonly system: string,
    /** The broker binding's header names (`ce_` attributes on Kafka). */
    private readonly names: CloudEventsHeaders,
  ) {}

  /** Starts the send span of one publish call and gives each message its creation context. */
  send(topic: string, messages: readonly WireMessage[]): Span {
    // Asked per call: the global propagator may be registered after the bus was made.
    const fields = this.propagator.fields();
    let links: Link[] | undefined;
    for (const message of messages) {
      if (!carriesContext(message.headers, fields)) continue;
      const own = trace.getSpanContext(this.propagator.extract(ROOT_CONTEXT, message.headers, defaultTextMapGetter));
      if (own !== undefined) (links ??= []).push({ context: own });
    }
    const start = this.sendStart(topic);
    const active = context.active();
    const span = this.tracer.startSpan(start.name, { kind: SpanKind.PRODUCER, attributes: start.attributes, links }, active);
    if (span.isRecording()) {
      if (messages.length === 1) {
        const message = messages[0]!;
        setMessageAttributes(span, message.id ?? message.headers[this.names.id], message.headers[this.names.correlationId]);
      }
      else span.setAttribute('messaging.batch.message_count', messages.length);
    }
    const creation = trace.setSpan(active, span);
    // Every message of the call gets the same context: formatted once, copied into each.
    let carrier: Record<string, string> | undefined;
    for (const message of messages) {
      if (links !== undefined && carriesContext(message.headers, fields)) continue;
      if (carrier === undefined) this.propagator.inject(creation, (carrier = {}), defaultTextMapSetter);
      for (const name in carrier) message.headers[name] = carrier[name]!;
    }
    return span;
  }

  /** Ends a send span with the call's outcomes (an error status if any message was refused). */
  sent(span: Span, outcomes: readonly PublishOutcome[]): void {
    const failure = span.isRecording() ? outcomes.find((o) => o !== undefined) : undefined;
    if (failure !== undefined) {
      span.setAttribute('error.type', errorType(failure));
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorField(failure).message as string });
    }
    span.end();
  }

  /**
   * Starts the process span of one handler call; returns the context the handler runs in. Ids come
   * from the decoded envelope where there is one (a structured-mode message has no id header).
   */
  process(headers: Record<string, string>, topic: string, group: string, attempt: number, envelope?: { id: string; correlationId?: string | undefined }): { span: Span; context: Context } {
    const creation = this.propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
    const link = trace.getSpanContext(creation);
    const start = this.processStart(topic, group);
    const span = this.tracer.startSpan(
      start.name,
      { kind: SpanKind.CONSUMER, attributes: start.attributes, links: link !== undefined ? [{ context: link }] : undefined },
      creation,
    );
    if (span.isRecording()) {
      span.setAttribute('busline.attempt', attempt);
      if (envelope !== undefined) setMessageAttributes(span, envelope.id, envelope.correlationId);
      else setMessageAttributes(span, headers[this.names.id], headers[this.names.correlationId]);
    }
    return { span, context: trace.setSpan(creation, span) };
  }

  private sendStart(topic: string): SpanStart {
    let start = this.sends.get(topic);
    if (start === undefined) {
      const attributes = sendAttributes(this.system, topic);
      this.sends.set(topic, (start = { name: `send ${topic}`, attributes }));
    }
    return start;
  }

  private processStart(topic: string, group: string): SpanStart {
    let byGroup = this.processes.get(topic);
    if (byGroup === undefined) this.processes.set(topic, (byGroup = new Map()));
    let start = byGroup.get(group);
    if (start === undefined) {
      const attributes = processAttributes(this.system, topic, group);
      byGroup.set(group, (start = { name: `process ${topic}`, attributes }));
    }
    return start;
  }

  /** Ends a process span; `failed` with the handler's error. */
  processed(span: Span, failed: boolean, error: unknown): void {
    // A span the sampler left out records nothing: no error type or message to work out.
    if (failed && span.isRecording()) {
      span.setAttribute('error.type', errorType(error));
      if (error instanceof Error) span.recordException(error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorField(error).message as string });
    }
    span.end();
  }
}

/** The single message's id and conversation (correlation) id, where it has them. */
function setMessageAttributes(span: Span, id: string | undefined, conversation: string | undefined): void {
  if (id !== undefined) span.setAttribute('messaging.message.id', id);
  if (conversation !== undefined) span.setAttribute('messaging.message.conversation_id', conversation);
}

/** True when a message already has a trace context: any of the header names the propagator writes. */
function carriesContext(headers: Record<string, string>, fields: readonly string[]): boolean {
  for (const field of fields) if (headers[field] !== undefined) return true;
  return false;
}

/** Runs `fn` on `self` with `ctx` active (AsyncLocalStorage under the SDK's context manager). */
export function runIn<A extends unknown[], T, S>(ctx: Context, fn: (this: S, ...args: A) => T, self: S, ...args: A): T {
  return context.with(ctx, fn, self, ...args);
}
