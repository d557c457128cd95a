import { describe, expect, it } from 'vitest';
import { AggregationTemporality, MeterProvider, MetricReader, type DataPoint, type Histogram, type MetricData } from '@opentelemetry/sdk-metrics';
import { createEventBus } from './create-event-bus.js';
import { ErrorCode } from './errors.js';

const { adapter: memory } = await import('@busline/adapter-memory');

/** Collects on demand (no timer, no exporter). */
class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

async function collect(reader: TestReader): Promise<Map<string, MetricData>> {
  const { resourceMetrics } = await reader.collect();
  return new Map(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).map((m) => [m.descriptor.name, m]));
}

function sum(metric: MetricData | undefined, match: Record<string, unknown> = {}): number {
  const points = (metric?.dataPoints ?? []) as DataPoint<number | Histogram>[];
  return points
    .filter((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v))
    .reduce((total, p) => total + (typeof p.value === 'number' ? p.value : p.value.count), 0);
}

describe('telemetry.metrics (OpenTelemetry)', () => {
  it('records messaging semconv instruments for a known workload', async () => {
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const bus = await createEventBus(
      {
        type: 'memory',
        group: 'billing',
        memory: { broker: `otel-metrics-${process.pid}`, maxMessageBytes: 2_000 },
        retry: { maxAttempts: 3, initialDelayMs: 5 },
        telemetry: { metrics: true, meterProvider },
      },
      { adapter: memory },
    );
    let calls = 0;
    let done!: () => void;
    const handled = new Promise<void>((resolve) => (done = resolve));
    await bus.subscribe('orders', (payload: unknown) => {
      calls++;
      if ((payload as { fail?: boolean }).fail && calls === 1) throw new Error('once');
      if (calls === 4) done();
    });
    await bus.start();
    await bus.publish('orders', { fail: true });
    await bus.publishBatch('orders', [{ payload: { n: 1 } }, { payload: { n: 2 } }]);
    const tooLarge = await bus.publish('orders', { big: 'x'.repeat(3_000) }).catch((e: { code: string }) => e.code);
    expect(tooLarge).toBe(ErrorCode.MessageTooLarge);
    await handled;

    const m = await collect(reader);
    const sent = m.get('messaging.client.sent.messages');
    expect(sum(sent, { 'messaging.destination.name': 'orders', 'messaging.system': 'memory', 'messaging.operation.name': 'send' })).toBe(4);
    expect(sum(sent, { 'error.type': ErrorCode.MessageTooLarge })).toBe(1);
    // One duration per publish call (the batch is one).
    expect(sum(m.get('messaging.client.operation.duration'))).toBe(3);
    expect(m.get('messaging.client.operation.duration')?.descriptor.unit).toBe('s');
    expect(sum(m.get('messaging.client.consumed.messages'), { 'messaging.consumer.group.name': 'billing' })).toBe(3);
    const processing = m.get('messaging.process.duration');
    expect(sum(processing)).toBe(4);
    expect(sum(processing, { 'error.type': 'Error' })).toBe(1);
    expect(sum(m.get('busline.consumer.retried.messages'))).toBe(1);
    expect(sum(m.get('busline.consumer.wait.duration'))).toBe(3);
    expect(sum(m.get('busline.consumer.end_to_end.duration'))).toBe(3);
    expect(sum(m.get('busline.consumer.in_flight.messages'), { 'messaging.destination.name': 'orders' })).toBe(0);
    expect(m.has('busline.producer.in_flight.messages')).toBe(true);
    await bus.close();
    await meterProvider.shutdown();
  });

  it('off by default: no instrument is created', async () => {
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const bus = await createEventBus({ type: 'memory', group: 'g', memory: { broker: `otel-off-${process.pid}` }, telemetry: { meterProvider } }, { adapter: memory });
    await bus.start();
    await bus.publish('t', 1);
    expect((await collect(reader)).size).toBe(0);
    await bus.close();
  });

  it('durationSampleRatio: histograms record about that share, counters every message', async () => {
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const bus = await createEventBus(
      { type: 'memory', group: 'g', memory: { broker: `otel-sample-${process.pid}` }, telemetry: { metrics: true, meterProvider, durationSampleRatio: 0.25 } },
      { adapter: memory },
    );
    const total = 2_000;
    let seen = 0;
    let done!: () => void;
    const handled = new Promise<void>((resolve) => (done = resolve));
    await bus.subscribe('t', () => {
      if (++seen === total) done();
    });
    await bus.start();
    await Promise.all(Array.from({ length: total }, (_, i) => bus.publish('t', i)));
    await handled;
    const m = await collect(reader);
    expect(sum(m.get('messaging.client.sent.messages'))).toBe(total);
    expect(sum(m.get('messaging.client.consumed.messages'))).toBe(total);
    // Binomial(2,000, 0.25): mean 500, standard deviation ~19; 400–600 fails about once in 10^7 runs.
    for (const name of ['messaging.client.operation.duration', 'messaging.process.duration', 'busline.consumer.wait.duration']) {
      expect(sum(m.get(name))).toBeGreaterThan(400);
      expect(sum(m.get(name))).toBeLessThan(600);
    }
    await bus.close();
  });

  it('durationSampleRatio must be in (0, 1]', async () => {
    await expect(createEventBus({ type: 'memory', telemetry: { durationSampleRatio: 0 } }, { adapter: memory })).rejects.toThrow(/durationSampleRatio/);
  });
});
