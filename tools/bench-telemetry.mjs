// BENCH_TELEMETRY for the memory, NATS and Kafka benchmarks: the telemetry
// config a case runs with when it runs a second time "telemetry on", and the
// overhead line printed for each pair.
//
//   BENCH_TELEMETRY=1        metrics and tracing
//   BENCH_TELEMETRY=metrics  metrics only
//   BENCH_TELEMETRY=tracing  tracing only
//
// The providers are real OpenTelemetry SDK ones that export nothing: a metric
// reader that is never collected, a tracer provider without span processors
// (its default sampler, parent-based always-on, records every span), W3C
// propagation. So the figure is what measuring, creating spans and carrying
// trace context cost, without an exporter's cost.
//
// BENCH_TELEMETRY_DURATION_SAMPLES (a number, or all) sets telemetry.durationSamplesPerSecond
// (the bus's default, 1,000 a second per histogram series, when unset).
// BENCH_TELEMETRY_TRACE_RATIO (0 to 1) gives the tracer provider a parent-based
// trace-id-ratio sampler: spans left out are not recorded (the production setup).
// BENCH_TELEMETRY_CONTEXT=als registers the AsyncLocalStorage context manager
// (what NodeSDK does; handlers then see their span). It is global, so once the
// first on run used it, later off runs in the process pay Node's async hooks too.

/** The `telemetry` config for the "on" runs, or undefined when BENCH_TELEMETRY is unset. */
export async function benchTelemetry(which = process.env.BENCH_TELEMETRY ?? '') {
  if (!['1', 'metrics', 'tracing'].includes(which)) return undefined;
  const [{ MeterProvider, MetricReader }, { TracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler }, { W3CTraceContextPropagator }] = await Promise.all([
    import('@opentelemetry/sdk-metrics'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/core'),
  ]);
  class NeverCollected extends MetricReader {
    async onForceFlush() {}
    async onShutdown() {}
  }
  if (process.env.BENCH_TELEMETRY_CONTEXT === 'als') {
    const [{ context }, { AsyncLocalStorageContextManager }] = await Promise.all([import('@opentelemetry/api'), import('@opentelemetry/context-async-hooks')]);
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  }
  const sample = process.env.BENCH_TELEMETRY_DURATION_SAMPLES;
  const ratio = process.env.BENCH_TELEMETRY_TRACE_RATIO;
  const sampler = ratio ? new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(Number(ratio)) }) : undefined;
  return {
    metrics: which !== 'tracing',
    tracing: which !== 'metrics',
    ...(sample ? { durationSamplesPerSecond: sample === 'all' ? 'all' : Number(sample) } : {}),
    meterProvider: new MeterProvider({ readers: [new NeverCollected()] }),
    tracerProvider: new TracerProvider(sampler ? { sampler } : {}),
    propagator: new W3CTraceContextPropagator(),
  };
}

/** What the on runs included, for the report. */
export function telemetryLabel(which = process.env.BENCH_TELEMETRY ?? '') {
  const what = which === 'metrics' ? 'metrics' : which === 'tracing' ? 'tracing' : 'metrics + tracing';
  const sample = process.env.BENCH_TELEMETRY_DURATION_SAMPLES;
  const ratio = process.env.BENCH_TELEMETRY_TRACE_RATIO;
  const als = process.env.BENCH_TELEMETRY_CONTEXT === 'als' && 'AsyncLocalStorage context manager';
  return [what, sample && `${sample} durations/s per series`, ratio && `trace sample ratio ${ratio}`, als].filter(Boolean).join(', ');
}

/**
 * What the OpenTelemetry SDK alone spends per message for the on runs' config,
 * with no busline code: CPU µs per message on the publishing side (send span,
 * inject) and on the consuming side (extract, process span), measured in a
 * tight loop in this process. It is the floor under any instrumentation that
 * makes a span per message (a real pipeline adds the garbage of those spans).
 * Histograms are left out: within the default duration budget they cost ~0
 * per message at these rates. `{ publish: 0, consume: 0 }` for metrics only.
 */
export async function telemetryFloor(which = process.env.BENCH_TELEMETRY ?? '') {
  if (!['1', 'tracing'].includes(which)) return { publish: 0, consume: 0 };
  const { tracerProvider, propagator } = await benchTelemetry(which);
  const [{ ROOT_CONTEXT, SpanKind, trace, defaultTextMapGetter, defaultTextMapSetter }] = await Promise.all([import('@opentelemetry/api')]);
  const tracer = tracerProvider.getTracer('floor');
  const attributes = { 'messaging.system': 'bench', 'messaging.operation.name': 'process', 'messaging.operation.type': 'process', 'messaging.destination.name': 'orders' };
  const carrier = {};
  propagator.inject(trace.setSpan(ROOT_CONTEXT, tracer.startSpan('send orders', {}, ROOT_CONTEXT)), carrier, defaultTextMapSetter);
  const perCall = (fn) => {
    for (let i = 0; i < 20_000; i++) fn();
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const from = process.cpuUsage();
      for (let i = 0; i < 100_000; i++) fn();
      const d = process.cpuUsage(from);
      best = Math.min(best, (d.user + d.system) / 100_000);
    }
    return best;
  };
  return {
    publish: perCall(() => {
      const span = tracer.startSpan('send orders', { kind: SpanKind.PRODUCER, attributes }, ROOT_CONTEXT);
      propagator.inject(trace.setSpan(ROOT_CONTEXT, span), {}, defaultTextMapSetter);
      span.end();
    }),
    consume: perCall(() => {
      const creation = propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
      const link = trace.getSpanContext(creation);
      const span = tracer.startSpan('process orders', { kind: SpanKind.CONSUMER, attributes, links: link ? [{ context: link }] : undefined }, creation);
      trace.setSpan(creation, span);
      span.end();
    }),
  };
}

/**
 * One line: a case with telemetry off vs on, same run. `off` and `on` carry
 * `rate` (msg/s) and `cpu` (CPU µs per message); either may be missing.
 * `floor` (µs per message, from telemetryFloor) is the SDK's own share.
 */
export function overheadLine(name, off, on, floor = 0) {
  if (!off || !on) return `telemetry overhead, ${name}: not measured`;
  const sign = (x) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
  const known = Number.isFinite(off.cpu) && Number.isFinite(on.cpu);
  const cpu = known ? `, CPU per message ${off.cpu.toFixed(2)} → ${on.cpu.toFixed(2)} µs (${sign(on.cpu / off.cpu - 1)})` : '';
  const sdk = floor > 0 && known ? `; the SDK alone: ${floor.toFixed(2)} µs per message (${sign(floor / off.cpu)} of off)` : '';
  return `telemetry overhead (${telemetryLabel()}), ${name}: msg/s ${Math.round(off.rate)} → ${Math.round(on.rate)} (on/off ${(on.rate / off.rate).toFixed(3)})${cpu}${sdk}; target ≤ 10 %`;
}
