/**
 * AttemptLedger: delivery attempts of a partition's records that survive the
 * process, so a record whose handler kills its process (process.exit, OOM, a
 * native crash) gets a growing `deliveryCount` on every restart and core
 * dead-letters it once that exceeds the subscription's `retry.maxAttempts`.
 * Kafka does not count deliveries; the count lives in the metadata string
 * Kafka stores with each committed offset (OffsetCommit), written by the same
 * commits that move the offset.
 *
 * A mark says, for committed offset `from`: `begun` delivery attempts of the
 * record at `from` (the first record at or after it) have begun without a
 * commit past it, and records up to `through` may have been handed to
 * handlers since. `begun` 0 is a clean mark: nothing was in flight.
 *
 * - No record is handed to a handler unless a committed mark covers it
 *   (`from` ≤ its offset ≤ `through`, `begun` ≥ 1). The first delivery after
 *   a clean mark therefore waits for one commit; a busy partition extends its
 *   mark `window` records ahead of what it delivered, in the background.
 * - A commit made while nothing is in flight writes a clean mark, so a clean
 *   close, restart or rebalance handover leaves nothing to count.
 * - A new owner that reads a mark with `begun` = k ≥ 1 knows the previous
 *   ownership ended (crash, kill, or handover with records still running)
 *   while records from `from` to `through` may have been in flight. The
 *   record at `from` is delivered with deliveryCount k + 1 (and that is
 *   committed first); then the partition is handled one record at a time up
 *   to `through`, each committed as begun before it is handed over, so a
 *   record that kills the process again is charged exactly. Every restart
 *   either commits progress or raises `begun` at a fixed offset: a record
 *   that always kills its process reaches maxAttempts + 1 and is dead-lettered
 *   without running.
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
  /** Delivery attempts of the record at `from` begun without a commit past it; 0: nothing was in flight. */
  readonly begun: number;
  /** Records up to this offset may have been handed to handlers. */
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
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(through) || from !== committed || through < from) return undefined;
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
}

export class AttemptLedger {
  /** The previous mark was read; nothing is delivered before. */
  ready = false;
  reading = false;
  /** Records a mark covers beyond what was delivered. */
  private window = 1;
  /** Offset committed when this ownership began (-1: none). */
  private start = -1;
  /** Attempts a previous ownership began at `start` without committing past it. */
  private prior = 0;
  /** Offset of the first record delivered in this ownership (-1: none yet). */
  private first = -1;
  /** The previous ownership may have begun records up to here: they go one at a time. */
  private suspectThrough = -1;
  /** Records up to here may be delivered: a committed mark covers them. */
  private through = -1;
  /** This ownership stored a mark with `begun` ≥ 1. */
  private dirty = false;
  /** Delivery asks for a new mark. */
  wanted = false;

  /** The committed offset (-1: none) and its metadata, read when the ownership began. */
  begin(committed: number, metadata: unknown, window: number): void {
    this.window = window;
    this.ready = true;
    this.reading = false;
    if (committed < 0) return;
    this.start = committed;
    const mark = parseAttemptMark(metadata, committed);
    if (mark !== undefined && mark.begun > 0) {
      this.prior = mark.begun;
      this.suspectThrough = mark.through;
    }
  }

  /** deliveryCount of the record at `offset`: the previous ownerships' attempts + 1 for the first record, else 1. */
  countFor(offset: number): number {
    if (this.first < 0) this.first = offset;
    return this.prior > 0 && offset === this.first ? this.prior + 1 : 1;
  }

  /** Handling one record at a time: the next delivery waits until nothing is in flight. */
  get singleStep(): boolean {
    return this.suspectThrough >= 0;
  }

  /**
   * How many of the next records (at most `budget`) may be delivered now. When
   * fewer than wanted may, sets `wanted` (a commit of a new mark lets them go).
   */
  allowance(s: LedgerView, budget: number): number {
    if (!this.ready) return 0;
    const next = s.nextOffset;
    if (next === undefined) return 0;
    if (next <= this.suspectThrough) {
      if (s.unsettled > 0) return 0;
      if (next <= this.through) return 1;
      this.wanted = true;
      return 0;
    }
    const n = s.countThrough(this.through, budget);
    // Past the middle of the mark's window: extend it now, so delivery need not wait for it.
    if (n === 0 || s.countThrough(this.through - Math.floor(this.window / 2), budget) < n) this.wanted = true;
    return n;
  }

  /** The commit this partition needs now, if any. Called just before the commit is sent. */
  compose(s: LedgerView): LedgerCommit | undefined {
    if (!this.ready) return undefined;
    const next = s.nextOffset;
    const mark = s.watermark.watermark;
    const from = mark !== undefined ? mark + 1 : this.start >= 0 ? this.start : next;
    if (from === undefined) return undefined;
    const advanced = s.committed === undefined || from > s.committed;
    const begun = from === this.start && this.prior > 0 ? this.prior + 1 : 1;
    if (this.wanted && next !== undefined) {
      const stepping = next <= this.suspectThrough;
      if (!stepping || s.unsettled === 0) {
        this.wanted = false;
        const through = stepping ? next : Math.max(this.through, s.tracked, next - 1) + this.window;
        return this.commit({ from, begun, through }, true);
      }
    }
    if (s.unsettled > 0) {
      if (!advanced) return undefined;
      const through = this.singleStep ? this.through : Math.max(this.through, s.tracked + this.window);
      return this.commit({ from, begun, through }, false);
    }
    // Nothing delivered yet in this ownership: the previous owner's mark stands.
    if (s.tracked < 0 || (!advanced && !this.dirty)) return undefined;
    // Nothing in flight: a clean mark, and nothing more is delivered before a new one is stored.
    this.through = -1;
    return this.commit({ from, begun: 0, through: from }, false);
  }

  private commit(mark: AttemptMark, serves: boolean): LedgerCommit {
    return { offset: mark.from, metadata: encodeAttemptMark(mark), mark, serves };
  }

  /** `c` is stored. */
  stored(c: LedgerCommit): void {
    this.dirty = c.mark.begun > 0;
    if (this.dirty) this.through = Math.max(this.through, c.mark.through);
    if (this.suspectThrough >= 0 && c.mark.from > this.suspectThrough) this.suspectThrough = -1;
  }

  /** `c` could not be stored. */
  failed(c: LedgerCommit): void {
    if (c.serves) this.wanted = true;
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
          t.ledger.begin(found?.offset ?? -1, found?.metadata, this.window);
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

  private async fetch(targets: readonly LedgerTarget[]): Promise<Map<string, Map<number, { offset: number; metadata: string | null }>>> {
    const admin = await this.connect();
    const topics = [...new Set(targets.map((t) => t.topic))];
    const result = await admin.fetchOffsets({ groupId: this.group, topics });
    const marks = new Map<string, Map<number, { offset: number; metadata: string | null }>>();
    for (const { topic, partitions } of result) {
      marks.set(topic, new Map(partitions.map((p) => [p.partition, { offset: Number(p.offset), metadata: p.metadata }])));
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
