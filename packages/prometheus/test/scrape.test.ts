import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createEventBus, type AdapterModule, type BusConfigInput } from '@busline/core';
import { adapter as memory } from '@busline/adapter-memory';
import { adapter as nats } from '@busline/adapter-nats';
import { adapter as kafka } from '@busline/adapter-kafka';
// The exposition-format parser prom2json's output is modelled on (typed in parse-prometheus-text-format.d.ts).
import parsePrometheusTextFormat, { type MetricFamily as Family } from 'parse-prometheus-text-format';
import { BusMetrics, metricsHandler } from '../src/index.js';

const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

async function scrape(url: string): Promise<Map<string, Family>> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const families = parsePrometheusTextFormat(await response.text());
  return new Map(families.map((f) => [f.name, f]));
}

function value(family: Family | undefined, labels: Record<string, string>): number | undefined {
  const sample = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (sample === undefined) return undefined;
  return Number(sample.value);
}

/** Pending + unsettled messages of one subscription, as scraped. */
function backlog(f: Map<string, Family>, topic: string, group: string): number {
  return ['pending', 'unsettled'].reduce((sum, kind) => sum + (value(f.get('busline_backlog_messages'), { topic, group, kind }) ?? Number.NaN), 0);
}

/**
 * A histogram's observation count: its `+Inf` bucket. (This parser merges a
 * labelled histogram's buckets into one entry without labels, so each
 * histogram here has a single series: one topic, one group.)
 */
function observations(family: Family | undefined): number | undefined {
  expect(family?.type).toBe('HISTOGRAM');
  expect(family!.metrics).toHaveLength(1);
  const inf = family!.metrics[0]!.buckets?.['+Inf'];
  return inf === undefined ? undefined : Number(inf);
}

/** Over every broker's limit: scripts/brokers' NATS allows 8 MB, Kafka's topics 1 MiB, the memory broker is given 1 MiB. */
const TOO_LARGE = 9_000_000;
const BROKERS = process.env.BUSLINE_BROKERS === 'none';
const suffix = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

const cases: { name: string; skip: boolean; adapter: AdapterModule<any>; config: BusConfigInput }[] = [
  { name: 'memory', skip: false, adapter: memory, config: { type: 'memory', memory: { broker: `prom-${process.pid}`, maxMessageBytes: 1_048_576 } } },
  { name: 'NATS', skip: BROKERS, adapter: nats, config: { url: process.env.BUSLINE_NATS_URL ?? 'nats://127.0.0.1:4222' } },
  { name: 'Kafka', skip: BROKERS, adapter: kafka, config: { url: `kafka://${process.env.BUSLINE_KAFKA_BROKERS ?? '127.0.0.1:9092'}` } },
];

describe('Prometheus scrape', () => {
  it.each(cases.filter((c) => !c.skip))('shows the expected series after a known workload on $name', async ({ adapter, config }) => {
    // A topic and group of their own on the shared brokers; names as the metrics label them.
    const orders = `prom-orders-${suffix}`;
    const billing = `prom-billing-${suffix}`;
    const bus = await createEventBus({ ...config, group: billing, retry: { maxAttempts: 2, initialDelayMs: 5 }, logger: false }, { adapter });
    const metrics = new BusMetrics(bus, { backlog: true });
    const server = createServer(metricsHandler(metrics.registry)).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;

    let handled = 0;
    await bus.subscribe(orders, (payload: unknown) => {
      handled++;
      if ((payload as { poison?: boolean }).poison) throw new Error('poison');
    });
    await bus.start();
    closers.push(() => bus.close());
    for (let i = 0; i < 5; i++) await bus.publish(orders, { i });
    await bus.publish(orders, { poison: true });
    await bus.publish(orders, { big: 'x'.repeat(TOO_LARGE) }).catch(() => undefined);
    // 5 good handlings, 2 attempts of the poison one.
    const deadline = Date.now() + 30_000;
    while (handled < 7 || bus.metrics().deadLettered < 1) {
      if (Date.now() > deadline) throw new Error(`handled ${handled} of 7`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }

    // Kafka's backlog is read from committed offsets, which follow handling within the commit interval.
    let f = await scrape(url);
    const settledBy = Date.now() + 30_000;
    while (backlog(f, orders, billing) !== 0) {
      if (Date.now() > settledBy) throw new Error(`backlog still ${backlog(f, orders, billing)} after 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      f = await scrape(url);
    }
    const topic = { topic: orders };
    const sub = { topic: orders, group: billing };
    expect(f.get('busline_messages_published_total')?.type).toBe('COUNTER');
    expect(value(f.get('busline_messages_published_total'), topic)).toBe(6);
    expect(value(f.get('busline_publish_failures_total'), { ...topic, error: 'MESSAGE_TOO_LARGE' })).toBe(1);
    expect(observations(f.get('busline_publish_duration_seconds'))).toBe(7);
    expect(value(f.get('busline_messages_consumed_total'), sub)).toBe(6);
    expect(value(f.get('busline_messages_handled_total'), sub)).toBe(5);
    expect(value(f.get('busline_handler_failures_total'), { ...sub, error: 'Error' })).toBe(2);
    expect(value(f.get('busline_messages_retried_total'), sub)).toBe(1);
    expect(value(f.get('busline_messages_dead_lettered_total'), { ...sub, reason: 'failed' })).toBe(1);
    expect(observations(f.get('busline_handler_duration_seconds'))).toBe(7);
    expect(observations(f.get('busline_queue_wait_seconds'))).toBe(6);
    expect(observations(f.get('busline_end_to_end_latency_seconds'))).toBe(5);
    expect(new Set(Object.keys(f.get('busline_handler_duration_seconds')!.metrics[0]!.buckets!))).toEqual(new Set(['0.005', '0.01', '0.025', '0.05', '0.075', '0.1', '0.25', '0.5', '0.75', '1', '2.5', '5', '7.5', '10', '+Inf']));
    expect(value(f.get('busline_health_status'), { status: 'ok' })).toBe(1);
    expect(value(f.get('busline_health_status'), { status: 'down' })).toBe(0);
    expect(value(f.get('busline_connection_up'), { connection: 'main' })).toBe(1);
    expect(value(f.get('busline_subscription_state'), { ...sub, state: 'consuming' })).toBe(1);
    expect(value(f.get('busline_messages_in_flight'), sub)).toBe(0);
    expect(value(f.get('busline_publish_in_flight'), {})).toBe(0);
    expect(value(f.get('busline_backlog_messages'), { ...sub, kind: 'pending' })).toBe(0);
    expect(value(f.get('busline_backlog_messages'), { ...sub, kind: 'unsettled' })).toBe(0);

    // Detached: the bus stops feeding it.
    metrics.detach();
    await bus.publish(orders, { after: true });
    expect(value((await scrape(url)).get('busline_messages_published_total'), topic)).toBe(6);
  });
});
