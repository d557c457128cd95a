/**
 * @busline/prometheus — a busline bus's metrics for Prometheus (prom-client):
 * `new BusMetrics(bus)` registers counters, histograms and health gauges,
 * `metricsHandler(registry)` serves them over node:http.
 */
export { BusMetrics, type BusMetricsOptions } from './bus-metrics.js';
export { metricsHandler } from './handler.js';
