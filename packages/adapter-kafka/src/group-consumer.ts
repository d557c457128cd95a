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
 * let delivered records finish (up to `restartDrainTimeoutMs`), commit,
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
 * Commits. Per partition, core's AckWatermark tracks delivered offsets; the
 * committed offset is watermark + 1, every `commitIntervalMs`, when a
 * rebalance starts, before a restart and on close. A failed or nacked record
 * holds the commit back until it is dead-lettered or handled, so records
 * after it may be handled again after a restart (at-least-once), but none is
 * ever committed unhandled.
 *
 * Rebalances (another member joins or leaves). kafkajs offers no revocation
 * callback, but it waits for running eachBatch calls before it rejoins. So
 * eachBatch heartbeats itself: when that heartbeat reports a rebalance,
 * delivery stops, the records already delivered get time to finish (bounded
 * by half the session and rebalance timeouts and `restartDrainTimeoutMs`),
 * the watermarks are committed with the current generation, and only then
 * does kafkajs rejoin — the partitions this member loses are handed over with
 * nothing in flight. When kafkajs notices the rebalance elsewhere (an idle
 * fetch), the watermarks are committed at once instead (REBALANCING) and
 * records still running on a lost partition are abandoned: they finish, but
 * no longer move a commit, and the new owner reads from the committed offset,
 * so such a record may be handled on both members (never lost; counted as
 * `abandonedOnRebalance`). After the join (GROUP_JOIN) a partition this
 * member keeps continues where it was (records in flight stay tracked, the
 * fetch position is moved past what was accepted, nothing is delivered
 * twice). If this member gets a partition back while records of its previous
 * ownership are still running, it delivers nothing of that partition until
 * they settled, so a key never runs twice at once here.
 */
import {
  BuslineError,
  ErrorCode,
  errorMessage,
  type ConsumerSpec,
  type DeliveredMessage,
  type DriverHooks,
  type DriverSubscription,
  type MessageSink,
} from '@busline/core/driver';
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import type { KafkaConfig } from './config.js';
import { kafkaError, protocolType } from './kafka-errors.js';
import { PartitionState, partitionKey } from './partition-state.js';

/** After a handler was removed, wait this long for more removals before restarting without its topic. */
const REMOVAL_RESTART_DELAY_MS = 500;
/** The least a partition may buffer ahead, however many partitions share `maxBufferedBytes`. */
const MIN_PREFETCH_BYTES = 64 * 1024;
/** Backoff before retrying a consumer start that failed with nothing waiting on it. */
const RESTART_RETRY_MS = 2_000;

export interface GroupConsumerOptions {
  kafka: Kafka;
  group: string;
  config: KafkaConfig['consumer'];
  hooks: DriverHooks;
  /** Topics (with multiplicity) planned before start for this group. */
  plan: Map<string, number>;
  /** Called when a registration arrives that the plan did not announce. */
  onUnplanned(): void;
}

interface SinkEntry {
  readonly spec: ConsumerSpec;
  readonly sink: MessageSink;
  active: boolean;
  closed: boolean;
  /** Delivered to the sink and not settled. */
  inflight: number;
  /** Pump again once inflight is at or below this. */
  readonly lowWater: number;
  /** A `deliver` promise is pending (the pool pushes back). */
  blocked: boolean;
  pumpScheduled: boolean;
  /** Partitions with a backlog waiting for this sink's budget, in arrival order. */
  readonly waiting: Set<PartitionState>;
}

interface Waiter {
  entry: SinkEntry;
  resolve(): void;
  reject(error: unknown): void;
}

/** A kafkajs header value (a Buffer, or several for a repeated name: the last wins) as text. */
function headerText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) return value.length ? headerText(value[value.length - 1]) : undefined;
  // toString() without an encoding argument takes Node's UTF-8 fast path.
  return Buffer.isBuffer(value) ? value.toString() : String(value);
}

const EMPTY = new Uint8Array(0);

class KafkaDelivery implements DeliveredMessage {
  readonly deliveryCount = 1;
  private settled = false;
  /** `partition:offset`: the record's identity within its group, the same on every delivery of it. */
  readonly deliveryId: string;

  constructor(
    private readonly owner: GroupConsumer,
    private readonly entry: SinkEntry,
    private readonly state: PartitionState,
    private readonly record: KafkaMessage,
    private readonly offset: number,
    readonly topic: string,
    readonly key: string | undefined,
    readonly headers: Record<string, string>,
    readonly body: Uint8Array,
  ) {
    this.deliveryId = `${state.partition}:${offset}`;
  }

  ack(): void {
    if (this.settled) return;
    this.settled = true;
    this.owner.settle(this.entry, this.state, this.offset, true, this.record);
  }

  term(): void {
    this.ack();
  }

  nack(_delayMs: number): void {
    if (this.settled) return;
    this.settled = true;
    this.owner.settle(this.entry, this.state, this.offset, false, this.record);
  }
}

export class GroupConsumer {
  readonly group: string;
  private consumer: Consumer | undefined;
  /** Topics the running consumer subscribed, sorted. */
  private current: string[] = [];
  private readonly entries = new Set<SinkEntry>();
  /** Active sinks per topic; partition p of a topic goes to sinks[p % n]. */
  private readonly routes = new Map<string, SinkEntry[]>();
  private states = new Map<string, PartitionState>();
  private memberId: string | undefined;
  /** eachBatch may accept records (false while stopping). */
  private accepting = false;
  private unsettled = 0;
  private readonly plan: Map<string, number>;
  private planOpen: boolean;
  private dirty = false;
  private forceRestart = false;
  private loop: Promise<void> | undefined;
  private waiters: Waiter[] = [];
  private removalTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private commitTimer: NodeJS.Timeout | undefined;
  private committing: Promise<void> | undefined;
  private commitAgain = false;
  private drainWaiters: (() => void)[] = [];
  private reconnecting = false;
  /** A rebalance is being prepared: deliver nothing until the group is joined again. */
  private rebalancing = false;
  private rebalanceDrain: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly options: GroupConsumerOptions) {
    this.group = options.group;
    this.plan = new Map(options.plan);
    this.planOpen = [...this.plan.values()].some((n) => n > 0);
  }

  // ---- registration -------------------------------------------------------

  /**
   * Adds a handler. A planned one returns at once (the consumer starts when
   * the last planned one registers, and that call waits for the start); any
   * other waits until the consumer runs with its topic.
   */
  async register(spec: ConsumerSpec, sink: MessageSink): Promise<DriverSubscription> {
    if (this.closed) throw new BuslineError(ErrorCode.Closed, 'the Kafka driver is closed');
    const maxInFlight = Math.max(1, spec.maxInFlight);
    const entry: SinkEntry = {
      spec: { ...spec, maxInFlight },
      sink,
      active: true,
      closed: false,
      inflight: 0,
      lowWater: maxInFlight - Math.max(1, Math.floor(maxInFlight / 4)),
      blocked: false,
      pumpScheduled: false,
      waiting: new Set(),
    };
    this.entries.add(entry);
    const subscription: DriverSubscription = {
      stop: () => this.stopEntry(entry),
      close: () => this.closeEntry(entry),
    };
    const planned = this.plan.get(spec.topic) ?? 0;
    if (this.planOpen && planned > 0) {
      this.plan.set(spec.topic, planned - 1);
      if ([...this.plan.values()].some((n) => n > 0)) return subscription;
      this.planOpen = false;
    } else if (this.planOpen) {
      this.options.onUnplanned();
    }
    await this.await(entry);
    return subscription;
  }

  /** Starts with whatever registered so far (the plan will not complete). */
  abandonPlan(): void {
    if (!this.planOpen) return;
    this.planOpen = false;
    if (this.entries.size > 0) this.kick();
  }

  private await(entry: SinkEntry): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ entry, resolve, reject });
      this.kick();
    });
  }

  private addRoute(entry: SinkEntry): void {
    const list = this.routes.get(entry.spec.topic);
    if (list) list.push(entry);
    else this.routes.set(entry.spec.topic, [entry]);
  }

  private removeRoute(entry: SinkEntry): void {
    const list = this.routes.get(entry.spec.topic);
    if (!list) return;
    const i = list.indexOf(entry);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.routes.delete(entry.spec.topic);
  }

  private route(state: PartitionState): SinkEntry | undefined {
    const list = this.routes.get(state.topic);
    if (!list || list.length === 0) return undefined;
    return list.length === 1 ? list[0] : list[state.partition % list.length];
  }

  private async stopEntry(entry: SinkEntry): Promise<void> {
    if (!entry.active) return;
    entry.active = false;
    this.removeRoute(entry);
    // Its waiting partitions go to the topic's other subscriptions, once this one settled what it holds of them.
    const waiting = [...entry.waiting];
    entry.waiting.clear();
    for (const state of waiting) this.pump(state);
    if (!this.closed && this.consumer) this.scheduleRemoval();
  }

  private async closeEntry(entry: SinkEntry): Promise<void> {
    if (entry.closed) return;
    await this.stopEntry(entry);
    entry.closed = true;
    await this.commit();
    this.entries.delete(entry);
    if (this.entries.size === 0 && !this.closed) {
      if (this.removalTimer) clearTimeout(this.removalTimer);
      this.removalTimer = undefined;
      this.kick();
      await this.idle();
    }
  }

  private scheduleRemoval(): void {
    if (this.removalTimer) return;
    this.removalTimer = setTimeout(() => {
      this.removalTimer = undefined;
      this.kick();
    }, REMOVAL_RESTART_DELAY_MS);
    this.removalTimer.unref();
  }

  // ---- the reconcile loop: (re)start the consumer with the wanted topics ----

  private wantedTopics(): string[] {
    const topics = new Set<string>();
    for (const e of this.entries) if (e.active) topics.add(e.spec.topic);
    return [...topics].sort();
  }

  /** Runs the reconcile loop soon (registrations arriving in the same turn share one round). */
  private kick(): void {
    this.dirty = true;
    if (this.loop || this.closed) return;
    this.loop = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.runLoop())
      .finally(() => {
        this.loop = undefined;
        if (this.dirty && !this.closed) this.kick();
      });
  }

  private async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  private async runLoop(): Promise<void> {
    while (this.dirty && !this.closed) {
      this.dirty = false;
      const serving = this.waiters.splice(0);
      const wanted = this.wantedTopics();
      const changed = wanted.length !== this.current.length || wanted.some((t, i) => t !== this.current[i]);
      if (serving.length === 0 && !changed && !this.forceRestart) continue;
      this.forceRestart = false;
      const restarting = this.consumer !== undefined;
      try {
        if (this.consumer) await this.stopConsumer();
        for (const e of this.entries) if (e.active && !this.routes.get(e.spec.topic)?.includes(e)) this.addRoute(e);
        if (wanted.length > 0 && !this.closed) {
          await this.startConsumer(wanted);
          if (restarting) this.options.hooks.count('consumerRestarts');
        }
        for (const w of serving) w.resolve();
      } catch (error) {
        const failure = kafkaError(error, `starting the Kafka consumer of group "${this.group}" for ${wanted.join(', ')}`);
        for (const w of serving) {
          this.entries.delete(w.entry);
          this.removeRoute(w.entry);
          w.reject(failure);
        }
        if (serving.length > 0) {
          this.dirty = true; // try again without the registrations that failed
        } else if (!this.closed) {
          this.options.hooks.error(failure, `kafka consumer (group ${this.group})`);
          this.scheduleRetry();
        }
      }
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.forceRestart = true;
      this.kick();
    }, RESTART_RETRY_MS);
    this.retryTimer.unref();
  }

  private startFromEarliest(topic: string): boolean {
    let earliest = false;
    for (const e of this.entries) {
      if (e.spec.topic !== topic || !e.active) continue;
      if (e.spec.persistence !== 'ephemeral' && e.spec.startFrom === 'earliest') earliest = true;
    }
    return earliest;
  }

  private async startConsumer(topics: string[]): Promise<void> {
    const c = this.options.config;
    const consumer = this.options.kafka.consumer({
      groupId: this.group,
      sessionTimeout: c.sessionTimeoutMs,
      rebalanceTimeout: c.rebalanceTimeoutMs,
      heartbeatInterval: c.heartbeatIntervalMs,
      maxBytesPerPartition: c.maxBytesPerPartition,
      maxBytes: c.maxBytes,
      maxWaitTimeInMs: c.maxWaitTimeMs,
      allowAutoTopicCreation: false,
    });
    const latest = topics.some((t) => !this.startFromEarliest(t));
    let joined!: () => void;
    let failed!: (error: unknown) => void;
    let fetched!: () => void;
    const join = new Promise<void>((resolve, reject) => {
      joined = resolve;
      failed = reject;
    });
    const firstFetch = new Promise<void>((resolve) => (fetched = resolve));
    let starting = true;
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      this.onGroupJoin(consumer, event.payload);
      joined();
    });
    consumer.on(consumer.events.FETCH, () => fetched());
    consumer.on(consumer.events.REBALANCING, () => {
      if (consumer !== this.consumer) return;
      this.options.hooks.count('rebalances');
      void this.commit();
    });
    consumer.on(consumer.events.CRASH, (event) => {
      const { error, restart } = event.payload;
      if (starting) {
        if (!restart) failed(error);
        return;
      }
      if (consumer !== this.consumer) return;
      this.onCrash(error, restart);
    });

    try {
      await consumer.connect();
      for (const topic of topics) await consumer.subscribe({ topics: [topic], fromBeginning: this.startFromEarliest(topic) });
      this.consumer = consumer;
      this.current = topics;
      this.accepting = true;
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: c.partitionsConsumedConcurrently,
        eachBatch: this.eachBatch,
      });
      await withTimeout(join, c.sessionTimeoutMs + c.rebalanceTimeoutMs, () => `joining consumer group "${this.group}" timed out`);
      // "latest" resolves at the first fetch: wait for it, so nothing published after subscribe() is skipped.
      if (latest) await withTimeout(firstFetch, Math.max(10_000, c.maxWaitTimeMs * 4), () => 'first fetch timed out').catch(() => undefined);
      starting = false;
    } catch (error) {
      starting = false;
      this.accepting = false;
      if (this.consumer === consumer) {
        this.consumer = undefined;
        this.current = [];
      }
      await consumer.disconnect().catch(() => undefined);
      throw error;
    }
    this.commitTimer = setInterval(() => void this.commit(), c.commitIntervalMs);
    this.commitTimer.unref();
  }

  /** Stops fetching, lets delivered records settle (bounded), commits, leaves the group. */
  private async stopConsumer(drainTimeoutMs = this.options.config.restartDrainTimeoutMs): Promise<void> {
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
    for (const e of this.entries) e.waiting.clear();
    const drained = await this.drain(drainTimeoutMs);
    await this.commit();
    if (this.commitTimer) clearInterval(this.commitTimer);
    this.commitTimer = undefined;
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
    this.memberId = undefined;
    try {
      await consumer.disconnect();
    } catch (error) {
      this.options.hooks.error(kafkaError(error, `leaving consumer group "${this.group}"`), 'kafka consumer');
    }
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
    const sameMember = this.memberId !== undefined && payload.memberId === this.memberId;
    this.memberId = payload.memberId;
    const next = new Map<string, PartitionState>();
    for (const [topic, partitions] of Object.entries(payload.memberAssignment)) {
      for (const partition of partitions) {
        const key = partitionKey(topic, partition);
        const old = this.states.get(key);
        if (old && sameMember && !old.nacked && !old.revoked) {
          // Kept across the rebalance: continue where it was, deliver nothing twice.
          next.set(key, old);
          if (old.lastAccepted >= 0) {
            try {
              consumer.seek({ topic, partition, offset: String(old.lastAccepted + 1) });
            } catch {
              // the consumer stopped meanwhile
            }
          }
          continue;
        }
        const fresh = new PartitionState(topic, partition);
        if (old && !old.revoked) this.retire(old, fresh);
        else if (old?.revoked && old.unsettled > 0) this.follow(old, fresh);
        next.set(key, fresh);
      }
    }
    for (const [key, old] of this.states) if (!next.has(key) && !old.revoked) this.retire(old, undefined);
    this.states = next;
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
      this.options.hooks.connection('connected', `consumer group "${this.group}" rejoined`);
    }
  }

  /** Ends `old`'s ownership; `successor` (same partition, new epoch) waits for its running records. */
  private retire(old: PartitionState, successor: PartitionState | undefined): void {
    const abandoned = old.revoke();
    for (const e of this.entries) e.waiting.delete(old);
    if (abandoned > 0) this.options.hooks.count('abandonedOnRebalance', abandoned);
    if (successor) this.follow(old, successor);
  }

  private follow(old: PartitionState, successor: PartitionState): void {
    if (old.unsettled === 0) return;
    successor.waitFor = old;
    old.onSettled = () => {
      if (successor.waitFor !== old) return;
      successor.waitFor = undefined;
      if (this.states.get(successor.key) === successor) {
        this.resumePartition(successor);
        this.pump(successor);
      }
    };
  }

  private onCrash(error: Error, restart: boolean): void {
    this.options.hooks.count('consumerCrashes');
    this.options.hooks.error(kafkaError(error, `the Kafka consumer of group "${this.group}" crashed${restart ? ' (kafkajs restarts it)' : ''}`), 'kafka consumer');
    this.reconnecting = true;
    this.options.hooks.connection(restart ? 'reconnecting' : 'disconnected', `consumer group "${this.group}": ${errorMessage(error)}`);
    if (!restart && !this.closed) {
      // kafkajs gave up on this consumer: replace it.
      this.forceRestart = true;
      this.scheduleRetry();
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
      if (state !== undefined) this.follow(state, fresh);
      this.states.set(key, (state = fresh));
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
      if (protocolType(error) === 'REBALANCE_IN_PROGRESS') await this.finishBeforeRejoin();
      throw error;
    }
  };

  /**
   * A rebalance started and kafkajs waits for this eachBatch before it
   * rejoins: stop delivering, let delivered records finish (bounded), commit
   * with the current generation. The partitions this member loses are then
   * handed over with nothing in flight.
   */
  private finishBeforeRejoin(): Promise<void> {
    this.rebalanceDrain ??= (async () => {
      this.rebalancing = true;
      const c = this.options.config;
      const drained = await this.drain(Math.min(c.restartDrainTimeoutMs, Math.floor(c.rebalanceTimeoutMs / 2), Math.floor(c.sessionTimeoutMs / 2)));
      if (drained) this.options.hooks.count('rebalanceDrains');
      await this.commit();
    })().finally(() => {
      this.rebalanceDrain = undefined;
    });
    return this.rebalanceDrain;
  }

  /**
   * A partition keeps fetching ahead while its undelivered backlog is below
   * its share of `maxBufferedBytes`, so the next fetch is on its way before
   * the backlog runs dry (kafkajs sleeps `maxWaitTimeMs` whenever every
   * partition is paused); beyond that it is paused.
   */
  private shouldPause(state: PartitionState): boolean {
    if (!this.accepting || this.rebalancing || state.revoked || state.waitFor !== undefined || this.route(state) === undefined) return true;
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
    const entry = this.route(state);
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
    const records = state.take(budget);
    const deliveries = new Array<DeliveredMessage>(records.length);
    for (let i = 0; i < records.length; i++) deliveries[i] = this.delivery(entry, state, records[i]!);
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

  private delivery(entry: SinkEntry, state: PartitionState, m: KafkaMessage): KafkaDelivery {
    const offset = Number(m.offset);
    // A requeued record is tracked already.
    if (offset > state.tracked) {
      state.watermark.track(offset);
      state.tracked = offset;
    }
    const headers: Record<string, string> = {};
    const raw = m.headers;
    if (raw) {
      for (const name in raw) {
        const value = raw[name];
        if (Buffer.isBuffer(value)) headers[name] = value.toString();
        else {
          const text = headerText(value);
          if (text !== undefined) headers[name] = text;
        }
      }
    }
    return new KafkaDelivery(
      this,
      entry,
      state,
      m,
      offset,
      state.topic,
      m.key === null || m.key === undefined ? undefined : m.key.toString(),
      headers,
      m.value ?? EMPTY,
    );
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
      if (state.unsettled === 0 && state.backlogSize > 0 && this.route(state) !== entry) {
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
    if (this.unsettled === 0 && this.drainWaiters.length > 0) for (const done of this.drainWaiters.splice(0)) done();
  }

  // ---- commits --------------------------------------------------------------

  /** Commits watermark + 1 of every partition that handled something new. Never rejects. */
  commit(): Promise<void> {
    if (this.committing) {
      this.commitAgain = true;
      return this.committing;
    }
    this.committing = (async () => {
      do {
        this.commitAgain = false;
        const consumer = this.consumer;
        // While kafkajs restarts a crashed consumer there is no group session to commit in.
        if (!consumer || this.reconnecting) return;
        const offsets: { topic: string; partition: number; offset: string }[] = [];
        const covered: [PartitionState, number][] = [];
        for (const state of this.states.values()) {
          if (state.revoked) continue;
          const offset = state.commitOffset();
          if (offset === undefined) continue;
          offsets.push({ topic: state.topic, partition: state.partition, offset: String(offset) });
          covered.push([state, offset]);
        }
        if (offsets.length === 0) continue;
        try {
          await consumer.commitOffsets(offsets);
          for (const [state, offset] of covered) if (state.committed === undefined || offset > state.committed) state.committed = offset;
          this.options.hooks.count('commits');
        } catch (error) {
          this.options.hooks.count('commitFailures');
          if (!this.closed) this.options.hooks.error(kafkaError(error, `committing offsets of consumer group "${this.group}"`), 'kafka commit');
        }
      } while (this.commitAgain);
    })().finally(() => {
      this.committing = undefined;
    });
    return this.committing;
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

  /** Stops the consumer: delivered records get `drainTimeoutMs` to settle, then the final commit and leave. */
  async close(drainTimeoutMs: number): Promise<void> {
    this.closed = true;
    for (const timer of [this.removalTimer, this.retryTimer]) if (timer) clearTimeout(timer);
    this.removalTimer = this.retryTimer = undefined;
    const closed = new BuslineError(ErrorCode.Closed, 'the Kafka driver closed before the consumer started');
    for (const w of this.waiters.splice(0)) w.reject(closed);
    await this.idle();
    await this.stopConsumer(drainTimeoutMs);
  }

  /** Simulates a crash for tests: leaves the group without draining or committing anything more. */
  async kill(): Promise<void> {
    this.closed = true;
    for (const timer of [this.removalTimer, this.retryTimer]) if (timer) clearTimeout(timer);
    if (this.commitTimer) clearInterval(this.commitTimer);
    this.commitTimer = undefined;
    this.accepting = false;
    for (const state of this.states.values()) state.revoke();
    const consumer = this.consumer;
    this.consumer = undefined;
    await consumer?.disconnect().catch(() => undefined);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new BuslineError(ErrorCode.BrokerUnavailable, message(), { retryable: true })), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
