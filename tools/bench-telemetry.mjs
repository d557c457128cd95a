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
// BENCH_TELEMETRY_DURATION_SAMPLE (0 to 1) sets telemetry.durationSampleRatio.
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
  const sample = process.env.BENCH_TELEMETRY_DURATION_SAMPLE;
  const ratio = process.env.BENCH_TELEMETRY_TRACE_RATIO;
  const sampler = ratio ? new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(Number(ratio)) }) : undefined;
  return {
    metrics: which !== 'tracing',
    tracing: which !== 'metrics',
    ...(sample ? { durationSampleRatio: Number(sample) } : {}),
    meterProvider: new MeterProvider({ readers: [new NeverCollected()] }),
    tracerProvider: new TracerProvider(sampler ? { sampler } : {}),
    propagator: new W3CTraceContextPropagator(),
  };
}

/** What the on runs included, for the report. */
export function telemetryLabel(which = process.env.BENCH_TELEMETRY ?? '') {
  const what = which === 'metrics' ? 'metrics' : which === 'tracing' ? 'tracing' : 'metrics + tracing';
  const sample = process.env.BENCH_TELEMETRY_DURATION_SAMPLE;
  const ratio = process.env.BENCH_TELEMETRY_TRACE_RATIO;
  const als = process.env.BENCH_TELEMETRY_CONTEXT === 'als' && 'AsyncLocalStorage context manager';
  return [what, sample && `duration sample ratio ${sample}`, ratio && `trace sample ratio ${ratio}`, als].filter(Boolean).join(', ');
}

/**
 * One line: a case with telemetry off vs on, same run. `off` and `on` carry
 * `rate` (msg/s) and `cpu` (CPU µs per message); either may be missing.
 */
export function overheadLine(name, off, on) {
  if (!off || !on) return `telemetry overhead, ${name}: not measured`;
  const sign = (x) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
  const cpu = Number.isFinite(off.cpu) && Number.isFinite(on.cpu) ? `, CPU per message ${off.cpu.toFixed(2)} → ${on.cpu.toFixed(2)} µs (${sign(on.cpu / off.cpu - 1)})` : '';
  return `telemetry overhead (${telemetryLabel()}), ${name}: msg/s ${Math.round(off.rate)} → ${Math.round(on.rate)} (on/off ${(on.rate / off.rate).toFixed(3)})${cpu}; target ≤ 10 %`;
}
