/**
 * OffsetCommitter: the commits of one GroupConsumer, kept apart from the
 * delivery of records.
 *
 * Per partition, core's AckWatermark tracks delivered offsets; the
 * committed offset is watermark + 1, every `commitIntervalMs`, when a
 * rebalance starts, before a restart and on close. A failed or nacked record
 * holds the commit back until it is dead-lettered or handled, so records
 * after it may be handled again after a restart (at-least-once), but none is
 * ever committed unhandled. What each partition commits, and the attempt
 * mark stored with it as metadata, is its AttemptLedger's decision
 * (attempt-ledger.ts); a commit a delivery waits for resumes it once stored.
 */
import type { DriverHooks } from '@busline/core/driver';
import type { Consumer } from 'kafkajs';
import type { LedgerCommit } from './attempt-ledger.js';
import { kafkaError } from './kafka-errors.js';
import type { PartitionState } from './partition-state.js';

/** What the committer reads of its GroupConsumer, at the time of each commit. */
export interface CommitSource {
  /** The running kafkajs consumer, if any. */
  consumer(): Consumer | undefined;
  /** kafkajs is restarting a crashed consumer. */
  reconnecting(): boolean;
  /** The partition states, current and revoked. */
  partitions(): Iterable<PartitionState>;
  /** The GroupConsumer is closed: a failed commit is counted, not reported. */
  closed(): boolean;
  /** A commit is stored; `served`: the partitions whose delivery waited for it. */
  committed(served: PartitionState[]): void;
}

export class OffsetCommitter {
  private commitTimer: NodeJS.Timeout | undefined;
  private committing: Promise<void> | undefined;
  private commitAgain = false;
  /** A commit that ends or hands over ownership was asked for since the loop last composed: marks go clean. */
  private handOver = false;

  constructor(
    private readonly group: string,
    private readonly hooks: DriverHooks,
    private readonly source: CommitSource,
  ) {}

  /**
   * Commits watermark + 1 of every partition that handled something new. Never rejects.
   * `routine`: the timer or a window extension, not a hand-over (the attempt marks keep their window).
   */
  commit(routine = false): Promise<void> {
    if (!routine) this.handOver = true;
    if (this.committing) {
      this.commitAgain = true;
      return this.committing;
    }
    this.committing = (async () => {
      do {
        this.commitAgain = false;
        const keepWindow = !this.handOver;
        this.handOver = false;
        const consumer = this.source.consumer();
        // While kafkajs restarts a crashed consumer there is no group session to commit in.
        if (!consumer || this.source.reconnecting()) return;
        const offsets: { topic: string; partition: number; offset: string; metadata: string }[] = [];
        const covered: [PartitionState, LedgerCommit][] = [];
        for (const state of this.source.partitions()) {
          if (state.revoked) continue;
          const c = state.ledger.compose(state, keepWindow);
          if (c === undefined) continue;
          offsets.push({ topic: state.topic, partition: state.partition, offset: String(c.offset), metadata: c.metadata });
          covered.push([state, c]);
        }
        if (offsets.length === 0) continue;
        try {
          await consumer.commitOffsets(offsets);
          for (const [state, c] of covered) {
            if (state.committed === undefined || c.offset > state.committed) state.committed = c.offset;
            state.ledger.stored(c);
          }
          this.hooks.count('commits');
          this.source.committed(covered.filter(([, c]) => c.serves).map(([state]) => state));
        } catch (error) {
          for (const [state, c] of covered) state.ledger.failed(c);
          this.hooks.count('commitFailures');
          if (!this.source.closed()) this.hooks.error(kafkaError(error, `committing offsets of consumer group "${this.group}"`), 'kafka commit');
        }
      } while (this.commitAgain);
    })().finally(() => {
      this.committing = undefined;
      // Asked for between the loop's last check and here: a delivery may be waiting for it.
      if (this.commitAgain) void this.commit(true);
    });
    return this.committing;
  }

  /** Commits every `intervalMs` while the consumer runs. */
  startTimer(intervalMs: number): void {
    this.commitTimer = setInterval(() => void this.commit(true), intervalMs);
    this.commitTimer.unref();
  }

  stopTimer(): void {
    if (this.commitTimer) clearInterval(this.commitTimer);
    this.commitTimer = undefined;
  }
}
