import { inspect } from 'node:util';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { AckPolicy, JetStreamApiError, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import {
  BrokerUnavailableError,
  BuslineError,
  CloseDeadline,
  ClosedError,
  NO_DRIVER_HOOKS,
  ErrorCode,
  errorMessage,
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
import type { NatsConfig } from './config.js';
import { authFailure, connectionOptions, redactServer } from './connection.js';
import { CONSUMER_NOT_FOUND, consumerConfig, ensureConsumer, refuseSecondMember } from './consumer-admin.js';
import { ConsumerHub } from './consumer-hub.js';
import { EphemeralConsumer } from './ephemeral-consumer.js';
import { PullConsumer } from './pull-consumer.js';
import { PartitionedConsumer } from './partitioned-consumer.js';
import { AtomicBatchPublisher } from './atomic-batch.js';
import { FastBatchPublisher } from './fast-batch.js';
import { partitionDurable } from './partition-layout.js';
import { durableNameFor } from './names.js';
import { Publisher } from './publisher.js';
import { publishEphemeral, publishPersistent } from './publish-routing.js';
import { ATOMIC_BATCH_SERVER, FAST_BATCH_SERVER, MINIMUM_SERVER, PINNING_SERVER, serverSupported } from './server-version.js';
import { STREAM_NOT_FOUND, StreamAdmin } from './streams.js';
import { protocolWriter } from './wire.js';

/** close() without a bound (a driver used without a bus) still stops waiting on a server that does not answer. */
const DEFAULT_CLOSE_TIMEOUT_MS = 30_000;
/** The connection's drain (pending messages processed, acks flushed) waits at most this long. */
const MAX_DRAIN_MS = 5_000;

/**
 * On a server that pins (≥ 2.11, explicit acks) a group's members never run
 * one key at once: `keyAffinity` is true once connected to one. Before connect,
 * and on older servers, members share one consumer without key affinity.
 */
export const NATS_CAPABILITIES: DriverCapabilities = Object.freeze({
  persistent: true,
  survivesBrokerRestart: true,
  ephemeral: true,
  perKeyOrder: true,
  keyAffinity: false,
  consumerGroups: true,
  nativeRedeliveryDelay: true,
  dedupe: true,
  exactlyOnce: false,
  subscribeAfterStartRestartsConsumer: false,
  atomicBatch: false,
  redeliveryLimit: false,
});

/** The driver's connection and what is built on it, from connect to close (publish-routing.ts publishes through it). */
export interface Session {
  nc: NatsConnection;
  jsm: JetStreamManager;
  admin: StreamAdmin;
  publisher: Publisher;
  hub: ConsumerHub;
  /** Group consumers are pinned (server ≥ 2.11, explicit acks): see PartitionedConsumer. */
  pinned: boolean;
  /** Fast-ingest batches (server ≥ 2.14). */
  fast: FastBatchPublisher | undefined;
  /** Atomic batches (server ≥ 2.12). */
  atomic: AtomicBatchPublisher | undefined;
}

/**
 * The NATS JetStream driver: one connection per bus; persistent topics are
 * streams (see StreamAdmin), published through the pipelined Publisher and
 * consumed through one pull loop per (topic, group) (see PullConsumer);
 * ephemeral topics are core NATS subjects.
 */
export class NatsDriver implements Driver {
  readonly name = 'nats';
  #capabilities: DriverCapabilities = NATS_CAPABILITIES;
  // Private (#) so credentials in the config never show in inspect/JSON output of the driver.
  readonly #config: NatsConfig;
  #session: Session | undefined;
  #hooks: DriverHooks = NO_DRIVER_HOOKS;
  #closing = false;

  constructor(config: NatsConfig) {
    this.#config = config;
  }

  /**
   * What the driver can do; some flags depend on the server version, so they are final only after
   * `connect`.
   */
  get capabilities(): DriverCapabilities {
    return this.#capabilities;
  }

  /** Where this driver connects, without credentials. */
  get servers(): string[] {
    return this.#config.servers.map(redactServer);
  }

  /** The live connection (for diagnostics and tests); undefined before connect and after close. */
  get connection(): NatsConnection | undefined {
    return this.#session?.nc;
  }

  /** Publishes in flight and waiting for the window (diagnostics). */
  get publishing(): { inFlight: number; waiting: number } {
    const p = this.#session?.publisher;
    return { inFlight: p?.inFlight ?? 0, waiting: p?.waiting ?? 0 };
  }

  async connect(context: DriverContext): Promise<void> {
    if (this.#session) return;
    this.#closing = false;
    const hooks = (this.#hooks = context.hooks);
    const config = this.#config;
    const where = this.servers.join(',');
    hooks.connection('connecting', where);
    let nc: NatsConnection;
    try {
      nc = await connect(connectionOptions(config));
    } catch (error) {
      throw authFailure(error, where) ?? new BrokerUnavailableError(`cannot connect to NATS at ${where}: ${errorMessage(error)}`, error);
    }
    const version = nc.info?.version ?? '';
    if (!serverSupported(version)) {
      await nc.close().catch(() => undefined);
      throw new BuslineError(
        ErrorCode.Unsupported,
        `nats-server ${version || '(version unknown)'} at ${where} is older than ${MINIMUM_SERVER}, the oldest busline supports (JetStream nak with delay, in-progress acks and the consumer API it uses); upgrade the server`,
        { details: { version, minimum: MINIMUM_SERVER } },
      );
    }
    let jsm: JetStreamManager;
    try {
      jsm = await jetstreamManager(nc, { timeout: config.apiTimeoutMs });
    } catch (error) {
      await nc.close().catch(() => undefined);
      throw new BrokerUnavailableError(`JetStream is not available at ${where} (start nats-server with -js): ${errorMessage(error)}`, error);
    }
    const apiPrefix = jsm.getOptions().apiPrefix ?? '$JS.API';
    const publisher = new Publisher(nc, config.publishWindow, config.publishResendMs, hooks, config.inboxPrefix);
    publisher.start();
    const hub = new ConsumerHub(nc, jsm, hooks, config, apiPrefix);
    const pinning = serverSupported(version, PINNING_SERVER);
    const pinned = pinning && config.ackMode === 'explicit';
    const batching = config.fastBatches && serverSupported(version, FAST_BATCH_SERVER);
    const fast = batching ? new FastBatchPublisher(nc, hooks, config.inboxPrefix ?? '_INBOX', protocolWriter(nc)) : undefined;
    const atomic = serverSupported(version, ATOMIC_BATCH_SERVER) ? new AtomicBatchPublisher(nc, hooks) : undefined;
    this.#capabilities = Object.freeze({ ...NATS_CAPABILITIES, keyAffinity: pinned, atomicBatch: atomic !== undefined });
    this.#session = { nc, jsm, admin: new StreamAdmin(jsm, config, pinning, batching, atomic !== undefined), publisher, hub, pinned, fast, atomic };
    this.watch(this.#session);
    hooks.connection('connected', redactServer(nc.getServer()));
  }

  private watch(session: Session): void {
    const { nc, publisher, hub } = session;
    const hooks = this.#hooks;
    void (async () => {
      let reconnectingSaid = false;
      for await (const s of nc.status()) {
        switch (s.type) {
          case 'disconnect':
            session.fast?.onDisconnect();
            publisher.onDisconnect();
            hub.onDisconnect();
            reconnectingSaid = false;
            hooks.connection('disconnected', redactServer(s.server));
            break;
          case 'reconnecting':
            if (!reconnectingSaid) hooks.connection('reconnecting');
            reconnectingSaid = true;
            break;
          case 'reconnect':
            hub.onReconnect();
            publisher.onReconnect();
            hooks.count('reconnects');
            hooks.connection('connected', redactServer(s.server));
            break;
          case 'error':
            hooks.error(s.error, 'nats connection');
            break;
          case 'ldm':
            hooks.count('lame_duck_mode');
            break;
          case 'staleConnection':
            hooks.count('stale_connection');
            break;
          case 'slowConsumer':
            hooks.count('slow_consumer');
            break;
          default:
            break;
        }
      }
    })().catch((error: unknown) => hooks.error(error instanceof Error ? error : new Error(String(error)), 'nats status'));
    void nc.closed().then((error) => {
      if (this.#closing || this.#session !== session) return;
      const failure = new BrokerUnavailableError(
        `the NATS connection closed${error ? `: ${errorMessage(error)}` : ''} (reconnect attempts exhausted?); create a new bus to continue`,
        error,
      );
      // The publisher first: fast batches, ended here, hand what was not stored to it, and it refuses it at once.
      publisher.fail(failure);
      session.fast?.close();
      hooks.error(failure, 'nats connection');
      hooks.connection('closed', failure.message);
    });
  }

  private session(): Session {
    if (!this.#session) throw this.#closing ? new ClosedError('NATS driver') : new BrokerUnavailableError('the NATS driver is not connected');
    return this.#session;
  }

  describeTopic(topic: string, wanted: TopicOptions): Promise<TopicState | undefined> {
    return this.session().admin.describe(topic, wanted);
  }

  createTopic(topic: string, options: TopicOptions): Promise<void> {
    return this.session().admin.create(topic, options);
  }

  updateTopic(topic: string, options: TopicOptions, differences: FieldDifference[]): Promise<void> {
    return this.session().admin.update(topic, options, differences);
  }

  publish(topic: string, messages: readonly WireMessage[], options: PublishCallOptions): Promise<PublishOutcome[]> {
    const session = this.#session;
    if (session === undefined) {
      const error = this.#closing ? new ClosedError('NATS driver') : new BrokerUnavailableError('the NATS driver is not connected');
      return Promise.resolve(messages.map(() => error));
    }
    if (options.topic.persistence === 'ephemeral') return Promise.resolve(publishEphemeral(session, topic, messages));
    return publishPersistent(session, this.#hooks, topic, messages, options);
  }

  /**
   * The group's durable consumer(s) as the server counts them (what `nats
   * consumer info` shows): messages not yet delivered (num_pending) and
   * delivered but not acknowledged (num_ack_pending), summed over the
   * partitions of a partitioned topic. Undefined when the group has no
   * consumer yet; ephemeral topics have no backlog on the server.
   */
  async describeBacklog(topic: string, group: string): Promise<Backlog | undefined> {
    const session = this.session();
    const shared = this.#config.streamMode === 'shared';
    const stream = session.admin.streamFor(topic);
    const durable = durableNameFor(group, topic, shared);
    const partitions = shared ? 1 : (session.admin.partitionsFor(topic) ?? (await session.admin.layoutOf(topic)).partitions);
    let found = false;
    const backlog: Backlog = { pending: 0, unsettled: 0 };
    for (let p = 0; p < partitions; p++) {
      try {
        const info = await session.jsm.consumers.info(stream, partitionDurable(durable, p, partitions));
        found = true;
        backlog.pending += info.num_pending;
        backlog.unsettled += info.num_ack_pending;
      } catch (error) {
        if (!(error instanceof JetStreamApiError && (error.code === CONSUMER_NOT_FOUND || error.code === STREAM_NOT_FOUND))) throw error;
      }
    }
    return found ? backlog : undefined;
  }

  async subscribe(spec: ConsumerSpec, sink: MessageSink): Promise<DriverSubscription> {
    const session = this.session();
    if (spec.persistence === 'ephemeral') {
      const consumer = new EphemeralConsumer(session.hub, sink, spec.topic, spec.group);
      // The server must know the subscription before this resolves, or the next publish could miss it.
      await session.nc.flush();
      return consumer;
    }
    const config = this.#config;
    const shared = config.streamMode === 'shared';
    const stream = session.admin.streamFor(spec.topic);
    const durable = durableNameFor(spec.group, spec.topic, shared);
    if (session.pinned) {
      const layout = shared ? { partitions: 1, replicas: 1 } : await session.admin.layoutOf(spec.topic);
      const consumer = new PartitionedConsumer(session.hub, sink, {
        spec,
        stream,
        durable,
        topicSubject: spec.topic,
        filterSubject: shared ? spec.topic : undefined,
        partitions: layout.partitions,
        replicas: layout.replicas,
        memberTtlMs: config.memberTtlMs,
      });
      try {
        await consumer.start();
      } catch (error) {
        await consumer.close().catch(() => undefined);
        throw error;
      }
      return consumer;
    }
    const wanted = consumerConfig(spec, durable, config, shared ? spec.topic : undefined);
    const info = await ensureConsumer(session.jsm, spec.topic, stream, wanted);
    if (shared && info.config.ack_policy === AckPolicy.All) {
      throw new BuslineError(
        ErrorCode.Unsupported,
        `consumer ${durable} on shared stream ${stream} uses AckPolicy all; busline acknowledges cumulatively only in perTopic stream mode`,
      );
    }
    refuseSecondMember(info, spec.topic, durable);
    const consumer = new PullConsumer(session.hub, sink, { spec, stream, durable, wanted, info });
    await consumer.prepare();
    consumer.start();
    return consumer;
  }

  /** `timeoutMs` (default 30 s) bounds the consumers' close and the drain; the socket is closed in any case. */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    const session = this.#session;
    this.#closing = true;
    if (!session) return;
    const deadline = CloseDeadline.in(options.timeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS);
    try {
      await deadline.within(session.hub.closeAll(), 'closing the consumers');
    } finally {
      session.fast?.close();
      session.publisher.fail(new ClosedError('NATS driver'));
      this.#session = undefined;
      // drain: pending subscription messages are processed, outgoing acks are flushed, then the socket closes.
      await CloseDeadline.in(Math.min(MAX_DRAIN_MS, deadline.remainingMs)).within(session.nc.drain(), 'draining the connection');
      if (!session.nc.isClosed()) await session.nc.close().catch(() => undefined);
    }
  }

  /**
   * The driver's name and capabilities only, so logging a driver never prints its config (which may
   * hold credentials).
   */
  toJSON(): Record<string, unknown> {
    return { name: this.name, servers: this.servers };
  }

  /** What `console.log` and `util.inspect` show: like `toJSON`, never the config. */
  [inspect.custom](): string {
    return `NatsDriver { servers: ${JSON.stringify(this.servers)}, connected: ${this.#session !== undefined} }`;
  }
}
