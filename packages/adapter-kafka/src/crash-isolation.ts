/**
 * CrashIsolation: after a crash, one record at a time in the process. While
 * a partition of any Kafka consumer in this process is suspect (its previous
 * ownership ended with records possibly in flight, see attempt-ledger.ts) and
 * has records waiting or running, the consumers hand out one record at a
 * time, across all their partitions and groups, each after a commit of its
 * step mark. A crash in that time ends the whole process, so it is charged to
 * the one record that ran and to no other. Partitions with records waiting
 * take turns, one record each. One instance per process (`crashIsolation`), since a crash ends
 * every consumer in it.
 */
import type { PartitionState } from './partition-state.js';
import { suspectLedgers } from './attempt-ledger.js';

/** What a consumer (a GroupConsumer's PartitionFlow) shows the isolation. */
export interface IsolatedConsumer {
  /** Its partition states, current and revoked. */
  states(): Iterable<PartitionState>;
  /** It has a subscription to deliver `state`'s records to. */
  routed(state: PartitionState): boolean;
  /** Its delivered, unsettled records. */
  unsettled(): number;
  /** Delivers what `state` may deliver now. */
  pump(state: PartitionState): void;
}

export class CrashIsolation {
  private readonly consumers = new Set<IsolatedConsumer>();
  /** The partition whose turn it is (it may hold a step mark not yet used). */
  private owner: PartitionState | undefined;
  /** Isolating at the last check: when that ends, every partition is pumped again. */
  private on = false;
  private waking = false;

  join(consumer: IsolatedConsumer): void {
    this.consumers.add(consumer);
  }

  leave(consumer: IsolatedConsumer): void {
    this.consumers.delete(consumer);
    this.wake();
  }

  /**
   * Some suspect partition has records of its own waiting or running and a
   * subscription to deliver them to. One whose records have not arrived, or
   * never will (control records at the log end), holds nothing up meanwhile.
   */
  active(): boolean {
    const was = this.on;
    this.on = this.anySuspectWaiting();
    // Ended (a commit passed the last suspect record): partitions that waited for a turn go on now.
    if (was && !this.on) queueMicrotask(() => this.pumpAll());
    return this.on;
  }

  private anySuspectWaiting(): boolean {
    if (suspectLedgers.size === 0) return false;
    for (const c of this.consumers) {
      for (const s of c.states()) {
        if (!s.revoked && s.ledger.suspect && (s.backlogSize > 0 || s.unsettled > 0) && c.routed(s)) return true;
      }
    }
    return false;
  }

  private pumpAll(): void {
    for (const c of this.consumers) for (const s of [...c.states()]) c.pump(s);
  }

  /**
   * `state` may take the turn: nothing runs in the process, and no other
   * partition holds a step mark. While a wake is due (the last record just
   * settled), the partition that had the turn waits for it unless it holds a
   * step mark: the wake offers the turn to the others first and to it last.
   * Otherwise its own refill, which runs before the wake, would take the turn
   * again and again, and a partition with records arriving steadily would keep
   * every other one (a suspect one too) waiting until it ran dry.
   */
  turn(state: PartitionState): boolean {
    for (const c of this.consumers) if (c.unsettled() > 0) return false;
    const owner = this.owner;
    if (this.waking && state === owner && !state.ledger.holdsStep(state)) return false;
    if (owner !== undefined && owner !== state && !owner.revoked && owner.ledger.holdsStep(owner)) return false;
    this.owner = state;
    return true;
  }

  /** A record settled, a commit was stored or a consumer left: the next turn, or everyone once isolation ended. */
  wake(): void {
    if (!this.on || this.waking) return;
    this.waking = true;
    queueMicrotask(() => {
      this.waking = false;
      // Ended: active() pumps every partition.
      if (!this.active()) return;
      for (const c of this.consumers) if (c.unsettled() > 0) return;
      for (const [c, s] of this.order()) c.pump(s);
    });
  }

  /** Every partition with records waiting, the one after the last turn's first. */
  private order(): [IsolatedConsumer, PartitionState][] {
    const waiting: [IsolatedConsumer, PartitionState][] = [];
    for (const c of this.consumers) for (const s of c.states()) if (!s.revoked && s.backlogSize > 0) waiting.push([c, s]);
    const i = waiting.findIndex(([, s]) => s === this.owner);
    return i < 0 ? waiting : [...waiting.slice(i + 1), ...waiting.slice(0, i + 1)];
  }
}

/** The process's one isolation: a crash ends every consumer in the process at once. */
export const crashIsolation = new CrashIsolation();
