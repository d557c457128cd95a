/**
 * What an on-call engineer relies on, on every broker: the publish outcome
 * event, traces that follow a message from publisher to handler, health that
 * turns stalled and back, the broker's backlog as health reports it, and
 * failures that reach the logger.
 */
import { context, trace, SpanKind } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { ErrorCode, type HealthEvent, type Logger, type PublishOutcomeEvent } from '@busline/core';
import { expect } from '../expect.js';
import type { Harness } from '../harness.js';
import { Collector, deferred, waitFor } from '../helpers.js';

/** A logger that keeps what it is given. */
function captureLogger(): Logger & { lines: { level: string; obj: Record<string, unknown>; msg: string }[] } {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) => void lines.push({ level, obj, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export function registerOperationsTests(h: Harness): void {
  h.test('publishOutcome: one event per message of publish, publishBatch, publishEnvelope and publishWire, ok or failed with the error', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('outcomes');
    const events: PublishOutcomeEvent[] = [];
    bus.on('publishOutcome', (e) => events.push(e));
    const one = await bus.publish(topic, { n: 1 });
    const batch = await bus.publishBatch(topic, [{ payload: { n: 2 } }, { payload: { n: 3 }, aggregateId: 'not valid!' }]);
    await bus.publishEnvelope(topic, { id: 'outcome-envelope', type: 't', source: 's', version: 1, time: new Date(), headers: {}, payload: 4 });
    // The id header as the adapter's CloudEvents binding names it (`ce_id` on Kafka).
    const idHeader = `${bus.driver.cloudEvents?.prefix ?? 'ce-'}id`;
    await bus.publishWire(topic, { headers: { [idHeader]: 'outcome-wire' }, body: new Uint8Array([1]) });
    const tooLarge = await bus.publish(topic, { big: 'x'.repeat(h.maxMessageBytes + 1) }).catch((e: unknown) => e);
    const ok = events.filter((e) => e.ok).map((e) => e.id);
    expect(ok).toEqual(expect.arrayContaining([one.id, batch.ids[0], 'outcome-envelope', 'outcome-wire']));
    expect(ok.length).toBe(4);
    const failed = events.filter((e) => !e.ok);
    expect(failed.map((e) => e.error?.code).sort()).toEqual([ErrorCode.EnvelopeInvalid, ErrorCode.MessageTooLarge].sort());
    expect(failed.find((e) => e.error?.code === ErrorCode.MessageTooLarge)?.error).toBe(tooLarge);
    for (const e of events) {
      expect(e.topic).toBe(topic);
      expect(e.durationMs).toBeGreaterThanOrEqual(0);
    }
  });

  // Structured mode too: its body is written before the span exists, so the trace id must reach the envelope another way.
  for (const mode of ['binary', 'structured'] as const) {
    h.test(`tracing: a send span (PRODUCER) and a process span (CONSUMER) linked to it and its child; the handler runs with its span active, across awaits${mode === 'structured' ? ' (structured content mode)' : ''}`, {}, async () => {
      // The SDK's context manager (AsyncLocalStorage); registering it twice is a no-op.
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
      const exporter = new InMemorySpanExporter();
      const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
      const bus = await h.bus({ contentMode: mode, telemetry: { tracing: true, tracerProvider, propagator: new W3CTraceContextPropagator() } });
      const topic = h.topic('traced');
      const seen = deferred<{ before?: string; after?: string; traceId?: string; traceparent?: string }>();
      await bus.subscribe(topic, async (_payload, ctx) => {
        const before = trace.getActiveSpan()?.spanContext().spanId;
        await new Promise((resolve) => setImmediate(resolve));
        const after = trace.getActiveSpan()?.spanContext().spanId;
        seen.resolve({ before, after, traceId: ctx.envelope.traceId, traceparent: ctx.envelope.headers.traceparent });
      });
      const { id } = await bus.publish(topic, { traced: true });
      const inHandler = await seen.promise;
      await waitFor(() => exporter.getFinishedSpans().some((s) => s.kind === SpanKind.CONSUMER), { timeoutMs: h.ms(5_000), message: 'the process span ended' });
      const spans = exporter.getFinishedSpans();
      const send = spans.find((s) => s.kind === SpanKind.PRODUCER)!;
      const process = spans.find((s) => s.kind === SpanKind.CONSUMER)!;
      expect(send.name).toBe(`send ${topic}`);
      expect(process.name).toBe(`process ${topic}`);
      expect(send.attributes).toMatchObject({
        'messaging.system': bus.driver.name,
        'messaging.operation.name': 'send',
        'messaging.destination.name': topic,
        'messaging.message.id': id,
      });
      expect(process.attributes).toMatchObject({
        'messaging.system': bus.driver.name,
        'messaging.operation.type': 'process',
        'messaging.destination.name': topic,
        'messaging.consumer.group.name': bus.config.group,
        'messaging.message.id': id,
      });
      expect(process.links.map((l) => l.context.spanId)).toEqual([send.spanContext().spanId]);
      expect(process.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
      expect(process.spanContext().traceId).toBe(send.spanContext().traceId);
      expect(inHandler.before).toBe(process.spanContext().spanId);
      expect(inHandler.after).toBe(process.spanContext().spanId);
      // The creation context travels as W3C trace context; the envelope's traceId is the trace's.
      expect(inHandler.traceparent).toBe(`00-${send.spanContext().traceId}-${send.spanContext().spanId}-01`);
      expect(inHandler.traceId).toBe(send.spanContext().traceId);
    });
  }

  h.test('health: a handler that stops making progress turns its subscription stalled (status degraded, a stalled event) and back once it settles', {}, async () => {
    const bus = await h.bus({ health: { stalledAfterMs: 200, checkIntervalMs: 25 } });
    const topic = h.topic('stall');
    const events: HealthEvent[] = [];
    bus.on('health', (e) => events.push(e));
    const release = deferred();
    const handled = new Collector();
    await bus.subscribe(topic, async (payload: unknown, ctx) => {
      if ((payload as { hang?: boolean }).hang) await release.promise;
      handled.add(ctx.envelope.id, null);
    });
    const before = await bus.health();
    expect(before.status).toBe('ok');
    expect(before.subscriptions.map((s) => s.state)).toEqual(['consuming']);
    const { id } = await bus.publish(topic, { hang: true });
    await waitFor(async () => (await bus.health()).subscriptions[0]?.state === 'stalled', { timeoutMs: h.ms(10_000), message: 'the subscription reported stalled' });
    const stalled = await bus.health();
    expect(stalled.status).toBe('degraded');
    expect(stalled.subscriptions[0]!.held).toBeGreaterThanOrEqual(1);
    expect(stalled.subscriptions[0]!.stalledForMs).toBeGreaterThanOrEqual(200);
    await waitFor(() => events.some((e) => e.type === 'stalled'), { timeoutMs: h.ms(5_000), message: 'a stalled event' });
    release.resolve();
    await handled.waitForIds([id], h.ms(10_000), 'the hung message');
    await waitFor(async () => (await bus.health()).subscriptions[0]?.state === 'consuming', { timeoutMs: h.ms(10_000), message: 'the subscription consuming again' });
    expect((await bus.health()).status).toBe('ok');
    await waitFor(() => events.some((e) => e.type === 'recovered'), { timeoutMs: h.ms(5_000), message: 'a recovered event' });
    expect(events.map((e) => e.type)).toEqual(['stalled', 'recovered']);
  });

  h.test('health: down before start and after close, ok while started; the publisher counts are reported', {}, async () => {
    const bus = await h.bus({}, { start: false });
    expect((await bus.health()).status).toBe('down');
    await bus.start();
    const up = await bus.health();
    expect(up.status).toBe('ok');
    expect(up.connections.find((c) => c.name === 'main')?.state).toBe('connected');
    expect(up.publisher).toEqual({ inFlight: 0, waiting: 0 });
    await h.close(bus);
    expect((await bus.health()).status).toBe('down');
  });

  h.test(
    'backlog: health({ backlog: true }) reports what the broker holds for a consumer stuck with a known backlog, and the threshold events fire when it is crossed and cleared',
    { requires: ['persistent'], driverMethods: ['describeBacklog'] },
    async () => {
      const known = 20;
      const bus = await h.bus({ health: { checkIntervalMs: 25, backlogThreshold: known - 5 } });
      const topic = h.topic('backlog');
      const events: HealthEvent[] = [];
      bus.on('health', (e) => events.push(e));
      const release = deferred();
      const handled = new Collector();
      // One handler at a time, one message held: the first blocks, the rest stay with the broker.
      await bus.subscribe(
        topic,
        async (_p, ctx) => {
          await release.promise;
          handled.add(ctx.envelope.id, null);
        },
        { concurrency: 1, maxInFlight: 1, ordering: 'none' },
      );
      const batch = await bus.publishBatch(topic, Array.from({ length: known }, (_, i) => ({ payload: { i } })));
      expect(batch.published).toBe(known);
      let last: unknown;
      await waitFor(
        async () => {
          const backlog = (await bus.health({ backlog: true })).subscriptions[0]?.backlog;
          last = backlog;
          return backlog !== undefined && backlog.pending + backlog.unsettled === known && backlog.unsettled >= 1;
        },
        { timeoutMs: h.ms(10_000), message: () => `a backlog of ${known} messages, got ${JSON.stringify(last)}` },
      );
      const report = await bus.health({ backlog: true });
      expect(report.subscriptions[0]!.backlogOver).toBe(true);
      expect(report.status).toBe('degraded');
      await waitFor(() => events.some((e) => e.type === 'backlogOver'), { timeoutMs: h.ms(5_000), message: 'a backlogOver event' });
      release.resolve();
      await handled.waitForIds(batch.ids, h.ms(20_000), 'the backlog drained');
      await waitFor(() => events.some((e) => e.type === 'backlogUnder'), { timeoutMs: h.ms(10_000), message: 'a backlogUnder event' });
      // Kafka counts a handled record until its offset is committed, which trails the handling a little.
      let drained: unknown;
      await waitFor(
        async () => {
          const backlog = (await bus.health({ backlog: true })).subscriptions[0]!.backlog;
          drained = backlog;
          return backlog !== undefined && backlog.pending === 0 && backlog.unsettled === 0;
        },
        { timeoutMs: h.ms(10_000), message: () => `no backlog once drained, got ${JSON.stringify(drained)}` },
      );
    },
  );

  h.test('logs: a handler that always fails and a message that cannot be decoded reach the configured logger at error level', {}, async () => {
    const logger = captureLogger();
    const bus = await h.bus({ logger });
    const topic = h.topic('logged');
    await bus.subscribe(
      topic,
      () => {
        throw new Error('always fails');
      },
      { retry: { maxAttempts: 2, initialDelayMs: 10 } },
    );
    await bus.publish(topic, { n: 1 });
    await bus.publishWire(topic, { headers: { 'content-type': 'application/json' }, body: new Uint8Array([0x7b]) });
    await waitFor(() => logger.lines.filter((l) => l.level === 'error' && /dead-lettered/.test(l.msg)).length === 2, {
      timeoutMs: h.ms(10_000),
      message: () => `two dead-letter lines, got ${JSON.stringify(logger.lines)}`,
    });
    const failure = logger.lines.find((l) => l.level === 'error' && l.obj.error === 'always fails');
    expect(failure?.obj).toMatchObject({ topic, group: bus.config.group, attempts: 2 });
    expect(logger.lines.some((l) => l.level === 'error' && /decoding a message/.test(l.msg))).toBe(true);
    expect(logger.lines.some((l) => l.level === 'info' && /retrying/.test(l.msg))).toBe(true);
  });
}
