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
 * fetch position; PartitionFlow (partition-flow.ts) hands them to core
 * within each subscription's budget and pauses a partition that buffered
 * its share: no eachBatch call ever blocks.
 *
 * Collaborators: SubscriptionRouter (subscription-router.ts: routes, plan),
 * SubscriptionLifecycle (subscription-lifecycle.ts: register, stop, close),
 * RestartLoop (restart-loop.ts: when to restart), startKafkaConsumer
 * (consumer-start.ts), OffsetCommitter (offset-committer.ts: commits),
 * RebalanceHandler (rebalance.ts: rebalances), RebalanceDrain
 * (rebalance-drain.ts: the wait before rejoining), PartitionFlow
 * (partition-flow.ts: delivery and prefetch), KafkaDelivery
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
  type DriverHooks,
  type DriverSubscription,
  type MessageSink,
} from '@busline/core/driver';
import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import { AttemptMarkReader } from './attempt-ledger.js';
import type { KafkaConfig } from './config.js';
import { crashIsolation } from './crash-isolation.js';
import { startKafkaConsumer, type ConsumerStartHost } from './consumer-start.js';
import { kafkaError, protocolType } from './kafka-errors.js';
import { OffsetCommitter } from './offset-committer.js';
import { PartitionFlow } from './partition-flow.js';
import { PartitionState, partitionKey } from './partition-state.js';
import { registerIdleFetchWait } from './kafkajs-idle-fetch-wait.js';
import { registerBeforeRejoin } from './kafkajs-rejoin-hook.js';
import { RebalanceHandler } from './rebalance.js';
import { RebalanceDrain } from './rebalance-drain.js';
import { RestartLoop } from './restart-loop.js';
import { SubscriptionLifecycle } from './subscription-lifecycle.js';
import { SubscriptionRouter } from './subscription-router.js';

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
export class GroupConsumer {
  readonly group: string;
  private consumer: Consumer | undefined;
  /** Topics the running consumer subscribed, sorted. */
  private current: string[] = [];
  private readonly router: SubscriptionRouter;
  private readonly restarts: RestartLoop;
  private readonly starter: ConsumerStartHost;
  private readonly subscriptions: SubscriptionLifecycle;
  private readonly committer: OffsetCommitter;
  private readonly flow: PartitionFlow;
  private readonly rebalance: RebalanceHandler;
  private readonly marks: AttemptMarkReader;
  private reconnecting = false;
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
      stopConsumer: () => this.stopConsumer(undefined, this.subscriptions.stopDeadline),
    });
    this.subscriptions = new SubscriptionLifecycle({
      group: this.group,
      hooks: options.hooks,
      router: this.router,
      restarts: this.restarts,
      isClosed: () => this.closed,
      running: () => this.consumer !== undefined,
      pump: (state) => this.flow.pump(state),
      commit: () => this.commit(),
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
        this.flow.accepting = true;
      },
      detach: (consumer) => {
        this.flow.accepting = false;
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
      partitions: () => this.flow.states.values(),
      closed: () => this.closed,
      committed: (served) => {
        for (const state of served) this.flow.pump(state);
        crashIsolation.wake();
      },
    });
    this.flow = new PartitionFlow(this.router, {
      config: options.config,
      hooks: options.hooks,
      committer: this.committer,
      consumer: () => this.consumer,
    });
    this.marks = new AttemptMarkReader(options.kafka, this.group, options.config.attemptWindowRecords, options.hooks);
    crashIsolation.join(this.flow.isolated);
    this.rebalance = new RebalanceHandler({
      hooks: options.hooks,
      router: this.router,
      stateOf: (key) => this.flow.states.get(key),
      resume: (state) => {
        this.flow.resumePartition(state);
        this.flow.pump(state);
      },
    });
    this.rebalanceDrain = new RebalanceDrain({
      group: this.group,
      config: options.config,
      hooks: options.hooks,
      stopDelivering: () => {
        this.flow.rebalancing = true;
        for (const entry of this.router.entries) entry.sink.recall?.();
      },
      unsettled: () => this.flow.unsettled,
      drain: (timeoutMs) => this.flow.drain(timeoutMs),
      commit: () => this.commit(),
    });
  }

  // ---- registration (SubscriptionLifecycle) ----------------------------------

  /**
   * Adds a handler. A planned one returns at once (the consumer starts when
   * the last planned one registers, and that call waits for the start); any
   * other waits until the consumer runs with its topic.
   */
  register(spec: ConsumerSpec, sink: MessageSink): Promise<DriverSubscription> {
    return this.subscriptions.register(spec, sink);
  }

  /** Starts with whatever registered so far (the plan will not complete). */
  abandonPlan(): void {
    this.subscriptions.abandonPlan();
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
    this.flow.accepting = false;
    for (const topic of this.current) {
      try {
        consumer.pause([{ topic }]);
      } catch {
        // not running (crashed): nothing is fetched anyway
      }
    }
    for (const state of this.flow.states.values()) state.clearBacklog();
    // What core has not started goes back (re-read after the restart): the drain waits only for running handlers.
    for (const e of this.router.entries) {
      e.waiting.clear();
      e.sink.recall?.();
    }
    const bounded = (step: Promise<unknown>, what: string) => (deadline ? deadline.within(step, what) : step);
    const drained = await (deadline ? deadline.excluding(this.flow.drain(drainTimeoutMs)) : this.flow.drain(drainTimeoutMs));
    await bounded(this.commit(), `the final commit of consumer group "${this.group}"`);
    this.committer.stopTimer();
    let abandoned = 0;
    for (const state of this.flow.states.values()) abandoned += state.revoke();
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
    this.flow.states = new Map([...this.flow.states].filter(([, s]) => s.unsettled > 0));
    this.consumer = undefined;
    this.current = [];
    this.rebalance.memberId = undefined;
    this.unregisterMember?.();
    const leaving = consumer.disconnect().catch((error: unknown) => {
      this.options.hooks.error(kafkaError(error, `leaving consumer group "${this.group}"`), 'kafka consumer');
    });
    await bounded(leaving, `leaving consumer group "${this.group}"`);
  }

  // ---- kafkajs events -----------------------------------------------------

  private onGroupJoin(consumer: Consumer, payload: { memberId: string; memberAssignment: Record<string, number[]> }): void {
    if (consumer !== this.consumer) return;
    this.flow.rebalancing = false;
    this.rebalanceDrain.joined();
    this.unregisterMember?.();
    // kafkajs's own rejoins of this membership (from its fetch loop) wait for the drain too.
    const unregisterRejoin = registerBeforeRejoin(this.group, payload.memberId, (heartbeat) => this.rebalanceDrain.beforeRejoin(heartbeat));
    const unregisterIdleWait = registerIdleFetchWait(this.group, payload.memberId, this.options.config.idleFetchWaitMs);
    this.unregisterMember = () => {
      unregisterRejoin();
      unregisterIdleWait();
    };
    const next = this.rebalance.assign(consumer, payload, this.flow.states);
    this.flow.states = next;
    this.marks.read(next.values(), (state) => this.flow.pump(state));
    this.flow.updatePrefetch();
    this.flow.joined();
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
    const flow = this.flow;
    let state = flow.states.get(key);
    if (!flow.accepting) {
      payload.pause();
      return;
    }
    if (state === undefined || state.revoked) {
      const fresh = new PartitionState(batch.topic, batch.partition);
      if (state !== undefined) this.rebalance.follow(state, fresh);
      flow.states.set(key, (state = fresh));
      this.marks.read([fresh], (s) => flow.pump(s));
      flow.updatePrefetch();
    }
    state.accept(messages);
    payload.resolveOffset(messages[messages.length - 1]!.offset);
    flow.pump(state);
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

  // ---- commits --------------------------------------------------------------

  /** Commits watermark + 1 of every partition that handled something new. Never rejects. */
  commit(): Promise<void> {
    return this.committer.commit();
  }

  /** What this consumer holds, for tests and diagnostics. */
  snapshot(): { topics: string[]; partitions: { topic: string; partition: number; watermark: number | undefined; committed: number | undefined; unsettled: number; backlog: number; paused: boolean }[] } {
    return {
      topics: [...this.current],
      partitions: [...this.flow.states.values()].map((s) => ({
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
    crashIsolation.leave(this.flow.isolated);
  }

  /** Simulates a crash for tests: leaves the group without draining or committing anything more. */
  async kill(): Promise<void> {
    this.closed = true;
    this.restarts.close();
    this.committer.stopTimer();
    this.flow.accepting = false;
    this.unregisterMember?.();
    for (const state of this.flow.states.values()) state.revoke();
    const consumer = this.consumer;
    this.consumer = undefined;
    await consumer?.disconnect().catch(() => undefined);
    await this.marks.close();
    crashIsolation.leave(this.flow.isolated);
  }
}
