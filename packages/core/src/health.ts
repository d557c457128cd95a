/**
 * Health: what `bus.health()` reports (for Kubernetes probes and dashboards)
 * and the optional watcher that emits `health` events when a threshold is
 * crossed or cleared.
 *
 * Everything here reads counters the hot path keeps anyway (a subscription's
 * held and settled counts, the publish window) and runs only when asked or on
 * the watcher's unref'd timer: a check never touches a message. The broker's
 * backlog is asked for only with `{ backlog: true }` or a `backlogThreshold`.
 */
import type { Backlog, ConnectionState } from './driver.js';
import { errorField, redactSecrets, type Logger } from './logger.js';

/**
 * The overall verdict of `bus.health()`: `ok`, `degraded` (working, with a problem to look at) or
 * `down`.
 */
export type HealthStatus = 'ok' | 'degraded' | 'down';
/** Where a bus is in its life: created → starting → started → closing → closed. */
export type BusLifecycle = 'created' | 'starting' | 'started' | 'closing' | 'closed';
/**
 * `starting`: not yet attached to the broker. `consuming`: attached, making
 * progress or idle. `paused`: the broker's deliveries wait for room (the
 * subscription's maxInFlight or the bus's maxPending is full), handlers are
 * busy. `stalled`: messages are held and none was settled for
 * `health.stalledAfterMs`. `stopped`: unsubscribed or the bus is closing.
 */
export type SubscriptionState = 'starting' | 'consuming' | 'paused' | 'stalled' | 'stopped';

/** One broker connection in a HealthReport, with its state since when. */
export interface ConnectionHealth {
  /** `main`, or the name a driver gives a connection of its own (e.g. a Kafka consumer group). */
  name: string;
  /** The connection's state now. */
  state: ConnectionState;
  /** When it entered that state. */
  since: Date;
  /** What the driver said about the change (redacted of credentials). */
  detail?: string;
}

/**
 * One subscription in a HealthReport: its state, what it holds, and the broker's backlog when
 * asked.
 */
export interface SubscriptionHealth {
  /** The topic subscribed. */
  topic: string;
  /** The subscription's consumer group. */
  group: string;
  /** See SubscriptionState. */
  state: SubscriptionState;
  /** Delivered to this bus and not yet settled. */
  held: number;
  /** How long nothing was settled while messages were held (0 unless stalled). */
  stalledForMs: number;
  /** From the broker, with `{ backlog: true }`, where the adapter can tell (`Driver.describeBacklog`). */
  backlog?: Backlog;
  /** With a `health.backlogThreshold`: pending + unsettled is above it. */
  backlogOver?: boolean;
}

/**
 * What `bus.health()` resolves with: readiness and liveness in one object, for probes and
 * dashboards.
 */
export interface HealthReport {
  /** `down`: not started, closing, or the main connection is not connected. `degraded`: up, but reconnecting, stalled or over a backlog threshold. */
  status: HealthStatus;
  /** Where the bus is in its life. */
  bus: BusLifecycle;
  /** Each broker connection the driver holds. */
  connections: ConnectionHealth[];
  /** Each live subscription. */
  subscriptions: SubscriptionHealth[];
  /** The publish window's occupancy. */
  publisher: {
    /** Handed to the broker, not yet acknowledged. */
    inFlight: number;
    /** Waiting for room in the publish window (`publish.maxInFlight`). */
    waiting: number;
  };
  /** When the report was made. */
  checkedAt: Date;
}

/** Options of `bus.health()`. */
export interface HealthOptions {
  /** Ask the broker for each subscription's backlog (a round trip per subscription). */
  backlog?: boolean;
}

/** Emitted (as the bus's `health` event) when the watcher sees a threshold crossed or cleared. */
export interface HealthEvent {
  /** Which threshold was crossed or cleared. */
  type: 'stalled' | 'recovered' | 'backlogOver' | 'backlogUnder';
  /** The subscription's topic. */
  topic: string;
  /** The subscription's group. */
  group: string;
  /** How long nothing was settled while messages were held. */
  stalledForMs: number;
  /** The broker's backlog, for the backlog events. */
  backlog?: Backlog;
}

/** What health reads from a subscription (and its DeliveryInlet). */
export interface WatchedSubscription {
  /** The topic subscribed. */
  readonly topic: string;
  /** The subscription's consumer group. */
  readonly group: string;
  /** Attached to the broker. */
  readonly attached: boolean;
  /** Unsubscribed, or the bus is closing. */
  readonly stopped: boolean;
  /** The subscription's DeliveryInlet counters. */
  readonly inlet: {
    readonly held: number;
    /** Messages settled since the subscription began (only ever grows). */
    readonly settled: number;
    /** When the subscription last went from holding nothing to holding something (ms since epoch). */
    readonly busySince: number;
    /** The driver's deliveries wait for room. */
    readonly waitingForRoom: boolean;
  };
}

/** What the HealthMonitor reads from its bus. */
export interface HealthSource {
  /** Where the bus is in its life. */
  lifecycle(): BusLifecycle;
  /** The bus's live subscriptions. */
  subscriptions(): Iterable<WatchedSubscription>;
  /** The publish window's counts. */
  publisher(): HealthReport['publisher'];
  /** Undefined when the driver cannot tell. */
  readonly describeBacklog: ((topic: string, group: string) => Promise<Backlog | undefined>) | undefined;
}

/** The validated `health` config section. */
export interface HealthConfig {
  /** See the config's `health.stalledAfterMs`. */
  stalledAfterMs: number;
  /** See the config's `health.checkIntervalMs`. */
  checkIntervalMs: number;
  /** See the config's `health.backlogThreshold`. */
  backlogThreshold?: number | undefined;
}

/** The settled count a check last saw changing, and when. */
interface ProgressMark {
  settled: number;
  at: number;
}

/**
 * Tracks connection states and subscription progress for `bus.health()`, and with `checkIntervalMs`
 * watches on a timer and emits `health` events on changes.
 */
export class HealthMonitor {
  private readonly connectionStates = new Map<string, ConnectionHealth>();
  private readonly marks = new WeakMap<WatchedSubscription, ProgressMark>();
  /** What the watcher reported last per subscription, so events fire on changes only. */
  private readonly flagged = new WeakMap<WatchedSubscription, { stalled: boolean; over: boolean }>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private checking = false;

  constructor(
    private readonly source: HealthSource,
    private readonly config: HealthConfig,
    private readonly emit: (event: HealthEvent) => void,
    private readonly log: Logger,
  ) {}

  /** A driver's connection hook: remembered per connection name. */
  connection(state: ConnectionState, detail: string | undefined, name = 'main'): void {
    // Reports are served over HTTP by probes: no credentials in them, whatever a driver passed.
    this.connectionStates.set(name, { name, state, since: new Date(), ...(detail !== undefined ? { detail: redactSecrets(detail) } : {}) });
  }

  /** Builds a HealthReport now (with the broker's backlogs when `backlog` is set). */
  async report(options: HealthOptions = {}): Promise<HealthReport> {
    return (await this.evaluate(options)).report;
  }

  /** The report, and which subscription each entry of it describes (for the watcher). */
  private async evaluate(options: HealthOptions): Promise<{ report: HealthReport; watched: WatchedSubscription[] }> {
    const now = Date.now();
    const entries = [...this.source.subscriptions()].map((s) => ({ s, health: this.subscriptionHealth(s, now) }));
    const describe = this.source.describeBacklog;
    const threshold = this.config.backlogThreshold;
    if ((options.backlog === true || threshold !== undefined) && describe !== undefined) {
      await Promise.all(
        entries.map(async ({ s, health }) => {
          if (!s.attached || s.stopped) return;
          try {
            const backlog = await describe(s.topic, s.group);
            if (backlog === undefined) return;
            health.backlog = backlog;
            if (threshold !== undefined) health.backlogOver = backlog.pending + backlog.unsettled > threshold;
          } catch (error) {
            this.log.warn({ topic: s.topic, group: s.group, err: errorField(error) }, 'reading the backlog from the broker failed');
          }
        }),
      );
    }
    const subscriptions = entries.map((e) => e.health);
    const connections = [...this.connectionStates.values()];
    const report: HealthReport = {
      status: this.status(connections, subscriptions),
      bus: this.source.lifecycle(),
      connections,
      subscriptions,
      publisher: this.source.publisher(),
      checkedAt: new Date(now),
    };
    return { report, watched: entries.map((e) => e.s) };
  }

  /** A report without the broker round trip, for gauges read at collection time. */
  snapshot(): Pick<HealthReport, 'subscriptions' | 'publisher'> {
    const now = Date.now();
    return { subscriptions: [...this.source.subscriptions()].map((s) => this.subscriptionHealth(s, now)), publisher: this.source.publisher() };
  }

  private status(connections: ConnectionHealth[], subscriptions: SubscriptionHealth[]): HealthStatus {
    if (this.source.lifecycle() !== 'started') return 'down';
    const main = this.connectionStates.get('main');
    if (main !== undefined && main.state !== 'connected' && main.state !== 'reconnecting') return 'down';
    if (connections.some((c) => c.state !== 'connected')) return 'degraded';
    if (subscriptions.some((s) => s.state === 'stalled' || s.backlogOver === true)) return 'degraded';
    return 'ok';
  }

  private subscriptionHealth(s: WatchedSubscription, now: number): SubscriptionHealth {
    const { held, settled, busySince, waitingForRoom } = s.inlet;
    let mark = this.marks.get(s);
    if (mark === undefined) this.marks.set(s, (mark = { settled, at: now }));
    else if (mark.settled !== settled) {
      mark.settled = settled;
      mark.at = now;
    }
    // Idle since the later of: the last check that saw progress, the moment work arrived.
    const idleMs = held > 0 ? now - Math.max(mark.at, busySince) : 0;
    const stalledForMs = idleMs >= this.config.stalledAfterMs ? idleMs : 0;
    let state: SubscriptionState;
    if (s.stopped) state = 'stopped';
    else if (!s.attached) state = 'starting';
    else if (stalledForMs > 0) state = 'stalled';
    else if (waitingForRoom) state = 'paused';
    else state = 'consuming';
    return { topic: s.topic, group: s.group, state, held, stalledForMs };
  }

  /** Starts the watcher when `health.checkIntervalMs` is set. */
  start(): void {
    if (this.config.checkIntervalMs <= 0 || this.timer !== undefined) return;
    this.timer = setInterval(() => void this.check(), this.config.checkIntervalMs);
    this.timer.unref?.();
  }

  /** Stops the watcher timer (the bus calls it on close). */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One watcher pass: events for each subscription whose stalled or backlog flag changed. A slow broker skips passes, never stacks them. */
  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const { report, watched } = await this.evaluate({});
      report.subscriptions.forEach((health, i) => {
        const s = watched[i]!;
        const before = this.flagged.get(s) ?? { stalled: false, over: false };
        const now = { stalled: health.state === 'stalled', over: health.backlogOver === true };
        this.flagged.set(s, now);
        const base = { topic: health.topic, group: health.group, stalledForMs: health.stalledForMs, ...(health.backlog ? { backlog: health.backlog } : {}) };
        if (now.stalled !== before.stalled) this.emit({ type: now.stalled ? 'stalled' : 'recovered', ...base });
        if (now.over !== before.over) this.emit({ type: now.over ? 'backlogOver' : 'backlogUnder', ...base });
      });
    } catch (error) {
      this.log.warn({ err: errorField(error) }, 'health check failed');
    } finally {
      this.checking = false;
    }
  }
}
