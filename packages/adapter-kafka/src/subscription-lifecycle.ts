/**
 * SubscriptionLifecycle: how a subscription of one GroupConsumer comes and
 * goes, as core sees it — registered (at once while the plan expects more,
 * otherwise once the consumer runs with its topic), stopped (its partitions
 * go to the topic's other subscriptions, the consumer restarts without the
 * topic after a grace period) and closed (its commit, and with the last one
 * the consumer's stop, within the close's deadline). When the consumer
 * restarts is RestartLoop's; what it delivers is PartitionFlow's.
 */
import { BuslineError, CloseDeadline, ErrorCode, type ConsumerSpec, type DriverHooks, type DriverSubscription, type MessageSink } from '@busline/core/driver';
import { closeAbandoned } from './kafka-errors.js';
import type { PartitionState } from './partition-state.js';
import type { RestartLoop } from './restart-loop.js';
import type { SinkEntry, SubscriptionRouter } from './subscription-router.js';

/** How long an unsubscribe waits on the broker when core gives no bound (a driver used without a bus). */
const CLOSE_ENTRY_TIMEOUT_MS = 30_000;

/** What the lifecycle needs of its GroupConsumer. */
export interface SubscriptionLifecycleHost {
  readonly group: string;
  readonly hooks: DriverHooks;
  readonly router: SubscriptionRouter;
  readonly restarts: RestartLoop;
  isClosed(): boolean;
  /** A kafkajs consumer is running (or crashed and not replaced yet). */
  running(): boolean;
  /** Delivers what `state` may deliver now. */
  pump(state: PartitionState): void;
  commit(): Promise<void>;
}

export class SubscriptionLifecycle {
  /** The last subscription's close bound, for the consumer stop it asks the restart loop for. */
  stopDeadline: CloseDeadline | undefined;

  constructor(private readonly host: SubscriptionLifecycleHost) {}

  /**
   * Adds a handler. A planned one returns at once (the consumer starts when
   * the last planned one registers, and that call waits for the start); any
   * other waits until the consumer runs with its topic.
   */
  async register(spec: ConsumerSpec, sink: MessageSink): Promise<DriverSubscription> {
    const { router, restarts } = this.host;
    if (this.host.isClosed()) throw new BuslineError(ErrorCode.Closed, 'the Kafka driver is closed');
    const entry = router.add(spec, sink);
    const subscription: DriverSubscription = {
      stop: () => this.stopEntry(entry),
      close: (options) => this.closeEntry(entry, CloseDeadline.in(options?.timeoutMs ?? CLOSE_ENTRY_TIMEOUT_MS)),
    };
    if (router.awaitsMorePlanned(spec.topic)) return subscription;
    await restarts.await(entry);
    return subscription;
  }

  /** Starts with whatever registered so far (the plan will not complete). */
  abandonPlan(): void {
    if (!this.host.router.closePlan()) return;
    if (this.host.router.entries.size > 0) this.host.restarts.kick();
  }

  private async stopEntry(entry: SinkEntry): Promise<void> {
    if (!entry.active) return;
    entry.active = false;
    this.host.router.removeRoute(entry);
    // Its waiting partitions go to the topic's other subscriptions, once this one settled what it holds of them.
    const waiting = [...entry.waiting];
    entry.waiting.clear();
    for (const state of waiting) this.host.pump(state);
    if (!this.host.isClosed() && this.host.running()) this.host.restarts.scheduleRemoval();
  }

  /** The subscription's commit, and with the last one the consumer's stop, each waited for until `deadline`. */
  private async closeEntry(entry: SinkEntry, deadline: CloseDeadline): Promise<void> {
    const { group, router, restarts } = this.host;
    if (entry.closed) return;
    await this.stopEntry(entry);
    entry.closed = true;
    await deadline.within(this.host.commit(), `the commit of consumer group "${group}"`);
    router.entries.delete(entry);
    if (router.entries.size === 0 && !this.host.isClosed()) {
      restarts.cancelRemoval();
      this.stopDeadline = deadline;
      restarts.kick();
      await deadline.within(restarts.idle(), `stopping the consumer of group "${group}"`);
      this.stopDeadline = undefined;
    }
    if (deadline.abandoned.length > 0) this.host.hooks.error(closeAbandoned(`unsubscribing from consumer group "${group}"`, deadline.abandoned, false), 'kafka consumer');
  }
}
