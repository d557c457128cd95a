import { createInbox, nuid, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import type { DriverHooks } from '@busline/core/driver';
import type { PublishItem } from './publisher.js';
import { digits, encodeHeaders, putAsciiText, writeHpubTail, type ProtocolWriter } from './wire.js';

/**
 * Fast-ingest batch publishing (nats-server ≥ 2.14, streams with
 * `allow_batched`): the messages of one `publish` call go out as one
 * flow-controlled batch, and the server acknowledges every M persisted
 * messages instead of each one (ADR-50). Control data rides in the reply
 * subject, `<prefix>.<batch>.<flow>.fail.<seq>.<op>.$FI`; the stored messages
 * are exactly what a per-message publish stores, `Nats-Msg-Id` dedupe
 * included (a duplicate is skipped silently, so it counts as stored).
 *
 * The batch runs with gap mode `fail`: the server stores messages 1..k in
 * order and reports k. `publish` resolves with k; the caller sends the rest
 * (after an error, a timeout or a disconnect) through the per-message path,
 * with the same ids, so nothing is stored twice and the order holds.
 */

/** The most acks interval we accept; the server may ask for fewer (it halves when several batches share a stream). */
const FLOW = 500;
/** Acks we let be outstanding before we wait (orbit.go's default is 2). */
const OUTSTANDING = 2;
/** Without any reply for this long, a ping makes the server repeat its last ack (and keeps the batch alive). */
const PING_MS = 2_000;
const OP_START = 0;
const OP_APPEND = 1;
const OP_COMMIT = 2;
const OP_PING = 4;
const decoder = new TextDecoder();

/** What a batch achieved: the first `stored` messages are stored (or were already); `error` says why it ended early. */
export interface FastBatchResult {
  stored: number;
  error?: string;
  /** The stream refused fast batches altogether (not allowed, too many): use the per-message path. */
  refused?: boolean;
}

class Batch {
  next = 1;
  lastAck = 0;
  flow = 1;
  started = false;
  lastReply = Date.now();
  done = false;
  resolve!: (result: FastBatchResult) => void;
  readonly promise = new Promise<FastBatchResult>((resolve) => (this.resolve = resolve));

  constructor(
    readonly id: string,
    readonly topic: string,
    readonly items: readonly PublishItem[],
  ) {}

  /** Item i's subject: its own (a partitioned topic's key subject) or the topic. */
  subjectOf(i: number): string {
    return this.items[i]!.subject ?? this.topic;
  }
}

export class FastBatchPublisher {
  private readonly prefix: string;
  private readonly sub: Subscription;
  private readonly batches = new Map<string, Batch>();
  private timer: NodeJS.Timeout | undefined;
  /** The last batch of each topic: batches of one stream go one after another (see publish). */
  private readonly tails = new Map<string, Promise<unknown>>();
  /** Set by close: a batch from then on ends before it starts, so the caller's per-message path says why. */
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly hooks: DriverHooks,
    inboxPrefix: string,
    private readonly writer: ProtocolWriter | undefined,
  ) {
    this.prefix = createInbox(inboxPrefix);
    this.sub = nc.subscribe(`${this.prefix}.>`, {
      callback: (error, msg) => {
        if (error === null) this.onReply(msg);
      },
    });
  }

  /**
   * Publishes `items` (each to its own subject, else the topic's) as one batch; resolves with
   * how many of them, from the first on, are stored. Never rejects. Batches
   * of one topic run one after another: a stream with several open batches
   * starts each new one at an ack interval of 1 and halves the others', which
   * measured slower than queueing them.
   */
  publish(topic: string, items: readonly PublishItem[], timeoutMs: number): Promise<FastBatchResult> {
    const deadline = Date.now() + timeoutMs;
    const run = (this.tails.get(topic) ?? Promise.resolve()).then(() => this.run(topic, items, deadline - Date.now()));
    this.tails.set(topic, run);
    void run.then(() => {
      if (this.tails.get(topic) === run) this.tails.delete(topic);
    });
    return run;
  }

  private run(topic: string, items: readonly PublishItem[], timeoutMs: number): Promise<FastBatchResult> {
    if (this.closed) return Promise.resolve({ stored: 0, error: 'closed' });
    if (timeoutMs <= 0) return Promise.resolve({ stored: 0, error: 'no time left after the batches before it' });
    const batch = new Batch(nuid.next(), topic, items);
    this.batches.set(batch.id, batch);
    this.ensureTimer();
    const deadline = setTimeout(() => this.finish(batch, { stored: batch.lastAck, error: `no acknowledgement within ${timeoutMs} ms` }), timeoutMs);
    deadline.unref();
    void batch.promise.then(() => clearTimeout(deadline));
    this.send(batch, 1); // the start: the server answers before we go on
    this.hooks.count('fast_batches');
    return batch.promise;
  }

  /** A disconnect ends every batch: what was acknowledged is stored, the rest goes the per-message way. */
  onDisconnect(): void {
    for (const batch of this.batches.values()) this.finish(batch, { stored: batch.lastAck, error: 'disconnected' });
  }

  /**
   * Ends every batch (what was acknowledged is stored) and every later one at
   * once: at the driver's close, or when the connection closed for good (a
   * closed connection's protocol writer still takes what it is given, so a
   * batch would otherwise wait out its whole timeout).
   */
  close(): void {
    this.closed = true;
    for (const batch of this.batches.values()) this.finish(batch, { stored: batch.lastAck, error: 'closed' });
    clearInterval(this.timer);
    this.timer = undefined;
    try {
      this.sub.unsubscribe();
    } catch {
      // closed connection
    }
  }

  private ensureTimer(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.pingStalled(), PING_MS);
    this.timer.unref();
  }

  /** A batch waiting on acks with no reply for PING_MS: the server repeats its last ack (op 4, seq = the highest sent). */
  private pingStalled(): void {
    if (this.batches.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    const now = Date.now();
    for (const batch of this.batches.values()) {
      if (!batch.started || now - batch.lastReply < PING_MS) continue;
      try {
        this.nc.publish(batch.subjectOf(Math.max(0, batch.next - 2)), new Uint8Array(0), { reply: this.reply(batch, batch.next - 1, OP_PING) });
      } catch {
        // the deadline ends it
      }
    }
  }

  private reply(batch: Batch, seq: number, op: number): string {
    return `${this.prefix}.${batch.id}.${FLOW}.fail.${seq}.${op}.$FI`;
  }

  /** Sends messages from `batch.next` up to `until` (inclusive), within the flow window. */
  private send(batch: Batch, until: number): void {
    const count = batch.items.length;
    const last = Math.min(until, count);
    if (batch.next > last || batch.done) return;
    const from = batch.next;
    batch.next = last + 1;
    try {
      if (this.writer !== undefined) this.write(batch, from, last);
      else {
        for (let seq = from; seq <= last; seq++) {
          const item = batch.items[seq - 1]!;
          const headers = encodeHeaders(item.headers, item.msgId);
          if (typeof headers === 'string') throw new Error(headers);
          this.nc.publish(batch.subjectOf(seq - 1), item.body, { reply: this.reply(batch, seq, this.opOf(seq, count)), headers });
        }
      }
    } catch (error) {
      this.finish(batch, { stored: batch.lastAck, error: `publishing failed: ${error instanceof Error ? error.message : String(error)}` });
    }
  }

  private opOf(seq: number, count: number): number {
    return seq === 1 ? (count === 1 ? OP_COMMIT : OP_START) : seq === count ? OP_COMMIT : OP_APPEND;
  }

  /** `HPUB <subject> <reply> <hlen> <tlen>` frames in one buffer for the client's protocol writer. */
  private write(batch: Batch, from: number, last: number): void {
    const count = batch.items.length;
    let total = 0;
    const replies: string[] = [];
    for (let seq = from; seq <= last; seq++) {
      const item = batch.items[seq - 1]!;
      const reply = this.reply(batch, seq, this.opOf(seq, count));
      replies.push(reply);
      const size = item.hlen + item.body.length;
      total += 5 + Buffer.byteLength(batch.subjectOf(seq - 1)) + 1 + reply.length + 1 + digits(item.hlen) + 1 + digits(size) + 2 + size + 2;
    }
    const buf = Buffer.allocUnsafe(total);
    let off = 0;
    for (let seq = from; seq <= last; seq++) {
      const item = batch.items[seq - 1]!;
      off = putAsciiText(buf, off, 'HPUB ');
      off += buf.write(batch.subjectOf(seq - 1), off, 'utf8');
      buf[off++] = 0x20;
      off = putAsciiText(buf, off, replies[seq - from]!);
      off = writeHpubTail(buf, off, item.hlen, item.headers, item.msgId, item.body);
    }
    if (off !== total) throw new Error(`internal error: encoded ${off} bytes, expected ${total}`);
    this.writer!.sendCommand(buf);
    this.writer!.outMsgs += last - from + 1;
    this.writer!.outBytes += total;
  }

  private onReply(msg: Msg): void {
    // <prefix>.<batch>.<flow>.<gap>.<seq>.<op>.$FI
    const rest = msg.subject.slice(this.prefix.length + 1);
    const batch = this.batches.get(rest.slice(0, rest.indexOf('.')));
    if (batch === undefined || batch.done) return;
    batch.lastReply = Date.now();
    let reply: { type?: string; seq?: number; msgs?: number; count?: number; error?: { code?: number; err_code?: number; description?: string } };
    try {
      reply = JSON.parse(decoder.decode(msg.data)) as typeof reply;
    } catch {
      return;
    }
    switch (reply.type) {
      case 'ack':
        batch.started = true;
        batch.lastAck = Math.max(batch.lastAck, reply.seq ?? 0);
        batch.flow = Math.max(1, reply.msgs ?? 1);
        this.send(batch, batch.lastAck + batch.flow * OUTSTANDING - 1);
        return;
      case 'gap':
      case 'err':
        // The terminal acknowledgement follows with the count of what was stored.
        this.hooks.count(`fast_batch_${reply.type}`);
        return;
      default:
        if (reply.error !== undefined) {
          const refused = !batch.started || reply.error.err_code === 10205 || reply.error.err_code === 10211;
          this.finish(batch, { stored: batch.lastAck, error: `${reply.error.description ?? 'error'} (${reply.error.err_code ?? reply.error.code})`, refused });
        } else {
          this.finish(batch, { stored: Math.min(batch.items.length, Math.max(batch.lastAck, reply.count ?? 0)) });
        }
    }
  }

  private finish(batch: Batch, result: FastBatchResult): void {
    if (batch.done) return;
    batch.done = true;
    this.batches.delete(batch.id);
    if (result.error !== undefined) this.hooks.count('fast_batches_cut_short');
    batch.resolve(result);
  }
}
