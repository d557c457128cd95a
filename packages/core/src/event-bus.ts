import { metrics as otelMetrics, propagation, trace } from '@opentelemetry/api';
import { EventEmitter } from 'eventemitter3';
import type { BatchItem, BatchOptions, BatchResult } from './batch-publish.js';
import { HTTP_BINDING, type CloudEventsBinding } from './cloudevents-binding.js';
import type { BusConfig } from './config.js';
import type { Driver, DriverCapabilities, DriverHooks, WireMessage } from './driver.js';
import type { Envelope, EnvelopeOptions, Payload } from './envelope.js';
import { driverBudget, leftBehind } from './close-deadline.js';
import { BuslineError, ClosedError, ErrorCode, type FieldDifference } from './errors.js';
import type { BusEvents } from './events.js';
import { HealthMonitor, type HealthOptions, type HealthReport } from './health.js';
import { KeyedOrderingPool } from './keyed-ordering-pool.js';
import { consoleLogger, silentLogger, warnOnce, type Logger } from './logger.js';
import { logBusEvent } from './log-events.js';
import { BusMetrics, type MetricsSnapshot } from './metrics.js';
import type { JsonPayload } from './json-payload.js';
import { RecorderSet, type MetricsRecorder } from './metrics-recorder.js';
import { OtelMetricsRecorder } from './otel-metrics.js';
import { PublishOutcomes } from './publish-outcomes.js';
import { Publisher } from './publisher.js';
import { MessageTracer } from './tracing.js';
import type { SubscribeOptions } from './subscribe-options.js';
import type { EnvelopeHandler, HandlerKind, PayloadHandler, Subscription, SubscriptionHost, WireHandler } from './subscription.js';
import { SubscriptionRegistry } from './subscription-registry.js';
import { TopicProvisioner, type EnsureResult, type ProvisionPolicy } from './topic-provisioner.js';
import { TopicRegistry } from './topic-registry.js';
import type { TopicOptionsInput } from './topic.js';
import { eventHandler, isEventDefinition, type EventDefinition, type EventHandler, type EventInput, type EventPublishOptions } from './typed-event.js';

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
  private readonly provisioner: TopicProvisioner;
  private readonly topics: TopicRegistry;
  private readonly publisher: Publisher;
  private readonly subscriptions: SubscriptionRegistry;
  private connected = false;
  /** The CloudEvents header naming written on this broker. */
  private readonly ce: CloudEventsBinding;
  /** Where core and the driver log (`config.logger`). */
  readonly log: Logger;
  private readonly recorders = new RecorderSet();
  private readonly tracer: MessageTracer | undefined;
  private readonly monitor: HealthMonitor;

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
        subscriptions: () => this.subscriptions.all,
        publisher: () => ({ inFlight: this.publisher.inProgress - this.publisher.waiting, waiting: this.publisher.waiting }),
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
    const outcomes = new PublishOutcomes(
      this.recorders,
      this.tracer,
      () => this.listenerCount('publishOutcome') > 0,
      (event) => this.emit('publishOutcome', event),
      this.ce.headers,
    );
    this.pool = new KeyedOrderingPool({ concurrency: config.concurrency, maxPending: config.maxPending });
    this.provisioner = new TopicProvisioner(
      driver,
      { strategy: config.topicStrategy, onMismatch: config.onMismatch },
      (topic, differences) => this.emit('topicMismatch', { topic, differences, action: 'warn' }),
    );
    this.topics = new TopicRegistry(this.provisioner, config);
    this.publisher = new Publisher(driver, config, this.ce, this.topics, outcomes, this.stats, this.tracer, this.assertStarted);
    this.subscriptions = new SubscriptionRegistry(
      driver,
      config,
      this.log,
      this.topics,
      (): SubscriptionHost => ({
        metrics: this.stats,
        recorders: this.recorders,
        tracer: this.tracer,
        emit: this.emit.bind(this) as SubscriptionHost['emit'],
        publishDeadLetter: this.publisher.publishDeadLetter,
        cloudEvents: this.ce,
        redeliveryLimit: this.driver.capabilities.redeliveryLimit,
        lane: (run, concurrency) => this.pool.lane(run, { concurrency }),
      }),
    );
    this.pool.on('backpressure', (event) => this.emit('backpressure', event));
    this.pool.on('error', (error) => this.emit('error', error instanceof Error ? error : new Error(String(error)), 'ordering pool'));
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
        await this.driver.connect({ hooks, plannedConsumers: this.subscriptions.planned() });
        this.connected = true;
      }
      for (const [topic, options] of this.topics.declared) await this.provisioner.ensure(topic, options);
      // Subscriptions made while starting join this queue too; none is dropped if start fails.
      for (let next = this.subscriptions.nextUnattached; next !== undefined; next = this.subscriptions.nextUnattached) {
        await this.subscriptions.open(next);
        this.subscriptions.attached(next);
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
    const declared = this.topics.declare(topic, options);
    await this.start();
    return this.provisioner.ensure(topic, declared, policy, true);
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
    return this.publisher.publish(target, payload, options);
  }

  /** Publishes a complete envelope (validated) as is. */
  publishEnvelope(topic: string, envelope: Envelope, options: { timeoutMs?: number } = {}): Promise<PublishReceipt> {
    return this.publisher.publishEnvelope(topic, envelope, options);
  }

  /**
   * Low level: puts a message on the wire without building an envelope
   * (bridging from other producers). Consumers decode it like any other; one
   * that is not a valid envelope is dead-lettered on arrival, unless the
   * subscription takes foreign messages and it carries no CloudEvent at all.
   */
  publishWire(topic: string, message: WireMessage, options: { timeoutMs?: number } = {}): Promise<void> {
    return this.publisher.publishWire(topic, message, options);
  }

  /**
   * Publishes many events in order; resolves when every one is settled and
   * reports which failed (invalid items and broker refusals) by index. With
   * `atomic: true` the broker stores all of them or none: `published` is then
   * the item count or 0 (see BatchOptions).
   */
  publishBatch<I extends BatchItem<unknown>>(topic: string, items: readonly (I & BatchItem<JsonPayload<I['payload']>>)[], options: BatchOptions = {}): Promise<BatchResult> {
    return this.publisher.publishBatch(topic, items, options);
  }

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
    const subscription = this.subscriptions.make(topic, handler, options);
    if (this.state !== 'started') {
      this.subscriptions.defer(subscription);
      return subscription;
    }
    try {
      await this.subscriptions.open(subscription);
    } catch (error) {
      this.subscriptions.forget(subscription);
      throw error;
    }
    return subscription;
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
      publishing: this.publisher.inProgress,
      publishWaiting: this.publisher.waiting,
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
    if (this.publisher.inProgress > 0) {
      await Promise.race([
        this.publisher.whenIdle(),
        new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref()),
      ]);
    }
    await this.subscriptions.closeAll(deadline);
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

  /** An arrow property, so the Publisher is handed the check itself: no wrapper call per publish. */
  private readonly assertStarted = (): void => {
    this.assertOpen();
    if (this.state !== 'started') {
      throw new BuslineError(ErrorCode.NotStarted, 'the event bus is not started; await bus.start() before publishing');
    }
  };
}

export type { FieldDifference };
