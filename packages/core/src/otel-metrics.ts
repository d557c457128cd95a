/**
 * `telemetry.metrics`: the bus's measurements as OpenTelemetry instruments,
 * named per the messaging semantic conventions where they define one and
 * under `busline.` where they do not:
 *
 * | instrument | type | unit | what |
 * | --- | --- | --- | --- |
 * | `messaging.client.sent.messages` | counter | {message} | published messages; failures carry `error.type` |
 * | `messaging.client.operation.duration` | histogram | s | publish call to broker acknowledgement |
 * | `messaging.client.consumed.messages` | counter | {message} | deliveries to a subscription |
 * | `messaging.process.duration` | histogram | s | handler calls; failures carry `error.type` |
 * | `busline.consumer.wait.duration` | histogram | s | delivery to first handler call (key queue, pool) |
 * | `busline.consumer.end_to_end.duration` | histogram | s | envelope `time` to handled |
 * | `busline.consumer.retried.messages` | counter | {message} | retries scheduled |
 * | `busline.consumer.dead_lettered.messages` | counter | {message} | `busline.dead_letter.reason`: failed or malformed |
 * | `busline.consumer.in_flight.messages` | observable up-down counter | {message} | held by each subscription |
 * | `busline.producer.in_flight.messages` | observable up-down counter | {message} | awaiting the broker's ack |
 * | `busline.producer.waiting.messages` | observable up-down counter | {message} | waiting for room in the publish window |
 *
 * Attributes: `messaging.system` (the adapter: memory, nats, kafka),
 * `messaging.operation.name` / `messaging.operation.type` (send, process),
 * `messaging.destination.name` (the topic), `messaging.consumer.group.name`.
 * Attribute sets are made once per topic and group, not per message.
 */
import type { Attributes, Counter, Histogram, Meter } from '@opentelemetry/api';
import type { HealthReport } from './health.js';
import type { MetricsRecorder } from './metrics-recorder.js';

/** The buckets the conventions give for messaging durations (seconds). */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

export class OtelMetricsRecorder implements MetricsRecorder {
  private readonly sent: Counter;
  private readonly sendDuration: Histogram;
  private readonly consumedCount: Counter;
  private readonly processDuration: Histogram;
  private readonly waitDuration: Histogram;
  private readonly endToEndDuration: Histogram;
  private readonly retriedCount: Counter;
  private readonly deadLetteredCount: Counter;
  private readonly sendAttributes = new Map<string, Attributes>();
  private readonly processAttributes = new Map<string, Map<string, Attributes>>();

  constructor(
    meter: Meter,
    private readonly system: string,
    snapshot: () => Pick<HealthReport, 'subscriptions' | 'publisher'>,
  ) {
    const duration = (name: string, description: string) =>
      meter.createHistogram(name, { unit: 's', description, advice: { explicitBucketBoundaries: DURATION_BUCKETS } });
    const messages = (name: string, description: string) => meter.createCounter(name, { unit: '{message}', description });
    this.sent = messages('messaging.client.sent.messages', 'Number of messages producer attempted to send to the broker.');
    this.sendDuration = duration('messaging.client.operation.duration', 'Duration of messaging operation initiated by a producer or consumer client.');
    this.consumedCount = messages('messaging.client.consumed.messages', 'Number of messages that were delivered to the application.');
    this.processDuration = duration('messaging.process.duration', 'Duration of processing operation.');
    this.waitDuration = duration('busline.consumer.wait.duration', 'Time a delivered message waited in the bus before its handler first ran.');
    this.endToEndDuration = duration('busline.consumer.end_to_end.duration', "From the envelope's time to the end of its successful handling.");
    this.retriedCount = messages('busline.consumer.retried.messages', 'Handler failures that were retried.');
    this.deadLetteredCount = messages('busline.consumer.dead_lettered.messages', 'Messages sent to the dead-letter topic (or dropped when dead-lettering is off).');

    const consumerInFlight = meter.createObservableUpDownCounter('busline.consumer.in_flight.messages', {
      unit: '{message}',
      description: 'Messages delivered to a subscription and not yet settled.',
    });
    const producerInFlight = meter.createObservableUpDownCounter('busline.producer.in_flight.messages', {
      unit: '{message}',
      description: "Published messages awaiting the broker's acknowledgement.",
    });
    const producerWaiting = meter.createObservableUpDownCounter('busline.producer.waiting.messages', {
      unit: '{message}',
      description: 'Publishes waiting for room in the publish window.',
    });
    meter.addBatchObservableCallback(
      (result) => {
        const now = snapshot();
        const base = { 'messaging.system': this.system };
        result.observe(producerInFlight, now.publisher.inFlight, base);
        result.observe(producerWaiting, now.publisher.waiting, base);
        for (const s of now.subscriptions) result.observe(consumerInFlight, s.held, this.process(s.topic, s.group));
      },
      [consumerInFlight, producerInFlight, producerWaiting],
    );
  }

  published(topic: string, seconds: number, stored: number, failed: readonly string[]): void {
    const attributes = this.send(topic);
    this.sendDuration.record(seconds, failed.length > 0 ? { ...attributes, 'error.type': failed[0] } : attributes);
    if (stored > 0) this.sent.add(stored, attributes);
    for (const type of failed) this.sent.add(1, { ...attributes, 'error.type': type });
  }

  consumed(topic: string, group: string): void {
    this.consumedCount.add(1, this.process(topic, group));
  }

  waited(topic: string, group: string, seconds: number): void {
    this.waitDuration.record(seconds, this.process(topic, group));
  }

  processed(topic: string, group: string, seconds: number, errorType: string | undefined): void {
    const attributes = this.process(topic, group);
    this.processDuration.record(seconds, errorType === undefined ? attributes : { ...attributes, 'error.type': errorType });
  }

  endToEnd(topic: string, group: string, seconds: number): void {
    this.endToEndDuration.record(seconds, this.process(topic, group));
  }

  retried(topic: string, group: string): void {
    this.retriedCount.add(1, this.process(topic, group));
  }

  deadLettered(topic: string, group: string, reason: 'failed' | 'malformed'): void {
    this.deadLetteredCount.add(1, { ...this.process(topic, group), 'busline.dead_letter.reason': reason });
  }

  private send(topic: string): Attributes {
    let attributes = this.sendAttributes.get(topic);
    if (attributes === undefined) {
      attributes = Object.freeze({
        'messaging.system': this.system,
        'messaging.operation.name': 'send',
        'messaging.operation.type': 'send',
        'messaging.destination.name': topic,
      });
      this.sendAttributes.set(topic, attributes);
    }
    return attributes;
  }

  private process(topic: string, group: string): Attributes {
    let byGroup = this.processAttributes.get(topic);
    if (byGroup === undefined) this.processAttributes.set(topic, (byGroup = new Map()));
    let attributes = byGroup.get(group);
    if (attributes === undefined) {
      attributes = Object.freeze({
        'messaging.system': this.system,
        'messaging.operation.name': 'process',
        'messaging.operation.type': 'process',
        'messaging.destination.name': topic,
        'messaging.consumer.group.name': group,
      });
      byGroup.set(group, attributes);
    }
    return attributes;
  }
}
