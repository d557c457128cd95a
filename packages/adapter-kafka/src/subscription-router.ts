/**
 * SubscriptionRouter: the subscriptions one bus registered in a consumer
 * group (SinkEntry), which of them gets each partition of a topic, and the
 * plan of subscriptions made before start. GroupConsumer asks it where a
 * partition's records go and which topics the kafkajs consumer needs.
 */
import type { ConsumerSpec, MessageSink } from '@busline/core/driver';
import type { PartitionState } from './partition-state.js';

export interface SinkEntry {
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

export class SubscriptionRouter {
  /** Every registered subscription not closed yet. */
  readonly entries = new Set<SinkEntry>();
  /** Active sinks per topic; partition p of a topic goes to sinks[p % n]. */
  private readonly routes = new Map<string, SinkEntry[]>();
  private readonly plan: Map<string, number>;
  private planOpen: boolean;

  /**
   * @param plan topics (with multiplicity) planned before start for this group
   * @param onUnplanned called when a registration arrives that the plan did not announce
   */
  constructor(
    plan: Map<string, number>,
    private readonly onUnplanned: () => void,
  ) {
    this.plan = new Map(plan);
    this.planOpen = [...this.plan.values()].some((n) => n > 0);
  }

  /** Adds a subscription (active, not routed before the consumer runs with its topic). */
  add(spec: ConsumerSpec, sink: MessageSink): SinkEntry {
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
    return entry;
  }

  /**
   * Counts a registration for `topic` against the plan. True while planned
   * registrations are still missing: the registration returns at once (the
   * last planned one starts the consumer and waits for it).
   */
  awaitsMorePlanned(topic: string): boolean {
    const planned = this.plan.get(topic) ?? 0;
    if (this.planOpen && planned > 0) {
      this.plan.set(topic, planned - 1);
      if ([...this.plan.values()].some((n) => n > 0)) return true;
      this.planOpen = false;
    } else if (this.planOpen) {
      this.onUnplanned();
    }
    return false;
  }

  /** Gives up waiting for the rest of the plan; false if it was not open. */
  closePlan(): boolean {
    if (!this.planOpen) return false;
    this.planOpen = false;
    return true;
  }

  private addRoute(entry: SinkEntry): void {
    const list = this.routes.get(entry.spec.topic);
    if (list) list.push(entry);
    else this.routes.set(entry.spec.topic, [entry]);
  }

  removeRoute(entry: SinkEntry): void {
    const list = this.routes.get(entry.spec.topic);
    if (!list) return;
    const i = list.indexOf(entry);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.routes.delete(entry.spec.topic);
  }

  /** Routes every active subscription not routed yet (once the consumer runs with its topic). */
  routeActive(): void {
    for (const e of this.entries) if (e.active && !this.routes.get(e.spec.topic)?.includes(e)) this.addRoute(e);
  }

  route(state: PartitionState): SinkEntry | undefined {
    const list = this.routes.get(state.topic);
    if (!list || list.length === 0) return undefined;
    return list.length === 1 ? list[0] : list[state.partition % list.length];
  }

  wantedTopics(): string[] {
    const topics = new Set<string>();
    for (const e of this.entries) if (e.active) topics.add(e.spec.topic);
    return [...topics].sort();
  }

  startFromEarliest(topic: string): boolean {
    let earliest = false;
    for (const e of this.entries) {
      if (e.spec.topic !== topic || !e.active) continue;
      if (e.spec.persistence !== 'ephemeral' && e.spec.startFrom === 'earliest') earliest = true;
    }
    return earliest;
  }
}
