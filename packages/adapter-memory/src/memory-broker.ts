/**
 * An in-process message broker: topics with an append-only log and retention,
 * consumer groups with competing members, per-key order, acknowledgements and
 * redelivery. It is what `MemoryDriver` maps the driver contract onto, and it
 * can be used on its own.
 *
 * Cost model (the hot path): a publish appends to an array; a delivery is one
 * object per message per group, handed to the sink in batches by one delivery
 * pass per group scheduled with a coalesced `setImmediate`. There are no
 * per-message timers or promises; nack delays share one timer per group (a
 * heap ordered by due time).
 */
import {
  BuslineError,
  ErrorCode,
  TopicMismatchError,
  type ConsumerSpec,
  type DeliveredMessage,
  type FieldDifference,
  type MessageSink,
  type PublishOutcome,
  type TopicOptions,
  type TopicState,
  type WireMessage,
} from '@busline/core/driver';
import { DEFAULT_DEDUPE_WINDOW_MS, DEFAULT_DELIVERY_BATCH_SIZE } from './config.js';

/** The header whose value identifies an event for deduplication (CloudEvents `id`). */
export const DEDUPE_HEADER = 'ce-id';
/** An ephemeral subscriber further behind than this many messages loses the newest ones (like a NATS slow consumer). */
export const EPHEMERAL_PENDING_LIMIT = 65_536;
/** Each dedupe generation remembers at most this many ids; beyond it the window shrinks rather than memory growing. */
const DEDUPE_GENERATION_LIMIT = 1_048_576;
/** Delivery rounds per scheduled pass before yielding to the event loop. */
const ROUNDS_PER_PASS = 64;
/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2_147_483_647;

// ---------------------------------------------------------------------------
// Stored messages and the topic log

interface StoredMessage {
  readonly offset: number;
  readonly key: string | undefined;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
  /** Append time (ms since epoch), for time-based retention. */
  readonly time: number;
  /** Bytes counted against `maxBytes` (body plus header names and values); 0 while the topic has no byte limit. */
  size: number;
  /** Published to an ephemeral topic: never stored, never redelivered. */
  readonly ephemeral: boolean;
}

function messageSize(headers: Record<string, string>, body: Uint8Array): number {
  let size = body.byteLength;
  for (const name in headers) size += name.length + (headers[name]?.length ?? 0);
  return size;
}

/** FNV-1a over UTF-16 code units: cheap, stable, well spread for short keys. */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Remembers event ids for a window, in two generations (current and previous)
 * so expiry costs nothing per entry: a generation older than the window is
 * dropped whole.
 */
class Deduper {
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
  /** Values are stored relative to their generation's start so they stay small integers (no boxed doubles). */
  private currentStart: number;
  private previousStart: number;

  constructor(now: number) {
    this.currentStart = this.previousStart = now;
  }

  /** True when `id` was seen within `windowMs`; otherwise remembers it. */
  seen(id: string, now: number, windowMs: number): boolean {
    if (now - this.currentStart >= windowMs || this.current.size >= DEDUPE_GENERATION_LIMIT) {
      this.previous = this.current;
      this.previousStart = this.currentStart;
      this.current = new Map();
      this.currentStart = now;
    }
    const rel = this.current.get(id);
    if (rel !== undefined) {
      if (now - (this.currentStart + rel) < windowMs) return true;
    } else {
      const old = this.previous.get(id);
      if (old !== undefined && now - (this.previousStart + old) < windowMs) return true;
    }
    this.current.set(id, now - this.currentStart);
    return false;
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }
}

export interface PublishSettings {
  /** Dedupe window for this publish; 0 disables. Default 2 minutes. */
  dedupeWindowMs?: number;
  /** Options for a topic this publish creates because it did not exist yet. */
  createWith?: Partial<TopicOptions>;
  /** Messages larger than this (body plus headers) are refused with MESSAGE_TOO_LARGE. Default: no limit. */
  maxMessageBytes?: number;
}

function normalizeOptions(options: Partial<TopicOptions>): TopicOptions {
  const normalized: TopicOptions = { persistence: options.persistence ?? 'persistent' };
  if (options.retentionMs !== undefined) normalized.retentionMs = options.retentionMs;
  if (options.maxMessages !== undefined) normalized.maxMessages = options.maxMessages;
  if (options.maxBytes !== undefined) normalized.maxBytes = options.maxBytes;
  if (options.description !== undefined) normalized.description = options.description;
  return normalized;
}

class Topic {
  options: TopicOptions;
  persistent: boolean;
  /** Stored messages; `log[head]` has offset `firstOffset`. */
  log: (StoredMessage | undefined)[] = [];
  head = 0;
  firstOffset = 0;
  nextOffset = 0;
  bytes = 0;
  private trackBytes = false;
  readonly groups = new Map<string, Group>();
  private deduper: Deduper | undefined;

  constructor(readonly name: string, options: Partial<TopicOptions>) {
    this.options = normalizeOptions(options);
    this.persistent = this.options.persistence === 'persistent';
    this.setByteTracking();
  }

  get stored(): number {
    return this.log.length - this.head;
  }

  state(): TopicState {
    this.expire();
    const o = this.options;
    return {
      persistence: o.persistence,
      retentionMs: o.retentionMs ?? null,
      maxMessages: o.maxMessages ?? null,
      maxBytes: o.maxBytes ?? null,
      replicas: 1,
      partitions: 1,
      description: o.description ?? null,
    };
  }

  /** Applies new options; retention takes effect at once. Returns the fields it cannot honour. */
  update(options: Partial<TopicOptions>): FieldDifference[] {
    const next = normalizeOptions(options);
    const wasPersistent = this.persistent;
    this.options = next;
    this.persistent = next.persistence === 'persistent';
    if (wasPersistent && !this.persistent) this.evict(this.stored);
    this.setByteTracking();
    this.enforce();
    const refused: FieldDifference[] = [];
    if (options.partitions !== undefined && options.partitions !== 1)
      refused.push({ field: 'partitions', wanted: options.partitions, actual: 1 });
    if (options.replicas !== undefined && options.replicas !== 1)
      refused.push({ field: 'replicas', wanted: options.replicas, actual: 1 });
    return refused;
  }

  private setByteTracking(): void {
    const track = this.options.maxBytes !== undefined;
    if (track === this.trackBytes) return;
    this.trackBytes = track;
    let bytes = 0;
    for (let i = this.head; i < this.log.length; i++) {
      const m = this.log[i]!;
      m.size = track ? messageSize(m.headers, m.body) : 0;
      bytes += m.size;
    }
    this.bytes = bytes;
  }

  publish(messages: readonly WireMessage[], dedupeWindowMs: number, maxMessageBytes = Infinity): PublishOutcome[] {
    const count = messages.length;
    const outcomes = new Array<PublishOutcome>(count).fill(undefined);
    if (count === 0) return outcomes;
    const now = Date.now();
    const persistent = this.persistent;
    const maxBytes = this.options.maxBytes;
    const dedupe = dedupeWindowMs > 0 ? (this.deduper ??= new Deduper(now)) : undefined;
    let appended = false;
    for (let i = 0; i < count; i++) {
      const message = messages[i]!;
      const headers = message.headers;
      const size = messageSize(headers, message.body);
      if (size > maxMessageBytes) {
        // As NATS (max_payload) and Kafka (message.max.bytes) do: what works here must work there.
        outcomes[i] = new BuslineError(
          ErrorCode.MessageTooLarge,
          `message of ${size} bytes (body and headers) is larger than the broker accepts (maxMessageBytes ${maxMessageBytes}); make it smaller`,
          { details: { topic: this.name, size, maxMessageBytes } },
        );
        continue;
      }
      if (maxBytes !== undefined) {
        if (size > maxBytes) {
          outcomes[i] = new BuslineError(
            ErrorCode.PublishRejected,
            `message of ${size} bytes is larger than topic "${this.name}" allows (maxBytes ${maxBytes})`,
            { details: { topic: this.name, size, maxBytes } },
          );
          continue;
        }
      }
      if (dedupe !== undefined) {
        const id = headers[DEDUPE_HEADER];
        if (id !== undefined && dedupe.seen(id, now, dedupeWindowMs)) continue;
      }
      const stored: StoredMessage = {
        offset: this.nextOffset++,
        key: message.key ?? undefined,
        // The broker takes ownership: every group reads the same object, so nobody may change it.
        headers: Object.freeze(headers),
        body: message.body,
        time: now,
        size,
        ephemeral: !persistent,
      };
      if (persistent) {
        this.log.push(stored);
        this.bytes += size;
        appended = true;
      } else {
        this.firstOffset = this.nextOffset;
        this.fanOut(stored);
      }
    }
    if (appended) {
      this.enforce(now);
      for (const group of this.groups.values()) if (group.members.length > 0) group.wake();
    }
    return outcomes;
  }

  /** Ephemeral: hand the message to one member of every group that has members now. */
  private fanOut(message: StoredMessage): void {
    for (const group of this.groups.values()) group.offerEphemeral(message);
  }

  /** Retention by count, bytes and (lazily) time: evicts from the head. */
  enforce(now?: number): void {
    const { maxMessages, maxBytes } = this.options;
    if (maxMessages !== undefined && this.stored > maxMessages) this.evict(this.stored - maxMessages);
    if (maxBytes !== undefined) {
      let n = 0;
      let bytes = this.bytes;
      while (bytes > maxBytes && this.head + n < this.log.length) bytes -= this.log[this.head + n++]!.size;
      if (n > 0) this.evict(n);
    }
    this.expire(now);
  }

  /** Time-based retention, evaluated when the log is appended to or read. */
  expire(now?: number): void {
    const retentionMs = this.options.retentionMs;
    if (retentionMs === undefined || this.stored === 0) return;
    const cutoff = (now ?? Date.now()) - retentionMs;
    let n = 0;
    while (this.head + n < this.log.length && this.log[this.head + n]!.time <= cutoff) n++;
    if (n > 0) this.evict(n);
  }

  private evict(n: number): void {
    const log = this.log;
    for (let i = 0; i < n; i++) {
      this.bytes -= log[this.head]!.size;
      log[this.head++] = undefined;
    }
    this.firstOffset += n;
    if (this.head >= 1024 && this.head * 2 >= log.length) {
      this.log = log.slice(this.head);
      this.head = 0;
    }
  }

  at(offset: number): StoredMessage | undefined {
    return this.log[this.head + (offset - this.firstOffset)];
  }

  get dedupeSize(): number {
    return this.deduper?.size ?? 0;
  }
}

// ---------------------------------------------------------------------------
// Deliveries

const QUEUED = 0;
const OUTSTANDING = 1;
const SETTLED = 2;

/** Where one key's messages go within a group while any of them is unsettled. */
interface KeyState {
  readonly key: string;
  /** The member this key is pinned to; a stopped member keeps it until its deliveries of the key settle. */
  owner: Member | null;
  /** This key's deliveries queued at, unsettled at, or waiting for a delayed redelivery from `owner`. */
  outstanding: number;
  /** Messages waiting for the key to get an active owner, in offset order. */
  parked: Delivery[] | null;
}

class Delivery implements DeliveredMessage {
  readonly topic: string;
  readonly key: string | undefined;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
  /** @internal */ _state = QUEUED;
  /** @internal */ _prev: Delivery | null = null;
  /** @internal */ _next: Delivery | null = null;

  constructor(
    /** @internal */ readonly _msg: StoredMessage,
    readonly deliveryCount: number,
    /** @internal */ readonly _ks: KeyState | null,
    /** @internal */ public _member: Member | null,
    topic: string,
  ) {
    this.topic = topic;
    this.key = _msg.key;
    this.headers = _msg.headers;
    this.body = _msg.body;
  }

  ack(): void {
    if (this._state === OUTSTANDING) this._member!.settle(this, false, 0);
  }

  term(): void {
    if (this._state === OUTSTANDING) this._member!.settle(this, false, 0);
  }

  nack(delayMs: number): void {
    if (this._state === OUTSTANDING) this._member!.settle(this, true, delayMs > 0 ? delayMs : 0);
  }

  /** @internal The next delivery of the same message. */
  _again(): Delivery {
    return new Delivery(this._msg, this.deliveryCount + 1, this._ks, this._member, this.topic);
  }
}

/** Inserts `d` into `list[from..]`, kept in offset order. */
function insertByOffset(list: (Delivery | undefined)[], from: number, d: Delivery): void {
  const offset = d._msg.offset;
  let lo = from;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!._msg.offset <= offset) lo = mid + 1;
    else hi = mid;
  }
  if (lo === list.length) list.push(d);
  else list.splice(lo, 0, d);
}

// ---------------------------------------------------------------------------
// Nack delays: one heap and one timer per group

interface DelayedEntry {
  due: number;
  seq: number;
  delivery: Delivery;
}

class DelayHeap {
  private readonly items: DelayedEntry[] = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  peek(): DelayedEntry | undefined {
    return this.items[0];
  }

  push(due: number, delivery: Delivery): boolean {
    const items = this.items;
    const entry: DelayedEntry = { due, seq: this.seq++, delivery };
    let i = items.length;
    items.push(entry);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(entry, items[parent]!)) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = entry;
    return i === 0;
  }

  pop(): DelayedEntry | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    let i = 0;
    const n = items.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && before(items[r]!, items[l]!) ? r : l;
      if (!before(items[child]!, last)) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

function before(a: DelayedEntry, b: DelayedEntry): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}

// ---------------------------------------------------------------------------
// Consumer groups and their members

export interface MemberOptions {
  /** Most messages per `deliver` call. */
  batchSize?: number;
  /** Asynchronous problems no caller awaits (a sink that threw). */
  onError?: (error: Error, context: string) => void;
  /** Counters (e.g. `ephemeral_dropped`). */
  count?: (name: string, by?: number) => void;
}

class Member {
  active = true;
  closed = false;
  /** Delivered and not settled. */
  unsettled = 0;
  private readonly maxInFlight: number;
  private readonly batchSize: number;
  /** Dispatch from the log pauses for this member once this many messages wait in its queue. */
  readonly queueLimit: number;
  /** Waiting deliveries in offset order; `queue[qh]` is next. */
  queue: (Delivery | undefined)[] = [];
  qh = 0;
  /** Unsettled deliveries, oldest first (intrusive list). */
  private first: Delivery | null = null;
  private last: Delivery | null = null;
  private waiting = false;

  constructor(
    readonly group: Group,
    private readonly sink: MessageSink,
    spec: Pick<ConsumerSpec, 'maxInFlight'>,
    private readonly options: MemberOptions,
  ) {
    this.maxInFlight = Math.max(1, spec.maxInFlight);
    this.batchSize = Math.max(1, options.batchSize ?? DEFAULT_DELIVERY_BATCH_SIZE);
    this.queueLimit = Math.max(2 * Math.min(this.batchSize, this.maxInFlight), 16);
  }

  get queued(): number {
    return this.queue.length - this.qh;
  }

  get full(): boolean {
    return this.queue.length - this.qh >= this.queueLimit;
  }

  /** Appends a delivery newer than everything queued (dispatch from the log). */
  push(d: Delivery): void {
    this.queue.push(d);
  }

  /** Places a redelivery among the queue by offset (ahead of newer messages). */
  insert(d: Delivery): void {
    d._member = this;
    insertByOffset(this.queue, this.qh, d);
  }

  /** Takes every waiting delivery out of the queue (the member is leaving). */
  takeQueued(): Delivery[] {
    const taken = this.queue.slice(this.qh) as Delivery[];
    this.queue = [];
    this.qh = 0;
    return taken;
  }

  count(name: string, by = 1): void {
    this.options.count?.(name, by);
  }

  /** Hands queued messages to the sink in batches, within maxInFlight, until the sink pushes back. */
  pump(): number {
    if (!this.active || this.waiting) return 0;
    let delivered = 0;
    while (this.queue.length > this.qh && this.unsettled < this.maxInFlight) {
      const n = Math.min(this.queue.length - this.qh, this.maxInFlight - this.unsettled, this.batchSize);
      const batch: Delivery[] = [];
      const queue = this.queue;
      let qh = this.qh;
      for (let k = 0; k < n; k++) {
        const d = queue[qh]!;
        queue[qh++] = undefined;
        d._state = OUTSTANDING;
        d._prev = this.last;
        if (this.last === null) this.first = d;
        else this.last._next = d;
        this.last = d;
        batch.push(d);
      }
      if (qh === queue.length) {
        this.queue = [];
        this.qh = 0;
      } else if (qh >= 4096 && qh * 2 >= queue.length) {
        this.queue = queue.slice(qh);
        this.qh = 0;
      } else {
        this.qh = qh;
      }
      this.unsettled += n;
      delivered += n;
      let result: void | Promise<void>;
      try {
        result = this.sink.deliver(batch);
      } catch (error) {
        this.reportError(error, 'delivering a batch (the sink threw; the batch stays unsettled until settled or the consumer closes)');
        result = undefined;
      }
      if (result !== undefined && result !== null && typeof (result as Promise<void>).then === 'function') {
        this.waiting = true;
        (result as Promise<void>).then(this.resume, this.resumeAfterError);
        break;
      }
      if (!this.active) break;
    }
    return delivered;
  }

  private readonly resume = (): void => {
    this.waiting = false;
    this.group.wake();
  };

  private readonly resumeAfterError = (error: unknown): void => {
    this.reportError(error, 'delivering a batch (the sink rejected)');
    this.resume();
  };

  private reportError(error: unknown, context: string): void {
    const e = error instanceof Error ? error : new Error(String(error));
    if (this.options.onError) this.options.onError(e, context);
  }

  private unlink(d: Delivery): void {
    const { _prev: prev, _next: next } = d;
    if (prev === null) this.first = next;
    else prev._next = next;
    if (next === null) this.last = prev;
    else next._prev = prev;
    d._prev = d._next = null;
  }

  /** ack / term (`redeliver` false) or nack. */
  settle(d: Delivery, redeliver: boolean, delayMs: number): void {
    d._state = SETTLED;
    this.unlink(d);
    this.unsettled--;
    const group = this.group;
    if (redeliver && !d._msg.ephemeral) {
      if (delayMs > 0) group.delay(d, delayMs);
      else group.redeliver(d._again());
    } else {
      const ks = d._ks;
      if (ks !== null && --ks.outstanding === 0) group.release(ks);
    }
    group.wake();
  }

  /** Stops intake: waiting deliveries go back to the group. Unsettled ones may still be settled. */
  stop(): void {
    if (!this.active) return;
    this.active = false;
    this.group.leave(this);
  }

  /** Leaves for good: unsettled deliveries are redelivered to the other (or next) members. */
  close(): void {
    this.stop();
    if (this.closed) return;
    this.closed = true;
    const returned: Delivery[] = [];
    for (let d = this.first; d !== null; d = d._next) {
      d._state = SETTLED;
      if (!d._msg.ephemeral) returned.push(d._again());
      else this.count('ephemeral_dropped');
    }
    // Clear the links only after the walk above.
    for (let d = this.first; d !== null; ) {
      const next: Delivery | null = d._next;
      d._prev = d._next = null;
      d = next;
    }
    this.first = this.last = null;
    this.unsettled = 0;
    this.group.returnFromClosed(this, returned);
  }
}

class Group {
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

// ---------------------------------------------------------------------------
// The broker

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

export interface TopicStats {
  options: TopicOptions;
  /** Offset of the oldest stored message (= nextOffset when none is stored). */
  firstOffset: number;
  nextOffset: number;
  /** Messages stored now. */
  messages: number;
  /** Bytes counted against maxBytes (0 when the topic has no byte limit). */
  bytes: number;
  /** Event ids remembered for deduplication. */
  dedupeIds: number;
  groups: Record<string, GroupStats>;
}

/** A consumer attached to a group: the member's handle. */
export interface MemorySubscription {
  readonly topic: string;
  readonly group: string;
  /** Stop receiving; delivered messages can still be settled. Messages queued for it go to other members. */
  stop(): void;
  /** Leave the group; unsettled messages are redelivered (deliveryCount + 1) to other or later members. */
  close(): void;
}

export interface MemoryBrokerOptions {
  /** Default dedupe window for publishes that do not name one (ms; 0 = off). */
  dedupeWindowMs?: number;
}

export class MemoryBroker {
  private readonly topics = new Map<string, Topic>();

  /** Forgets a topic with its messages and groups (members still attached keep what they hold); false if there was none. */
  deleteTopic(name: string): boolean {
    return this.topics.delete(name);
  }
  readonly dedupeWindowMs: number;

  constructor(readonly name = 'anonymous', options: MemoryBrokerOptions = {}) {
    this.dedupeWindowMs = options.dedupeWindowMs ?? DEFAULT_DEDUPE_WINDOW_MS;
  }

  hasTopic(topic: string): boolean {
    return this.topics.has(topic);
  }

  topicNames(): string[] {
    return [...this.topics.keys()];
  }

  /** What the topic has (every TopicOptions field; null = unlimited / none), or undefined if it does not exist. */
  describeTopic(topic: string): TopicState | undefined {
    return this.topics.get(topic)?.state();
  }

  /**
   * Creates the topic; a topic that already exists is left as it is (returns
   * false). `partitions` and `replicas` are accepted and reported as 1.
   */
  createTopic(topic: string, options: Partial<TopicOptions> = {}): boolean {
    if (this.topics.has(topic)) return false;
    this.topics.set(topic, new Topic(topic, options));
    return true;
  }

  /**
   * Replaces the topic's options (creating it if needed); retention applies at
   * once, switching to ephemeral drops what is stored. Throws
   * TopicMismatchError for what an in-memory topic cannot have (more than one
   * partition or replica) after applying everything else.
   */
  updateTopic(topic: string, options: Partial<TopicOptions>): void {
    const t = this.topics.get(topic);
    if (t === undefined) {
      this.createTopic(topic, options);
      const refused = this.topics.get(topic)!.update(options);
      if (refused.length) throw new TopicMismatchError(topic, refused, 'cannot be changed on the in-memory broker');
      return;
    }
    const refused = t.update(options);
    if (refused.length) throw new TopicMismatchError(topic, refused, 'cannot be changed on the in-memory broker');
  }

  /**
   * Appends messages in order (or fans them out, for an ephemeral topic).
   * Synchronous: a message is "durably accepted" once it is in the log. A
   * topic that does not exist is created with `settings.createWith` (default:
   * persistent, unlimited).
   */
  publish(topic: string, messages: readonly WireMessage[], settings: PublishSettings = {}): PublishOutcome[] {
    let t = this.topics.get(topic);
    if (t === undefined) {
      t = new Topic(topic, settings.createWith ?? {});
      this.topics.set(topic, t);
    }
    return t.publish(messages, settings.dedupeWindowMs ?? this.dedupeWindowMs, settings.maxMessageBytes);
  }

  /**
   * Joins `spec.group` on `spec.topic` (creating the topic with
   * `spec.persistence` if needed). A group that is new starts at the log start
   * (`earliest`) or its end (`latest`); an existing group keeps its position.
   */
  subscribe(
    spec: Pick<ConsumerSpec, 'topic' | 'group' | 'maxInFlight'> & Partial<Pick<ConsumerSpec, 'persistence' | 'startFrom'>>,
    sink: MessageSink,
    options: MemberOptions = {},
  ): MemorySubscription {
    let t = this.topics.get(spec.topic);
    if (t === undefined) {
      t = new Topic(spec.topic, { persistence: spec.persistence ?? 'persistent' });
      this.topics.set(spec.topic, t);
    }
    let group = t.groups.get(spec.group);
    if (group === undefined) {
      group = new Group(t, spec.group, spec.startFrom ?? 'earliest');
      t.groups.set(spec.group, group);
    }
    const member = new Member(group, sink, spec, options);
    group.join(member);
    return {
      topic: spec.topic,
      group: spec.group,
      stop: () => member.stop(),
      close: () => member.close(),
    };
  }

  stats(topic: string): TopicStats | undefined {
    const t = this.topics.get(topic);
    if (t === undefined) return undefined;
    t.expire();
    const groups: Record<string, GroupStats> = {};
    for (const [name, g] of t.groups) groups[name] = g.stats();
    return {
      options: { ...t.options },
      firstOffset: t.firstOffset,
      nextOffset: t.nextOffset,
      messages: t.stored,
      bytes: t.bytes,
      dedupeIds: t.dedupeSize,
      groups,
    };
  }
}

const brokers = new Map<string, MemoryBroker>();

/**
 * The process-wide broker called `name`: every bus in this process that names
 * it shares its topics and groups (two services talking in one test).
 */
export function getMemoryBroker(name = 'default'): MemoryBroker {
  let broker = brokers.get(name);
  if (broker === undefined) {
    broker = new MemoryBroker(name);
    brokers.set(name, broker);
  }
  return broker;
}

/**
 * Forgets the process-wide broker called `name` (its topics and messages).
 * Drivers already holding it keep using the old instance; new ones get a fresh
 * broker. Returns whether one existed.
 */
export function dropMemoryBroker(name = 'default'): boolean {
  return brokers.delete(name);
}
