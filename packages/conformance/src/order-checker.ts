/**
 * OrderChecker: per-key order as busline defines it, checked across every
 * member of a group — buses in this process or member processes reporting
 * their handlings (with `process.hrtime`, one monotonic clock per machine).
 *
 * Per-key order holds when, across the whole group and across time:
 * - no two handlings of one key overlap in time, anywhere;
 * - the first handling of each message of a key happens in publish order
 *   (message n+1 is never first handled before message n was);
 * - every published message was handled at least once (nothing lost).
 * Handling a message again after later ones (an at-least-once redelivery of
 * a message whose first handling was in order) is allowed and counted.
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

export interface Handling {
  member: string;
  key: string;
  /** The message's position in its key's publish order, from 0. */
  seq: number;
  start: bigint;
  /** Undefined while running (or when the member died: see memberDied). */
  end?: bigint;
}

export interface OrderReport {
  handlings: number;
  keys: number;
  /** Two handlings of one key that overlapped in time: the later-starting one's description. */
  concurrent: string[];
  /** First handlings out of publish order. */
  outOfOrder: string[];
  /** Published messages never handled, as `key#seq`. */
  missing: string[];
  /** Handlings beyond the first of a message (at-least-once redeliveries). */
  repeated: number;
  /** Handlings of a message nobody published (should be none). */
  unexpected: string[];
}

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

  /** Starts a local handling; call the returned function when it ends (however it ends). */
  begin(member: string, key: string, seq: number): () => void {
    const handling: Handling = { member, key, seq, start: monotonicNs() };
    this.handlings.push(handling);
    return () => {
      handling.end = monotonicNs();
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

  /** Distinct messages first-handled so far. */
  get handledCount(): number {
    const seen = new Set<string>();
    for (const h of this.handlings) seen.add(`${h.key}#${h.seq}`);
    return seen.size;
  }

  /** Every published message handled at least once. */
  complete(): boolean {
    const seen = new Set<string>();
    for (const h of this.handlings) seen.add(`${h.key}#${h.seq}`);
    for (const [key, count] of this.published) for (let s = 0; s < count; s++) if (!seen.has(`${key}#${s}`)) return false;
    return true;
  }

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
      let latestEnd = -1n;
      let latestOwner: Handling | undefined;
      const firstSeen = new Set<number>();
      let nextFirst = 0;
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
        if (h.seq !== nextFirst) {
          report.outOfOrder.push(`${key}#${h.seq} first handled on ${h.member} before ${key}#${nextFirst}`);
          nextFirst = Math.max(nextFirst, h.seq + 1);
        } else {
          nextFirst++;
          while (firstSeen.has(nextFirst)) nextFirst++;
        }
      }
    }
    for (const [key, count] of this.published) {
      const seen = new Set((byKey.get(key) ?? []).map((h) => h.seq));
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
    if (r.missing.length) problems.push(`never handled: ${sample(r.missing)}`);
    if (r.unexpected.length) problems.push(`handled but never published: ${sample(r.unexpected)}`);
    if (problems.length) throw new Error(`${what} broken over ${r.handlings} handlings of ${r.keys} keys:\n  - ${problems.join('\n  - ')}`);
    return r;
  }
}
