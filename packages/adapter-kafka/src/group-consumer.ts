/**
 * GroupConsumer: one kafkajs consumer per consumer group per bus, subscribed
 * to every topic the bus consumes in that group.
 *
 * Pre-subscription. A Kafka group rebalances whenever a member's topic set
 * changes, and a kafkajs consumer cannot add topics while it runs. So the
 * topics planned before `start()` (core's `plannedConsumers`) are subscribed
 * together, once: the consumer starts when the last planned subscription of
 * the group registers, and every planned handler is active from its first
 * record. A subscription added after start (a new topic, or a second handler
 * for one) costs one controlled restart of this consumer — stop fetching,
 * recall what core has not started, let running handlers finish (up to
 * `restartDrainTimeoutMs`), commit,
 * leave, rejoin with the enlarged set — counted as `consumerRestarts`.
 * Concurrent additions share one restart. Removing the last handler of a
 * topic restarts the consumer without it after a short grace period, so the
 * group's other members get its partitions; closing the last handler of the
 * group stops the consumer.
 *
 * Consuming. `eachBatch` (kafkajs, with eachBatchAutoResolve and autoCommit
 * off) only moves records into the partition's backlog and advances the
 * fetch position; records are handed to core (`sink.deliver`) within the
 * subscription's `maxInFlight` budget. When the budget is spent or core's
 * pool pushes back, the rest waits in memory (the partition's backlog); a
 * partition keeps fetching ahead while its backlog is below `maxInFlight`
 * and is paused beyond it, resuming as records settle. kafkajs keeps
 * fetching (and heartbeating) for the other partitions meanwhile: no
 * eachBatch call ever blocks.
 *
 * Collaborators: SubscriptionRouter (subscription-router.ts: routes, plan),
 * RestartLoop (restart-loop.ts: when to restart), startKafkaConsumer
 * (consumer-start.ts), OffsetCommitter (offset-committer.ts: commits),
 * RebalanceHandler (rebalance.ts: rebalances), RebalanceDrain
 * (rebalance-drain.ts: the wait before rejoining), KafkaDelivery
 * (kafka-delivery.ts: one delivered record), AttemptLedger
 * (attempt-ledger.ts: delivery attempts that survive a crash, which gate
 * what each partition may deliver) and CrashIsolation (crash-isolation.ts:
 * one record at a time after a crash).
 */
import {
  BuslineError,
  CloseDeadline,
  ErrorCode,
  errorMessage,
  type ConsumerSpec,
  type DeliveredMessage,
  type DriverHooks,
  type DriverSubscription,
  type MessageSink,
} from '@busline/core/driver';
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { AttemptMarkReader } from './attempt-ledger.js';
import type { KafkaConfig } from './config.js';
import { crashIsolation, type IsolatedConsumer } from './crash-isolation.js';
import { startKafkaConsumer, type ConsumerStartHost } from './consumer-start.js';
import { kafkaDelivery, type DeliveryOwner } from './kafka-delivery.js';
import { closeAbandoned, kafkaError, protocolType } from './kafka-errors.js';
import { OffsetCommitter } from './offset-committer.js';
import { PartitionState, partitionKey } from './partition-state.js';
import { registerIdleFetchWait } from './kafkajs-idle-fetch-wait.js';
import { registerBeforeRejoin } from './kafkajs-rejoin-hook.js';
import { RebalanceHandler } from './rebalance.js';
import { RebalanceDrain } from './rebalance-drain.js';
import { RestartLoop } from './restart-loop.js';
import { SubscriptionRouter, type SinkEntry } from './subscription-router.js';

/** The least a partition may buffer ahead, however many partitions share `maxBufferedBytes`. */
const MIN_PREFETCH_BYTES = 64 * 1024;
/** How long an unsubscribe waits on the broker when core gives no bound (a driver used without a bus). */
const CLOSE_ENTRY_TIMEOUT_MS = 30_000;

export interface GroupConsumerOptions {
  kafka: Kafka;
  group: string;
  config: KafkaConfig['consumer'];
  /** `kafka.metadataMaxAgeMs`: how soon the consumer notices partitions added to its topics. */
  metadataMaxAgeMs: number;
  hooks: DriverHooks;
  /** Topics (with multiplicity) planned before start for this group. */
  plan: Map<string, number>;
  /** Called when a registration arrives that the plan did not announce. */
  onUnplanned(): void;
}

/**
 * One kafkajs consumer for one consumer group, shared by every subscription of that group on a bus:
 * Kafka rebalances on topic-set changes, so the group subscribes its whole set at once. Exported
 * for the adapter's tests; apps use `createEventBus`.
 */
export class GroupConsumer implements DeliveryOwner {
  readonly group: string;
  private consumer: Consumer | undefined;
  /** Topics the running consumer subscribed, sorted. */
  private current: string[] = [];
  private readonly router: SubscriptionRouter;
  private readonly restarts: RestartLoop;
  private readonly starter: ConsumerStartHost;
  private readonly committer: OffsetCommitter;
  /** The last subscription's close bound, for the consumer stop it asks the restart loop for. */
  private stopDeadline: CloseDeadline | undefined;
  private readonly rebalance: RebalanceHandler;
  private readonly marks: AttemptMarkReader;
  /** How the process-wide crash isolation sees this consumer. */
  private readonly isolated: IsolatedConsumer = {
    states: () => this.states.values(),
    routed: (state) => this.router.route(state) !== undefined,
    unsettled: () => this.unsettled,
    pump: (state) => this.pump(state),
  };
  private states = new Map<string, PartitionState>();
  /** eachBatch may accept records (false while stopping). */
  private accepting = false;
  private unsettled = 0;
  private drainWaiters: (() => void)[] = [];
  private reconnecting = false;
  /** A rebalance is being prepared: deliver nothing until the group is joined again. */
  private rebalancing = false;
  private readonly rebalanceDrain: RebalanceDrain;
  /** Removes the kafkajs hooks (before-rejoin, idle fetch wait) of this member's current membership. */
  private unregisterMember: (() => void) | undefined;
  private closed = false;

  constructor(private readonly options: GroupConsumerOptions) {
    this.group = options.group;
    this.router = new SubscriptionRouter(options.plan, () => this.options.onUnplanned());
    this.restarts = new RestartLoop({
      group: this.group,
      hooks: options.hooks,
      router: this.router,
      isClosed: () => this.closed,
      running: () => this.consumer !== undefined,
      topics: () => this.current,
      startConsumer: (topics) => this.startConsumer(topics),
      stopConsumer: () => this.stopConsumer(undefined, this.stopDeadline),
    });
    this.starter = {
      kafka: options.kafka,
      group: this.group,
      config: options.config,
      metadataMaxAgeMs: options.metadataMaxAgeMs,
      hooks: options.hooks,
      router: this.router,
      attach: (consumer, topics) => {
        this.consumer = consumer;
        this.current = topics;
        this.accepting = true;
      },
      detach: (consumer) => {
        this.accepting = false;
        if (this.consumer === consumer) {
          this.consumer = undefined;
          this.current = [];
        }
      },
      isCurrent: (consumer) => consumer === this.consumer,
      eachBatch: this.eachBatch,
      onGroupJoin: (consumer, payload) => this.onGroupJoin(consumer, payload),
      onCrash: (error, restart) => this.onCrash(error, restart),
      commit: () => this.commit(),
    };
    this.committer = new OffsetCommitter(this.group, options.hooks, {
      consumer: () => this.consumer,
      reconnecting: () => this.reconnecting,
      partitions: () => this.states.values(),
      closed: () => this.closed,
      committed: (served) => {
        for (const state of served) this.pump(state);
        crashIsolation.wake();
      },
    });
    this.marks = new AttemptMarkReader(options.kafka, this.group, options.config.attemptWindowRecords, options.hooks);
    crashIsolation.join(this.isolated);
    this.rebalance = new RebalanceHandler({
      hooks: options.hooks,
      router: this.router,
      stateOf: (key) => this.states.get(key),
      resume: (state) => {
        this.resumePartition(state);
        this.pump(state);
      },
    });
    this.rebalanceDrain = new RebalanceDrain({
      group: this.group,
      config: options.config,
      hooks: options.hooks,
      stopDelivering: () => {
        this.rebalancing = true;
        for (const entry of this.router.entries) entry.sink.recall?.();
      },
      unsettled: () => this.unsettled,
      drain: (timeoutMs) => this.drain(timeoutMs),
      commit: () => this.commit(),
    });
  }

  // ---- registration -------------------------------------------------------

  /**
   * Adds a handler. A planned one returns at once (the consumer starts when
   * the last planned one registers, and that call waits for the start); any
   * other waits until the consumer runs with its topic.
   */
  async register(spec: ConsumerSpec, sink: MessageSink): Promise<DriverSubscription> {
    if (this.closed) throw new BuslineError(ErrorCode.Closed, 'the Kafka driver is closed');
    const entry = this.router.add(spec, sink);
    const subscription: DriverSubscription = {
      stop: () => this.stopEntry(entry),
      close: (options) => this.closeEntry(entry, CloseDeadline.in(options?.timeoutMs ?? CLOSE_ENTRY_TIMEOUT_MS)),
    };
    if (this.router.awaitsMorePlanned(spec.topic)) return subscription;
    await this.restarts.await(entry);
    return subscription;
  }

  /** Starts with whatever registered so far (the plan will not complete). */
  abandonPlan(): void {
    if (!this.router.closePlan()) return;
    if (this.router.entries.size > 0) this.restarts.kick();
  }

  private async stopEntry(entry: SinkEntry): Promise<void> {
    if (!entry.active) return;
    entry.active = false;
    this.router.removeRoute(entry);
    // Its waiting partitions go to the topic's other subscriptions, once this one settled what it holds of them.
    const waiting = [...entry.waiting];
    entry.waiting.clear();
    for (const state of waiting) this.pump(state);
    if (!this.closed && this.consumer) this.restarts.scheduleRemoval();
  }

  /** The subscription's commit, and with the last one the consumer's stop, each waited for until `deadline`. */
  private async closeEntry(entry: SinkEntry, deadline: CloseDeadline): Promise<void> {
    if (entry.closed) return;
    await this.stopEntry(entry);
    entry.closed = true;
    await deadline.within(this.commit(), `the commit of consumer group "${this.group}"`);
    this.router.entries.delete(entry);
    if (this.router.entries.size === 0 && !this.closed) {
      this.restarts.cancelRemoval();
      this.stopDeadline = deadline;
      this.restarts.kick();
      await deadline.within(this.restarts.idle(), `stopping the consumer of group "${this.group}"`);
      this.stopDeadline = undefined;
    }
    if (deadline.abandoned.length > 0) this.options.hooks.error(closeAbandoned(`unsubscribing from consumer group "${this.group}"`, deadline.abandoned, false), 'kafka consumer');
  }

  // ---- starting and stopping the consumer (RestartLoop decides when) -------

  private async startConsumer(topics: string[]): Promise<void> {
    await startKafkaConsumer(this.starter, topics);
    this.committer.startTimer(this.options.config.commitIntervalMs);
  }

  /**
   * Stops fetching, lets delivered records settle (bounded), commits, leaves the group. With a
   * `deadline` (close), the commit and the leave stop waiting at it (the drain has its own bound
   * and stops the deadline while it runs).
   */
  private async stopConsumer(drainTimeoutMs = this.options.config.restartDrainTimeoutMs, deadline?: CloseDeadline): Promise<void> {
    const consumer = this.consumer;
    if (!consumer) return;
    this.accepting = false;
    for (const topic of this.current) {
      try {
        consumer.pause([{ topic }]);
      } catch {
        // not running (crashed): nothing is fetched anyway
      }
    }
    for (const state of this.states.values()) state.clearBacklog();
    // What core has not started goes back (re-read after the restart): the drain waits only for running handlers.
    for (const e of this.router.entries) {
      e.waiting.clear();
      e.sink.recall?.();
    }
    const bounded = (step: Promise<unknown>, what: string) => (deadline ? deadline.within(step, what) : step);
    const drained = await (deadline ? deadline.excluding(this.drain(drainTimeoutMs)) : this.drain(drainTimeoutMs));
    await bounded(this.commit(), `the final commit of consumer group "${this.group}"`);
    this.committer.stopTimer();
    let abandoned = 0;
    for (const state of this.states.values()) abandoned += state.revoke();
    if (!drained && abandoned > 0) {
      this.options.hooks.count('abandonedOnRestart', abandoned);
      this.options.hooks.error(
        new BuslineError(
          ErrorCode.DrainTimeout,
          `consumer group "${this.group}": ${abandoned} delivered messages were still running after ${drainTimeoutMs} ms; they stay uncommitted and will be delivered again`,
        ),
        'kafka consumer restart',
      );
    }
    // Records still running (drain timed out) keep their revoked states, so the next
    // owner of the partition here waits for them before delivering it again.
    this.states = new Map([...this.states].filter(([, s]) => s.unsettled > 0));
    this.consumer = undefined;
    this.current = [];
    this.rebalance.memberId = undefined;
    this.unregisterMember?.();
    const leaving = consumer.disconnect().catch((error: unknown) => {
      this.options.hooks.error(kafkaError(error, `leaving consumer group "${this.group}"`), 'kafka consumer');
    });
    await bounded(leaving, `leaving consumer group "${this.group}"`);
  }

  private drain(timeoutMs: number): Promise<boolean> {
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

  // ---- kafkajs events -----------------------------------------------------

  private onGroupJoin(consumer: Consumer, payload: { memberId: string; memberAssignment: Record<string, number[]> }): void {
    if (consumer !== this.consumer) return;
    this.rebalancing = false;
    this.rebalanceDrain.joined();
    this.unregisterMember?.();
    // kafkajs's own rejoins of this membership (from its fetch loop) wait for the drain too.
    const unregisterRejoin = registerBeforeRejoin(this.group, payload.memberId, (heartbeat) => this.rebalanceDrain.beforeRejoin(heartbeat));
    const unregisterIdleWait = registerIdleFetchWait(this.group, payload.memberId, this.options.config.idleFetchWaitMs);
    this.unregisterMember = () => {
      unregisterRejoin();
      unregisterIdleWait();
    };
    const next = this.rebalance.assign(consumer, payload, this.states);
    this.states = next;
    this.marks.read(next.values(), (state) => this.pump(state));
    this.updatePrefetch();
    // kafkajs keeps pauses per group session: set every assigned partition to what it should be.
    for (const state of next.values()) {
      if (this.shouldPause(state)) {
        state.paused = false;
        this.pausePartition(state);
      } else {
        state.paused = true;
        this.resumePartition(state);
      }
    }
    for (const state of next.values()) if (state.backlogSize > 0) this.pump(state);
    if (this.reconnecting) {
      this.reconnecting = false;
      this.options.hooks.connection('connected', `consumer group "${this.group}" rejoined`, `consumer group ${this.group}`);
    }
  }

  private onCrash(error: Error, restart: boolean): void {
    this.options.hooks.count('consumerCrashes');
    this.options.hooks.error(kafkaError(error, `the Kafka consumer of group "${this.group}" crashed${restart ? ' (kafkajs restarts it)' : ''}`), 'kafka consumer');
    this.reconnecting = true;
    this.options.hooks.connection(restart ? 'reconnecting' : 'disconnected', `consumer group "${this.group}": ${errorMessage(error)}`, `consumer group ${this.group}`);
    if (!restart && !this.closed) {
      // kafkajs gave up on this consumer: replace it.
      this.restarts.forceRestartSoon();
    }
  }

  // ---- delivery -----------------------------------------------------------

  private readonly eachBatch = async (payload: EachBatchPayload): Promise<void> => {
    const { batch } = payload;
    const messages = batch.messages;
    if (messages.length === 0) return;
    const key = partitionKey(batch.topic, batch.partition);
    let state = this.states.get(key);
    if (!this.accepting) {
      payload.pause();
      return;
    }
    if (state === undefined || state.revoked) {
      const fresh = new PartitionState(batch.topic, batch.partition);
      if (state !== undefined) this.rebalance.follow(state, fresh);
      this.states.set(key, (state = fresh));
      this.marks.read([fresh], (s) => this.pump(s));
      this.updatePrefetch();
    }
    state.accept(messages);
    payload.resolveOffset(messages[messages.length - 1]!.offset);
    this.pump(state);
    // Heartbeat here (kafkajs sends one at most every heartbeatIntervalMs), so a rebalance is
    // usually noticed inside eachBatch, where kafkajs waits for us before it rejoins.
    try {
      await payload.heartbeat();
    } catch (error) {
      // kafkajs waits for this eachBatch before it rejoins: drain here (its rejoin then finds the drain done).
      if (protocolType(error) === 'REBALANCE_IN_PROGRESS') await this.rebalanceDrain.beforeRejoin(() => payload.heartbeat());
      throw error;
    }
  };

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

  /** Per-partition share of the consumer's buffer, recomputed when the assignment changes. */
  private prefetchBytes = Number.POSITIVE_INFINITY;

  private updatePrefetch(): void {
    this.prefetchBytes = Math.max(MIN_PREFETCH_BYTES, Math.floor(this.options.config.maxBufferedBytes / Math.max(1, this.states.size)));
  }

  private pausePartition(state: PartitionState): void {
    if (state.paused || !this.consumer) return;
    state.paused = true;
    try {
      this.consumer.pause([{ topic: state.topic, partitions: [state.partition] }]);
    } catch {
      // not running: nothing is fetched anyway
    }
  }

  private resumePartition(state: PartitionState): void {
    if (!state.paused || !this.consumer || this.shouldPause(state)) return;
    state.paused = false;
    try {
      this.consumer.resume([{ topic: state.topic, partitions: [state.partition] }]);
    } catch {
      // not running
    }
  }

  /** Delivers as much of `state`'s backlog as its sink's budget allows; pauses the partition while a backlog remains. */
  private pump(state: PartitionState): void {
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
    if (state.ledger.wanted) void this.committer.commit(true);
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
      this.options.hooks.error(error instanceof Error ? error : new Error(String(error)), `delivering Kafka records of "${state.topic}"`);
      return;
    }
    if (result !== undefined) {
      entry.blocked = true;
      result.then(
        () => this.unblock(entry),
        (error: unknown) => {
          this.options.hooks.error(error instanceof Error ? error : new Error(String(error)), `delivering Kafka records of "${state.topic}"`);
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

  // ---- commits --------------------------------------------------------------

  /** Commits watermark + 1 of every partition that handled something new. Never rejects. */
  commit(): Promise<void> {
    return this.committer.commit();
  }

  /** What this consumer holds, for tests and diagnostics. */
  snapshot(): { topics: string[]; partitions: { topic: string; partition: number; watermark: number | undefined; committed: number | undefined; unsettled: number; backlog: number; paused: boolean }[] } {
    return {
      topics: [...this.current],
      partitions: [...this.states.values()].map((s) => ({
        topic: s.topic,
        partition: s.partition,
        watermark: s.watermark.watermark,
        committed: s.committed,
        unsettled: s.unsettled,
        backlog: s.backlogSize,
        paused: s.paused,
      })),
    };
  }

  // ---- shutdown ---------------------------------------------------------------

  /** Stops the consumer: delivered records get `drainTimeoutMs` to settle, then the final commit and leave, all within `deadline`. */
  async close(drainTimeoutMs: number, deadline: CloseDeadline): Promise<void> {
    this.closed = true;
    this.restarts.close(new BuslineError(ErrorCode.Closed, 'the Kafka driver closed before the consumer started'));
    await deadline.within(this.restarts.idle(), `the start or stop of the consumer of group "${this.group}" in progress`);
    await this.stopConsumer(drainTimeoutMs, deadline);
    await deadline.within(this.marks.close(), `the attempt ledger of group "${this.group}"`);
    crashIsolation.leave(this.isolated);
  }

  /** Simulates a crash for tests: leaves the group without draining or committing anything more. */
  async kill(): Promise<void> {
    this.closed = true;
    this.restarts.close();
    this.committer.stopTimer();
    this.accepting = false;
    this.unregisterMember?.();
    for (const state of this.states.values()) state.revoke();
    const consumer = this.consumer;
    this.consumer = undefined;
    await consumer?.disconnect().catch(() => undefined);
    await this.marks.close();
    crashIsolation.leave(this.isolated);
  }
}
