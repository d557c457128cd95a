/**
 * Publisher: the bus's publishing side. EventBus keeps the publish methods'
 * signatures and docs and delegates each in one call; here each call is
 * checked (bus started, topic name, option names) and its message built and
 * encoded, then taken through the publish window (PublishAdmission, owned
 * here) to its outcome by the PublishPipeline. A call refused before the
 * pipeline still reports its outcome. Dead-letter copies go straight to the
 * driver: they take no room in the window.
 */
import { atomicRefusal, checkAtomicBatch, encodeBatch, type BatchItem, type BatchOptions, type BatchResult } from './batch-publish.js';
import type { CloudEventsBinding } from './cloudevents-binding.js';
import type { BusConfig } from './config.js';
import type { Driver, PublishOutcome, WireMessage } from './driver.js';
import { encodeEnvelope, encodeNewEnvelope } from './envelope-encoding.js';
import { validateEnvelope, type Envelope, type Payload } from './envelope.js';
import { BuslineError, ErrorCode, EnvelopeError } from './errors.js';
import type { PublishOptions, PublishReceipt } from './event-bus.js';
import type { BusMetrics } from './metrics.js';
import { PublishAdmission } from './publish-admission.js';
import type { PublishOutcomes } from './publish-outcomes.js';
import { PublishPipeline, toBuslineError } from './publish-pipeline.js';
import { BATCH_OPTION_NAMES, checkOptionNames, PUBLISH_OPTION_NAMES, TIMEOUT_OPTION_NAMES } from './publish-options.js';
import type { TopicRegistry } from './topic-registry.js';
import type { MessageTracer } from './tracing.js';
import { isEventDefinition, PayloadError, validatePayload, type EventDefinition, type EventPublishOptions } from './typed-event.js';

/** A typed event's name and version come from its definition. */
const EVENT_OPTION_NAMES: ReadonlySet<string> = new Set([...PUBLISH_OPTION_NAMES].filter((name) => name !== 'type' && name !== 'version'));

/** The bus's publish, publishEnvelope, publishWire and publishBatch calls, their publish window, and its dead-letter publishes. */
export class Publisher {
  private readonly admission: PublishAdmission;
  private readonly pipeline: PublishPipeline;

  constructor(
    private readonly driver: Driver,
    private readonly config: Pick<BusConfig, 'source' | 'publish'>,
    /** The CloudEvents header naming written on this broker. */
    private readonly ce: CloudEventsBinding,
    private readonly topics: TopicRegistry,
    private readonly outcomes: PublishOutcomes,
    stats: BusMetrics,
    private readonly tracer: MessageTracer | undefined,
    /** Throws unless the bus is started: CLOSED while closing or closed, else NOT_STARTED. */
    private readonly assertStarted: () => void,
  ) {
    this.admission = new PublishAdmission(config.publish);
    this.pipeline = new PublishPipeline(driver, topics, this.admission, outcomes, stats, config.publish.timeoutMs);
  }

  /** Messages awaiting the broker's acknowledgement, waiting for room included. */
  get inProgress(): number {
    return this.pipeline.inProgress;
  }

  /** Messages waiting for room in the publish window. */
  get waiting(): number {
    return this.admission.waiting;
  }

  /** Resolves once nothing is publishing. */
  whenIdle(): Promise<void> {
    return this.pipeline.whenIdle();
  }

  publish(target: string | EventDefinition, payload: unknown, options: PublishOptions): Promise<PublishReceipt> {
    // Anything but an object is a topic name: checkTopic says what is wrong with a non-string.
    if (typeof target === 'object' && target !== null) return this.publishEvent(target, payload, options);
    const topic = target as string;
    // Not async: the hot path makes one promise chain, and input errors still reject rather than throw.
    let message: WireMessage;
    let id: string;
    try {
      this.assertStarted();
      this.topics.checkTopic(topic);
      checkOptionNames(options, PUBLISH_OPTION_NAMES, 'publish', topic);
      message = encodeNewEnvelope(payload as Payload, options, { type: topic, source: this.config.source }, this.ce, this.topics.contentModeOf(topic));
      id = message.id!;
    } catch (error) {
      return this.refuse(topic, options?.id, error);
    }
    return this.pipeline.sendOne(topic, message, { id, topic }, options.timeoutMs);
  }

  private async publishEvent(event: EventDefinition, payload: unknown, options: EventPublishOptions): Promise<PublishReceipt> {
    if (!isEventDefinition(event)) throw new BuslineError(ErrorCode.ConfigInvalid, 'publish needs a topic name or an event made by defineEvent');
    this.assertStarted();
    checkOptionNames(options, EVENT_OPTION_NAMES, `publish of ${event.name}`);
    const valid = await validatePayload(event, payload, 'publish');
    if (valid instanceof PayloadError) throw valid;
    return this.publish(event.topic, valid as Payload, { ...options, type: event.name, version: event.version });
  }

  publishEnvelope(topic: string, envelope: Envelope, options: { timeoutMs?: number }): Promise<PublishReceipt> {
    let message: WireMessage;
    let id: string;
    try {
      this.assertStarted();
      this.topics.checkTopic(topic);
      checkOptionNames(options, TIMEOUT_OPTION_NAMES, 'publishEnvelope', topic);
      const valid = validateEnvelope(envelope);
      message = encodeEnvelope(valid, this.ce, this.topics.contentModeOf(topic));
      id = valid.id;
    } catch (error) {
      return this.refuse(topic, (envelope as Partial<Envelope> | undefined)?.id, error);
    }
    return this.pipeline.sendOne(topic, message, { id, topic }, options.timeoutMs);
  }

  /** A publish refused before it reached the driver: the outcome event, then the rejection. */
  private refuse(topic: string, id: unknown, error: unknown): Promise<never> {
    this.outcomes.refused(topic, [typeof id === 'string' ? id : ''], toBuslineError(error));
    return Promise.reject(error);
  }

  async publishWire(topic: string, message: WireMessage, options: { timeoutMs?: number }): Promise<void> {
    let copy: WireMessage;
    try {
      copy = this.wireCopy(topic, message, options);
    } catch (error) {
      return this.refuse(topic, message?.headers?.[this.ce.headers.id], error);
    }
    await this.pipeline.sendOne(topic, copy, undefined, options.timeoutMs);
  }

  private wireCopy(topic: string, message: WireMessage, options: { timeoutMs?: number }): WireMessage {
    this.assertStarted();
    this.topics.checkTopic(topic);
    checkOptionNames(options, TIMEOUT_OPTION_NAMES, 'publishWire', topic);
    if (!(message?.body instanceof Uint8Array) || typeof message.headers !== 'object' || message.headers === null) {
      throw new EnvelopeError('a wire message needs headers (an object of strings) and a Uint8Array body');
    }
    if (message.key !== undefined && typeof message.key !== 'string') {
      throw new EnvelopeError(`a wire message's key must be a string, got ${typeof message.key}`);
    }
    // A copy: the broker may keep (and freeze) what it is given; the caller's object stays the caller's.
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(message.headers)) {
      if (typeof value !== 'string') throw new EnvelopeError(`header "${name}" of a wire message must be a string, got ${typeof value}`);
      headers[name] = value;
    }
    return { key: message.key, headers, body: message.body };
  }

  async publishBatch(topic: string, items: readonly BatchItem<unknown>[], options: BatchOptions): Promise<BatchResult> {
    try {
      this.checkBatch(topic, options);
    } catch (error) {
      if (Array.isArray(items)) this.outcomes.refused(topic, items.map((item: BatchItem<unknown> | undefined) => (typeof item?.id === 'string' ? item.id : '')), toBuslineError(error));
      throw error;
    }
    const { ids, failed, messages, indexes } = encodeBatch(items, { type: topic, source: this.config.source }, this.ce, this.topics.contentModeOf(topic));
    if (options.atomic === true && failed.length > 0) {
      const refusal = atomicRefusal(ids, failed, items.length);
      this.outcomes.refused(topic, ids, refusal.failed.map((f) => f.error));
      return refusal;
    }
    if (failed.length > 0) this.outcomes.refused(topic, failed.map((f) => ids[f.index]!), failed.map((f) => f.error));
    const outcomes = messages.length ? await this.pipeline.send(topic, messages, options.timeoutMs, options.atomic === true) : [];
    outcomes.forEach((outcome, j) => {
      if (outcome !== undefined) failed.push({ index: indexes[j]!, error: outcome });
    });
    failed.sort((a, b) => a.index - b.index);
    return { ids, published: items.length - failed.length, failed };
  }

  private checkBatch(topic: string, options: BatchOptions): void {
    this.assertStarted();
    this.topics.checkTopic(topic);
    checkOptionNames(options, BATCH_OPTION_NAMES, 'publishBatch', topic);
    if (options.atomic === true) checkAtomicBatch(topic, this.driver.capabilities.atomicBatch, this.driver.name, this.topics.optionsOf(topic).persistence);
  }

  /** A dead-letter copy is a publish too: its send span links to the message's own trace context, which the copy keeps. */
  readonly publishDeadLetter = async (topic: string, message: WireMessage): Promise<PublishOutcome> => {
    const span = this.tracer?.send(topic, [message]);
    let outcome: PublishOutcome;
    try {
      const ensuring = this.topics.ensureTopic(topic);
      if (ensuring) await ensuring;
      [outcome] = await this.driver.publish(topic, [message], {
        timeoutMs: this.config.publish.timeoutMs,
        topic: this.topics.optionsOf(topic),
      });
    } catch (error) {
      outcome = toBuslineError(error);
    }
    if (span !== undefined) this.tracer!.sent(span, [outcome]);
    return outcome;
  };
}
