import {
  ClosedError,
  type Backlog,
  NO_DRIVER_HOOKS,
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
import { memoryConfigSchema, type MemoryConfig, type MemoryConfigInput } from './config.js';
import { getMemoryBroker, type MemoryBroker, type MemorySubscription } from './memory-broker.js';

/** What the in-memory broker promises (the conformance suite holds it to exactly these). */
export const MEMORY_CAPABILITIES: DriverCapabilities = Object.freeze({
  persistent: true,
  survivesBrokerRestart: false,
  ephemeral: true,
  perKeyOrder: true,
  keyAffinity: true,
  consumerGroups: true,
  nativeRedeliveryDelay: true,
  dedupe: true,
  // Unsettled messages of a closed consumer and nacked ones are delivered again.
  exactlyOnce: false,
  subscribeAfterStartRestartsConsumer: false,
  atomicBatch: true,
  redeliveryLimit: false,
});

/**
 * The driver contract mapped onto a process-wide `MemoryBroker`. Thin on
 * purpose: validation, ordering within a handler pool, retries and dead
 * letters are core's; storage, groups and redelivery are the broker's.
 *
 * A publish to a topic that was never created creates it with the options
 * core passes along (`PublishCallOptions.topic`; persistent and unlimited by
 * default), so topic strategy `skip` keeps working. Subscribing to a missing
 * topic likewise creates it with the consumer's persistence.
 */
export class MemoryDriver implements Driver {
  readonly name = 'memory';
  readonly capabilities = MEMORY_CAPABILITIES;
  readonly config: MemoryConfig;
  readonly broker: MemoryBroker;
  private hooks: DriverHooks = NO_DRIVER_HOOKS;
  private closed = false;
  private readonly subscriptions = new Set<MemorySubscription>();

  constructor(section: MemoryConfigInput | MemoryConfig = {}) {
    this.config = memoryConfigSchema.parse(section);
    this.broker = getMemoryBroker(this.config.broker);
  }

  async connect(context: DriverContext): Promise<void> {
    if (this.closed) throw new ClosedError('memory driver');
    this.hooks = context.hooks;
    this.hooks.connection('connected', `in-memory broker "${this.broker.name}"`);
  }

  async describeTopic(topic: string, _wanted: TopicOptions): Promise<TopicState | undefined> {
    return this.broker.describeTopic(topic);
  }

  async createTopic(topic: string, options: TopicOptions): Promise<void> {
    this.broker.createTopic(topic, options);
  }

  async updateTopic(topic: string, options: TopicOptions, _differences: FieldDifference[]): Promise<void> {
    this.broker.updateTopic(topic, options);
  }

  publish(topic: string, messages: readonly WireMessage[], options: PublishCallOptions): Promise<PublishOutcome[]> {
    if (this.closed) {
      const error = new ClosedError('memory driver');
      return Promise.resolve(messages.map(() => error));
    }
    return Promise.resolve(
      this.broker.publish(topic, messages, {
        dedupeWindowMs: this.config.dedupeWindowMs,
        createWith: options?.topic,
        maxMessageBytes: this.config.maxMessageBytes,
        atomic: options?.atomic,
      }),
    );
  }

  async subscribe(spec: ConsumerSpec, sink: MessageSink): Promise<DriverSubscription> {
    if (this.closed) throw new ClosedError('memory driver');
    const hooks = this.hooks;
    const member = this.broker.subscribe(spec, sink, {
      batchSize: this.config.deliveryBatchSize,
      onError: (error, context) => hooks.error(error, `memory consumer ${spec.topic}/${spec.group}: ${context}`),
      count: (name, by) => hooks.count(name, by),
    });
    this.subscriptions.add(member);
    return {
      stop: async () => member.stop(),
      close: async () => {
        member.close();
        this.subscriptions.delete(member);
      },
    };
  }

  /** From the broker's group stats: pending = not yet delivered (undispatched, queued, delayed, parked), unsettled = delivered and not settled. */
  async describeBacklog(topic: string, group: string): Promise<Backlog | undefined> {
    const stats = this.broker.stats(topic)?.groups[group];
    if (stats === undefined) return undefined;
    return { pending: stats.undispatched + stats.queued + stats.delayed + stats.parked, unsettled: stats.unsettled };
  }

  /** Closes every consumer of this driver (their unsettled messages go back to their groups). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const member of this.subscriptions) member.close();
    this.subscriptions.clear();
    this.hooks.connection('closed');
  }
}
