/**
 * `telemetry.metrics`: the bus's measurements as OpenTelemetry instruments,
 * named per the messaging semantic conventions where they define one and
 * under `busline.` where they do not:
 *
 * | instrument | type | unit | what |
 * | --- | --- | --- | --- |
 * | `messaging.client.sent.messages` | observable counter | {message} | published messages; failures carry `error.type` |
 * | `messaging.client.operation.duration` | histogram | s | publish call to broker acknowledgement |
 * | `messaging.client.consumed.messages` | observable counter | {message} | deliveries to a subscription |
 * | `messaging.process.duration` | histogram | s | handler calls; failures carry `error.type` |
 * | `busline.consumer.wait.duration` | histogram | s | delivery to first handler call (key queue, pool) |
 * | `busline.consumer.end_to_end.duration` | histogram | s | envelope `time` to handled |
 * | `busline.consumer.retried.messages` | observable counter | {message} | retries scheduled |
 * | `busline.consumer.dead_lettered.messages` | observable counter | {message} | `busline.dead_letter.reason`: failed or malformed |
 * | `busline.consumer.in_flight.messages` | observable up-down counter | {message} | held by each subscription |
 * | `busline.producer.in_flight.messages` | observable up-down counter | {message} | awaiting the broker's ack |
 * | `busline.producer.waiting.messages` | observable up-down counter | {message} | waiting for room in the publish window |
 *
 * Attributes: `messaging.system` (the adapter: memory, nats, kafka),
 * `messaging.operation.name` / `messaging.operation.type` (send, process),
 * `messaging.destination.name` (the topic), `messaging.consumer.group.name`.
 * Attribute sets are made once per topic and group, not per message.
 *
 * Counters are tallied here as plain numbers and reported as observable
 * counters at collection time: the SDK hashes the attributes of every
 * synchronous `add` (about 2 µs each), which a counter per message would pay
 * for nothing. Histograms have no such alternative (the API has no
 * asynchronous histogram, and the SDK neither caches by attribute object nor
 * takes a weight), so they are recorded as they happen: three per handled
 * message, one per publish call, each series within its DurationBudget
 * (`telemetry.durationSamplesPerSecond`, default 1,000 a second, chosen at
 * random): the histograms' counts and sums cover what was recorded, and the
 * counters still count every message.
 */
import type { Attributes, Histogram, Meter } from '@opentelemetry/api';
import type { HealthReport } from './health.js';
import type { MetricsRecorder } from './metrics-recorder.js';
import { processAttributes, sendAttributes } from './messaging-attributes.js';
import { DurationBudget } from './duration-budget.js';

/** The buckets the conventions give for messaging durations (seconds). */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** What one topic's publishes add up to. */
interface SendTally {
  readonly attributes: Attributes;
  readonly duration: DurationBudget;
  stored: number;
  /** Failed messages by error type. */
  readonly failed: Map<string, number>;
}

/** What one subscription (topic and group) adds up to. */
interface ProcessTally {
  readonly attributes: Attributes;
  readonly processBudget: DurationBudget;
  readonly waitBudget: DurationBudget;
  readonly endToEndBudget: DurationBudget;
  consumed: number;
  retried: number;
  deadFailed: number;
  deadMalformed: number;
}

export class OtelMetricsRecorder implements MetricsRecorder {
  private readonly sendDuration: Histogram;
  private readonly processDuration: Histogram;
  private readonly waitDuration: Histogram;
  private readonly endToEndDuration: Histogram;
  private readonly sends = new Map<string, SendTally>();
  private readonly processes = new Map<string, Map<string, ProcessTally>>();
  /** The last subscription's tally: a message makes up to four calls for the same one in a row. */
  private last: ProcessTally | undefined;
  private lastTopic = '';
  private lastGroup = '';

  constructor(
    meter: Meter,
    private readonly system: string,
    snapshot: () => Pick<HealthReport, 'subscriptions' | 'publisher'>,
    /** `telemetry.durationSamplesPerSecond` of each histogram series; Infinity records every duration. */
    private readonly samplesPerSecond = 1_000,
  ) {
    const duration = (name: string, description: string) =>
      meter.createHistogram(name, { unit: 's', description, advice: { explicitBucketBoundaries: DURATION_BUCKETS } });
    const messages = (name: string, description: string) => meter.createObservableCounter(name, { unit: '{message}', description });
    const sent = messages('messaging.client.sent.messages', 'Number of messages producer attempted to send to the broker.');
    this.sendDuration = duration('messaging.client.operation.duration', 'Duration of messaging operation initiated by a producer or consumer client.');
    const consumed = messages('messaging.client.consumed.messages', 'Number of messages that were delivered to the application.');
    this.processDuration = duration('messaging.process.duration', 'Duration of processing operation.');
    this.waitDuration = duration('busline.consumer.wait.duration', 'Time a delivered message waited in the bus before its handler first ran.');
    this.endToEndDuration = duration('busline.consumer.end_to_end.duration', "From the envelope's time to the end of its successful handling.");
    const retried = messages('busline.consumer.retried.messages', 'Handler failures that were retried.');
    const deadLettered = messages('busline.consumer.dead_lettered.messages', 'Messages sent to the dead-letter topic (or dropped when dead-lettering is off).');
    meter.addBatchObservableCallback(
      (result) => {
        for (const t of this.sends.values()) {
          result.observe(sent, t.stored, t.attributes);
          for (const [type, n] of t.failed) result.observe(sent, n, { ...t.attributes, 'error.type': type });
        }
        for (const byGroup of this.processes.values()) {
          for (const t of byGroup.values()) {
            result.observe(consumed, t.consumed, t.attributes);
            if (t.retried > 0) result.observe(retried, t.retried, t.attributes);
            if (t.deadFailed > 0) result.observe(deadLettered, t.deadFailed, { ...t.attributes, 'busline.dead_letter.reason': 'failed' });
            if (t.deadMalformed > 0) result.observe(deadLettered, t.deadMalformed, { ...t.attributes, 'busline.dead_letter.reason': 'malformed' });
          }
        }
      },
      [sent, consumed, retried, deadLettered],
    );

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
        for (const s of now.subscriptions) result.observe(consumerInFlight, s.held, this.process(s.topic, s.group).attributes);
      },
      [consumerInFlight, producerInFlight, producerWaiting],
    );
  }

  published(topic: string, seconds: number, stored: number, failed: readonly string[]): void {
    const tally = this.send(topic);
    if (tally.duration.take()) this.sendDuration.record(seconds, failed.length > 0 ? { ...tally.attributes, 'error.type': failed[0] } : tally.attributes);
    tally.stored += stored;
    for (const type of failed) tally.failed.set(type, (tally.failed.get(type) ?? 0) + 1);
  }

  consumed(topic: string, group: string): void {
    this.process(topic, group).consumed++;
  }

  waited(topic: string, group: string, seconds: number): void {
    const tally = this.process(topic, group);
    if (tally.waitBudget.take()) this.waitDuration.record(seconds, tally.attributes);
  }

  processed(topic: string, group: string, seconds: number, errorType: string | undefined): void {
    const { attributes, processBudget } = this.process(topic, group);
    if (!processBudget.take()) return;
    this.processDuration.record(seconds, errorType === undefined ? attributes : { ...attributes, 'error.type': errorType });
  }

  endToEnd(topic: string, group: string, seconds: number): void {
    const tally = this.process(topic, group);
    if (tally.endToEndBudget.take()) this.endToEndDuration.record(seconds, tally.attributes);
  }

  retried(topic: string, group: string): void {
    this.process(topic, group).retried++;
  }

  deadLettered(topic: string, group: string, reason: 'failed' | 'malformed'): void {
    const tally = this.process(topic, group);
    if (reason === 'failed') tally.deadFailed++;
    else tally.deadMalformed++;
  }

  private budget(): DurationBudget {
    return new DurationBudget(this.samplesPerSecond);
  }

  private send(topic: string): SendTally {
    let tally = this.sends.get(topic);
    if (tally === undefined) {
      const attributes = sendAttributes(this.system, topic);
      this.sends.set(topic, (tally = { attributes, duration: this.budget(), stored: 0, failed: new Map() }));
    }
    return tally;
  }

  private process(topic: string, group: string): ProcessTally {
    if (topic === this.lastTopic && group === this.lastGroup && this.last !== undefined) return this.last;
    let byGroup = this.processes.get(topic);
    if (byGroup === undefined) this.processes.set(topic, (byGroup = new Map()));
    let tally = byGroup.get(group);
    if (tally === undefined) {
      const attributes = processAttributes(this.system, topic, group);
      byGroup.set(group, (tally = {
          attributes,
          processBudget: this.budget(),
          waitBudget: this.budget(),
          endToEndBudget: this.budget(),
          consumed: 0,
          retried: 0,
          deadFailed: 0,
          deadMalformed: 0,
        }));
    }
    this.lastTopic = topic;
    this.lastGroup = group;
    return (this.last = tally);
  }
}
