// A service an on-call engineer can see: Kubernetes probes (/healthz, /readyz),
// Prometheus metrics (/metrics) and traces on the console, one trace per order
// from the publisher to the handler. Runs on the embedded in-memory broker;
// point BUSLINE_URL at nats://127.0.0.1:4222 or kafka://127.0.0.1:9092 for a real one.
//
//   pnpm build && node examples/operations-service.mjs     (PORT=8080 by default)
//   curl localhost:8080/readyz; curl localhost:8080/metrics
import { createServer } from 'node:http';
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { ConsoleSpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { createEventBus } from '@busline/core';
import { BusMetrics, metricsHandler } from '@busline/prometheus';

// The OpenTelemetry SDK, as an application registers it (NodeSDK does the same in one call).
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() })] }));

const bus = await createEventBus({
  url: process.env.BUSLINE_URL ?? 'memory://',
  source: 'orders-service',
  group: 'orders-service',
  retry: { maxAttempts: 2, initialDelayMs: 100 },
  health: { stalledAfterMs: 10_000, checkIntervalMs: 2_000 },
  telemetry: { tracing: true },
});
const metrics = new BusMetrics(bus, { backlog: true });

await bus.subscribe('orders.placed', async (order, { envelope }) => {
  // The handler runs in its process span: a span started here is its child.
  const span = trace.getActiveSpan();
  span?.setAttribute('order.total', order.total);
  if (order.total < 0) throw new Error(`order ${envelope.aggregateId} has a negative total`); // retried, then dead-lettered (logged)
  await bus.publish('orders.confirmed', { id: envelope.aggregateId }, { aggregateId: envelope.aggregateId, causationId: envelope.id });
});
await bus.subscribe('orders.confirmed', () => {});
await bus.start();

/** Liveness: restart only when a restart can help, i.e. a handler is stuck. Readiness: started and connected. */
const probes = {
  '/healthz': (report) => !report.subscriptions.some((s) => s.state === 'stalled'),
  '/readyz': (report) => report.status !== 'down',
};
const serveMetrics = metricsHandler(metrics.registry);
const port = Number(process.env.PORT ?? 8080);
const server = createServer((req, res) => {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (path === '/metrics') return serveMetrics(req, res);
  const probe = probes[path];
  if (probe === undefined) {
    res.writeHead(404).end();
    return;
  }
  bus.health().then(
    (report) => {
      res.writeHead(probe(report) ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify(report, null, 2));
    },
    (error) => res.writeHead(503).end(String(error)),
  );
});
server.listen(port, () => console.log(`orders-service on http://localhost:${port}  (/healthz /readyz /metrics)`));

let n = 0;
const producer = setInterval(() => {
  n++;
  // Fire and forget: the publishOutcome event below sees every result.
  bus.publish('orders.placed', { total: n % 5 === 0 ? -1 : n * 10 }, { aggregateId: `order-${n}` }).catch(() => {});
}, 1_000);
bus.on('publishOutcome', (e) => {
  if (!e.ok) console.error(`publish to ${e.topic} failed: ${e.error?.code}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    clearInterval(producer);
    server.close();
    await bus.close();
    process.exit(0);
  });
}
