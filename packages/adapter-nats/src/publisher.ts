import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { BrokerUnavailableError, Deque, PublishTimeoutError, errorMessage, type BuslineError, type DriverHooks, type PublishOutcome } from '@busline/core/driver';
import { DONE, INFLIGHT, takeOverdue, WAITING, type Batch, type Entry } from './publish-entry.js';
import { errorAck, isUnavailable, noStream } from './publish-errors.js';
import { PublishWriter } from './publish-writer.js';
import { TurnBatch } from './turn-batch.js';
import { clientInternals } from './wire.js';

/**
 * Pipelined JetStream publishing on the one connection.
 *
 * Every persistent message is published with a reply subject under ONE
 * wildcard inbox subscription (`<inbox>.<token>`); JetStream answers each with
 * a publish ack (`{"stream":..,"seq":..[,"duplicate":true]}`) or an error ack
 * (`{"error":{..}}`), and the token finds the waiting message. Up to `window`
 * messages are in flight; beyond that they wait in a FIFO queue, so memory is
 * bounded by the callers' own messages and the order of publishes is the order
 * they are written to the socket (and therefore stored).
 *
 * A message's outcome is reported only when its ack arrives (stored), when the
 * server refuses it (error ack), when its deadline passes (PublishTimeoutError,
 * or BrokerUnavailableError while disconnected), or when the connection is
 * closed for good (BrokerUnavailableError).
 *
 * Reconnects: the NATS client discards what it had not written when the
 * socket dropped, and acks in flight are lost with it. On reconnect every
 * message still in flight is re-sent, in its original order, before anything
 * new; each carries `Nats-Msg-Id` = its event id, so one the server had
 * already stored is answered as a duplicate and stored once. While
 * disconnected, new publishes wait in the queue (within their deadline).
 *
 * Lost acks without a reconnect: in a cluster, a stream leader that dies
 * takes the messages it had not yet replicated with it, while this client's
 * own connection (to another node) stays up; no ack ever comes for them. A
 * message unacknowledged for `resendAfterMs` is therefore sent again (same
 * Nats-Msg-Id: stored once), together with every other overdue one, in send
 * order, and again after twice as long, and so on until its deadline (a
 * stalled server is not flooded with copies).
 *
 * Deadlines cost no timer per message: entries sit in one FIFO per distinct
 * timeout (deadlines in a FIFO are then in order), and one sweep timer, running
 * only while anything is pending, pops expired heads.
 */

export interface PublishItem {
  body: Uint8Array;
  headers: Record<string, string>;
  /** Becomes Nats-Msg-Id. */
  msgId: string;
  /** headerBlockSize(headers, msgId), already checked to be >= 0. */
  hlen: number;
  /** Its own subject (a partitioned topic's `<topic>.~k.<key>`); default: the call's. */
  subject?: string;
}

const SWEEP_MS = 25;
/** After a reconnect, JetStream may need a moment before streams answer again; "no responders" is retried this long. */
const RECONNECT_GRACE_MS = 20_000;
const NO_RESPONDERS_RETRY_MS = 250;

export class Publisher {
  private readonly prefix: string;
  private readonly prefixLength: number;
  private sub: Subscription | undefined;
  private readonly inflight = new Map<number, Entry>();
  private readonly writer: PublishWriter;
  private readonly queue = new Deque<Entry>();
  private readonly deadlines = new Map<number, Deque<Entry>>();
  private retries: Entry[] = [];
  // Settled meanwhile, or to be re-sent after a reconnect: skipped.
  private readonly outbox = new TurnBatch<Entry>((entries) => {
    if (this.connected) this.writer.write(entries.filter((e) => e.state === INFLIGHT));
  });
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private connected = true;
  private closedError: BuslineError | undefined;
  private reconnectedAt = 0;
  /** Topics a message was stored to since the start: a 503 for them means JetStream is restarting. */
  private readonly storedTopics = new Set<string>();
  private disconnectedAt = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly window: number,
    /** Unacknowledged this long: sent again (0: never). */
    private readonly resendAfterMs: number,
    private readonly hooks: DriverHooks,
    inboxPrefix: string | undefined,
  ) {
    this.prefix = `${createInbox(inboxPrefix)}.`;
    this.prefixLength = this.prefix.length;
    this.writer = new PublishWriter(nc, this.prefix, hooks, (entry, outcome) => this.finish(entry, outcome));
  }

  start(): void {
    this.sub = this.nc.subscribe(`${this.prefix}*`, {
      callback: (error, msg) => {
        if (error) {
          this.hooks.error(new BrokerUnavailableError(`publish ack subscription failed: ${errorMessage(error)}`, error), 'nats publisher');
          return;
        }
        this.onAck(msg);
      },
    });
  }

  get inFlight(): number {
    return this.inflight.size;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Publishes `items` to `subject` in order; resolves with one outcome per item
   * once each is known. Never rejects.
   */
  publish(subject: string, topic: string, items: readonly PublishItem[], timeoutMs: number): Promise<PublishOutcome[]> {
    const count = items.length;
    if (count === 0) return Promise.resolve([]);
    if (this.closedError) return Promise.resolve(items.map(() => this.closedError));
    let resolve!: (outcomes: PublishOutcome[]) => void;
    const promise = new Promise<PublishOutcome[]>((r) => (resolve = r));
    const batch: Batch = { outcomes: new Array<PublishOutcome>(count).fill(undefined), remaining: count, resolve };
    const deadline = Date.now() + timeoutMs;
    let deadlines = this.deadlines.get(timeoutMs);
    if (deadlines === undefined) {
      deadlines = new Deque<Entry>();
      this.deadlines.set(timeoutMs, deadlines);
    }
    for (let i = 0; i < count; i++) {
      const item = items[i]!;
      const entry: Entry = {
        state: WAITING,
        token: 0,
        sentAt: 0,
        resends: 0,
        subject: item.subject ?? subject,
        topic,
        body: item.body,
        headers: item.headers,
        msgId: item.msgId,
        hlen: item.hlen,
        deadline,
        timeoutMs,
        batch,
        index: i,
        retryAt: 0,
        unavailable: false,
      };
      deadlines.push(entry);
      if (this.queue.length === 0 && this.connected && this.inflight.size < this.window) this.send(entry);
      else this.queue.push(entry);
    }
    this.ensureTimer();
    return promise;
  }

  private send(entry: Entry): void {
    if (entry.token === 0) entry.token = ++this.seq;
    entry.state = INFLIGHT;
    this.inflight.set(entry.token, entry);
    this.outbox.push(entry);
  }

  private onAck(msg: Msg): void {
    const entry = this.inflight.get(this.tokenOf(msg));
    // Late or repeated acks (after a timeout, or for a re-sent message) find nothing.
    if (entry === undefined || entry.state !== INFLIGHT) return;
    const data = msg.data;
    // {"stream":"..","seq":N[,"duplicate":true]} — no need to parse a success.
    if (data.length > 2 && data[2] === 0x73 /* s */) {
      if (data[data.length - 2] === 0x65 /* the e of "duplicate": true */) this.hooks.count('publish_duplicates');
      if (!this.storedTopics.has(entry.topic) && this.storedTopics.size < 100_000) this.storedTopics.add(entry.topic);
      this.finish(entry, undefined);
      return;
    }
    if (data.length === 0 || isUnavailable(data)) {
      // 503: "no responders" (no stream stores the subject, or JetStream is not up: a server starting
      // or shutting down) or "JetStream temporarily unavailable". For a subject that was stored to
      // before, or right after a reconnect, that is transient: send again shortly, within the deadline.
      const now = Date.now();
      const transient = this.storedTopics.has(entry.topic) || now - this.reconnectedAt < RECONNECT_GRACE_MS;
      entry.unavailable = true;
      if (transient && entry.deadline > now + NO_RESPONDERS_RETRY_MS) {
        this.hooks.count('publish_unavailable_retried');
        entry.retryAt = now + NO_RESPONDERS_RETRY_MS;
        this.retries.push(entry);
        return;
      }
      this.finish(entry, noStream(entry));
      return;
    }
    this.finish(entry, errorAck(entry, data));
  }

  /** The token at the end of the ack's subject, read from the raw bytes when the client exposes them. */
  private tokenOf(msg: Msg): number {
    const raw = clientInternals ? (msg as unknown as { _msg?: { subject?: Uint8Array } })._msg?.subject : undefined;
    if (raw instanceof Uint8Array) {
      let n = 0;
      for (let i = this.prefixLength; i < raw.length; i++) {
        const d = raw[i]! - 48;
        if (d < 0 || d > 9) return -1;
        n = n * 10 + d;
      }
      return n;
    }
    return Number(msg.subject.substring(this.prefixLength));
  }

  private finish(entry: Entry, outcome: PublishOutcome): void {
    if (entry.state === INFLIGHT) this.inflight.delete(entry.token);
    entry.state = DONE;
    const batch = entry.batch;
    batch.outcomes[entry.index] = outcome;
    if (--batch.remaining === 0) batch.resolve(batch.outcomes);
    if (this.queue.length > 0) this.pump();
  }

  private pump(): void {
    while (this.queue.length > 0 && this.connected && this.inflight.size < this.window) {
      const entry = this.queue.shift()!;
      if (entry.state === WAITING) this.send(entry);
    }
  }

  private ensureTimer(): void {
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), SWEEP_MS);
      this.timer.unref();
    }
  }

  /** Expires what passed its deadline; re-sends "no responders" retries that are due and messages whose ack is overdue. */
  private sweep(): void {
    const now = Date.now();
    if (this.connected) {
      let again: Entry[] = [];
      if (this.retries.length > 0) {
        again = this.retries.filter((e) => e.state === INFLIGHT && e.retryAt <= now);
        this.retries = this.retries.filter((e) => e.state === INFLIGHT && e.retryAt > now);
      }
      const overdue = this.resendAfterMs > 0 ? takeOverdue(this.inflight.values(), now, this.resendAfterMs) : [];
      if (overdue.length > 0) {
        this.hooks.count('publish_ack_overdue_resent', overdue.length);
        again = again.length > 0 ? [...new Set([...again, ...overdue])] : overdue;
      }
      // In the order they were first sent, as one write.
      if (again.length > 0) this.writer.write(again.sort((a, b) => a.token - b.token));
    }
    for (const [timeoutMs, queue] of this.deadlines) {
      while (queue.length > 0) {
        const head = queue.peek()!;
        if (head.state !== DONE && head.deadline > now) break;
        queue.shift();
        if (head.state !== DONE) this.expire(head, now);
      }
      if (queue.length === 0) this.deadlines.delete(timeoutMs);
    }
    if (this.deadlines.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private expire(entry: Entry, now: number): void {
    const sent = entry.state === INFLIGHT;
    if (!this.connected) {
      this.hooks.count('publish_unavailable');
      this.finish(
        entry,
        new BrokerUnavailableError(
          `publish to "${entry.topic}" failed: not connected to NATS for ${now - this.disconnectedAt} ms (deadline ${entry.timeoutMs} ms); ` +
            (sent ? 'it was sent before the connection dropped and may or may not be stored' : 'it was not sent') +
            ' — retry (the event id dedupes a copy that was stored)',
        ),
      );
      return;
    }
    if (entry.unavailable) {
      this.finish(entry, noStream(entry));
      return;
    }
    this.hooks.count('publish_timeouts');
    this.finish(entry, new PublishTimeoutError(entry.topic, entry.timeoutMs));
  }

  /** The connection dropped: stop writing; what is in flight stays, to be re-sent. */
  onDisconnect(): void {
    if (!this.connected) return;
    this.connected = false;
    this.disconnectedAt = Date.now();
  }

  /** Reconnected: re-send everything in flight in its original order, then what waited. */
  onReconnect(): void {
    this.connected = true;
    this.reconnectedAt = Date.now();
    this.retries = [];
    this.outbox.clear();
    const resend = [...this.inflight.values()].filter((e) => e.state === INFLIGHT);
    const resent = resend.length;
    this.writer.write(resend);
    if (resent > 0) this.hooks.count('publish_resent', resent);
    this.pump();
  }

  /** The connection is gone for good: every pending publish fails, later ones fail at once. */
  fail(error: BuslineError): void {
    this.closedError ??= error;
    const pending = [...this.inflight.values()];
    while (this.queue.length > 0) pending.push(this.queue.shift()!);
    for (const entry of pending) if (entry.state !== DONE) this.finish(entry, error);
    this.deadlines.clear();
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
  }
}
