/**
 * PublishBatcher: kafkajs has no linger, so concurrent publishes are gathered
 * here and sent with one `sendBatch` per batch.
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
 */
import { ClosedError, PublishTimeoutError, type BuslineError, type PublishOutcome, type WireMessage } from '@busline/core';

/** A record as kafkajs takes it. */
export interface OutgoingRecord {
  key: string | null;
  value: Buffer;
  headers: Record<string, string>;
}

export interface TopicRecords {
  topic: string;
  messages: OutgoingRecord[];
}

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
}

/** Bytes a record adds to a produce request beyond its key, value and header text (varints, attributes, offsets). */
const RECORD_OVERHEAD = 24;
const HEADER_OVERHEAD = 4;

export function recordSize(message: WireMessage): number {
  let size = RECORD_OVERHEAD + message.body.byteLength + (message.key === undefined ? 0 : Buffer.byteLength(message.key));
  const headers = message.headers;
  for (const name in headers) size += HEADER_OVERHEAD + name.length + Buffer.byteLength(headers[name]!);
  return size;
}

const QUEUED = 0;
const SENT = 1;
const SETTLED = 2;

class Request {
  readonly outcomes: PublishOutcome[];
  readonly state: Uint8Array;
  remaining: number;
  timer: NodeJS.Timeout | undefined;
  resolve!: (outcomes: PublishOutcome[]) => void;
  readonly promise: Promise<PublishOutcome[]>;

  constructor(
    readonly topic: string,
    readonly count: number,
    readonly timeoutMs: number,
  ) {
    this.outcomes = new Array<PublishOutcome>(count).fill(undefined);
    this.state = new Uint8Array(count);
    this.remaining = count;
    this.promise = new Promise((resolve) => (this.resolve = resolve));
  }

  settle(index: number, outcome: PublishOutcome): void {
    if (this.state[index] === SETTLED) return;
    this.state[index] = SETTLED;
    this.outcomes[index] = outcome;
    if (--this.remaining === 0) {
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.resolve(this.outcomes);
    }
  }

  get done(): boolean {
    return this.remaining === 0;
  }
}

interface Entry {
  request: Request;
  index: number;
  record: OutgoingRecord;
  size: number;
}

interface Waiter {
  request: Request;
  records: OutgoingRecord[];
  sizes: number[];
}

export class PublishBatcher {
  private queue: Entry[] = [];
  private head = 0;
  private queuedBytes = 0;
  private oldestQueuedAt = 0;
  private inFlight = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly waiters: Waiter[] = [];
  private closed = false;
  private idle: (() => void)[] = [];
  /** Batches sent and messages in them (for metrics and tests). */
  batches = 0;
  sentMessages = 0;

  constructor(private readonly options: PublishBatcherOptions) {}

  get queued(): number {
    return this.queue.length - this.head;
  }

  get inFlightBatches(): number {
    return this.inFlight;
  }

  /** Queues `messages` for `topic` in order; resolves with one outcome per message. Never rejects. */
  publish(topic: string, messages: readonly WireMessage[], timeoutMs: number): Promise<PublishOutcome[]> {
    const request = new Request(topic, messages.length, timeoutMs);
    if (messages.length === 0) {
      request.resolve([]);
      return request.promise;
    }
    if (this.closed) {
      const closed = new ClosedError('Kafka producer');
      for (let i = 0; i < messages.length; i++) request.settle(i, closed);
      return request.promise;
    }
    const records: OutgoingRecord[] = new Array<OutgoingRecord>(messages.length);
    const sizes: number[] = new Array<number>(messages.length);
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      records[i] = {
        key: m.key ?? null,
        value: Buffer.isBuffer(m.body) ? m.body : Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength),
        headers: m.headers,
      };
      sizes[i] = recordSize(m);
    }
    request.timer = setTimeout(() => this.expire(request), timeoutMs);
    if (this.waiters.length > 0 || this.queued + messages.length > this.options.maxQueuedMessages && this.queued > 0) {
      this.waiters.push({ request, records, sizes });
    } else {
      this.enqueue(request, records, sizes);
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
    for (const w of this.waiters.splice(0)) for (let i = 0; i < w.request.count; i++) w.request.settle(i, closed);
    for (let i = this.head; i < this.queue.length; i++) {
      const e = this.queue[i]!;
      e.request.settle(e.index, closed);
    }
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
    this.checkIdle();
  }

  private isIdle(): boolean {
    return this.queued === 0 && this.inFlight === 0 && this.waiters.length === 0;
  }

  private checkIdle(): void {
    if (this.idle.length > 0 && this.isIdle()) for (const resolve of this.idle.splice(0)) resolve();
  }

  private enqueue(request: Request, records: OutgoingRecord[], sizes: number[]): void {
    if (this.queued === 0) this.oldestQueuedAt = performance.now();
    for (let i = 0; i < records.length; i++) {
      this.queue.push({ request, index: i, record: records[i]!, size: sizes[i]! });
      this.queuedBytes += sizes[i]!;
    }
  }

  private admitWaiters(): void {
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      if (w.request.done) {
        this.waiters.shift();
        continue;
      }
      if (this.queued > 0 && this.queued + w.records.length > this.options.maxQueuedMessages) return;
      this.waiters.shift();
      this.enqueue(w.request, w.records, w.sizes);
    }
  }

  private expire(request: Request): void {
    request.timer = undefined;
    const timeout = new PublishTimeoutError(request.topic, request.timeoutMs);
    for (let i = 0; i < request.count; i++) request.settle(i, timeout);
    // Queued entries of this request are skipped when the next batch is cut.
  }

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
    const byTopic = new Map<string, OutgoingRecord[]>();
    let bytes = 0;
    const queue = this.queue;
    let i = this.head;
    for (; i < queue.length; i++) {
      const e = queue[i]!;
      if (e.request.state[e.index] === SETTLED) {
        this.queuedBytes -= e.size;
        continue;
      }
      if (entries.length >= maxBatchMessages || (entries.length > 0 && bytes + e.size > maxBatchBytes)) break;
      bytes += e.size;
      this.queuedBytes -= e.size;
      e.request.state[e.index] = SENT;
      entries.push(e);
      let list = byTopic.get(e.request.topic);
      if (list === undefined) byTopic.set(e.request.topic, (list = []));
      list.push(e.record);
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
    const batch: TopicRecords[] = [];
    for (const [topic, messages] of byTopic) batch.push({ topic, messages });
    this.inFlight++;
    this.batches++;
    this.sentMessages += entries.length;
    let sending: Promise<unknown>;
    try {
      sending = this.options.send(batch);
    } catch (error) {
      sending = Promise.reject(error);
    }
    sending.then(
      () => this.complete(entries, undefined),
      (error: unknown) => this.complete(entries, error),
    );
    // More may be ready right away (several batches in flight, or a full queue).
    if (this.inFlight < this.options.maxInFlightBatches) this.schedule();
  }

  private complete(entries: Entry[], error: unknown): void {
    this.inFlight--;
    if (error === undefined) {
      for (const e of entries) e.request.settle(e.index, undefined);
    } else {
      const mapped = new Map<Request, BuslineError>();
      for (const e of entries) {
        let failure = mapped.get(e.request);
        if (failure === undefined) mapped.set(e.request, (failure = this.options.mapError(error, e.request.topic, e.request.timeoutMs)));
        e.request.settle(e.index, failure);
      }
    }
    this.admitWaiters();
    this.schedule();
    this.checkIdle();
  }
}
