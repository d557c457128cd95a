/**
 * OrderChecker: per-key order as busline defines it, checked across every
 * member of a group — buses in this process or member processes reporting
 * their handlings (with `process.hrtime`, one monotonic clock per machine).
 *
 * Per-key order holds when, across the whole group and across time:
 * - no two handlings of one key overlap in time, anywhere;
 * - the first handling of each message of a key happens in publish order,
 *   across retries: message n+1 is first handled only after a handling of
 *   message n succeeded (a failed attempt of n followed by n+1 is a reorder,
 *   even if n succeeds later);
 * - every published message was handled successfully at least once.
 * Handling a message again after later ones (an at-least-once redelivery of
 * a message that was already handled in order) is allowed and counted.
 *
 * Handlings are recorded as intervals and judged after the run, so members
 * in other processes (whose reports arrive late and interleaved) are judged
 * exactly like local ones. A handling whose member died before it ended is
 * closed at the time of death (`memberDied`).
 */

/** Monotonic nanoseconds, comparable between processes on one machine. */
export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}

/** One handler call of a message, as an interval of monotonic time. */
export interface Handling {
  member: string;
  key: string;
  /** The message's position in its key's publish order, from 0. */
  seq: number;
  start: bigint;
  /** Undefined while running (or when the member died: see memberDied). */
  end?: bigint;
  /** The handler returned normally (false: it threw, or never ended). */
  ok?: boolean;
}

/**
 * The verdict of an OrderChecker: every kind of per-key order violation found, and what was
 * missing.
 */
export interface OrderReport {
  handlings: number;
  keys: number;
  /** Two handlings of one key that overlapped in time: the later-starting one's description. */
  concurrent: string[];
  /** First handlings out of publish order, or before the previous message of the key succeeded. */
  outOfOrder: string[];
  /** Published messages never handled successfully, as `key#seq`. */
  missing: string[];
  /** Handlings beyond the first of a message (at-least-once redeliveries). */
  repeated: number;
  /** Handlings of a message nobody published (should be none). */
  unexpected: string[];
}

/**
 * Judges per-key order across every member of a group from recorded handlings (see the module
 * comment for the rules).
 */
export class OrderChecker {
  private readonly handlings: Handling[] = [];
  private readonly published = new Map<string, number>();
  private readonly deaths = new Map<string, bigint>();

  /** A message of `key` was published (and its publish resolved); returns its seq. */
  publishedOne(key: string): number {
    const seq = this.published.get(key) ?? 0;
    this.published.set(key, seq + 1);
    return seq;
  }

  /** Declares that `count` messages of `key` were published, seq 0..count-1. */
  publishedCount(key: string, count: number): void {
    this.published.set(key, count);
  }

  /** Starts a local handling; call the returned function when it ends, saying whether it succeeded. */
  begin(member: string, key: string, seq: number): (ok?: boolean) => void {
    const handling: Handling = { member, key, seq, start: monotonicNs() };
    this.handlings.push(handling);
    return (ok = true) => {
      handling.end = monotonicNs();
      handling.ok = ok;
    };
  }

  /** A handling reported by another process, with its own clock readings. */
  record(handling: Handling): void {
    this.handlings.push(handling);
  }

  /** The member died (kill -9) at `at`: its unfinished handlings ended then. */
  memberDied(member: string, at: bigint = monotonicNs()): void {
    this.deaths.set(member, at);
  }

  private succeeded(): Set<string> {
    const seen = new Set<string>();
    for (const h of this.handlings) if (h.ok === true) seen.add(`${h.key}#${h.seq}`);
    return seen;
  }

  /** Distinct messages handled successfully so far. */
  get handledCount(): number {
    return this.succeeded().size;
  }

  /** Every published message handled successfully at least once. */
  complete(): boolean {
    const seen = this.succeeded();
    for (const [key, count] of this.published) for (let s = 0; s < count; s++) if (!seen.has(`${key}#${s}`)) return false;
    return true;
  }

  /** Judges every handling recorded so far. */
  report(): OrderReport {
    const byKey = new Map<string, Handling[]>();
    for (const h of this.handlings) {
      let list = byKey.get(h.key);
      if (list === undefined) byKey.set(h.key, (list = []));
      list.push(h);
    }
    const report: OrderReport = { handlings: this.handlings.length, keys: byKey.size, concurrent: [], outOfOrder: [], missing: [], repeated: 0, unexpected: [] };
    const endOf = (h: Handling): bigint => h.end ?? this.deaths.get(h.member) ?? BigInt(Number.MAX_SAFE_INTEGER) * 1_000_000n;
    for (const [key, list] of byKey) {
      list.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
      // When each message of the key was first handled successfully (the end of that handling).
      const okEnd = new Map<number, bigint>();
      for (const h of list) {
        if (h.ok !== true || h.end === undefined) continue;
        const was = okEnd.get(h.seq);
        if (was === undefined || h.end < was) okEnd.set(h.seq, h.end);
      }
      let latestEnd = -1n;
      let latestOwner: Handling | undefined;
      const firstSeen = new Set<number>();
      const count = this.published.get(key) ?? 0;
      for (const h of list) {
        if (latestOwner !== undefined && h.start < latestEnd) {
          report.concurrent.push(`${key}#${h.seq} on ${h.member} started while ${key}#${latestOwner.seq} ran on ${latestOwner.member}`);
        }
        const end = endOf(h);
        if (end > latestEnd) {
          latestEnd = end;
          latestOwner = h;
        }
        if (h.seq >= count) report.unexpected.push(`${key}#${h.seq} on ${h.member}`);
        if (firstSeen.has(h.seq)) {
          report.repeated++;
          continue;
        }
        firstSeen.add(h.seq);
        if (h.seq === 0) continue;
        const previousDone = okEnd.get(h.seq - 1);
        if (previousDone === undefined || previousDone > h.start) {
          report.outOfOrder.push(`${key}#${h.seq} first handled on ${h.member} before ${key}#${h.seq - 1} was handled successfully`);
        }
      }
    }
    for (const [key, count] of this.published) {
      const seen = new Set((byKey.get(key) ?? []).filter((h) => h.ok === true).map((h) => h.seq));
      for (let s = 0; s < count; s++) if (!seen.has(s)) report.missing.push(`${key}#${s}`);
    }
    return report;
  }

  /** Throws with examples when any promise is broken. */
  assertHeld(what = 'per-key order'): OrderReport {
    const r = this.report();
    const problems: string[] = [];
    const sample = (list: string[]) => `${list.length} (e.g. ${list.slice(0, 3).join('; ')})`;
    if (r.concurrent.length) problems.push(`concurrent handlings of one key: ${sample(r.concurrent)}`);
    if (r.outOfOrder.length) problems.push(`first handlings out of publish order: ${sample(r.outOfOrder)}`);
    if (r.missing.length) problems.push(`never handled successfully: ${sample(r.missing)}`);
    if (r.unexpected.length) problems.push(`handled but never published: ${sample(r.unexpected)}`);
    if (problems.length) throw new Error(`${what} broken over ${r.handlings} handlings of ${r.keys} keys:\n  - ${problems.join('\n  - ')}`);
    return r;
  }
}
