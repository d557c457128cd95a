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

  async function sampledRun(durationSamplesPerSecond: number | 'all', total: number) {
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const bus = await createEventBus(
      { type: 'memory', group: 'g', memory: { broker: `otel-sample-${process.pid}-${durationSamplesPerSecond}` }, telemetry: { metrics: true, meterProvider, durationSamplesPerSecond } },
      { adapter: memory },
    );
    let seen = 0;
    let done!: () => void;
    const handled = new Promise<void>((resolve) => (done = resolve));
    await bus.subscribe('t', () => {
      if (++seen === total) done();
    });
    await bus.start();
    const started = Date.now();
    await Promise.all(Array.from({ length: total }, (_, i) => bus.publish('t', i)));
    await handled;
    const seconds = (Date.now() - started) / 1000;
    const m = await collect(reader);
    await bus.close();
    return { m, seconds };
  }

  const HISTOGRAMS = ['messaging.client.operation.duration', 'messaging.process.duration', 'busline.consumer.wait.duration', 'busline.consumer.end_to_end.duration'];

  it('durationSamplesPerSecond: each histogram series records at most about that many a second, counters every message', async () => {
    const total = 3_000;
    const { m, seconds } = await sampledRun(100, total);
    expect(sum(m.get('messaging.client.sent.messages'))).toBe(total);
    expect(sum(m.get('messaging.client.consumed.messages'))).toBe(total);
    // Each one-second window the run touched records at most twice the budget (a surge cap), and the first one fills it.
    const windows = Math.ceil(seconds) + 1;
    for (const name of HISTOGRAMS) {
      expect(sum(m.get(name)), name).toBeGreaterThanOrEqual(100);
      expect(sum(m.get(name)), name).toBeLessThanOrEqual(200 * windows);
    }
  });

  it("durationSamplesPerSecond 'all' records every duration", async () => {
    const total = 3_000;
    const { m } = await sampledRun('all', total);
    for (const name of HISTOGRAMS) expect(sum(m.get(name)), name).toBe(total);
  });

  it('durationSamplesPerSecond must be a positive number or "all"', async () => {
    for (const durationSamplesPerSecond of [0, -1, 'some'])
      await expect(createEventBus({ type: 'memory', telemetry: { durationSamplesPerSecond } } as never, { adapter: memory })).rejects.toThrow(/durationSamplesPerSecond/);
  });
});
