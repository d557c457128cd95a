/**
 * A consumer group on a topic: its position in the log, its members, key
 * pinning (per-key order), redelivery (now, after a delay, or when a member
 * leaves) and the delivery pass that moves messages to members.
 */
import type { ConsumerSpec } from '@busline/core/driver';
import { DelayHeap } from './delay-heap.js';
import { Delivery, insertByOffset, type KeyState } from './delivery.js';
import type { Member } from './member.js';
import type { StoredMessage, Topic } from './topic.js';

/** An ephemeral subscriber further behind than this many messages loses the newest ones (like a NATS slow consumer). */
export const EPHEMERAL_PENDING_LIMIT = 65_536;
/** Delivery rounds per scheduled pass before yielding to the event loop. */
const ROUNDS_PER_PASS = 64;
/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2_147_483_647;

/** FNV-1a over UTF-16 code units: cheap, stable, well spread for short keys. */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** One consumer group's position and queues, as `MemoryBroker.stats` reports them. */
export interface GroupStats {
  /** Active (not stopped) members. */
  members: number;
  /** Next log offset this group will hand out. */
  cursor: number;
  /** Stored messages not yet handed to any member. */
  undispatched: number;
  /** Handed to a member, waiting for delivery (maxInFlight / backpressure). */
  queued: number;
  /** Delivered to an active member and not settled. */
  unsettled: number;
  /** Nacked with a delay, waiting for it. */
  delayed: number;
  /** Waiting for a member (the owner of their key left, or no member is subscribed). */
  parked: number;
  /** Keys with messages outstanding (pinned to a member). */
  trackedKeys: number;
}

export class Group {
  /** Next log offset to hand out. */
  cursor: number;
  /** Active members, in join order (keys hash over this list). */
  readonly members: Member[] = [];
  readonly keys = new Map<string, KeyState>();
  /** Keys with parked messages and no member to take them. */
  private orphans: KeyState[] = [];
  /** Unkeyed redeliveries waiting for any member, in offset order. */
  private retry: Delivery[] = [];
  private readonly delayed = new DelayHeap();
  private timer: NodeJS.Timeout | undefined;
  private timerDue = 0;
  private rr = 0;
  private scheduled = false;
  /** Idle key entries are swept when the key map reaches this size. */
  private sweepAt = 4096;

  constructor(readonly topic: Topic, readonly name: string, startFrom: ConsumerSpec['startFrom']) {
    topic.expire();
    this.cursor = startFrom === 'latest' ? topic.nextOffset : topic.firstOffset;
  }

  join(member: Member): void {
    this.members.push(member);
    if (this.orphans.length > 0) {
      const orphans = this.orphans;
      this.orphans = [];
      for (const ks of orphans) this.release(ks);
    }
    this.timer?.ref();
    this.wake();
  }

  /** A member stopped: its waiting deliveries return, its idle keys move on. */
  leave(member: Member): void {
    const i = this.members.indexOf(member);
    if (i >= 0) this.members.splice(i, 1);
    for (const d of member.takeQueued()) {
      const ks = d._ks;
      if (ks === null) {
        if (!d._msg.ephemeral) insertByOffset(this.retry, 0, d);
        else member.count('ephemeral_dropped');
      } else {
        ks.outstanding--;
        this.park(ks, d);
      }
    }
    this.releaseIdleKeysOf(member);
    if (this.members.length === 0) this.timer?.unref();
    this.wake();
  }

  returnFromClosed(member: Member, returned: Delivery[]): void {
    for (const d of returned) {
      const ks = d._ks;
      if (ks === null) insertByOffset(this.retry, 0, d);
      else {
        ks.outstanding--;
        this.park(ks, d);
      }
    }
    this.releaseIdleKeysOf(member);
    this.wake();
  }

  /** Drops key entries that pin nothing, so memory follows the keys in flight, not every key ever seen. */
  private sweepIdleKeys(): void {
    for (const [key, ks] of this.keys) if (ks.outstanding === 0 && ks.parked === null) this.keys.delete(key);
    this.sweepAt = Math.max(4096, 2 * this.keys.size);
  }

  private releaseIdleKeysOf(member: Member): void {
    const idle: KeyState[] = [];
    for (const ks of this.keys.values()) if (ks.owner === member && ks.outstanding === 0) idle.push(ks);
    for (const ks of idle) this.release(ks);
  }

  private park(ks: KeyState, d: Delivery): void {
    d._member = null;
    if (ks.parked === null) ks.parked = [d];
    else insertByOffset(ks.parked, 0, d);
  }

  /**
   * A key has nothing outstanding at its owner: forget it, or (when messages
   * wait for it because the owner left) pin it to a member by hash.
   */
  release(ks: KeyState): void {
    if (ks.outstanding > 0) return;
    const parked = ks.parked;
    if (parked === null || parked.length === 0) {
      // Idle: the entry stays (reused by the key's next message, swept when many pile up) but pins nothing.
      ks.owner = null;
      ks.parked = null;
      return;
    }
    if (this.members.length === 0) {
      ks.owner = null;
      this.orphans.push(ks);
      return;
    }
    const owner = this.memberFor(ks.key);
    ks.owner = owner;
    ks.parked = null;
    ks.outstanding = parked.length;
    for (const d of parked) owner.insert(d);
    this.wake();
  }

  private memberFor(key: string): Member {
    const members = this.members;
    return members.length === 1 ? members[0]! : members[hashKey(key) % members.length]!;
  }

  /** Round-robin over members with room; undefined when all are full. */
  private nextWithRoom(): Member | undefined {
    const members = this.members;
    const n = members.length;
    for (let k = 0; k < n; k++) {
      const m = members[(this.rr + k) % n]!;
      if (!m.full) {
        this.rr = (this.rr + k + 1) % n;
        return m;
      }
    }
    return undefined;
  }

  /** A redelivery (nack or due delay): to the key's owner if it is still active, else parked for the next one. */
  redeliver(d: Delivery): void {
    const ks = d._ks;
    if (ks !== null) {
      if (ks.owner !== null && ks.owner.active) ks.owner.insert(d);
      else {
        ks.outstanding--;
        this.park(ks, d);
        if (ks.outstanding === 0) this.release(ks);
      }
    } else if (d._member !== null && d._member.active) {
      d._member.insert(d);
    } else {
      d._member = null;
      insertByOffset(this.retry, 0, d);
    }
  }

  delay(d: Delivery, delayMs: number): void {
    const due = Date.now() + delayMs;
    this.delayed.push(due, d._again());
    if (this.timer === undefined || due < this.timerDue) this.arm(due);
  }

  private arm(due: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerDue = due;
    this.timer = setTimeout(this.onTimer, Math.min(Math.max(0, due - Date.now()), MAX_TIMER_MS));
    if (this.members.length === 0) this.timer.unref();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    const now = Date.now();
    for (let top = this.delayed.peek(); top !== undefined && top.due <= now; top = this.delayed.peek()) {
      this.delayed.pop();
      this.redeliver(top.delivery);
    }
    const next = this.delayed.peek();
    if (next !== undefined) this.arm(next.due);
    this.wake();
  };

  /** Ephemeral fan-out: one member of this group gets the message now, or nobody does. */
  offerEphemeral(message: StoredMessage): void {
    const members = this.members;
    if (members.length === 0) return;
    const m =
      message.key === undefined ? members[this.rr++ % members.length]! : this.memberFor(message.key);
    if (m.queued >= EPHEMERAL_PENDING_LIMIT) {
      m.count('ephemeral_dropped');
      return;
    }
    m.push(new Delivery(message, 1, null, m, this.topic.name));
    this.wake();
  }

  /** Schedules one delivery pass (coalesced). */
  wake(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.run);
  }

  private readonly run = (): void => {
    this.scheduled = false;
    if (this.members.length === 0) return;
    this.topic.expire();
    for (let round = 0; round < ROUNDS_PER_PASS; round++) {
      this.dispatch();
      let delivered = 0;
      const members = this.members.length === 1 ? this.members : this.members.slice();
      for (let i = 0; i < members.length; i++) delivered += members[i]!.pump();
      if (delivered === 0) return;
    }
    this.wake();
  };

  /** Moves messages from the retry list and the log into members' queues, per key and within queue limits. */
  private dispatch(): void {
    const members = this.members;
    if (members.length === 0) return;
    if (this.retry.length > 0) {
      const retry = this.retry;
      let taken = 0;
      while (taken < retry.length) {
        const m = this.nextWithRoom();
        if (m === undefined) break;
        m.insert(retry[taken++]!);
      }
      retry.splice(0, taken);
      if (retry.length > 0) return;
    }
    const topic = this.topic;
    if (!topic.persistent) return;
    if (this.cursor < topic.firstOffset) this.cursor = topic.firstOffset;
    const log = topic.log;
    const base = topic.head - topic.firstOffset;
    const end = log.length;
    const topicName = topic.name;
    const keys = this.keys;
    const single = members.length === 1 ? members[0]! : undefined;
    let i = base + this.cursor;
    while (i < end) {
      const msg = log[i]!;
      const key = msg.key;
      if (key === undefined) {
        const m = single !== undefined ? (single.full ? undefined : single) : this.nextWithRoom();
        if (m === undefined) break;
        m.push(new Delivery(msg, 1, null, m, topicName));
      } else {
        let ks = keys.get(key);
        let m: Member;
        if (ks === undefined) {
          m = single ?? members[hashKey(key) % members.length]!;
          if (m.full) break;
          ks = { key, owner: m, outstanding: 0, parked: null };
          if (keys.size >= this.sweepAt) this.sweepIdleKeys();
          keys.set(key, ks);
        } else if (ks.outstanding === 0 && ks.parked === null) {
          // Idle key: (re)assign by hash over the current members.
          m = single ?? members[hashKey(key) % members.length]!;
          if (m.full) break;
          ks.owner = m;
        } else if (ks.owner !== null && ks.owner.active) {
          m = ks.owner;
          if (m.full) break;
        } else {
          // The key's owner left with some of its messages unsettled: keep order by waiting for them.
          const d = new Delivery(msg, 1, ks, null, topicName);
          if (ks.parked === null) ks.parked = [d];
          else ks.parked.push(d);
          i++;
          continue;
        }
        ks.outstanding++;
        m.push(new Delivery(msg, 1, ks, m, topicName));
      }
      i++;
    }
    this.cursor = i - base;
  }

  stats(): GroupStats {
    let queued = 0;
    let unsettled = 0;
    for (const m of this.members) {
      queued += m.queued;
      unsettled += m.unsettled;
    }
    let parked = this.retry.length;
    let trackedKeys = 0;
    for (const ks of this.keys.values()) {
      parked += ks.parked?.length ?? 0;
      if (ks.outstanding > 0 || ks.parked !== null) trackedKeys++;
    }
    return {
      members: this.members.length,
      cursor: this.cursor,
      undispatched: this.topic.persistent ? Math.max(0, this.topic.nextOffset - Math.max(this.cursor, this.topic.firstOffset)) : 0,
      queued,
      unsettled,
      delayed: this.delayed.size,
      parked,
      trackedKeys,
    };
  }
}
