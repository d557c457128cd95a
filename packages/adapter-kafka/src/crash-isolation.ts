/**
 * CrashIsolation: after a crash, one record at a time per consumer. While any
 * partition of a GroupConsumer is suspect (its previous ownership ended with
 * records possibly in flight, see attempt-ledger.ts), the consumer hands out
 * one record at a time across all its partitions, each after a commit of its
 * step mark, so a crash in that time is charged to the one record that ran
 * and to no other. Partitions with records waiting take turns.
 */
import type { PartitionState } from './partition-state.js';

export class CrashIsolation {
  /** The partition whose turn it is (it may hold a step mark not yet used). */
  private owner: PartitionState | undefined;
  /** Isolating at the last check: when that ends, every partition is pumped again. */
  on = false;

  /**
   * Some current partition is suspect and has records of its own waiting or
   * running (`routed`: it has a subscription to deliver to). One whose
   * records have not arrived, or never will (control records at the log
   * end), holds nothing up meanwhile.
   */
  active(states: Iterable<PartitionState>, routed: (state: PartitionState) => boolean): boolean {
    for (const s of states) {
      if (!s.revoked && s.ledger.suspect && (s.backlogSize > 0 || s.unsettled > 0) && routed(s)) return (this.on = true);
    }
    return (this.on = false);
  }

  /** `state` may take the turn: nothing runs in the consumer, and no other partition holds a step mark. */
  turn(state: PartitionState, unsettled: number): boolean {
    if (unsettled > 0) return false;
    const owner = this.owner;
    if (owner !== undefined && owner !== state && !owner.revoked && owner.ledger.holdsStep(owner)) return false;
    this.owner = state;
    return true;
  }

  /** The partitions with records waiting, the one after the last turn's first. */
  order(states: Iterable<PartitionState>): PartitionState[] {
    const waiting = [...states].filter((s) => !s.revoked && s.backlogSize > 0);
    const i = this.owner === undefined ? -1 : waiting.indexOf(this.owner);
    return i < 0 ? waiting : [...waiting.slice(i + 1), ...waiting.slice(0, i + 1)];
  }
}
