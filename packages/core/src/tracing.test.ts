import { describe, expect, it } from 'vitest';
import { SpanKind } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { createEventBus } from './create-event-bus.js';
import type { Envelope } from './envelope.js';

const { adapter: memory } = await import('@busline/adapter-memory');
let n = 0;

async function tracedBus() {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const bus = await createEventBus(
    { type: 'memory', group: 'traced', memory: { broker: `tracing-test-${process.pid}-${++n}` }, telemetry: { tracing: true, tracerProvider, propagator: new W3CTraceContextPropagator() } },
    { adapter: memory },
  );
  return { bus, exporter };
}

function received(count: number) {
  const envelopes: Envelope[] = [];
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  return {
    envelopes,
    all,
    handler: (envelope: Envelope) => {
      envelopes.push(envelope);
      if (envelopes.length === count) done();
    },
  };
}

describe('tracing', () => {
  it('a batch is one send span whose context every message carries; each handling is a process span of its own', async () => {
    const { bus, exporter } = await tracedBus();
    const got = received(3);
    await bus.subscribeEnvelope('batch', got.handler);
    await bus.start();
    await bus.publishBatch('batch', [{ payload: 1 }, { payload: 2 }, { payload: 3 }]);
    await got.all;
    await bus.close();
    const spans = exporter.getFinishedSpans();
    const sends = spans.filter((s) => s.kind === SpanKind.PRODUCER);
    expect(sends).toHaveLength(1);
    const send = sends[0]!;
    expect(send.attributes['messaging.batch.message_count']).toBe(3);
    const parent = `00-${send.spanContext().traceId}-${send.spanContext().spanId}-01`;
    expect(got.envelopes.map((e) => e.headers.traceparent)).toEqual([parent, parent, parent]);
    const processes = spans.filter((s) => s.kind === SpanKind.CONSUMER);
    expect(processes).toHaveLength(3);
    for (const p of processes) expect(p.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
  });

  it('a message that already carries a trace context keeps it; the send span links to it, and a traceId set by the publisher stays', async () => {
    const { bus, exporter } = await tracedBus();
    const got = received(1);
    await bus.subscribeEnvelope('carried', got.handler);
    await bus.start();
    const upstream = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await bus.publish('carried', { x: 1 }, { headers: { traceparent: upstream }, traceId: 'order-flow-7' });
    await got.all;
    await bus.close();
    expect(got.envelopes[0]!.headers.traceparent).toBe(upstream);
    expect(got.envelopes[0]!.traceId).toBe('order-flow-7');
    const send = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.PRODUCER)!;
    expect(send.links.map((l) => l.context.spanId)).toEqual(['b7ad6b7169203331']);
    const process = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.CONSUMER)!;
    expect(process.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
  });

  it('a failed handler call ends its span with an error status, error.type and the exception', async () => {
    const { bus, exporter } = await tracedBus();
    let calls = 0;
    let done!: () => void;
    const twice = new Promise<void>((resolve) => (done = resolve));
    await bus.subscribe(
      'failing',
      () => {
        if (++calls === 2) done();
        if (calls === 1) throw new TypeError('bad input');
      },
      { retry: { maxAttempts: 2, initialDelayMs: 1 } },
    );
    await bus.start();
    await bus.publish('failing', 1);
    await twice;
    await bus.close();
    const processes = exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.CONSUMER);
    expect(processes.map((p) => [p.attributes['busline.attempt'], p.attributes['error.type'], p.status.code])).toEqual([
      [1, 'TypeError', 2],
      [2, undefined, 0],
    ]);
    expect(processes[0]!.events.map((e) => e.name)).toEqual(['exception']);
  });

  it('a dead-lettered message gets a send span on the dead-letter topic, linked to its own trace; the copy keeps its context', async () => {
    const { bus, exporter } = await tracedBus();
    const dead = new Promise<void>((resolve) => bus.once('deadLetter', () => resolve()));
    await bus.subscribe('doomed', () => {
      throw new Error('always');
    }, { retry: { maxAttempts: 1 } });
    await bus.start();
    await bus.publish('doomed', 1);
    await dead;
    await bus.close();
    const sends = exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.PRODUCER);
    expect(sends.map((s) => s.name)).toEqual(['send doomed', 'send doomed.dlq']);
    const [original, copy] = sends as [(typeof sends)[0], (typeof sends)[0]];
    expect(copy.attributes['messaging.destination.name']).toBe('doomed.dlq');
    expect(copy.links.map((l) => l.context.spanId)).toEqual([original.spanContext().spanId]);
  });
});
