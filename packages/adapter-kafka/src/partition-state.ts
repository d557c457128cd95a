/**
 * PartitionState: what one consumer knows about one assigned partition during
 * one ownership (an "epoch", from a group join to the revocation or restart
 * that ends it).
 *
 * - `watermark` (core's AckWatermark) tracks every offset delivered to core;
 *   the commit offset is `watermark + 1`, so a commit never covers a record
 *   that was not settled. A nacked record is never completed: the commit
 *   stops before it and the next owner re-reads from there.
 * - `backlog` holds fetched records not yet delivered (the subscription's
 *   maxInFlight budget or the ordering pool's backpressure held them back).
 *   The partition keeps fetching ahead while the backlog is below its share
 *   of the consumer's `maxBufferedBytes` and is paused in kafkajs beyond it.
 * - One subscription at a time holds a partition: records go to another
 *   subscription of the topic (after an unsubscribe or a new one re-routed
 *   it) only once the `holder` settled every record it was given, so two
 *   handlers of this process never run one key at once. A record the old
 *   holder hands back (nack after its unsubscribe) goes back to the front of
 *   the backlog for the next one (`requeue`).
 * - A revoked state ignores late settlements (its offsets may already belong
 *   to another member); a successor state for the same partition waits for
 *   the revoked one's unsettled records (`waitFor`) before delivering, so a
 *   key never runs twice at once in this process.
 */
import { AckWatermark } from '@busline/core/driver';
import type { KafkaMessage } from 'kafkajs';
import { AttemptLedger, type LedgerView } from './attempt-ledger.js';
import { recordOffset, recordSize } from './kafkajs-fetched-record.js';

export class PartitionState implements LedgerView {
  readonly key: string;
  readonly watermark = new AckWatermark();
  readonly ledger = new AttemptLedger();
  /** Delivered to core and not yet settled. */
  unsettled = 0;
  /** Some delivery was nacked: commits stop before it for the rest of this epoch. */
  nacked = false;
  /** The offset last committed for this partition by this state (next offset to read). */
  committed: number | undefined;
  /** Fetched, not yet delivered, in offset order; `backlog[backlogHead]` is next. */
  backlog: KafkaMessage[] = [];
  backlogHead = 0;
  /** Estimated bytes in the backlog. */
  backlogBytes = 0;
  /** Highest offset accepted from a fetch (delivered or in the backlog); re-fetched records at or below it are skipped. */
  lastAccepted = -1;
  /** The subscription the unsettled records were delivered to (meaningful while `unsettled > 0`). */
  holder: unknown;
  /** Highest offset tracked in `watermark`; a requeued record at or below it is not tracked again. */
  tracked = -1;
  /** Paused in kafkajs by this driver. */
  paused = false;
  revoked = false;
  /** The previous epoch of this partition, still settling: deliver nothing before it is done. */
  waitFor: PartitionState | undefined;
  /** Called once this (revoked) state has no unsettled records left. */
  onSettled: (() => void) | undefined;

  constructor(
    readonly topic: string,
    readonly partition: number,
  ) {
    this.key = partitionKey(topic, partition);
  }

  get backlogSize(): number {
    return this.backlog.length - this.backlogHead;
  }

  /** Appends fetched records above `lastAccepted`; returns how many were new. */
  accept(messages: readonly KafkaMessage[]): number {
    let from = 0;
    while (from < messages.length && recordOffset(messages[from]!) <= this.lastAccepted) from++;
    if (from === messages.length) return 0;
    if (this.backlogHead > 0 && this.backlogHead === this.backlog.length) {
      this.backlog = [];
      this.backlogHead = 0;
    }
    for (let i = from; i < messages.length; i++) {
      const m = messages[i]!;
      this.backlog.push(m);
      this.backlogBytes += recordSize(m);
    }
    this.lastAccepted = recordOffset(messages[messages.length - 1]!);
    return messages.length - from;
  }

  /** Offset of the next record to deliver, if any is fetched. */
  get nextOffset(): number | undefined {
    return this.backlogHead < this.backlog.length ? recordOffset(this.backlog[this.backlogHead]!) : undefined;
  }

  /** How many of the next records to deliver (at most `max`) have offsets ≤ `offset`. */
  countThrough(offset: number, max: number): number {
    // Backlog offsets increase: binary search for the first one above `offset`.
    let lo = this.backlogHead;
    let hi = Math.min(this.backlog.length, this.backlogHead + max);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (recordOffset(this.backlog[mid]!) <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo - this.backlogHead;
  }

  /** Takes up to `n` records from the backlog. */
  take(n: number): KafkaMessage[] {
    const end = Math.min(this.backlog.length, this.backlogHead + n);
    const out = this.backlog.slice(this.backlogHead, end);
    for (const m of out) this.backlogBytes -= recordSize(m);
    this.backlogHead = end;
    if (this.backlogHead === this.backlog.length) {
      this.backlog = [];
      this.backlogHead = 0;
      this.backlogBytes = 0;
    }
    return out;
  }

  /** Puts a delivered record back into the backlog, in offset order (it stays tracked, so commits stop before it). */
  requeue(m: KafkaMessage): void {
    if (this.backlogHead > 0) {
      this.backlog = this.backlog.slice(this.backlogHead);
      this.backlogHead = 0;
    }
    const offset = recordOffset(m);
    let i = 0;
    while (i < this.backlog.length && recordOffset(this.backlog[i]!) < offset) i++;
    this.backlog.splice(i, 0, m);
    this.backlogBytes += recordSize(m);
  }

  clearBacklog(): void {
    this.backlog = [];
    this.backlogHead = 0;
    this.backlogBytes = 0;
  }

  /** Ends this epoch: late settlements are ignored, the backlog is dropped. Returns how many deliveries were abandoned. */
  revoke(): number {
    this.revoked = true;
    this.ledger.retire();
    this.clearBacklog();
    return this.unsettled;
  }
}


export function partitionKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}
