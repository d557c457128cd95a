import { nuid } from '@nats-io/nats-core';
import type { ConsumerInfo } from '@nats-io/jetstream';
import type { ConsumerSpec, DriverSubscription, MessageSink } from '@busline/core/driver';
import { consumerConfig, ensureConsumer, PIN_GROUP } from './consumer-admin.js';
import type { ConsumerHub } from './consumer-hub.js';
import { pinHolder } from './consumer-pin.js';
import { assignedPartitions, GroupMembership } from './group-membership.js';
import { partitionDurable, partitionFilter } from './partition-layout.js';
import { PullConsumer } from './pull-consumer.js';

/**
 * A group's subscription to a topic as a partitioned consumer group: per-key
 * order across every member of the group, with keys in parallel.
 *
 * Each partition of the topic has its own durable consumer, pinned
 * (priority policy pinned_client, nats-server ≥ 2.11): the server delivers a
 * partition's messages to one member at a time, whoever holds the pin. The
 * partitions are spread over the live members (GroupMembership, a KV bucket);
 * inside one partition core's ordering pool still runs different keys in
 * parallel.
 *
 * Taking a partition: the member takes its claim in the bucket (so no other
 * member pulls it meanwhile), waits until nobody holds the pin, then pulls.
 * Letting go: it stops pulling, lets everything received be handled and
 * settled, sends the acknowledgements, gives the pin back (UNPIN), then the
 * claim. If a member dies instead, its claim is taken over once it counts as
 * gone, and its pin lapses after priority_timeout, which is longer than the
 * ack wait: the messages it held are due for redelivery by then and reach
 * the new owner before anything newer.
 */

/** How often a member waiting for a claim or a pin looks again. */
const POLL_MS = 250;
/** How often the claims of the partitions pulled here are checked (one KV get each). */
const CLAIM_CHECK_MS = 3_000;

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
  /** Partitions this member took (claimed or about to), with their pull loops (started once the pin is free). */
  private readonly owned = new Map<number, PullConsumer>();
  private readonly releasing = new Map<number, Promise<void>>();
  private membership!: GroupMembership;
  private reconciling: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private lastClaimCheck = 0;
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
    return [...this.owned.entries()]
      .filter(([, consumer]) => consumer.pulling)
      .map(([partition]) => partition)
      .sort((a, b) => a - b);
  }

  async start(): Promise<void> {
    const o = this.options;
    this.membership = new GroupMembership({
      nc: this.hub.nc,
      apiTimeoutMs: this.hub.config.apiTimeoutMs,
      stream: o.stream,
      durable: o.durable,
      memberId: this.memberId,
      ttlMs: o.memberTtlMs,
      replicas: o.replicas,
      hooks: this.hub.hooks,
      isConnected: () => this.hub.isConnected,
      onChange: () => void this.reconcile(),
    });
    await this.membership.join();
    this.hub.addTicker(this);
    await this.reconcile();
  }

  /** The hub's 1 s tick: beats (membership) and, now and then, checks that the claims held here are still ours. */
  tick(now: number): void {
    this.membership.tick(now);
    if (this.stopped || now - this.lastClaimCheck < CLAIM_CHECK_MS) return;
    this.lastClaimCheck = now;
    void this.checkClaims();
  }

  /** A claim taken over (this member was thought gone) means another member pulls next: let go. */
  private async checkClaims(): Promise<void> {
    for (const partition of [...this.owned.keys()]) {
      if (!(await this.membership.holds(partition)) && !this.stopped) {
        this.hub.hooks.count('claims_lost');
        this.release(partition);
      }
    }
  }

  /** Brings the partitions taken here to what the membership assigns; one pass at a time. */
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
    if (this.stopped) return;
    const wanted = new Set(assignedPartitions(this.membership.members, this.memberId, this.options.partitions));
    for (const partition of this.owned.keys()) if (!wanted.has(partition)) this.release(partition);
    for (const partition of wanted) {
      if (this.owned.has(partition) || this.releasing.has(partition)) continue;
      try {
        await this.take(partition);
      } catch (error) {
        this.hub.hooks.error(error instanceof Error ? error : new Error(String(error)), `taking partition ${partition} of "${this.options.spec.topic}"`);
      }
    }
  }

  /** Ensures the partition's durable, then claims it and starts pulling once the pin is free (in the background). */
  private async take(partition: number): Promise<void> {
    const o = this.options;
    const durable = partitionDurable(o.durable, partition, o.partitions);
    const filter = o.partitions === 1 ? o.filterSubject : partitionFilter(o.topicSubject, partition);
    const wanted = consumerConfig(o.spec, durable, this.hub.config, filter, true);
    const info = await ensureConsumer(this.hub.jsm, o.spec.topic, o.stream, wanted);
    if (this.stopped) return;
    const consumer = new PullConsumer(this.hub, this.sink, { spec: o.spec, stream: o.stream, durable, wanted, info });
    this.owned.set(partition, consumer);
    // Resolves once the partition is pulled, or found busy (another member's claim or pin): subscribe
    // returns with consuming begun where it can begin, and does not wait for a standby's turn.
    await new Promise<void>((ready) => {
      this.claimAndStart(partition, consumer, ready)
        .catch((error: unknown) => this.hub.hooks.error(error instanceof Error ? error : new Error(String(error)), `taking partition ${partition} of "${o.spec.topic}"`))
        .finally(ready);
    });
  }

  /**
   * Pulls only with the claim, and only once nobody holds the pin: a pull
   * request waiting that the server may not serve makes it turn its
   * redelivery queue over, which would reorder what the pin holder gives back.
   */
  private async claimAndStart(partition: number, consumer: PullConsumer, ready: () => void): Promise<void> {
    const current = () => !this.stopped && this.owned.get(partition) === consumer;
    while (!(await this.membership.claim(partition))) {
      ready();
      await delay(POLL_MS);
      if (!current()) return;
    }
    if (await this.waitForFreePin(consumer, current, ready)) {
      consumer.start();
      this.hub.hooks.count('partitions_taken');
    } else {
      // Let go meanwhile (release may have given the claim back before we took it).
      await this.membership.unclaim(partition);
    }
  }

  /** True once nobody holds the partition's pin; false if the partition is no longer wanted here. */
  private async waitForFreePin(consumer: PullConsumer, current: () => boolean, busy: () => void): Promise<boolean> {
    let unused = 0;
    for (;;) {
      if (!current()) return false;
      const info = await this.infoOf(consumer);
      if (info !== undefined && pinHolder(info) === undefined) return current();
      busy();
      unused = info !== undefined && orphanedPin(info) ? unused + 1 : 0;
      if (unused >= 2) {
        // Nobody pulls the partition (we hold its claim) and nothing is unsettled: the pin went to a
        // pull request whose member had just stopped listening (the server pins before it checks
        // interest). Taking it is safe, and saves waiting out priority_timeout.
        await this.hub.jsm.consumers.unpin(this.options.stream, consumer.durable, PIN_GROUP).catch(() => undefined);
        this.hub.hooks.count('orphaned_pins_cleared');
        unused = 0;
      }
      await delay(POLL_MS);
    }
  }

  private async infoOf(consumer: PullConsumer): Promise<ConsumerInfo | undefined> {
    try {
      return await this.hub.jsm.consumers.info(this.options.stream, consumer.durable);
    } catch {
      this.hub.hooks.count('pin_polls_failed');
      return undefined;
    }
  }

  /** Lets go of one partition: no more pulls, everything received handled and settled, the pin back, then the claim. */
  private release(partition: number): void {
    const consumer = this.owned.get(partition);
    if (consumer === undefined) return;
    this.owned.delete(partition);
    const done = (async () => {
      await consumer.finish();
      await consumer.whenSettled();
      await consumer.unpin();
      await consumer.close();
      await this.membership.unclaim(partition);
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
   * goes back at once, with its claim; a pin with messages still running (a
   * handler past the unsubscribe timeout) is kept until it lapses, so nobody
   * starts on those keys meanwhile. Then this member leaves the membership.
   */
  async close(): Promise<void> {
    this.stopped = true;
    this.hub.removeTicker(this);
    await this.reconciling;
    const taken = [...this.owned.entries()];
    this.owned.clear();
    await Promise.all(
      taken.map(async ([partition, consumer]) => {
        await consumer.stop();
        const held = consumer.heldCount > 0;
        await consumer.unpin();
        await consumer.close();
        if (!held) await this.membership.unclaim(partition);
      }),
    );
    await Promise.all(this.releasing.values());
    await this.membership.leave();
  }
}

/**
 * A pin nobody uses: no pull request waits and nothing is unacknowledged. A
 * live holder always keeps a request open (PullConsumer refreshes its pin),
 * so this is a pin given to an orphaned request, or a member that stopped.
 */
function orphanedPin(info: ConsumerInfo): boolean {
  return pinHolder(info) !== undefined && info.num_waiting === 0 && info.num_ack_pending === 0;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
