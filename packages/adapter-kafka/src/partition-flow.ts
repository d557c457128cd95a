/**
 * PartitionFlow: the flow of one GroupConsumer's fetched records to core —
 * which partition states are current, how many records each hands to its
 * subscription, and when kafkajs fetches ahead for it. Kept apart from
 * GroupConsumer, which starts, stops and rejoins the kafkajs consumer and
 * only tells the flow what is assigned and when it may deliver.
 *
 * Records are handed to core (`sink.deliver`) within the subscription's
 * `maxInFlight` budget. When the budget is spent or core's pool pushes back,
 * the rest waits in memory (the partition's backlog); a partition keeps
 * fetching ahead while its backlog is below its share of `maxBufferedBytes`
 * and is paused beyond it, resuming as records settle. kafkajs keeps
 * fetching (and heartbeating) for the other partitions meanwhile: no
 * eachBatch call ever blocks. Settlements come back here (DeliveryOwner),
 * return the budget and end a drain once nothing is unsettled.
 */
import type { DeliveredMessage, DriverHooks } from '@busline/core/driver';
import type { Consumer, KafkaMessage } from 'kafkajs';
import type { KafkaConfig } from './config.js';
import { crashIsolation, type IsolatedConsumer } from './crash-isolation.js';
import { kafkaDelivery, type DeliveryOwner } from './kafka-delivery.js';
import type { OffsetCommitter } from './offset-committer.js';
import type { PartitionState } from './partition-state.js';
import type { SinkEntry, SubscriptionRouter } from './subscription-router.js';

/** The least a partition may buffer ahead, however many partitions share `maxBufferedBytes`. */
const MIN_PREFETCH_BYTES = 64 * 1024;

/** What the flow needs of its GroupConsumer. */
export interface PartitionFlowHost {
  readonly config: KafkaConfig['consumer'];
  readonly hooks: DriverHooks;
  /** Commits the new attempt mark a partition's ledger asks for before it delivers more. */
  readonly committer: OffsetCommitter;
  /** The running kafkajs consumer, if any (pausing a partition needs one). */
  consumer(): Consumer | undefined;
}

export class PartitionFlow implements DeliveryOwner {
  /** The current state of every assigned partition, and revoked ones still settling after a stop. */
  states = new Map<string, PartitionState>();
  /** eachBatch may accept records (false while stopping). */
  accepting = false;
  /** A rebalance is being prepared: deliver nothing until the group is joined again. */
  rebalancing = false;
  /** Delivered to core and not yet settled, across partitions. */
  unsettled = 0;
  private drainWaiters: (() => void)[] = [];
  /** Per-partition share of the consumer's buffer, recomputed when the assignment changes. */
  private prefetchBytes = Number.POSITIVE_INFINITY;
  /** How the process-wide crash isolation sees this consumer. */
  readonly isolated: IsolatedConsumer = {
    states: () => this.states.values(),
    routed: (state) => this.router.route(state) !== undefined,
    unsettled: () => this.unsettled,
    pump: (state) => this.pump(state),
  };

  constructor(
    private readonly router: SubscriptionRouter,
    private readonly host: PartitionFlowHost,
  ) {}

  updatePrefetch(): void {
    this.prefetchBytes = Math.max(MIN_PREFETCH_BYTES, Math.floor(this.host.config.maxBufferedBytes / Math.max(1, this.states.size)));
  }

  /**
   * A partition keeps fetching ahead while its undelivered backlog is below
   * its share of `maxBufferedBytes`, so the next fetch is on its way before
   * the backlog runs dry (kafkajs sleeps `maxWaitTimeMs` whenever every
   * partition is paused); beyond that it is paused.
   */
  private shouldPause(state: PartitionState): boolean {
    if (!this.accepting || this.rebalancing || state.revoked || state.waitFor !== undefined || this.router.route(state) === undefined) return true;
    return state.backlogBytes >= this.prefetchBytes;
  }

  private pausePartition(state: PartitionState): void {
    if (state.paused) return;
    const consumer = this.host.consumer();
    if (!consumer) return;
    state.paused = true;
    try {
      consumer.pause([{ topic: state.topic, partitions: [state.partition] }]);
    } catch {
      // not running: nothing is fetched anyway
    }
  }

  resumePartition(state: PartitionState): void {
    if (!state.paused) return;
    const consumer = this.host.consumer();
    if (!consumer || this.shouldPause(state)) return;
    state.paused = false;
    try {
      consumer.resume([{ topic: state.topic, partitions: [state.partition] }]);
    } catch {
      // not running
    }
  }

  /** The member joined the group (`states` is its new assignment): every partition paused or resumed as it should be, then pumped. */
  joined(): void {
    // kafkajs keeps pauses per group session: set every assigned partition to what it should be.
    for (const state of this.states.values()) {
      if (this.shouldPause(state)) {
        state.paused = false;
        this.pausePartition(state);
      } else {
        state.paused = true;
        this.resumePartition(state);
      }
    }
    for (const state of this.states.values()) if (state.backlogSize > 0) this.pump(state);
  }

  /** Delivers as much of `state`'s backlog as its sink's budget allows; pauses the partition while a backlog remains. */
  pump(state: PartitionState): void {
    if (state.revoked || this.states.get(state.key) !== state) return;
    if (state.waitFor !== undefined) return this.pausePartition(state);
    if (state.backlogSize === 0) return this.resumePartition(state);
    const entry = this.router.route(state);
    if (entry === undefined || !this.accepting || this.rebalancing) return this.pausePartition(state);
    // Another subscription still holds records of this partition: nothing for this one before they are settled.
    if (state.unsettled > 0 && state.holder !== entry) {
      if (this.shouldPause(state)) this.pausePartition(state);
      return;
    }
    const budget = entry.spec.maxInFlight - entry.inflight;
    if (entry.blocked || budget <= 0) {
      entry.waiting.add(state);
      if (this.shouldPause(state)) this.pausePartition(state);
      return;
    }
    const isolated = crashIsolation.active();
    if (isolated && !crashIsolation.turn(state)) {
      if (this.shouldPause(state)) this.pausePartition(state);
      return;
    }
    const allowed = state.ledger.allowance(state, budget, isolated);
    if (state.ledger.wanted) void this.host.committer.commit(true);
    if (allowed === 0) {
      if (this.shouldPause(state)) this.pausePartition(state);
      return;
    }
    const records = state.take(allowed);
    const deliveries = new Array<DeliveredMessage>(records.length);
    for (let i = 0; i < records.length; i++) deliveries[i] = kafkaDelivery(this, entry, state, records[i]!);
    entry.inflight += records.length;
    state.holder = entry;
    state.unsettled += records.length;
    this.unsettled += records.length;
    if (state.backlogSize > 0) entry.waiting.add(state);
    if (this.shouldPause(state)) this.pausePartition(state);
    else this.resumePartition(state);
    let result: void | Promise<void>;
    try {
      result = entry.sink.deliver(deliveries);
    } catch (error) {
      this.host.hooks.error(error instanceof Error ? error : new Error(String(error)), `delivering Kafka records of "${state.topic}"`);
      // Given back, or they would hold the budget and every drain until its timeout.
      for (const d of deliveries) d.nack(0);
      return;
    }
    if (result !== undefined) {
      entry.blocked = true;
      result.then(
        () => this.unblock(entry),
        (error: unknown) => {
          this.host.hooks.error(error instanceof Error ? error : new Error(String(error)), `delivering Kafka records of "${state.topic}"`);
          this.unblock(entry);
        },
      );
    }
  }

  private unblock(entry: SinkEntry): void {
    entry.blocked = false;
    this.pumpSink(entry);
  }

  private pumpSink(entry: SinkEntry): void {
    for (const state of [...entry.waiting]) {
      if (entry.blocked || entry.inflight >= entry.spec.maxInFlight || !entry.active) return;
      entry.waiting.delete(state);
      this.pump(state);
    }
  }

  /** @internal called by a delivery, exactly once. */
  settle(entry: SinkEntry, state: PartitionState, offset: number, handled: boolean, record: KafkaMessage): void {
    entry.inflight--;
    state.unsettled--;
    this.unsettled--;
    if (!state.revoked) {
      if (handled) state.watermark.complete(offset);
      // Handed back by an unsubscribed subscription: the topic's next one gets it (Kafka would only after a restart).
      else if (!entry.active && this.states.get(state.key) === state) state.requeue(record);
      else state.nacked = true;
      if (state.unsettled === 0 && state.backlogSize > 0 && this.router.route(state) !== entry) {
        // The partition is free for the subscription it is routed to now.
        queueMicrotask(() => this.pump(state));
      }
    } else if (state.unsettled === 0 && state.onSettled) {
      const done = state.onSettled;
      state.onSettled = undefined;
      done();
    }
    if (entry.waiting.size > 0 && !entry.blocked && !entry.pumpScheduled && entry.inflight <= entry.lowWater) {
      entry.pumpScheduled = true;
      queueMicrotask(() => {
        entry.pumpScheduled = false;
        this.pumpSink(entry);
      });
    }
    if (this.unsettled === 0) crashIsolation.wake();
    if (this.unsettled === 0 && this.drainWaiters.length > 0) for (const done of this.drainWaiters.splice(0)) done();
  }

  /** Resolves true once nothing delivered is unsettled, false after `timeoutMs`. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.unsettled === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const i = this.drainWaiters.indexOf(done);
        if (i >= 0) this.drainWaiters.splice(i, 1);
        resolve(false);
      }, timeoutMs);
      this.drainWaiters.push(done);
    });
  }
}
