/**
 * RebalanceHandler: what a GroupConsumer does when kafkajs joins the group
 * (GROUP_JOIN): which partition states continue, which ownerships end, and
 * how a new ownership of a partition waits for the records of the previous
 * one. Kept apart from the delivery of records, which only asks it to let a
 * successor follow a revoked state.
 *
 * Rebalances (another member joins or leaves). kafkajs offers no revocation
 * callback and speaks only the eager protocol, so before this member rejoins
 * (whether our eachBatch's heartbeat or kafkajs's fetch loop noticed the
 * rebalance) RebalanceDrain (rebalance-drain.ts) stops delivery, recalls from
 * core what has not started, waits for running handlers (heartbeating, bounded
 * by the rebalance timeout) and commits: the partitions this member loses are
 * handed over with nothing in flight. Records still running when the drain
 * hit its bound are abandoned: they finish, but no longer move a commit, and
 * the new owner reads from the committed offset, so such a record may be
 * handled on both members (never lost; counted as `abandonedOnRebalance`).
 * After the join (GROUP_JOIN) a partition this member keeps continues where
 * it was (records in flight stay tracked, the fetch position is moved past
 * what was accepted, nothing is delivered twice), unless records of it were
 * recalled or nacked: then it starts again from its committed offset. If this member gets a partition back while records of its previous
 * ownership are still running, it delivers nothing of that partition until
 * they settled, so a key never runs twice at once here.
 */
import type { DriverHooks } from '@busline/core/driver';
import type { Consumer } from 'kafkajs';
import { PartitionState, partitionKey } from './partition-state.js';
import type { SubscriptionRouter } from './subscription-router.js';

/** What the handler needs of its GroupConsumer. */
export interface RebalanceHost {
  readonly hooks: DriverHooks;
  readonly router: SubscriptionRouter;
  /** The state records of partition `key` are delivered from now. */
  stateOf(key: string): PartitionState | undefined;
  /** Resumes fetching and delivering `state`. */
  resume(state: PartitionState): void;
}

export class RebalanceHandler {
  /** This member's id in the group since the last join (undefined: not joined). */
  memberId: string | undefined;

  constructor(private readonly host: RebalanceHost) {}

  /**
   * The partition states of a new assignment (GROUP_JOIN): kept, fresh, or
   * following a previous ownership still settling. Every state of `states`
   * not kept is retired.
   */
  assign(
    consumer: Consumer,
    payload: { memberId: string; memberAssignment: Record<string, number[]> },
    states: Map<string, PartitionState>,
  ): Map<string, PartitionState> {
    const sameMember = this.memberId !== undefined && payload.memberId === this.memberId;
    this.memberId = payload.memberId;
    const next = new Map<string, PartitionState>();
    for (const [topic, partitions] of Object.entries(payload.memberAssignment)) {
      for (const partition of partitions) {
        const key = partitionKey(topic, partition);
        const old = states.get(key);
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
    for (const [key, old] of states) if (!next.has(key) && !old.revoked) this.retire(old, undefined);
    return next;
  }

  /** Ends `old`'s ownership; `successor` (same partition, new epoch) waits for its running records. */
  private retire(old: PartitionState, successor: PartitionState | undefined): void {
    const abandoned = old.revoke();
    for (const e of this.host.router.entries) e.waiting.delete(old);
    if (abandoned > 0) this.host.hooks.count('abandonedOnRebalance', abandoned);
    if (successor) this.follow(old, successor);
  }

  follow(old: PartitionState, successor: PartitionState): void {
    if (old.unsettled === 0) return;
    successor.waitFor = old;
    old.onSettled = () => {
      if (successor.waitFor !== old) return;
      successor.waitFor = undefined;
      if (this.host.stateOf(successor.key) === successor) this.host.resume(successor);
    };
  }
}
