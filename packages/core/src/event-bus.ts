import { metrics as otelMetrics, propagation, trace } from '@opentelemetry/api';
import { EventEmitter } from 'eventemitter3';
import { atomicRefusal, checkAtomicBatch, encodeBatch, type BatchItem, type BatchOptions, type BatchResult } from './batch-publish.js';
import { HTTP_BINDING, type CloudEventsBinding } from './cloudevents-binding.js';
import { DEFAULT_GROUP, type BusConfig } from './config.js';
import type { Driver, DriverCapabilities, DriverHooks, PublishOutcome, WireMessage } from './driver.js';
import { encodeEnvelope, encodeNewEnvelope } from './envelope-encoding.js';
import { validateEnvelope, type Envelope, type EnvelopeOptions, type Payload } from './envelope.js';
import { driverBudget, leftBehind } from './close-deadline.js';
import { BuslineError, ClosedError, ErrorCode, EnvelopeError, type FieldDifference } from './errors.js';
import type { BusEvents } from './events.js';
import { HealthMonitor, type HealthOptions, type HealthReport } from './health.js';
import { KeyedOrderingPool } from './keyed-ordering-pool.js';
import { consoleLogger, silentLogger, warnOnce, type Logger } from './logger.js';
import { logBusEvent } from './log-events.js';
import { BusMetrics, type MetricsSnapshot } from './metrics.js';
import type { JsonPayload } from './json-payload.js';
import { RecorderSet, type MetricsRecorder } from './metrics-recorder.js';
import { OtelMetricsRecorder } from './otel-metrics.js';
import { PublishAdmission } from './publish-admission.js';
import { PublishPipeline, toBuslineError } from './publish-pipeline.js';
import { BATCH_OPTION_NAMES, checkOptionNames, PUBLISH_OPTION_NAMES, TIMEOUT_OPTION_NAMES } from './publish-options.js';
import { PublishOutcomes } from './publish-outcomes.js';
import { MessageTracer } from './tracing.js';
import { resolveSubscription, type SubscribeOptions } from './subscribe-options.js';
import { Subscription, type EnvelopeHandler, type HandlerKind, type PayloadHandler, type SubscriptionHost, type WireHandler } from './subscription.js';
import { TopicProvisioner, type EnsureResult, type ProvisionPolicy } from './topic-provisioner.js';
import type { ContentMode } from './content-mode.js';
import { assertTopicName, topicOptionsSchema, type TopicOptions, type TopicOptionsInput } from './topic.js';
import {
  eventHandler,
  isEventDefinition,
  PayloadError,
  validatePayload,
  type EventDefinition,
  type EventHandler,
  type EventInput,
  type EventPublishOptions,
} from './typed-event.js';

export interface PublishOptions extends EnvelopeOptions {
  /** Overrides the bus's publish timeout for this call. */
  timeoutMs?: number;
}
/** What `publish` resolves with once the broker stored the message: its event id and topic. */
export interface PublishReceipt {
  /** The event id the message was stored with. */
  id: string;
  /** The topic it was stored in. */
  topic: string;
}
type State = 'created' | 'starting' | 'started' | 'closing' | 'closed';

const DEFAULT_TOPIC: TopicOptions = topicOptionsSchema.parse({});
/** The instrumentation scope of core's spans and metrics. */
const SCOPE = '@busline/core';

/**
 * The API services call. It owns everything that is the same for every broker
 * (envelopes, topic provisioning, ordering, retries, dead letters, metrics,
 * lifecycle) and talks to the broker through a thin `Driver`.
 */
export class EventBus extends EventEmitter<BusEvents> {
  private state: State = 'created';

  /** What the adapter guarantees; some depend on the broker, so read them after start() (e.g. NATS keyAffinity needs nats-server ≥ 2.11). */
  get capabilities(): DriverCapabilities {
    return this.driver.capabilities;
  }
  private starting: Promise<void> | undefined;
  private closingPromise: Promise<void> | undefined;
  private readonly stats = new BusMetrics();
  private readonly pool: KeyedOrderingPool;
  private readonly admission: PublishAdmission;
  private readonly pipeline: PublishPipeline;
  private readonly provisioner: TopicProvisioner;
  private readonly topicOptions = new Map<string, TopicOptions>();
  private readonly validTopics = new Set<string>();
  private readonly subscriptions = new Set<Subscription>();
  private readonly unattached: Subscription[] = [];
  private connected = false;
  /** The CloudEvents header naming written on this broker. */
  private readonly ce: CloudEventsBinding;
  /** Where core and the driver log (`config.logger`). */
  readonly log: Logger;
  private readonly recorders = new RecorderSet();
  private readonly tracer: MessageTracer | undefined;
  private readonly monitor: HealthMonitor;
  private readonly outcomes: PublishOutcomes;

  constructor(
    readonly driver: Driver,
    readonly config: BusConfig,
  ) {
    super();
    this.ce = driver.cloudEvents ?? HTTP_BINDING;
    this.log = config.logger === false ? silentLogger : (config.logger ?? consoleLogger());
    this.monitor = new HealthMonitor(
      {
        lifecycle: () => this.state,
        subscriptions: () => this.subscriptions,
        publisher: () => ({ inFlight: this.pipeline.inProgress - this.admission.waiting, waiting: this.admission.waiting }),
        describeBacklog: driver.describeBacklog?.bind(driver),
      },
      config.health,
      (event) => this.emit('health', event),
      this.log,
    );
    const telemetry = config.telemetry;
    if (telemetry.metrics) {
      const meter = (telemetry.meterProvider ?? otelMetrics.getMeterProvider()).getMeter(SCOPE);
      this.recorders.add(new OtelMetricsRecorder(meter, driver.name, () => this.monitor.snapshot(), telemetry.durationSamplesPerSecond === 'all' ? Number.POSITIVE_INFINITY : telemetry.durationSamplesPerSecond));
    }
    this.tracer = telemetry.tracing
      ? new MessageTracer((telemetry.tracerProvider ?? trace.getTracerProvider()).getTracer(SCOPE), telemetry.propagator ?? propagation, driver.name, this.ce.headers)
      : undefined;
    this.outcomes = new PublishOutcomes(
      this.recorders,
      this.tracer,
      () => this.listenerCount('publishOutcome') > 0,
      (event) => this.emit('publishOutcome', event),
      this.ce.headers,
    );
    this.pool = new KeyedOrderingPool({ concurrency: config.concurrency, maxPending: config.maxPending });
    this.admission = new PublishAdmission(config.publish);
    this.pipeline = new PublishPipeline(
      driver,
      { optionsOf: (topic) => this.optionsOf(topic), ensureTopic: (topic) => this.ensureTopic(topic) },
      this.admission,
      this.outcomes,
      this.stats,
      config.publish.timeoutMs,
    );
    this.pool.on('backpressure', (event) => this.emit('backpressure', event));
    this.pool.on('error', (error) => this.emit('error', error instanceof Error ? error : new Error(String(error)), 'ordering pool'));
    this.provisioner = new TopicProvisioner(
      driver,
      { strategy: config.topicStrategy, onMismatch: config.onMismatch },
      (topic, differences) => this.emit('topicMismatch', { topic, differences, action: 'warn' }),
    );
    for (const [topic, options] of Object.entries(config.topics)) this.topicOptions.set(topic, options);
  }

  /**
   * True between a successful `start()` and `close()`: publishing and handling happen only then.
   */
  get started(): boolean {
    return this.state === 'started';
  }

  /** Every event is logged at its level (errors and dead letters at `error`) before listeners see it. */
  override emit<E extends keyof BusEvents>(event: E, ...args: BusEvents[E]): boolean {
    logBusEvent(this.log, event, args);
    return (super.emit as (event: string, ...rest: unknown[]) => boolean).call(this, event, ...args);
  }

  /**
   * Connects, ensures every configured topic (per the topic strategy) and opens
   * the subscriptions made so far. Safe to call more than once.
   */
  start(): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') return Promise.reject(new ClosedError());
    this.starting ??= this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    this.state = 'starting';
    const hooks: DriverHooks = {
      connection: (state, detail, connection) => {
        this.monitor.connection(state, detail, connection);
        this.emit('connection', state, detail, connection);
      },
      error: (error, context) => this.emit('error', error, context),
      count: (name, by) => this.stats.count(name, by),
      log: this.log,
    };
    if (this.driver.name === 'memory' && process.env.NODE_ENV === 'production') {
      warnOnce(this.log, 'memory-in-production', {}, 'NODE_ENV is production but the bus uses the in-memory broker (memory://): messages live in this process only; set BUSLINE_URL or config.url');
    }
    try {
      if (!this.connected) {
        await this.driver.connect({ hooks, plannedConsumers: this.unattached.map((s) => s.config.spec) });
        this.connected = true;
      }
      for (const [topic, options] of this.topicOptions) await this.provisioner.ensure(topic, options);
      // Subscriptions made while starting join this queue too; none is dropped if start fails.
      while (this.unattached.length > 0) {
        const next = this.unattached[0]!;
        await this.open(next);
        // Not shift(): an unsubscribe while it opened has already taken it out.
        const at = this.unattached.indexOf(next);
        if (at >= 0) this.unattached.splice(at, 1);
      }
      this.driver.plannedConsumersOpened?.();
      this.state = 'started';
      this.monitor.start();
    } catch (error) {
      // A failed start can be retried; the connection (if made) stays until close().
      this.starting = undefined;
      this.state = 'created';
      throw error;
    }
  }

  // ---- topics -------------------------------------------------------------

  /**
   * Declares a topic's options and ensures it now with the bus's strategy
   * (or the one given). Later publishes and subscriptions use these options.
   */
  async configureTopic(topic: string, options: TopicOptionsInput = {}, policy: Partial<ProvisionPolicy> = {}): Promise<EnsureResult> {
    this.assertOpen();
    this.checkTopic(topic);
    const parsed = topicOptionsSchema.safeParse(options);
    if (!parsed.success) {
      throw new BuslineError(ErrorCode.ConfigInvalid, `invalid options for topic "${topic}": ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
    this.topicOptions.set(topic, parsed.data);
    await this.start();
    return this.provisioner.ensure(topic, parsed.data, policy, true);
  }

  private optionsOf(topic: string): TopicOptions {
    return this.topicOptions.get(topic) ?? DEFAULT_TOPIC;
  }

  /** How events are written to `topic`: its own `contentMode`, else the bus's. */
  private contentModeOf(topic: string): ContentMode {
    return this.topicOptions.get(topic)?.contentMode ?? this.config.contentMode;
  }

  private checkTopic(topic: string): void {
    if (this.validTopics.has(topic)) return;
    assertTopicName(topic);
    this.validTopics.add(topic);
  }

  private ensureTopic(topic: string): Promise<unknown> | undefined {
    if (this.provisioner.isEnsured(topic)) return undefined;
    return this.provisioner.ensure(topic, this.optionsOf(topic));
  }

  // ---- publishing ---------------------------------------------------------

  /**
   * Publishes one event; resolves once the broker durably accepted it, rejects with why not.
   * The payload is a JSON value (an interface- or class-typed object too) or a Uint8Array.
   */
  publish<P>(topic: string, payload: P & JsonPayload<P>, options?: PublishOptions): Promise<PublishReceipt>;
  /** Publishes a typed event (see `defineEvent`) to its topic, after its schema validated the payload (else PAYLOAD_INVALID). */
  publish<E extends EventDefinition>(event: E, payload: EventInput<E>, options?: EventPublishOptions): Promise<PublishReceipt>;
  publish(target: string | EventDefinition, payload: unknown, options: PublishOptions = {}): Promise<PublishReceipt> {
    // Anything but an object is a topic name: checkTopic says what is wrong with a non-string.
    if (typeof target === 'object' && target !== null) return this.publishEvent(target, payload, options);
    const topic = target as string;
    // Not async: the hot path makes one promise chain, and input errors still reject rather than throw.
    let message: WireMessage;
    let id: string;
    try {
      this.assertStarted();
      this.checkTopic(topic);
      checkOptionNames(options, PUBLISH_OPTION_NAMES, 'publish', topic);
      message = encodeNewEnvelope(payload as Payload, options, { type: topic, source: this.config.source }, this.ce, this.contentModeOf(topic));
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

  /** Publishes a complete envelope (validated) as is. */
  publishEnvelope(topic: string, envelope: Envelope, options: { timeoutMs?: number } = {}): Promise<PublishReceipt> {
    let message: WireMessage;
    let id: string;
    try {
      this.assertStarted();
      this.checkTopic(topic);
      checkOptionNames(options, TIMEOUT_OPTION_NAMES, 'publishEnvelope', topic);
      const valid = validateEnvelope(envelope);
      message = encodeEnvelope(valid, this.ce, this.contentModeOf(topic));
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

  /**
   * Low level: puts a message on the wire without building an envelope
   * (bridging from other producers). Consumers decode it like any other; one
   * that is not a valid envelope is dead-lettered on arrival, unless the
   * subscription takes foreign messages and it carries no CloudEvent at all.
   */
  async publishWire(topic: string, message: WireMessage, options: { timeoutMs?: number } = {}): Promise<void> {
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
    this.checkTopic(topic);
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

  /**
   * Publishes many events in order; resolves when every one is settled and
   * reports which failed (invalid items and broker refusals) by index. With
   * `atomic: true` the broker stores all of them or none: `published` is then
   * the item count or 0 (see BatchOptions).
   */
  async publishBatch<I extends BatchItem<unknown>>(topic: string, items: readonly (I & BatchItem<JsonPayload<I['payload']>>)[], options: BatchOptions = {}): Promise<BatchResult> {
    try {
      this.checkBatch(topic, options);
    } catch (error) {
      if (Array.isArray(items)) this.outcomes.refused(topic, items.map((item: BatchItem<unknown> | undefined) => (typeof item?.id === 'string' ? item.id : '')), toBuslineError(error));
      throw error;
    }
    const { ids, failed, messages, indexes } = encodeBatch(items, { type: topic, source: this.config.source }, this.ce, this.contentModeOf(topic));
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
    this.checkTopic(topic);
    checkOptionNames(options, BATCH_OPTION_NAMES, 'publishBatch', topic);
    if (options.atomic === true) checkAtomicBatch(topic, this.capabilities.atomicBatch, this.driver.name, this.optionsOf(topic).persistence);
  }

  /** A dead-letter copy is a publish too: its send span links to the message's own trace context, which the copy keeps. */
  private publishDeadLetter = async (topic: string, message: WireMessage): Promise<PublishOutcome> => {
    const span = this.tracer?.send(topic, [message]);
    let outcome: PublishOutcome;
    try {
      const ensuring = this.ensureTopic(topic);
      if (ensuring) await ensuring;
      [outcome] = await this.driver.publish(topic, [message], {
        timeoutMs: this.config.publish.timeoutMs,
        topic: this.optionsOf(topic),
      });
    } catch (error) {
      outcome = toBuslineError(error);
    }
    if (span !== undefined) this.tracer!.sent(span, [outcome]);
    return outcome;
  };

  // ---- subscribing --------------------------------------------------------

  /**
   * Calls `handler` with each event's payload (and its envelope in the context).
   * `P` is asserted, not checked: the payload is whatever JSON (or bytes) arrived.
   * For validated, typed payloads subscribe to an event made by `defineEvent`.
   */
  subscribe<P = Payload>(topic: string, handler: PayloadHandler<P>, options?: SubscribeOptions): Promise<Subscription>;
  /**
   * Calls `handler` with each `event` on its topic, upcast to the current version
   * and validated by its schema; an invalid one is dead-lettered (PAYLOAD_INVALID),
   * never retried. Other event types on the topic are acknowledged unhandled.
   */
  subscribe<E extends EventDefinition>(event: E, handler: EventHandler<E>, options?: SubscribeOptions): Promise<Subscription>;
  subscribe(target: string | EventDefinition, handler: PayloadHandler<any>, options: SubscribeOptions = {}): Promise<Subscription> {
    if (typeof target !== 'object' || target === null) return this.addSubscription(target as string, { kind: 'payload', handler }, options);
    if (!isEventDefinition(target)) return Promise.reject(new BuslineError(ErrorCode.ConfigInvalid, 'subscribe needs a topic name or an event made by defineEvent'));
    if (typeof handler !== 'function') return Promise.reject(new BuslineError(ErrorCode.ConfigInvalid, 'subscribe needs a handler function'));
    return this.addSubscription(target.topic, { kind: 'envelope', handler: eventHandler(target, handler) }, options);
  }

  /** Calls `handler` with each whole envelope. `P` is asserted, not checked (see `subscribe`). */
  subscribeEnvelope<P = Payload>(topic: string, handler: EnvelopeHandler<P>, options: SubscribeOptions = {}): Promise<Subscription> {
    return this.addSubscription(topic, { kind: 'envelope', handler }, options);
  }

  /** Low level: raw messages without decoding (e.g. to drain a dead-letter topic holding malformed bytes). */
  subscribeWire(topic: string, handler: WireHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    return this.addSubscription(topic, { kind: 'wire', handler }, options);
  }

  private async addSubscription(topic: string, handler: HandlerKind, options: SubscribeOptions): Promise<Subscription> {
    this.assertOpen();
    this.checkTopic(topic);
    if (typeof handler.handler !== 'function') throw new BuslineError(ErrorCode.ConfigInvalid, 'subscribe needs a handler function');
    let resolved;
    try {
      resolved = resolveSubscription(topic, options, this.config, this.optionsOf(topic).persistence);
    } catch (error) {
      throw toBuslineError(error, ErrorCode.ConfigInvalid, `invalid subscribe options for "${topic}"`);
    }
    if (resolved.retry.redelivery === 'broker' && !this.capabilities.nativeRedeliveryDelay) {
      throw new BuslineError(
        ErrorCode.Unsupported,
        `the ${this.driver.name} adapter cannot redeliver with a delay; use retry.redelivery "inProcess"`,
      );
    }
    if (resolved.spec.group === DEFAULT_GROUP) {
      warnOnce(
        this.log,
        'default-group',
        { topic },
        `subscribing to "${topic}" with the default group name "${DEFAULT_GROUP}": every service that leaves it unset shares one group and splits the messages; set config.group (the service's name) or the subscription's group`,
      );
    }
    const subscription = new Subscription(
      {
        metrics: this.stats,
        recorders: this.recorders,
        tracer: this.tracer,
        emit: this.emit.bind(this) as SubscriptionHost['emit'],
        publishDeadLetter: this.publishDeadLetter,
        cloudEvents: this.ce,
        redeliveryLimit: this.driver.capabilities.redeliveryLimit,
        lane: (run, concurrency) => this.pool.lane(run, { concurrency }),
      },
      resolved,
      handler,
      (s) => this.forget(s),
    );
    this.subscriptions.add(subscription);
    if (this.state !== 'started') {
      this.unattached.push(subscription);
      return subscription;
    }
    try {
      await this.open(subscription);
    } catch (error) {
      this.subscriptions.delete(subscription);
      throw error;
    }
    return subscription;
  }

  private async open(subscription: Subscription): Promise<void> {
    const ensuring = this.ensureTopic(subscription.topic);
    if (ensuring) await ensuring;
    // Unsubscribed while the topic was ensured: nothing to open.
    if (subscription.stopped) return;
    await subscription.opened(this.driver.subscribe(subscription.config.spec, subscription.inlet));
  }

  private forget(subscription: Subscription): void {
    this.subscriptions.delete(subscription);
    const waiting = this.unattached.indexOf(subscription);
    if (waiting >= 0) this.unattached.splice(waiting, 1);
  }

  // ---- operations ---------------------------------------------------------

  /**
   * The bus's health for probes and dashboards: per connection and per
   * subscription state, the publisher's in-flight and waiting counts, and an
   * overall `status`. With `{ backlog: true }` each subscription's backlog is
   * read from the broker (where the adapter can; one round trip each).
   */
  health(options: HealthOptions = {}): Promise<HealthReport> {
    return this.monitor.report(options);
  }

  /**
   * Attaches a metrics backend (e.g. `@busline/prometheus`); returns the
   * function that detaches it. Core measures only while one is attached.
   */
  addMetricsRecorder(recorder: MetricsRecorder): () => void {
    return this.recorders.add(recorder);
  }

  // ---- lifecycle ----------------------------------------------------------

  /**
   * Counters since the bus was created (published, handled, retried, dead-lettered, …) and the
   * driver's own, for tests and quick diagnostics; use a metrics recorder or OpenTelemetry for
   * production metrics.
   */
  metrics(): MetricsSnapshot {
    const s = this.stats;
    return {
      published: s.published,
      publishFailed: s.publishFailed,
      consumed: s.consumed,
      handled: s.handled,
      failed: s.failed,
      retried: s.retried,
      deadLettered: s.deadLettered,
      malformed: s.malformed,
      inFlight: this.pool.pending,
      publishing: this.pipeline.inProgress,
      publishWaiting: this.admission.waiting,
      driver: { ...s.driver },
    };
  }

  /**
   * Stops intake (publish and subscribe reject with CLOSED), lets in-flight
   * publishes settle and in-flight handlers finish within `timeoutMs`, flushes
   * acknowledgements and closes the connection.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closingPromise ??= this.doClose(options.timeoutMs ?? this.config.closeTimeoutMs);
    return this.closingPromise;
  }

  private async doClose(timeoutMs: number): Promise<void> {
    this.state = 'closing';
    this.monitor.stop();
    const deadline = Date.now() + timeoutMs;
    if (this.starting) await this.starting.catch(() => undefined);
    if (this.pipeline.inProgress > 0) {
      await Promise.race([
        this.pipeline.whenIdle(),
        new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref()),
      ]);
    }
    // Messages waiting out a retry backoff go back to the broker now instead of
    // holding the close; running handlers see their signal aborted.
    const subscriptions = [...this.subscriptions];
    for (const s of subscriptions) s.stop();
    await Promise.all(subscriptions.map((s) => s.unsubscribe(Math.max(0, deadline - Date.now()))));
    this.state = 'closed';
    try {
      if (this.connected) await this.closeDriver(driverBudget(deadline));
    } finally {
      this.emit('connection', 'closed');
    }
  }

  /**
   * The driver's goodbyes get what is left of the bound (at least DRIVER_CLOSE_FLOOR_MS, for the
   * final commit after handlers used it all); a driver still waiting on its broker after that is
   * left behind (`leftBehind`), so a hung broker cannot hold close() for its client's timeouts.
   */
  private async closeDriver(timeoutMs: number): Promise<void> {
    const bound = await leftBehind(this.driver.close({ timeoutMs }), timeoutMs);
    if (bound !== undefined) {
      this.emit(
        'error',
        new BuslineError(
          ErrorCode.DrainTimeout,
          `the ${this.driver.name} driver did not close within ${bound} ms (its broker does not answer): close() stopped waiting for it. ` +
            'Messages not acknowledged are delivered again; its connections end when the client gives up on them.',
        ),
        'closing the driver',
      );
    }
  }

  /** `await using bus = …`: closes the bus when the scope ends. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private assertOpen(): void {
    if (this.state === 'closing' || this.state === 'closed') throw new ClosedError();
  }

  private assertStarted(): void {
    this.assertOpen();
    if (this.state !== 'started') {
      throw new BuslineError(ErrorCode.NotStarted, 'the event bus is not started; await bus.start() before publishing');
    }
  }
}

export type { FieldDifference };

/** A typed event's name and version come from its definition. */
const EVENT_OPTION_NAMES: ReadonlySet<string> = new Set([...PUBLISH_OPTION_NAMES].filter((name) => name !== 'type' && name !== 'version'));
