/**
 * A busline bus's metrics in a prom-client registry, named the Prometheus
 * way (`busline_` prefix, `_total` counters, `_seconds` histograms, `topic`
 * and `group` labels). Counters and histograms are fed by the bus as it
 * works (a `MetricsRecorder`); gauges read `bus.health()` at scrape time, so
 * nothing runs between scrapes.
 */
import type { EventBus, HealthReport, MetricsRecorder } from '@busline/core';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface BusMetricsOptions {
  /** Where the metrics are registered; default a new Registry (its `registry` property). */
  registry?: Registry;
  /** Metric name prefix; default `busline_`. */
  prefix?: string;
  /** Histogram buckets in seconds; default the OpenTelemetry messaging buckets, 5 ms to 10 s. */
  buckets?: number[];
  /**
   * Ask the broker for every subscription's backlog at each scrape (one round
   * trip per subscription; adapters with `describeBacklog` only). Default false.
   */
  backlog?: boolean;
}

const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
const STATUSES: HealthReport['status'][] = ['ok', 'degraded', 'down'];
const STATES = ['starting', 'consuming', 'paused', 'stalled', 'stopped'] as const;

/** Children per label set, made once: prom-client hashes labels on every unlabelled call. */
function cached<T>(make: (...labels: string[]) => T): (...labels: string[]) => T {
  const children = new Map<string, T>();
  return (...labels) => {
    const key = labels.join('\u0000');
    let child = children.get(key);
    if (child === undefined) children.set(key, (child = make(...labels)));
    return child;
  };
}

export class BusMetrics implements MetricsRecorder {
  readonly registry: Registry;
  private readonly detachFromBus: () => void;
  private readonly publishedCount;
  private readonly publishFailures;
  private readonly publishDuration;
  private readonly consumedTotal;
  private readonly handledTotal;
  private readonly handlerFailures;
  private readonly handlerDuration;
  private readonly retriedTotal;
  private readonly deadLetteredTotal;
  private readonly queueWait;
  private readonly endToEndLatency;
  /** The health report of the scrape under way, shared by its gauges. */
  private scrape: Promise<HealthReport> | undefined;

  constructor(
    private readonly bus: EventBus,
    options: BusMetricsOptions = {},
  ) {
    const registry = (this.registry = options.registry ?? new Registry());
    const p = options.prefix ?? 'busline_';
    const buckets = options.buckets ?? DEFAULT_BUCKETS;
    const counter = <K extends string>(name: string, help: string, labelNames: K[]) => new Counter<K>({ name: p + name, help, labelNames, registers: [registry] });
    const histogram = <K extends string>(name: string, help: string, labelNames: K[]) =>
      new Histogram<K>({ name: p + name, help, labelNames, buckets, registers: [registry] });
    const report = () => this.report(options.backlog === true);
    const gauge = <K extends string>(name: string, help: string, labelNames: K[], collect: (g: Gauge<K>, r: HealthReport) => void) =>
      new Gauge<K>({
        name: p + name,
        help,
        labelNames,
        registers: [registry],
        async collect() {
          const r = await report();
          this.reset();
          collect(this, r);
        },
      });

    const published = counter('messages_published_total', 'Messages the broker acknowledged.', ['topic']);
    this.publishedCount = cached((topic) => published.labels({ topic }));
    const publishFailures = counter('publish_failures_total', 'Messages whose publish failed, by error code.', ['topic', 'error']);
    this.publishFailures = cached((topic, error) => publishFailures.labels({ topic, error }));
    const publishDuration = histogram('publish_duration_seconds', "From a publish call to the broker's acknowledgement (one per call).", ['topic']);
    this.publishDuration = cached((topic) => publishDuration.labels({ topic }));
    const consumed = counter('messages_consumed_total', 'Messages delivered to a subscription (redeliveries included).', ['topic', 'group']);
    this.consumedTotal = cached((topic, group) => consumed.labels({ topic, group }));
    const handled = counter('messages_handled_total', 'Handler calls that succeeded.', ['topic', 'group']);
    this.handledTotal = cached((topic, group) => handled.labels({ topic, group }));
    const handlerFailures = counter('handler_failures_total', 'Handler calls that threw or rejected, by error type.', ['topic', 'group', 'error']);
    this.handlerFailures = cached((topic, group, error) => handlerFailures.labels({ topic, group, error }));
    const handlerDuration = histogram('handler_duration_seconds', 'Handler call duration.', ['topic', 'group']);
    this.handlerDuration = cached((topic, group) => handlerDuration.labels({ topic, group }));
    const retried = counter('messages_retried_total', 'Handler failures that were retried.', ['topic', 'group']);
    this.retriedTotal = cached((topic, group) => retried.labels({ topic, group }));
    const deadLettered = counter('messages_dead_lettered_total', 'Messages dead-lettered (or dropped with dead-lettering off), by reason: failed or malformed.', [
      'topic',
      'group',
      'reason',
    ]);
    this.deadLetteredTotal = cached((topic, group, reason) => deadLettered.labels({ topic, group, reason }));
    const queueWait = histogram('queue_wait_seconds', 'From delivery to the first handler call (key queue, handler pool).', ['topic', 'group']);
    this.queueWait = cached((topic, group) => queueWait.labels({ topic, group }));
    const endToEnd = histogram('end_to_end_latency_seconds', "From the envelope's time to the end of its successful handling.", ['topic', 'group']);
    this.endToEndLatency = cached((topic, group) => endToEnd.labels({ topic, group }));

    gauge('health_status', 'The bus health status: 1 for the current one of ok, degraded, down.', ['status'], (g, r) => {
      for (const status of STATUSES) g.set({ status }, r.status === status ? 1 : 0);
    });
    gauge('connection_up', 'Whether each broker connection is connected (1) or not (0).', ['connection'], (g, r) => {
      for (const c of r.connections) g.set({ connection: c.name }, c.state === 'connected' ? 1 : 0);
    });
    gauge('subscription_state', 'Each subscription: 1 for its current state.', ['topic', 'group', 'state'], (g, r) => {
      for (const s of r.subscriptions) for (const state of STATES) g.set({ topic: s.topic, group: s.group, state }, s.state === state ? 1 : 0);
    });
    gauge('messages_in_flight', 'Messages delivered to a subscription and not yet settled.', ['topic', 'group'], (g, r) => {
      for (const s of r.subscriptions) g.set({ topic: s.topic, group: s.group }, s.held);
    });
    gauge('subscription_stalled_seconds', 'How long a stalled subscription has settled nothing while holding messages (0 unless stalled).', ['topic', 'group'], (g, r) => {
      for (const s of r.subscriptions) g.set({ topic: s.topic, group: s.group }, s.stalledForMs / 1000);
    });
    gauge('publish_in_flight', "Published messages awaiting the broker's acknowledgement.", [], (g, r) => g.set(r.publisher.inFlight));
    gauge('publish_waiting', 'Publishes waiting for room in the publish window.', [], (g, r) => g.set(r.publisher.waiting));
    if (options.backlog === true) {
      gauge('backlog_messages', 'What the broker holds for a subscription: pending (not yet delivered) and unsettled.', ['topic', 'group', 'kind'], (g, r) => {
        for (const s of r.subscriptions) {
          if (s.backlog === undefined) continue;
          g.set({ topic: s.topic, group: s.group, kind: 'pending' }, s.backlog.pending);
          g.set({ topic: s.topic, group: s.group, kind: 'unsettled' }, s.backlog.unsettled);
        }
      });
    }
    this.detachFromBus = bus.addMetricsRecorder(this);
  }

  /**
   * One health report per scrape: the registry collects every gauge at once,
   * so the first asks the bus and the rest share its answer; the next scrape
   * (a later turn of the event loop) asks again.
   */
  private report(backlog: boolean): Promise<HealthReport> {
    if (this.scrape === undefined) {
      this.scrape = this.bus.health({ backlog });
      setImmediate(() => (this.scrape = undefined));
    }
    return this.scrape;
  }

  /** Stops recording (the registry keeps what it has). */
  detach(): void {
    this.detachFromBus();
  }

  published(topic: string, seconds: number, stored: number, failed: readonly string[]): void {
    this.publishDuration(topic).observe(seconds);
    if (stored > 0) this.publishedCount(topic).inc(stored);
    for (const error of failed) this.publishFailures(topic, error).inc();
  }
  consumed(topic: string, group: string): void {
    this.consumedTotal(topic, group).inc();
  }
  waited(topic: string, group: string, seconds: number): void {
    this.queueWait(topic, group).observe(seconds);
  }
  processed(topic: string, group: string, seconds: number, errorType: string | undefined): void {
    this.handlerDuration(topic, group).observe(seconds);
    if (errorType === undefined) this.handledTotal(topic, group).inc();
    else this.handlerFailures(topic, group, errorType).inc();
  }
  endToEnd(topic: string, group: string, seconds: number): void {
    this.endToEndLatency(topic, group).observe(Math.max(0, seconds));
  }
  retried(topic: string, group: string): void {
    this.retriedTotal(topic, group).inc();
  }
  deadLettered(topic: string, group: string, reason: 'failed' | 'malformed'): void {
    this.deadLetteredTotal(topic, group, reason).inc();
  }
}
