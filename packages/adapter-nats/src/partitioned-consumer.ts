import { nuid } from '@nats-io/nats-core';
import type { ConsumerSpec, DriverSubscription, MessageSink } from '@busline/core/driver';
import { consumerConfig, ensureConsumer } from './consumer-admin.js';
import type { ConsumerHub } from './consumer-hub.js';
import { assignedPartitions, GroupMembership } from './group-membership.js';
import { partitionDurable, partitionFilter } from './partition-layout.js';
import { pinHolder, PullConsumer } from './pull-consumer.js';

/** How often a member waiting for a partition's pin reads whether it is free. */
const PIN_POLL_MS = 250;

/**
 * A group's subscription to a topic as a partitioned consumer group: per-key
 * order across every member of the group, with keys in parallel.
 *
 * Each partition of the topic has its own durable consumer, pinned
 * (priority policy pinned_client, nats-server ≥ 2.11): the server delivers a
 * partition's messages to one member at a time, whoever holds the pin. The
 * partitions are spread over the live members (GroupMembership, a KV bucket);
 * a member pulls the partitions it is assigned, and inside one partition
 * core's ordering pool still runs different keys in parallel.
 *
 * A partition moves only after its old owner let go of everything: the owner
 * stops pulling it, waits until every message of it that the subscription
 * holds is settled, sends the acknowledgements, and only then gives the pin
 * back (UNPIN); the new owner's pull, already waiting, gets the pin then.
 * If the owner dies instead, its pin lapses after priority_timeout, which is
 * longer than the ack wait: the messages it held are due for redelivery by
 * then and reach the new owner before anything newer.
 *
 * A member pulls a partition only while the membership assigns it and nobody
 * else holds its pin, so the other members stand by without pull requests
 * (see startWhenFree). With one partition, one member consumes and the others
 * stand by.
 */

export interface PartitionedConsumerOptions {
  spec: ConsumerSpec;
  stream: string;
  /** The group's durable name; partition i is `<durable>-p<i>`. */
  durable: string;
  topicSubject: string;
  /** Shared stream mode: the one partition's consumer filters on the topic. */
  filterSubject: string | undefined;
  partitions: number;
  replicas: number;
  memberTtlMs: number;
}

export class PartitionedConsumer implements DriverSubscription {
  readonly leaseMs: number;
  private readonly owned = new Map<number, PullConsumer>();
  private readonly releasing = new Map<number, Promise<void>>();
  private membership: GroupMembership | undefined;
  private reconciling: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly memberId = nuid.next();

  constructor(
    private readonly hub: ConsumerHub,
    private readonly sink: MessageSink,
    private readonly options: PartitionedConsumerOptions,
  ) {
    this.leaseMs = hub.config.ackWaitMs;
  }

  /** Partitions this member pulls now (diagnostics and tests). */
  get partitions(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  /** The partition consumers of this member (diagnostics and tests). */
  consumer(partition: number): PullConsumer | undefined {
    return this.owned.get(partition);
  }

  async start(): Promise<void> {
    const o = this.options;
    const membership = new GroupMembership({
      nc: this.hub.nc,
      apiTimeoutMs: this.hub.config.apiTimeoutMs,
      stream: o.stream,
      durable: o.durable,
      memberId: this.memberId,
      ttlMs: o.memberTtlMs,
      replicas: o.replicas,
      hooks: this.hub.hooks,
      isConnected: () => this.hub.isConnected,
      onChange: () => this.reconcile(),
    });
    this.membership = membership;
    await membership.join();
    this.hub.addTicker(membership);
    await this.reconcile();
  }

  /** Brings the partitions pulled here to what the membership assigns; one pass at a time. */
  private reconcile(): Promise<void> {
    if (this.reconciling !== undefined) {
      this.again = true;
      return this.reconciling;
    }
    this.reconciling = (async () => {
      do {
        this.again = false;
        await this.reconcileOnce();
      } while (this.again && !this.stopped);
    })().finally(() => (this.reconciling = undefined));
    return this.reconciling;
  }

  private async reconcileOnce(): Promise<void> {
    const membership = this.membership;
    if (this.stopped || membership === undefined) return;
    const wanted = new Set(assignedPartitions(membership.members, this.memberId, this.options.partitions));
    for (const partition of this.owned.keys()) if (!wanted.has(partition)) this.release(partition);
    for (const partition of wanted) {
      if (this.owned.has(partition) || this.releasing.has(partition)) continue;
      try {
        await this.acquire(partition);
      } catch (error) {
        this.hub.hooks.error(error instanceof Error ? error : new Error(String(error)), `taking partition ${partition} of "${this.options.spec.topic}"`);
      }
    }
  }

  private async acquire(partition: number): Promise<void> {
    const o = this.options;
    const durable = partitionDurable(o.durable, partition, o.partitions);
    const filter = o.partitions === 1 ? o.filterSubject : partitionFilter(o.topicSubject, partition);
    const wanted = consumerConfig(o.spec, durable, this.hub.config, filter, true);
    const info = await ensureConsumer(this.hub.jsm, o.spec.topic, o.stream, wanted);
    if (this.stopped) return;
    const consumer = new PullConsumer(this.hub, this.sink, { spec: o.spec, stream: o.stream, durable, wanted, info });
    this.owned.set(partition, consumer);
    void this.startWhenFree(partition, consumer, pinHolder(info));
  }

  /**
   * Pulls only once nobody holds the partition's pin: a pull request waiting
   * behind another member's pin makes the server rotate its redelivery queue
   * (see PullConsumer.sendHeldNaks), which would reorder what that member
   * gives back. A holder that died loses the pin after priority_timeout.
   */
  private async startWhenFree(partition: number, consumer: PullConsumer, holder: string | undefined): Promise<void> {
    const o = this.options;
    const current = () => !this.stopped && this.owned.get(partition) === consumer;
    while (holder !== undefined) {
      await new Promise<void>((resolve) => setTimeout(resolve, PIN_POLL_MS).unref());
      if (!current()) return;
      try {
        holder = pinHolder(await this.hub.jsm.consumers.info(o.stream, consumer.durable));
      } catch {
        this.hub.hooks.count('pin_polls_failed');
      }
    }
    if (!current()) return;
    consumer.start();
    this.hub.hooks.count('partitions_taken');
  }

  /** Lets go of one partition: no more pulls, everything held settled, then the pin goes back. */
  private release(partition: number): void {
    const consumer = this.owned.get(partition);
    if (consumer === undefined) return;
    this.owned.delete(partition);
    const done = (async () => {
      await consumer.stop();
      await consumer.whenSettled();
      await consumer.unpin();
      await consumer.close();
      this.hub.hooks.count('partitions_released');
    })()
      .catch((error: unknown) => this.hub.hooks.error(error instanceof Error ? error : new Error(String(error)), `releasing partition ${partition} of "${this.options.spec.topic}"`))
      .finally(() => {
        this.releasing.delete(partition);
        if (!this.stopped) void this.reconcile();
      });
    this.releasing.set(partition, done);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.owned.values()].map((c) => c.stop()));
  }

  /**
   * After core settled what it could: each pin whose messages are all settled
   * goes back at once; a pin with messages still running (a handler past the
   * unsubscribe timeout) is kept until it lapses, so nobody else starts on
   * those keys meanwhile. Then this member leaves the membership.
   */
  async close(): Promise<void> {
    this.stopped = true;
    await this.reconciling;
    const consumers = [...this.owned.values()];
    this.owned.clear();
    await Promise.all(
      consumers.map(async (consumer) => {
        await consumer.stop();
        await consumer.unpin();
        await consumer.close();
      }),
    );
    await Promise.all(this.releasing.values());
    if (this.membership !== undefined) {
      this.hub.removeTicker(this.membership);
      await this.membership.leave();
    }
  }
}
