/**
 * KafkaDriver: core's driver contract on Apache Kafka through kafkajs, and
 * kafka-ts for publishing unless `producer.client` names kafkajs.
 *
 * - publish: the PublishBatcher gathers concurrent publishes into one batch
 *   and hands it to the producer client `producer.client` names
 *   (KafkajsProducer or KafkaTsProducer: idempotent, acks all, the aggregate
 *   id as the record key, envelope metadata as record headers, the Java
 *   client's murmur2 partitioner). A topic is looked up once before its
 *   first publish (ProducerTopics), so a missing one never shares a batch.
 * - topics: TopicAdmin (admin client).
 * - subscribe: one GroupConsumer per consumer group, pre-subscribed to the
 *   topics planned before start.
 */
// First: before any import loads kafkajs.
import './before-kafkajs.js';
import {
  BrokerUnavailableError,
  BuslineError,
  CloseDeadline,
  ClosedError,
  ErrorCode,
  KAFKA_BINDING,
  PublishTimeoutError,
  errorMessage,
  isBuslineError,
  type Backlog,
  type ConsumerSpec,
  type Driver,
  type DriverCapabilities,
  type DriverContext,
  type DriverHooks,
  type DriverSubscription,
  type FieldDifference,
  type MessageSink,
  type PublishCallOptions,
  type PublishOutcome,
  type TopicOptions,
  type TopicState,
  type WireMessage,
} from '@busline/core/driver';
import kafkajs, { type Admin, type Kafka, type KafkaConfig as KafkaJSConfig } from 'kafkajs';
import type { KafkaConfig } from './config.js';
import { GroupConsumer } from './group-consumer.js';
import { authFailure, closeAbandoned, failureScope, kafkaError, protocolType, publishError } from './kafka-errors.js';
import { createLogCreator } from './log.js';
import { ProducerTopics } from './producer-topics.js';
import { PublishBatcher } from './publish-batcher.js';
import { TopicAdmin } from './topic-admin.js';
import { KafkajsProducer } from './kafkajs-producer.js';
import { KafkajsSockets } from './kafkajs-sockets.js';
import { KafkaTsProducer } from './kafka-ts-producer.js';
import type { ProducerClient } from './producer-client.js';
import { describeBacklog } from './backlog.js';
import { applyKafkajsIdleFetchWait } from './kafkajs-idle-fetch-wait.js';
import { applyKafkajsIdleFix } from './kafkajs-idle-fix.js';
import { applyForeignConsumerCount } from './kafkajs-foreign-consumers.js';
import { oauthBearerMechanism } from './kafkajs-oauthbearer.js';
import { applyKafkajsRecordBatchDecoder } from './kafkajs-record-batch-decoder.js';
import { applyKafkajsRecordDecoder } from './kafkajs-record-decoder.js';
import { applyKafkajsRecordEncoder } from './kafkajs-record-encoder.js';
import { kafkajsReplacementsNotice } from './kafkajs-replacements.js';
import { applyKafkajsRejoinHook } from './kafkajs-rejoin-hook.js';
import { applyKafkajsStopFix } from './kafkajs-stop-fix.js';
import { applyKafkaTsNoDelay } from './kafka-ts-no-delay.js';
import { applyKafkaTsRecordBatch } from './kafka-ts-record-batch.js';

applyKafkajsIdleFix();
applyKafkajsRecordEncoder();
applyKafkajsRecordDecoder();
applyKafkajsRecordBatchDecoder();
applyForeignConsumerCount();
applyKafkajsRejoinHook();
applyKafkajsIdleFetchWait();
applyKafkajsStopFix();
applyKafkaTsRecordBatch();
applyKafkaTsNoDelay();

const { Kafka: KafkaClient, logLevel: LogLevel } = kafkajs;
/** close() without a bound (a driver used without a bus) still stops waiting on a broker that does not answer. */
const DEFAULT_CLOSE_TIMEOUT_MS = 30_000;

/**
 * What the Kafka driver declares it can do; the conformance suite runs (or skips) tests by these
 * flags.
 */
export const KAFKA_CAPABILITIES: DriverCapabilities = Object.freeze({
  persistent: true,
  survivesBrokerRestart: true,
  // Emulated: a short-retention topic whose consumers start at the end of the log.
  ephemeral: true,
  perKeyOrder: true,
  keyAffinity: true,
  consumerGroups: true,
  // Kafka cannot redeliver one record later; core retries in process.
  nativeRedeliveryDelay: false,
  // The idempotent producer drops duplicates of its own retries only, not a re-publish of an event id.
  dedupe: false,
  exactlyOnce: false,
  subscribeAfterStartRestartsConsumer: true,
  // Kafka transactions could give this; not built yet.
  atomicBatch: false,
  redeliveryLimit: true,
});

const LOG_LEVELS = {
  nothing: LogLevel.NOTHING,
  error: LogLevel.ERROR,
  warn: LogLevel.WARN,
  info: LogLevel.INFO,
  debug: LogLevel.DEBUG,
} as const;

/**
 * Fails fast when no broker answers: the clients' retry budget (`retry`) is
 * sized for riding out a broker restart and made an unreachable cluster take
 * about 23 s to report. A short-lived client with `connectRetries` tries first
 * (a client of its own: kafkajs applies the client's retry to connecting, not
 * an admin's); once it got through, the real clients connect with theirs.
 */
async function reachable(clientConfig: KafkaJSConfig, c: KafkaConfig): Promise<void> {
  const retry = { retries: c.connectRetries, initialRetryTime: c.retry.initialRetryTimeMs, maxRetryTime: c.retry.maxRetryTimeMs };
  const probe = new KafkaClient({ ...clientConfig, retry }).admin();
  try {
    await probe.connect();
  } catch (error) {
    const tries = c.connectRetries + 1;
    throw authFailure(error, `connecting to Kafka at ${c.brokers.join(', ')}`) ?? new BrokerUnavailableError(
      `connecting to Kafka at ${c.brokers.join(', ')}: no broker answered (${tries} attempt${tries === 1 ? '' : 's'}, ${c.connectionTimeoutMs} ms each at most; ` +
        `raise kafka.connectRetries to wait longer for a starting broker): ${errorMessage(error)}`,
      error,
    );
  } finally {
    await probe.disconnect().catch(() => undefined);
  }
}

/**
 * The busline driver for Apache Kafka (kafkajs, and kafka-ts for publishing by default). Made by `createEventBus`; construct it
 * yourself only to test the driver alone.
 */
export class KafkaDriver implements Driver {
  readonly name = 'kafka';
  readonly capabilities = KAFKA_CAPABILITIES;
  /** Core writes `ce_` attribute headers, as the CloudEvents Kafka binding names them. */
  readonly cloudEvents = KAFKA_BINDING;
  private kafka: Kafka | undefined;
  private sockets: KafkajsSockets | undefined;
  private producer: ProducerClient | undefined;
  private admin: Admin | undefined;
  private topics: TopicAdmin | undefined;
  private batcher: PublishBatcher | undefined;
  private producerTopics: ProducerTopics | undefined;
  private hooks: DriverHooks | undefined;
  private readonly groups = new Map<string, GroupConsumer>();
  /** Planned (topic → count) per group, from the DriverContext. */
  private readonly plans = new Map<string, Map<string, number>>();
  private plannedLeft = 0;
  private connecting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private closed = false;

  constructor(readonly config: KafkaConfig) {}

  async connect(context: DriverContext): Promise<void> {
    if (this.closed) {
      // Core closes the driver when start() fails and may call start() again: begin afresh.
      if (this.closing) await this.closing;
      this.closed = false;
      this.closing = undefined;
      this.connecting = undefined;
    }
    this.hooks = context.hooks;
    this.plans.clear();
    this.plannedLeft = 0;
    for (const spec of context.plannedConsumers) {
      let plan = this.plans.get(spec.group);
      if (!plan) this.plans.set(spec.group, (plan = new Map()));
      plan.set(spec.topic, (plan.get(spec.topic) ?? 0) + 1);
      this.plannedLeft++;
    }
    this.connecting ??= this.doConnect(context.hooks);
    return this.connecting;
  }

  private async doConnect(hooks: DriverHooks): Promise<void> {
    const c = this.config;
    hooks.connection('connecting');
    const sockets = new KafkajsSockets();
    this.sockets = sockets;
    const clientConfig: KafkaJSConfig = {
      clientId: c.clientId,
      brokers: c.brokers,
      connectionTimeout: c.connectionTimeoutMs,
      requestTimeout: c.requestTimeoutMs,
      retry: { retries: c.retry.retries, initialRetryTime: c.retry.initialRetryTimeMs, maxRetryTime: c.retry.maxRetryTimeMs },
      logLevel: LOG_LEVELS[c.logLevel],
      logCreator: createLogCreator(hooks.log),
      socketFactory: sockets.factory,
    };
    if (c.ssl !== undefined) clientConfig.ssl = c.ssl as KafkaJSConfig['ssl'];
    if (c.sasl !== undefined) {
      clientConfig.sasl = c.sasl.mechanism === 'oauthbearer' ? oauthBearerMechanism(c.sasl.oauthBearerProvider) : (c.sasl as KafkaJSConfig['sasl']);
    }
    const kafka = new KafkaClient(clientConfig);
    const producer = this.newProducer(kafka, hooks);
    const admin = kafka.admin();
    try {
      await reachable(clientConfig, c);
      await admin.connect();
      await producer.connect();
    } catch (error) {
      await Promise.allSettled([producer.close(), admin.disconnect()]);
      this.connecting = undefined;
      throw kafkaError(error, `connecting to Kafka at ${c.brokers.join(', ')}`);
    }
    this.kafka = kafka;
    this.producer = producer;
    this.admin = admin;
    const topics = new TopicAdmin(admin, c.topics);
    this.topics = topics;
    this.producerTopics = new ProducerTopics((topic) => topics.producerLimit(topic));
    this.batcher = new PublishBatcher({
      lingerMs: c.producer.lingerMs,
      maxBatchMessages: c.producer.maxBatchMessages,
      maxBatchBytes: c.producer.maxBatchBytes,
      maxInFlightBatches: c.producer.maxInFlightBatches,
      maxQueuedMessages: c.producer.maxQueuedMessages,
      send: (batch) => producer.send(batch),
      mapError: (error, topic, timeoutMs) => {
        // A topic that failed as a whole (deleted, not authorized) is looked up again before its next publish.
        if (failureScope(error) === 'topic') this.producerTopics?.forget(topic);
        return publishError(error, topic, timeoutMs);
      },
      scopeOf: failureScope,
      // Sessions are the idempotent producer's: without one there are no sequence numbers to get out of step.
      reset: c.producer.idempotent ? (cause) => this.resetProducer(producer, cause) : undefined,
    });
    hooks.connection('connected');
    const notice = kafkajsReplacementsNotice(c.producer.client);
    if (notice !== undefined) hooks.log.info(notice.fields, notice.message);
  }

  private newProducer(kafka: Kafka, hooks: DriverHooks): ProducerClient {
    return this.config.producer.client === 'kafka-ts' ? new KafkaTsProducer(this.config, hooks) : new KafkajsProducer(kafka, this.config, hooks);
  }

  /** A new producer session (PublishBatcher's `reset`), counted and logged with the error that caused it. */
  private async resetProducer(producer: ProducerClient, cause: unknown): Promise<void> {
    if (this.closed) return;
    await producer.reset();
    this.hooks?.count('producerResets');
    this.hooks?.log.warn({ kafka: 'producer', cause: protocolType(cause) ?? String(cause) }, 'started a new Kafka producer session: a produce request failed, so the old session may be out of step with what the broker stored');
  }

  private ready(): { topics: TopicAdmin; batcher: PublishBatcher } {
    if (this.closed) throw new ClosedError('Kafka driver');
    if (!this.topics || !this.batcher) throw new BuslineError(ErrorCode.NotStarted, 'the Kafka driver is not connected');
    return { topics: this.topics, batcher: this.batcher };
  }

  // ---- topics -------------------------------------------------------------

  describeTopic(topic: string, wanted: TopicOptions): Promise<TopicState | undefined> {
    return this.ready().topics.describe(topic, wanted);
  }

  createTopic(topic: string, options: TopicOptions): Promise<void> {
    return this.ready().topics.create(topic, options);
  }

  updateTopic(topic: string, options: TopicOptions, differences: FieldDifference[]): Promise<void> {
    return this.ready().topics.update(topic, options, differences);
  }

  /** Deletes topics (tests and benchmarks clean up with it). */
  deleteTopics(topics: string[]): Promise<void> {
    return this.ready().topics.delete(topics);
  }

  // ---- publishing ---------------------------------------------------------

  publish(topic: string, messages: readonly WireMessage[], options: PublishCallOptions): Promise<PublishOutcome[]> {
    const { batcher } = this.ready();
    const known = this.producerTopics!.get(topic);
    if (known !== undefined) return batcher.publish(topic, messages, options.timeoutMs, this.limitOf(known.limit));
    return this.publishUnknown(batcher, topic, messages, options.timeoutMs);
  }

  /** The first publish to `topic` (or the next after it failed as missing): look it up, within the call's timeout. */
  private async publishUnknown(batcher: PublishBatcher, topic: string, messages: readonly WireMessage[], timeoutMs: number): Promise<PublishOutcome[]> {
    if (!(timeoutMs > 0)) return batcher.publish(topic, messages, timeoutMs); // refused there, at once
    const startedAt = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.min(timeoutMs, 2_147_483_647));
    });
    const found = await Promise.race([this.producerTopics!.lookup(topic), timedOut]);
    clearTimeout(timer);
    if (found === 'timeout') return messages.map(() => new PublishTimeoutError(topic, timeoutMs));
    if (isBuslineError(found)) return messages.map(() => found);
    return batcher.publish(topic, messages, timeoutMs, this.limitOf(found.limit), startedAt);
  }

  /** The batcher checks sizes uncompressed: with compression only the broker can tell. */
  private limitOf(limit: number): number {
    return this.config.producer.compression === 'none' ? limit : Number.POSITIVE_INFINITY;
  }

  // ---- subscribing --------------------------------------------------------

  async subscribe(spec: ConsumerSpec, sink: MessageSink): Promise<DriverSubscription> {
    this.ready();
    let group = this.groups.get(spec.group);
    if (!group) {
      group = new GroupConsumer({
        kafka: this.kafka!,
        group: spec.group,
        config: this.config.consumer,
        metadataMaxAgeMs: this.config.metadataMaxAgeMs,
        hooks: this.hooks!,
        plan: this.plans.get(spec.group) ?? new Map(),
        onUnplanned: () => this.abandonPlans(),
      });
      this.groups.set(spec.group, group);
    }
    const planned = this.plans.get(spec.group)?.get(spec.topic) ?? 0;
    if (planned > 0 && this.plannedLeft > 0) {
      this.plans.get(spec.group)!.set(spec.topic, planned - 1);
      if (--this.plannedLeft === 0) queueMicrotask(() => this.abandonPlans());
    } else if (this.plannedLeft > 0) {
      this.abandonPlans();
    }
    return group.register(spec, sink);
  }

  /** Core says the rest of the plan was unsubscribed before it opened: start what registered. */
  plannedConsumersOpened(): void {
    if (this.plannedLeft > 0) this.abandonPlans();
  }

  /** Every planned subscription registered, or one arrived that was not planned: start what is waiting. */
  private abandonPlans(): void {
    this.plannedLeft = 0;
    for (const group of this.groups.values()) group.abandonPlan();
  }

  /** Kafka's lag for the group on the topic (see backlog.ts); what this process holds of it counts as unsettled. */
  async describeBacklog(topic: string, group: string): Promise<Backlog | undefined> {
    if (!this.admin) throw new BrokerUnavailableError('the Kafka driver is not connected');
    const consumer = this.groups.get(group);
    const held = consumer?.snapshot().partitions.reduce((sum, p) => (p.topic === topic ? sum + p.unsettled : sum), 0) ?? 0;
    return describeBacklog(this.admin, topic, group, { member: consumer !== undefined, held });
  }

  /** The consumer of `group`, for tests and diagnostics. */
  consumerOf(group: string): GroupConsumer | undefined {
    return this.groups.get(group);
  }

  // ---- lifecycle ----------------------------------------------------------

  /** `timeoutMs` (default 30 s) bounds every wait on the broker; see CloseDeadline. */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.closed) return this.closing ?? Promise.resolve();
    this.closed = true;
    const timeoutMs = options.timeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.closing = this.doClose(CloseDeadline.in(timeoutMs), timeoutMs);
    return this.closing;
  }

  private async doClose(deadline: CloseDeadline, timeoutMs: number): Promise<void> {
    if (this.connecting) await deadline.within(this.connecting, 'connecting');
    const errors: unknown[] = [];
    await Promise.all(
      [...this.groups.values()].map((g) =>
        g.close(Math.min(this.config.consumer.restartDrainTimeoutMs, 5_000), deadline).catch((error: unknown) => errors.push(error)),
      ),
    );
    this.groups.clear();
    if (this.batcher) {
      await deadline.within(this.batcher.flush(), 'sending the publishes still batched');
      this.batcher.close();
    }
    await deadline.within(Promise.allSettled([this.producer?.close(), this.admin?.disconnect()]), 'closing the producer and the admin client');
    this.producer = this.admin = this.kafka = undefined;
    this.topics = undefined;
    // Whatever of kafkajs still waits on the broker (steps given up on above) fails now instead of holding the process.
    this.sockets?.endAll();
    this.sockets = undefined;
    if (errors.length > 0) this.hooks?.error(kafkaError(errors[0], 'closing Kafka consumers'), 'kafka close');
    if (deadline.abandoned.length > 0) this.hooks?.error(closeAbandoned(`closing within ${timeoutMs} ms`, deadline.abandoned, true), 'kafka close');
  }
}
