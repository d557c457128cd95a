/**
 * PublishBatcher: concurrent publishes are gathered here and handed to the
 * producer client (kafkajs-producer.ts or kafka-ts-producer.ts) one batch at
 * a time; neither client lingers the way busline needs.
 *
 * - A batch is sent when it is full (`maxBatchMessages` / `maxBatchBytes`),
 *   or `lingerMs` after its oldest message was queued — and only while fewer
 *   than `maxInFlightBatches` batches are unacknowledged. While a batch is in
 *   flight, publishes keep gathering, so the next batch goes out as soon as
 *   the previous one is acknowledged (the round trip is the linger).
 * - Batches are sent in queue order and, with one batch in flight (the
 *   default), strictly one after another, so together with the idempotent
 *   producer (whose retries the broker dedupes and keeps in sequence) the
 *   per-key publish order holds across retries.
 * - Each publish call resolves once every one of its messages has an outcome:
 *   `undefined` when its batch was acknowledged, else the mapped error. A
 *   message not acknowledged within the call's timeout gets a
 *   PublishTimeoutError; if it was still queued it is never sent.
 * - Memory is bounded: beyond `maxQueuedMessages` queued messages a publish
 *   call waits (FIFO) for room before its messages are queued.
 * - Failures stay with what caused them. A record over its topic's
 *   `max.message.bytes` (when the caller knows the limit) is refused before
 *   it is queued, and a batch stays under the smallest limit of its topics.
 *   A batch that fails is split by IsolatingSender (isolating-sender.ts),
 *   which also keeps the producer session in step with what was stored.
 * - A call's `timeoutMs` must be a positive number of milliseconds (at most
 *   2^31-1, Node's timer limit); anything else fails the call at once.
 *
 * Cost: per message one queue entry and one kafkajs record; per call one
 * promise. Timeouts need no timer per call: calls with the same timeout
 * expire in call order, so one timer per distinct timeout value watches the
 * oldest open call. When a batch is acknowledged the next one is handed to
 * kafkajs first and the callers are resolved a macrotask later, so building
 * the next publishes overlaps the broker's round trip instead of delaying
 * the next request.
 */
import { BuslineError, ClosedError, Deque, ErrorCode, PublishTimeoutError, type PublishOutcome, type WireMessage } from '@busline/core/driver';
import { DeadlineQueue, MAX_TIMER_MS } from './deadline-queue.js';
import { IsolatingSender, type FailureScope } from './isolating-sender.js';
import { messageTooLarge } from './kafka-errors.js';

/** A record as kafkajs takes it. */
export interface OutgoingRecord {
  key: string | null;
  value: Buffer;
  headers: Record<string, string>;
}

/** Records for one topic in a kafkajs `sendBatch` call. */
export interface TopicRecords {
  topic: string;
  messages: OutgoingRecord[];
}

/**
 * Limits and callbacks of a PublishBatcher: how long to linger, how large a batch and how many in
 * flight.
 */
export interface PublishBatcherOptions {
  lingerMs: number;
  maxBatchMessages: number;
  maxBatchBytes: number;
  maxInFlightBatches: number;
  maxQueuedMessages: number;
  /** Sends one batch; resolves when the broker acknowledged all of it. */
  send(batch: TopicRecords[]): Promise<unknown>;
  /** Turns a failed send into what each of its publishes reports. */
  mapError(error: unknown, topic: string, timeoutMs: number): BuslineError;
  /** What part of a failed batch an error belongs to (default: the whole batch). */
  scopeOf?(error: unknown): FailureScope;
  /**
   * Starts a new producer session: before the records of a failed request are
   * sent one by one (kafkajs rolled back the idempotence sequence numbers of
   * every partition in it, also of partitions the broker did store), before a
   * request refused for its sequence numbers is sent again, and before the
   * batch after one that failed. `cause` is the failure that made it needed.
   */
  reset?(cause: unknown): Promise<void>;
}

/** Record batch header of the v2 message format, counted against `max.message.bytes`. */
const BATCH_OVERHEAD = 61;

/** Bytes a record adds to a produce request beyond its key, value and header text (varints, attributes, offsets). */
const RECORD_OVERHEAD = 24;
const HEADER_OVERHEAD = 4;

/**
 * An upper bound of `message`'s bytes in a record batch of its own (UTF-8
 * text, widest varints), for the check against `max.message.bytes`.
 */
export function maxRecordBytes(message: WireMessage): number {
  let size = BATCH_OVERHEAD + 36 + message.body.byteLength + (message.key === undefined ? 0 : Buffer.byteLength(message.key));
  const headers = message.headers;
  for (const name in headers) size += 10 + Buffer.byteLength(name) + Buffer.byteLength(headers[name]!);
  return size;
}

/**
 * Estimated bytes of `message` in a produce request. Header names and values
 * are counted in UTF-16 units (exact for ASCII, which envelope metadata is);
 * keep `maxBatchBytes` a little below the broker's limit.
 */
export function recordSize(message: WireMessage): number {
  let size = RECORD_OVERHEAD + message.body.byteLength + (message.key === undefined ? 0 : message.key.length);
  const headers = message.headers;
  for (const name in headers) size += HEADER_OVERHEAD + name.length + headers[name]!.length;
  return size;
}

/** An outcome slot not filled yet. */
const OPEN = Symbol('open');
type Slot = PublishOutcome | typeof OPEN;

class Request {
  readonly outcomes: Slot[];
  remaining: number;
  readonly deadline: number;
  resolve!: (outcomes: PublishOutcome[]) => void;
  readonly promise: Promise<PublishOutcome[]>;

  constructor(
    readonly topic: string,
    readonly count: number,
    readonly timeoutMs: number,
    startedAt: number,
    /** The topic's `max.message.bytes`, when known (Infinity otherwise). */
    readonly limit: number,
  ) {
    this.outcomes = new Array<Slot>(count).fill(OPEN);
    this.remaining = count;
    this.deadline = startedAt + timeoutMs;
    this.promise = new Promise((resolve) => (this.resolve = resolve));
  }

  settle(index: number, outcome: PublishOutcome): void {
    if (this.outcomes[index] !== OPEN) return;
    this.outcomes[index] = outcome;
    if (--this.remaining === 0) this.resolve(this.outcomes as PublishOutcome[]);
  }

  settled(index: number): boolean {
    return this.outcomes[index] !== OPEN;
  }

  get done(): boolean {
    return this.remaining === 0;
  }
}

/** One queued message; it is also the record handed to kafkajs (which reads key, value and headers). */
interface Entry extends OutgoingRecord {
  readonly request: Request;
  readonly index: number;
  readonly size: number;
}

interface Waiter {
  readonly request: Request;
  readonly messages: readonly WireMessage[];
}

/**
 * Coalesces concurrent publishes into kafkajs batches (linger, size and in-flight limits) and
 * reports an outcome per message, so each publish resolves only once its own record is
 * acknowledged. Exported for benchmarks and tests.
 */
export class PublishBatcher {
  private queue: Entry[] = [];
  private head = 0;
  private queuedBytes = 0;
  private oldestQueuedAt = 0;
  private inFlight = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly waiters = new Deque<Waiter>();
  private readonly deadlines = new Map<number, DeadlineQueue<Request>>();
  private closed = false;
  private idle: (() => void)[] = [];
  /** Batches sent and messages in them (for metrics, benchmarks and tests). */
  batches = 0;
  sentMessages = 0;

  private readonly sender: IsolatingSender<Entry>;

  constructor(private readonly options: PublishBatcherOptions) {
    this.sender = new IsolatingSender(options);
  }

  /** Publishes queued and not yet in a batch sent. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Batches sent and not yet acknowledged. */
  get inFlightBatches(): number {
    return this.inFlight;
  }

  /**
   * Queues `messages` for `topic` in order; resolves with one outcome per
   * message. Never rejects. `limit` is the topic's `max.message.bytes` where
   * known; `startedAt` (performance.now()) is when the call began, if before now.
   */
  publish(topic: string, messages: readonly WireMessage[], timeoutMs: number, limit = Number.POSITIVE_INFINITY, startedAt = performance.now()): Promise<PublishOutcome[]> {
    const valid = timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS; // false for NaN too
    const request = new Request(topic, messages.length, valid ? timeoutMs : 0, startedAt, limit);
    if (messages.length === 0) {
      request.resolve([]);
      return request.promise;
    }
    if (!valid || this.closed) {
      const failure = this.closed
        ? new ClosedError('Kafka producer')
        : new BuslineError(ErrorCode.ConfigInvalid, `publish timeoutMs must be a positive number of milliseconds (at most ${MAX_TIMER_MS}), got ${String(timeoutMs)}`);
      for (let i = 0; i < messages.length; i++) request.settle(i, failure);
      return request.promise;
    }
    if (limit !== Number.POSITIVE_INFINITY) {
      // Refuse only the records over the limit; the cheap estimate rules most out (UTF-8 is at most 3 bytes per UTF-16 unit).
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i]!;
        if (3 * recordSize(m) + BATCH_OVERHEAD + 36 <= limit) continue;
        const size = maxRecordBytes(m);
        if (size > limit) request.settle(i, messageTooLarge(topic, size, limit));
      }
      if (request.done) return request.promise;
    }
    let deadlines = this.deadlines.get(timeoutMs);
    if (deadlines === undefined) this.deadlines.set(timeoutMs, (deadlines = new DeadlineQueue(this.expire)));
    deadlines.add(request);
    if (this.waiters.length > 0 || (this.queued > 0 && this.queued + messages.length > this.options.maxQueuedMessages)) {
      this.waiters.push({ request, messages });
    } else {
      this.enqueue(request, messages);
      this.schedule();
    }
    return request.promise;
  }

  /** Resolves once nothing is queued, waiting or in flight. */
  flush(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Fails queued and waiting publishes with ClosedError; in-flight batches still settle. */
  close(): void {
    this.closed = true;
    if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    const closed = new ClosedError('Kafka producer');
    for (const w of this.waiters.drain()) for (let i = 0; i < w.request.count; i++) w.request.settle(i, closed);
    for (let i = this.head; i < this.queue.length; i++) {
      const e = this.queue[i]!;
      e.request.settle(e.index, closed);
    }
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
    for (const d of this.deadlines.values()) d.clear();
    this.deadlines.clear();
    this.checkIdle();
  }

  private isIdle(): boolean {
    return this.queued === 0 && this.inFlight === 0 && this.waiters.length === 0;
  }

  private checkIdle(): void {
    if (this.idle.length > 0 && this.isIdle()) for (const resolve of this.idle.splice(0)) resolve();
  }

  private enqueue(request: Request, messages: readonly WireMessage[]): void {
    if (this.queued === 0) this.oldestQueuedAt = performance.now();
    for (let i = 0; i < messages.length; i++) {
      if (request.settled(i)) continue; // refused as too large
      const m = messages[i]!;
      const body = m.body;
      const size = recordSize(m);
      this.queue.push({
        key: m.key ?? null,
        value: Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
        headers: m.headers,
        request,
        index: i,
        size,
      });
      this.queuedBytes += size;
    }
  }

  private admitWaiters(): void {
    while (this.waiters.length > 0) {
      const w = this.waiters.peek()!;
      if (w.request.done) {
        this.waiters.shift();
        continue;
      }
      if (this.queued > 0 && this.queued + w.messages.length > this.options.maxQueuedMessages) return;
      this.waiters.shift();
      this.enqueue(w.request, w.messages);
    }
  }

  private readonly expire = (request: Request): void => {
    const timeout = new PublishTimeoutError(request.topic, request.timeoutMs);
    for (let i = 0; i < request.count; i++) request.settle(i, timeout);
    // Queued entries of this call are skipped when the next batch is cut.
  };

  /** Sends now if a batch is ready, else arms the linger timer. */
  private schedule(): void {
    if (this.queued === 0 || this.inFlight >= this.options.maxInFlightBatches) return;
    const full = this.queued >= this.options.maxBatchMessages || this.queuedBytes >= this.options.maxBatchBytes;
    const waited = performance.now() - this.oldestQueuedAt;
    if (full || waited >= this.options.lingerMs) {
      if (this.lingerTimer !== undefined) {
        clearTimeout(this.lingerTimer);
        this.lingerTimer = undefined;
      }
      this.sendNext();
      return;
    }
    if (this.lingerTimer === undefined) {
      this.lingerTimer = setTimeout(() => {
        this.lingerTimer = undefined;
        this.schedule();
      }, Math.max(0, this.options.lingerMs - waited));
    }
  }

  private sendNext(): void {
    const { maxBatchMessages, maxBatchBytes } = this.options;
    const entries: Entry[] = [];
    const byTopic = new Map<string, Entry[]>();
    let bytes = 0;
    // The smallest max.message.bytes of the batch's topics bounds it too: one partition's share must fit.
    let cap = maxBatchBytes;
    const queue = this.queue;
    let i = this.head;
    for (; i < queue.length; i++) {
      const e = queue[i]!;
      if (e.request.settled(e.index)) {
        this.queuedBytes -= e.size;
        continue;
      }
      const limit = e.request.limit - BATCH_OVERHEAD;
      if (entries.length >= maxBatchMessages || (entries.length > 0 && bytes + e.size > Math.min(cap, limit))) break;
      if (limit < cap) cap = limit;
      bytes += e.size;
      this.queuedBytes -= e.size;
      entries.push(e);
      let list = byTopic.get(e.request.topic);
      if (list === undefined) byTopic.set(e.request.topic, (list = []));
      list.push(e);
    }
    this.head = i;
    if (this.head === queue.length) {
      this.queue = [];
      this.head = 0;
      this.queuedBytes = 0;
    } else {
      if (this.head >= 4096 && this.head * 2 >= queue.length) {
        this.queue = queue.slice(this.head);
        this.head = 0;
      }
      this.oldestQueuedAt = performance.now();
    }
    this.admitWaiters();
    if (entries.length === 0) {
      this.checkIdle();
      return;
    }
    this.inFlight++;
    this.batches++;
    this.sentMessages += entries.length;
    void this.sender.send(entries, byTopic).then((failures) => this.complete(entries, failures));
    // More may be ready right away (several batches in flight, or a full queue).
    if (this.inFlight < this.options.maxInFlightBatches) this.schedule();
  }

  private complete(entries: Entry[], failures: Map<Entry, unknown> | undefined): void {
    this.inFlight--;
    this.admitWaiters();
    // The next batch goes to kafkajs first; its callers are resolved a macrotask later.
    this.schedule();
    setImmediate(() => {
      if (failures === undefined) {
        for (const e of entries) e.request.settle(e.index, undefined);
      } else {
        // One mapped error per call and cause.
        const mapped = new Map<unknown, Map<Request, BuslineError>>();
        for (const e of entries) {
          const error = failures.get(e);
          if (error === undefined) {
            e.request.settle(e.index, undefined);
            continue;
          }
          let byRequest = mapped.get(error);
          if (byRequest === undefined) mapped.set(error, (byRequest = new Map()));
          let failure = byRequest.get(e.request);
          if (failure === undefined) byRequest.set(e.request, (failure = this.options.mapError(error, e.request.topic, e.request.timeoutMs)));
          e.request.settle(e.index, failure);
        }
      }
      this.checkIdle();
    });
  }
}
