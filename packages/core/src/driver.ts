/**
 * The driver contract: the small surface an adapter implements. Everything that
 * is the same for every broker (envelopes, ordering, retries, dead letters,
 * topic strategies, metrics, lifecycle) lives in core and is written once.
 *
 * Modelled on Go CDK's pubsub/driver: the portable `EventBus` sits in front of
 * this interface, and a driver only moves bytes and acknowledgements.
 */
import type { CloudEventsBinding } from './cloudevents-binding.js';
import type { BuslineError, FieldDifference } from './errors.js';
import { silentLogger, type Logger } from './logger.js';
import type { TopicOptions, TopicState } from './topic.js';

/** A message as it travels: metadata in headers, the user's payload as the body. */
export interface WireMessage {
  /** Ordering / partition key (the aggregate id). */
  key?: string | undefined;
  /**
   * The event id (CloudEvents `id`) of a message core encoded, in either
   * content mode: what a broker that dedupes by event id keys on, since a
   * structured-mode message carries its id in the body, not in a header.
   * Unset on delivered messages and on `publishWire` messages (drivers then
   * fall back to the id header).
   */
  id?: string | undefined;
  /** CloudEvents attributes and the publisher's own headers. */
  headers: Record<string, string>;
  /** The payload, encoded (JSON text or the bytes as published). */
  body: Uint8Array;
}

/** What an adapter promises. The conformance suite tests exactly these. */
export interface DriverCapabilities {
  /** Persistent topics keep messages for groups that subscribe later. */
  persistent: boolean;
  /** Messages survive a restart of the broker process (false for the in-memory broker). */
  survivesBrokerRestart: boolean;
  /** Ephemeral (at-most-once fan-out) topics are supported. */
  ephemeral: boolean;
  /** Messages with the same key reach the consumer in publish order. */
  perKeyOrder: boolean;
  /**
   * Members of one group (several buses, processes or hosts subscribing one
   * topic under one group name) receive disjoint sets of keys, and a key moves
   * to another member only after its old owner settled or gave back what it
   * held: per-key order holds across the whole group, not just in one member.
   */
  keyAffinity: boolean;
  /** Competing consumers within a group; every group gets every message. */
  consumerGroups: boolean;
  /** `nack(delayMs)` makes the broker redeliver after the delay. */
  nativeRedeliveryDelay: boolean;
  /** Publishing the same event id twice (within a window) stores it once. */
  dedupe: boolean;
  /** Consumers never see a message twice; readers may assert no duplicates. */
  exactlyOnce: boolean;
  /** Subscribing to a new topic after start needs a consumer restart (Kafka). */
  subscribeAfterStartRestartsConsumer: boolean;
  /**
   * `publish` with `atomic: true` stores every message of the call or none
   * (`publishBatch(..., { atomic: true })`).
   */
  atomicBatch: boolean;
  /**
   * `deliveryCount` counts only deliveries that ended with their handler's
   * process dead or the message lost (never one given back unstarted, as at a
   * graceful close or a rebalance), so core dead-letters a message delivered
   * more than `retry.maxAttempts` times without running its handler again: a
   * message that kills its process cannot loop forever. Brokers that count
   * every redelivery (NATS, the memory broker) leave it off; there a
   * redelivered message runs at least once more.
   */
  redeliveryLimit: boolean;
}

/**
 * The state of a driver's connection to its broker, as `bus.health()` and the `connection` event
 * report it.
 */
export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'reconnecting' | 'closed';

/** How a driver reports what happens outside any one call. */
export interface DriverHooks {
  /**
   * A connection changed state. `connection` names it where a driver holds
   * several (default `main`); `bus.health()` reports each. `detail` is logged:
   * never put credentials in it.
   */
  connection(state: ConnectionState, detail?: string, connection?: string): void;
  /** Asynchronous failures (a commit, a fetch) that no caller is awaiting. */
  error(error: Error, context: string): void;
  /** Increments a driver-specific counter shown in `metrics().driver`. */
  count(name: string, by?: number): void;
  /** The bus's logger (`config.logger`), for the broker client's own log lines. Log no config sections or URLs with credentials. */
  readonly log: Logger;
}

/** Hooks that do nothing: what a driver holds before `connect` hands it the bus's. */
export const NO_DRIVER_HOOKS: DriverHooks = Object.freeze({ connection() {}, error() {}, count() {}, log: silentLogger });

/** What the broker holds for one consumer group of a topic. */
export interface Backlog {
  /** Stored messages not yet delivered to the group (a stopped consumer's whole backlog). */
  pending: number;
  /** Delivered to a member of the group and not yet acknowledged. */
  unsettled: number;
}

/** What core asks a driver to consume: one group on one topic, with its in-flight limit. */
export interface ConsumerSpec {
  /** The topic to consume. */
  topic: string;
  /** The consumer group: members of one group share the topic's messages. */
  group: string;
  /**
   * Whether the topic keeps messages for later (`persistent`) or is at-most-once fan-out
   * (`ephemeral`).
   */
  persistence: TopicOptions['persistence'];
  /**
   * The most messages the driver should hold delivered-but-unsettled for this
   * consumer (NATS max_ack_pending, Kafka fetch sizing). Core never has more in
   * its queues than this per subscription.
   */
  maxInFlight: number;
  /** Where a group that has no position yet starts reading. */
  startFrom: 'earliest' | 'latest';
}

/**
 * What core hands a driver at `connect`: the hooks to report through, and the consumers already
 * planned.
 */
export interface DriverContext {
  /** Where the driver reports connection changes, asynchronous errors and counters. */
  hooks: DriverHooks;
  /**
   * Every subscription made before `start()` (topic, group, options), so
   * drivers whose groups rebalance on topic-set changes (Kafka) can subscribe
   * the whole set once. Subscriptions made later reach `subscribe` only.
   */
  plannedConsumers: readonly ConsumerSpec[];
}

/**
 * One delivery of a message. Exactly one of `ack`, `nack`, `term` is called per
 * delivery. Drivers may batch the acknowledgements (cumulative acks, commits)
 * but must never acknowledge past a delivery that was not settled, and must
 * accept settle calls after `close` (as no-ops). `headers` and `body` are
 * read-only for everyone downstream: a driver may share them between groups.
 */
export interface DeliveredMessage extends WireMessage {
  /** The topic the message was delivered from. */
  readonly topic: string;
  /** 1 on the first delivery, as counted by the broker where it counts. */
  readonly deliveryCount: number;
  /**
   * The stored message's identity within its group (stream sequence,
   * partition:offset), equal for every delivery of one message. Core collapses
   * a redelivered copy of a message it still holds into the one in hand (the
   * copy's handle is the one settled), so a handler never runs on a copy.
   * A number where the broker has one (it is cheaper to track than a string).
   */
  readonly deliveryId?: string | number;
  /**
   * When the broker stored the message (ms since the epoch), where it says:
   * the Kafka record timestamp, the JetStream message time, the in-memory
   * append time. The time of foreign messages (`{ foreign: true }`).
   */
  readonly timestamp?: number;
  /**
   * Tells the broker the message is still in hand (NATS in-progress ack), so
   * its redelivery deadline starts again. Present only where the subscription
   * declares `leaseMs`.
   */
  extendLease?(): void;
  /** Handled: never deliver again. */
  ack(): void;
  /**
   * Not handled: deliver again (after `delayMs` where the broker supports a
   * delay, otherwise to the next consumer of the group after a restart).
   */
  nack(delayMs: number): void;
  /** Poison or dead-lettered: never deliver again, whatever happened. */
  term(): void;
}

/**
 * Where a driver's fetch loop hands its batches, in delivery order. When the
 * returned promise is pending the loop must not fetch more (backpressure).
 */
export interface MessageSink {
  /** Takes the next batch; a returned promise holds the driver's fetch loop until it settles. */
  deliver(batch: DeliveredMessage[]): void | Promise<void>;
  /**
   * Hands back every message delivered so far whose handling has not started:
   * each is nacked (delay 0) without running, when it would have started.
   * Handlers already running finish; one that fails is nacked instead of
   * retried, and a retry waiting out its backoff is nacked at once. A driver
   * calls it before it gives up what it holds (a Kafka rebalance), so its drain
   * waits only for running handlers. The driver must then deliver nothing that
   * follows a recalled message in its ordering scope (partition) before it has
   * re-read from that message; messages delivered after the call are handled
   * as usual.
   */
  recall?(): void;
}

/** A consumer a driver opened for core. */
export interface DriverSubscription {
  /**
   * The broker's deadline for a delivered, unsettled message (NATS ack_wait),
   * after which it hands the message out again. Core calls `extendLease` on
   * every message it holds longer than a third of it. Undefined: no deadline.
   */
  readonly leaseMs?: number;
  /** Stop fetching. Delivered messages can still be settled until `close`. */
  stop(): Promise<void>;
  /**
   * Flush pending acknowledgements/commits and release the consumer. `timeoutMs`: how long to wait
   * on the broker for that (core stops waiting shortly after it in any case).
   */
  close(options?: { timeoutMs: number }): Promise<void>;
}

/** Per-call options of `Driver.publish`. */
export interface PublishCallOptions {
  /** Reject (with PublishTimeoutError) a message not acknowledged within this time. */
  timeoutMs: number;
  /** The topic's options as core knows them (e.g. persistent or ephemeral). */
  topic: TopicOptions;
  /**
   * Store every message or none (only when the driver declares `atomicBatch`,
   * and never for a topic whose `persistence` is `ephemeral`: core refuses that).
   * The outcomes are then all undefined or all errors. An event id already
   * stored within the dedupe window, or repeated in the call, refuses the call.
   */
  atomic?: boolean;
}

/** `undefined` for a message the broker durably accepted, else why not. */
export type PublishOutcome = BuslineError | undefined;

/**
 * What an adapter implements for core: connect, provision topics, publish with per-message
 * outcomes, deliver to a sink, close. Core owns ordering, retries and dead letters on top.
 * Implement it (with `@busline/core/driver`) to add a broker; run `@busline/conformance` against
 * it.
 */
export interface Driver {
  /** The driver's name in logs and errors, e.g. `kafka`. */
  readonly name: string;
  /**
   * What the driver guarantees; core and the conformance suite branch on these flags instead of on
   * the name.
   */
  readonly capabilities: DriverCapabilities;
  /**
   * The CloudEvents protocol binding whose header names core writes on this
   * broker (`KAFKA_BINDING`: `ce_`); undefined is `HTTP_BINDING` (`ce-`, as the
   * HTTP and NATS bindings name them). Core reads every known naming.
   */
  readonly cloudEvents?: CloudEventsBinding;

  /**
   * Connects to the broker and keeps `context.hooks` to report through; rejects with a BuslineError
   * when it cannot.
   */
  connect(context: DriverContext): Promise<void>;

  /** What the broker has for `topic`, or undefined when it does not exist. */
  describeTopic(topic: string, wanted: TopicOptions): Promise<TopicState | undefined>;
  /** Creates `topic` with `options` (core calls it after `describeTopic` found none). */
  createTopic(topic: string, options: TopicOptions): Promise<void>;
  /**
   * Change an existing topic towards `options`. Throws TopicMismatchError
   * naming the fields the broker cannot change (e.g. Kafka partitions shrinking).
   */
  updateTopic(topic: string, options: TopicOptions, differences: FieldDifference[]): Promise<void>;

  /**
   * Publish in order; resolves with one outcome per message, only once each is
   * durably accepted or known failed. Never rejects for a single message's failure.
   */
  publish(topic: string, messages: readonly WireMessage[], options: PublishCallOptions): Promise<PublishOutcome[]>;

  /** Opens a consumer for `spec` and starts handing its deliveries to `sink`, in delivery order. */
  subscribe(spec: ConsumerSpec, sink: MessageSink): Promise<DriverSubscription>;

  /**
   * Core opened every consumer planned at `connect` that is still wanted; the
   * rest were unsubscribed before they opened and will never reach
   * `subscribe`. A driver that waits for its whole plan (Kafka) starts now.
   */
  plannedConsumersOpened?(): void;

  /**
   * The broker's own count of what `group` has not yet consumed from `topic`
   * (NATS consumer info, Kafka high watermarks minus committed offsets);
   * undefined when the broker has no such group. Optional: `bus.health({
   * backlog: true })` reports it where a driver has it. Called off the hot
   * path (health checks), never per message.
   */
  describeBacklog?(topic: string, group: string): Promise<Backlog | undefined>;

  /**
   * Releases every connection and consumer; deliveries not settled by then are redelivered by the
   * broker. `timeoutMs` (from `bus.close`): what is left of the close's bound for the final
   * acknowledgements or commits and the goodbyes to the broker. A broker that does not answer
   * within it is given up on (what was not committed is delivered again); core stops waiting
   * shortly after it in any case.
   */
  close(options?: { timeoutMs: number }): Promise<void>;
}

/**
 * What an adapter package exports as `adapter`, so `createEventBus` can load it
 * by type. `configSchema` is a zod schema for the adapter's own config section.
 */
export interface AdapterModule<Section = unknown> {
  /** The config `type` (and URL scheme) this adapter serves, e.g. `nats`. */
  readonly type: string;
  /** Validates the adapter's config section and fills in its defaults. */
  readonly configSchema: import('zod').ZodType<Section>;
  /**
   * Turns a URL shorthand into a config section. Gets the text as written:
   * host lists (`nats://a:4222,b:4222`) are not URLs to the WHATWG parser.
   * May throw an Error saying what to change; createEventBus reports its
   * message as a `url:` issue (without the URL, which may hold secrets).
   */
  sectionFromUrl(url: string): Record<string, unknown>;
  /** Makes a driver for a validated config section (not yet connected). */
  createDriver(section: Section): Driver;
}
