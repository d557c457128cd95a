/**
 * AttemptLedger: delivery attempts of a partition's records that survive the
 * process, so a record whose handler kills its process (process.exit, OOM, a
 * native crash) gets a growing `deliveryCount` on every restart and core
 * dead-letters it once that exceeds the subscription's `retry.maxAttempts`.
 * Kafka does not count deliveries; the count lives in the metadata string
 * Kafka stores with each committed offset (OffsetCommit), written by the same
 * commits that move the offset.
 *
 * A mark says, for committed offset `from`: records `from`..`through` may
 * have been handed to handlers since (an empty range, `through` = `from` - 1,
 * is a clean mark: nothing in flight), and `begun` attempts are charged to
 * the record at `from` if this ownership ends without a further commit.
 *
 * - No record is handed to a handler unless a stored mark covers it. The
 *   first delivery after a clean mark waits for one commit; a busy partition
 *   extends its mark `window` records past what it delivered, ahead of need.
 * - A commit made while nothing of the partition is in flight writes a clean
 *   mark, so a clean close, restart or rebalance handover counts nothing.
 * - In normal operation many records run at once, so a crash cannot be
 *   blamed on one of them: such a mark charges nothing (`begun` is the count
 *   the record already had). The next owner of a partition whose mark is not
 *   clean is suspect up to `through` (or the log end, if lower): while any
 *   partition of a consumer is suspect, the consumer hands out one record at
 *   a time, each after a commit of a step mark (`through` = that record,
 *   `begun` = its deliveryCount), so a crash then is charged to exactly the
 *   record that was running. Every restart either commits progress or raises
 *   `begun` at a fixed offset: a record that always kills its process runs at
 *   most maxAttempts + 1 times (the first crash, among others, is not
 *   counted) and is then dead-lettered without running.
 *
 * A metadata string that is not a mark (another client's, or a mark about
 * another offset, e.g. after an offset reset) is no record: count 1.
 */
import type { DriverHooks } from '@busline/core/driver';
import type { Admin, Kafka } from 'kafkajs';
import { kafkaError } from './kafka-errors.js';

const MARK = /^busline-attempts\/1 (\d{1,16}) (\d{1,9}) (\d{1,16})$/;

/** What a mark stored as offset-commit metadata says about its committed offset. */
export interface AttemptMark {
  /** The committed offset the mark is about (the next record to read). */
  readonly from: number;
  /** Attempts charged to the record at `from` (the first record at or after it). */
  readonly begun: number;
  /** Records up to this offset may have been handed to handlers; `from` - 1: none (clean). */
  readonly through: number;
}

export function encodeAttemptMark(mark: AttemptMark): string {
  return `busline-attempts/1 ${mark.from} ${mark.begun} ${mark.through}`;
}

/** The mark in `metadata` about committed offset `committed`, or undefined for anything else (never throws). */
export function parseAttemptMark(metadata: unknown, committed: number): AttemptMark | undefined {
  if (typeof metadata !== 'string') return undefined;
  const m = MARK.exec(metadata);
  if (!m) return undefined;
  const from = Number(m[1]);
  const begun = Number(m[2]);
  const through = Number(m[3]);
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(through) || from !== committed || through < from - 1) return undefined;
  return { from, begun, through };
}

/** What the ledger reads of its partition's state when it decides. */
export interface LedgerView {
  /** Its `watermark`: the highest offset up to which everything delivered is handled (undefined: none yet). */
  readonly watermark: { readonly watermark: number | undefined };
  /** Offset this ownership last committed. */
  readonly committed: number | undefined;
  /** Delivered, not yet settled. */
  readonly unsettled: number;
  /** Highest offset delivered in this ownership (-1: none). */
  readonly tracked: number;
  /** Offset of the next record to deliver, if any is fetched. */
  readonly nextOffset: number | undefined;
  /** How many of the next records to deliver (at most `max`) have offsets ≤ `offset`. */
  countThrough(offset: number, max: number): number;
}

/** One commit the ledger asks for: offset, its metadata, and what it does once stored. */
export interface LedgerCommit {
  readonly offset: number;
  readonly metadata: string;
  readonly mark: AttemptMark;
  /** Delivery waits for this commit. */
  readonly serves: boolean;
  /** A step mark: one record, alone in its consumer. */
  readonly step: boolean;
}

/**
 * The ledgers of this process that are suspect: crash isolation looks at the
 * partitions only while one is, so the pump of a healthy process does not
 * scan every partition on every delivery round.
 */
export const suspectLedgers = new Set<AttemptLedger>();

export class AttemptLedger {
  /** The previous mark was read; nothing is delivered before. */
  ready = false;
  reading = false;
  /** Records a mark covers beyond what was delivered. */
  private window = 1;
  /** Offset committed when this ownership began (-1: none). */
  private start = -1;
  /** Attempts charged to the record at `start` by previous ownerships. */
  private prior = 0;
  /** Offset of the first record delivered in this ownership (-1: none yet). */
  private first = -1;
  /** A previous ownership may have begun records up to here (-1: none): suspect until passed. */
  private suspectThrough = -1;
  /** Records up to here may be delivered: a stored mark covers them. */
  private through = -1;
  /** The offset a stored step mark covers (-1: none). */
  private stepAt = -1;
  /** This ownership stored a mark that is not clean. */
  private dirty = false;
  /** Delivery asks for a new mark. */
  wanted = false;
  /** The mark asked for is a step mark. */
  private stepping = false;
  /** A step mark is being committed. */
  private stepPending = false;

  /** The committed offset (-1: none) with its metadata, and the partition's log end, read when the ownership began. */
  begin(committed: number, metadata: unknown, window: number, logEnd: number): void {
    this.window = window;
    this.ready = true;
    this.reading = false;
    if (committed < 0) return;
    this.start = committed;
    const mark = parseAttemptMark(metadata, committed);
    if (mark === undefined) return;
    this.prior = mark.begun;
    // Records appended after the previous owner stopped cannot have been begun by it.
    const through = Math.min(mark.through, logEnd - 1);
    if (through >= mark.from) {
      this.suspectThrough = through;
      suspectLedgers.add(this);
    }
  }

  /** deliveryCount of the record at `offset`: the attempts charged before + 1 for the first record, else 1. */
  countFor(offset: number): number {
    if (this.first < 0) this.first = offset;
    return offset === this.first ? this.prior + 1 : 1;
  }

  /** A previous ownership may have begun records this one has not passed yet. */
  get suspect(): boolean {
    return this.suspectThrough >= 0;
  }

  /** A step mark is asked for, being committed, or stored and its record not yet delivered. */
  holdsStep(s: LedgerView): boolean {
    const next = s.nextOffset;
    return next !== undefined && ((this.wanted && this.stepping) || this.stepPending || this.stepAt === next);
  }

  /**
   * How many of the next records (at most `budget`) may be delivered now;
   * `isolated`: one record, alone in the consumer (the caller checks that
   * nothing else runs). When fewer than wanted may go, sets `wanted` (a commit
   * of a new mark lets them go).
   */
  allowance(s: LedgerView, budget: number, isolated: boolean): number {
    if (!this.ready) return 0;
    const next = s.nextOffset;
    if (next === undefined) return 0;
    if (isolated) {
      if (s.unsettled > 0 || this.stepPending) return 0;
      if (this.stepAt === next) {
        this.wanted = false;
        return 1;
      }
      this.wanted = true;
      this.stepping = true;
      return 0;
    }
    const n = s.countThrough(this.through, budget);
    // Past the middle of the mark's window: extend it now, so delivery need not wait for it.
    if (n === 0 || s.countThrough(this.through - Math.floor(this.window / 2), budget) < n) {
      this.wanted = true;
      this.stepping = false;
    }
    return n;
  }

  /**
   * The commit this partition needs now, if any. Called just before the commit
   * is sent. `keepWindow`: a routine commit (the timer, a window extension),
   * not one that ends or hands over the ownership.
   */
  compose(s: LedgerView, keepWindow = false): LedgerCommit | undefined {
    if (!this.ready) return undefined;
    const next = s.nextOffset;
    const mark = s.watermark.watermark;
    // Nothing handled yet: the committed offset, else the first record delivered (still running), else the next.
    const from = mark !== undefined ? mark + 1 : this.start >= 0 ? this.start : this.first >= 0 ? this.first : next;
    if (from === undefined) return undefined;
    const advanced = s.committed === undefined || from > s.committed;
    const count = from === this.start ? this.prior + 1 : 1;
    if (this.wanted && next !== undefined && (!this.stepping || s.unsettled === 0)) {
      this.wanted = false;
      // A step mark charges the attempt (the record runs alone); a window charges nothing.
      if (this.stepping) {
        this.stepPending = true;
        return this.commit({ from, begun: count, through: next }, true, true);
      }
      return this.commit({ from, begun: count - 1, through: Math.max(this.through, s.tracked, next - 1) + this.window }, true, false);
    }
    if (s.unsettled > 0) {
      // Running alone on a step mark: that mark stays until the record settles.
      if (!advanced || this.stepAt >= from) return undefined;
      return this.commit({ from, begun: count - 1, through: Math.max(this.through, s.tracked + this.window) }, false, false);
    }
    // Already clean, or nothing delivered nor marked in this ownership (the previous owner's mark stands).
    if (!this.dirty && (s.tracked < 0 || !advanced)) return undefined;
    // A routine commit while idle keeps the window ahead: a clean mark would make the next record wait for a
    // commit (a publish-to-handle latency spike after every commit interval). Only a hand-over writes it clean.
    if (keepWindow && this.dirty && !this.suspect && this.stepAt < 0) {
      if (!advanced) return undefined;
      return this.commit({ from, begun: count - 1, through: Math.max(this.through, from - 1 + this.window) }, false, false);
    }
    // Nothing in flight: a clean mark, and nothing more is delivered before a new one is stored.
    this.through = -1;
    this.stepAt = -1;
    return this.commit({ from, begun: 0, through: from - 1 }, false, false);
  }

  private commit(mark: AttemptMark, serves: boolean, step: boolean): LedgerCommit {
    return { offset: mark.from, metadata: encodeAttemptMark(mark), mark, serves, step };
  }

  /** `c` is stored. */
  stored(c: LedgerCommit): void {
    if (c.step) this.stepPending = false;
    this.dirty = c.mark.through >= c.mark.from;
    if (c.step) {
      this.through = c.mark.through;
      this.stepAt = c.mark.through;
    } else if (this.dirty) this.through = Math.max(this.through, c.mark.through);
    if (c.mark.from > this.suspectThrough) this.retire();
  }

  /** No longer suspect: passed what a previous ownership may have begun, or this ownership ended. */
  retire(): void {
    this.suspectThrough = -1;
    suspectLedgers.delete(this);
  }

  /** `c` could not be stored. */
  failed(c: LedgerCommit): void {
    if (c.step) this.stepPending = false;
    if (!c.serves) return;
    this.wanted = true;
    this.stepping = c.step;
  }
}

/** Where a reader's marks go: the partitions still waiting for theirs. */
export interface LedgerTarget {
  readonly topic: string;
  readonly partition: number;
  readonly revoked: boolean;
  readonly ledger: AttemptLedger;
}

/**
 * Reads the marks a new ownership starts from (admin fetchOffsets, which
 * returns the metadata kafkajs's consumer does not). A failed read is retried
 * while the partition is still owned; its records wait meanwhile.
 */
export class AttemptMarkReader {
  private admin: Admin | undefined;
  private connecting: Promise<Admin> | undefined;
  private closed = false;

  constructor(
    private readonly kafka: Kafka,
    private readonly group: string,
    private readonly window: number,
    private readonly hooks: DriverHooks,
  ) {}

  /** Reads the marks of `targets` not yet read; `ready` is called for each once it may deliver. */
  read<T extends LedgerTarget>(targets: Iterable<T>, ready: (target: T) => void): void {
    const wanted = [...targets].filter((t) => !t.revoked && !t.ledger.ready && !t.ledger.reading);
    if (wanted.length === 0 || this.closed) return;
    for (const t of wanted) t.ledger.reading = true;
    void this.fetch(wanted).then(
      (marks) => {
        for (const t of wanted) {
          if (t.revoked) continue;
          const found = marks.get(t.topic)?.get(t.partition);
          t.ledger.begin(found?.offset ?? -1, found?.metadata, this.window, found?.logEnd ?? 0);
          ready(t);
        }
      },
      (error: unknown) => {
        for (const t of wanted) t.ledger.reading = false;
        if (this.closed) return;
        this.hooks.error(kafkaError(error, `reading the committed offsets of consumer group "${this.group}" (retrying)`), 'kafka attempt ledger');
        setTimeout(() => this.read(wanted, ready), 1_000).unref();
      },
    );
  }

  /** Per topic and partition: the committed offset and metadata, then the log end (read after them). */
  private async fetch(targets: readonly LedgerTarget[]): Promise<Map<string, Map<number, { offset: number; metadata: string | null; logEnd: number }>>> {
    const admin = await this.connect();
    const topics = [...new Set(targets.map((t) => t.topic))];
    const result = await admin.fetchOffsets({ groupId: this.group, topics });
    const marks = new Map<string, Map<number, { offset: number; metadata: string | null; logEnd: number }>>();
    for (const { topic, partitions } of result) {
      const ends = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, Number(p.high)]));
      marks.set(topic, new Map(partitions.map((p) => [p.partition, { offset: Number(p.offset), metadata: p.metadata, logEnd: ends.get(p.partition) ?? 0 }])));
    }
    return marks;
  }

  private connect(): Promise<Admin> {
    this.connecting ??= (async () => {
      const admin = this.kafka.admin();
      await admin.connect();
      this.admin = admin;
      return admin;
    })().catch((error: unknown) => {
      this.connecting = undefined;
      throw error;
    });
    return this.connecting;
  }

  async close(): Promise<void> {
    this.closed = true;
    const admin = this.admin ?? (await this.connecting?.catch(() => undefined));
    this.admin = undefined;
    this.connecting = undefined;
    await admin?.disconnect().catch(() => undefined);
  }
}
