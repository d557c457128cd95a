/**
 * RestartLoop: the reconcile loop of one GroupConsumer — (re)start its
 * kafkajs consumer with the wanted topics. Registrations that arrive in the
 * same turn share one round (one restart); removing a topic waits a grace
 * period for more removals; a start that failed with nothing waiting on it is
 * retried after a backoff. Starting and stopping the consumer itself is the
 * GroupConsumer's.
 */
import type { DriverHooks } from '@busline/core/driver';
import { kafkaError } from './kafka-errors.js';
import type { SinkEntry, SubscriptionRouter } from './subscription-router.js';

/** After a handler was removed, wait this long for more removals before restarting without its topic. */
const REMOVAL_RESTART_DELAY_MS = 500;
/** Backoff before retrying a consumer start that failed with nothing waiting on it. */
const RESTART_RETRY_MS = 2_000;

/** What the loop needs of its GroupConsumer. */
export interface RestartHost {
  readonly group: string;
  readonly hooks: DriverHooks;
  readonly router: SubscriptionRouter;
  isClosed(): boolean;
  /** A kafkajs consumer is running (or crashed and not replaced yet). */
  running(): boolean;
  /** Topics the running consumer subscribed, sorted. */
  topics(): readonly string[];
  startConsumer(topics: string[]): Promise<void>;
  stopConsumer(): Promise<void>;
}

interface Waiter {
  entry: SinkEntry;
  resolve(): void;
  reject(error: unknown): void;
}

export class RestartLoop {
  private dirty = false;
  private forceRestart = false;
  private loop: Promise<void> | undefined;
  private waiters: Waiter[] = [];
  private removalTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly host: RestartHost) {}

  /** Resolves once the consumer runs with `entry`'s topic. */
  await(entry: SinkEntry): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ entry, resolve, reject });
      this.kick();
    });
  }

  scheduleRemoval(): void {
    if (this.removalTimer) return;
    this.removalTimer = setTimeout(() => {
      this.removalTimer = undefined;
      this.kick();
    }, REMOVAL_RESTART_DELAY_MS);
    this.removalTimer.unref();
  }

  cancelRemoval(): void {
    if (this.removalTimer) clearTimeout(this.removalTimer);
    this.removalTimer = undefined;
  }

  /** Runs the reconcile loop soon (registrations arriving in the same turn share one round). */
  kick(): void {
    this.dirty = true;
    if (this.loop || this.host.isClosed()) return;
    this.loop = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.runLoop())
      .finally(() => {
        this.loop = undefined;
        if (this.dirty && !this.host.isClosed()) this.kick();
      });
  }

  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  private async runLoop(): Promise<void> {
    const { host } = this;
    while (this.dirty && !host.isClosed()) {
      this.dirty = false;
      const serving = this.waiters.splice(0);
      const wanted = host.router.wantedTopics();
      const current = host.topics();
      const changed = wanted.length !== current.length || wanted.some((t, i) => t !== current[i]);
      if (serving.length === 0 && !changed && !this.forceRestart) continue;
      this.forceRestart = false;
      const restarting = host.running();
      try {
        if (host.running()) await host.stopConsumer();
        host.router.routeActive();
        if (wanted.length > 0 && !host.isClosed()) {
          await host.startConsumer(wanted);
          if (restarting) host.hooks.count('consumerRestarts');
        }
        for (const w of serving) w.resolve();
      } catch (error) {
        const failure = kafkaError(error, `starting the Kafka consumer of group "${host.group}" for ${wanted.join(', ')}`);
        for (const w of serving) {
          host.router.entries.delete(w.entry);
          host.router.removeRoute(w.entry);
          w.reject(failure);
        }
        if (serving.length > 0) {
          this.dirty = true; // try again without the registrations that failed
        } else if (!host.isClosed()) {
          host.hooks.error(failure, `kafka consumer (group ${host.group})`);
          this.scheduleRetry();
        }
      }
    }
  }

  /** Replaces the running consumer: at the next round, at the latest after the retry backoff. */
  forceRestartSoon(): void {
    this.forceRestart = true;
    this.scheduleRetry();
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

  /** On close: no more rounds; `error` rejects every registration still waiting. */
  close(error?: unknown): void {
    for (const timer of [this.removalTimer, this.retryTimer]) if (timer) clearTimeout(timer);
    this.removalTimer = this.retryTimer = undefined;
    if (error !== undefined) for (const w of this.waiters.splice(0)) w.reject(error);
  }
}
