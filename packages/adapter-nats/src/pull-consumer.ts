import { createInbox, type Msg, type Subscription } from '@nats-io/nats-core';
import { AckPolicy, JetStreamApiError, type ConsumerConfig, type ConsumerInfo } from '@nats-io/jetstream';
import { BuslineError, ErrorCode, type ConsumerSpec, type DriverSubscription, type MessageSink } from '@busline/core/driver';
import { CONSUMER_NOT_FOUND, ensureConsumer, PIN_GROUP, pinRefreshMs } from './consumer-admin.js';
import { TICK_MS, type ConsumerHub } from './consumer-hub.js';
import { ACK, CumulativeAcks, type AckSender } from './cumulative-acks.js';
import { drainInbox } from './drain-inbox.js';
import { decodeHeaders, HeaderReader, type Status } from './header-reader.js';
import { InHand } from './in-hand.js';
import { KIND_ACK, KIND_NAK, NatsDelivery } from './nats-delivery.js';
import { adminError } from './streams.js';
import { parseAckBytes, replyBytes, takeKey } from './wire.js';

/**
 * The unified consumer: per (topic, group) one durable pull consumer and
 * exactly one pull loop per bus, feeding core's subscription (and through it
 * the bus's one KeyedOrderingPool). All consumers of a bus share the one
 * connection and one 1-second housekeeping timer, so the handles a bus holds
 * do not grow with the number of topics.
 *
 * The pull loop is the JetStream pull protocol written directly: a pull
 * request (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`, `{batch, expires,
 * idle_heartbeat}`) with the consumer's own inbox as reply subject; messages
 * and status messages (100 heartbeat, 408 request expired, 409 ...) arrive
 * there. A new pull is sent as soon as half of what was asked for has arrived,
 * so the server always has a request to fill and the pipe never idles; while
 * the subscription's `deliver` promise is pending, no pull is sent
 * (backpressure), and the server never has more than `max_ack_pending`
 * messages unsettled.
 */

const NAK = Uint8Array.of(0x2d, 0x4e, 0x41, 0x4b); // -NAK
const TERM = Uint8Array.of(0x2b, 0x54, 0x45, 0x52, 0x4d); // +TERM
/** In progress: restarts the ack wait of the one message (also on an AckPolicy all consumer, where it acknowledges nothing). */
const WPI = Uint8Array.of(0x2b, 0x57, 0x50, 0x49); // +WPI
const encoder = new TextEncoder();
const NS_PER_MS = 1_000_000;
/** How long before its expiry a blocked cumulative member's standing pull is overlapped by the next. */
const STANDING_PULL_MARGIN_MS = 250;

/** The pin id the server has for busline's priority group (nats.js does not type the consumer info's priority_groups). */
export function pinHolder(info: ConsumerInfo): string | undefined {
  const groups = (info as ConsumerInfo & { priority_groups?: { group: string; pinned_client_id?: string }[] }).priority_groups;
  return groups?.find((g) => g.group === PIN_GROUP)?.pinned_client_id;
}

/** Pull requests of pinned loops expire within this, so stopping can wait for them to end. */
const PINNED_EXPIRES_MS = 2_000;

function nakPayload(delayMs: number): Uint8Array {
  return delayMs > 0 ? encoder.encode(`-NAK {"delay":${Math.round(delayMs) * NS_PER_MS}}`) : NAK;
}

export interface PullConsumerOptions {
  spec: ConsumerSpec;
  stream: string;
  durable: string;
  /** The consumer config used to (re)create it. */
  wanted: Partial<ConsumerConfig> & { durable_name: string };
  info: ConsumerInfo;
}

const PIN_HEADER = 'Nats-Pin-Id';

/** The one pull loop of (topic, group) on this bus. */
export class PullConsumer implements DriverSubscription {
  private sub: Subscription | undefined;
  private readonly inbox: string;
  private readonly nextSubject: string;
  private readonly batchSize: number;
  private readonly threshold: number;
  private readonly expiresMs: number;
  private readonly expiresNs: number;
  private readonly heartbeatNs: number;
  private readonly staleAfterMs: number;
  /** Messages asked for and not yet received or expired. */
  private requested = 0;
  private activity = 0;
  private seenActivity = 0;
  private lastActivity = Date.now();
  private buffer: NatsDelivery[] = [];
  private readonly headerReader = new HeaderReader(PIN_HEADER);
  private flushQueued = false;
  private blocked = false;
  private stopped = false;
  /** Stopped by `finish`: what arrives or is buffered still goes to the subscription. */
  private finishing = false;
  private stopping: Promise<void> | undefined;
  private closed = false;
  private recovering = false;
  private pauseUntil = 0;
  private failures = 0;
  private readonly acks: CumulativeAcks | undefined;
  private leftoverCheckAt = 0;
  /** Cumulative mode: the highest consumer delivery sequence seen since the last reset (0: none). */
  private lastDeliverySeq = 0;
  private otherMemberReported = false;
  readonly topic: string;
  /** The consumer's ack_wait (ms): core extends every message it holds longer than a third of it. */
  readonly leaseMs: number;
  /**
   * Pinned consumers (priority policy pinned_client): the server hands the
   * messages to one pull client at a time, the one holding the pin. The pin
   * lapses after priority_timeout without a new pull request from it, so a
   * pinned loop sends one at least every `pinRefreshMs`, even while blocked.
   */
  private readonly pinned: boolean;
  private readonly pinRefreshMs: number;
  private pinId: string | undefined;
  private lastPullAt = 0;
  /** Handed to the subscription and not settled yet (explicit acks), and the naks held while stopping. */
  private readonly held = new InHand();

  constructor(
    private readonly hub: ConsumerHub,
    private readonly sink: MessageSink,
    private readonly options: PullConsumerOptions,
  ) {
    const config = hub.config;
    this.topic = options.spec.topic;
    this.inbox = createInbox(config.inboxPrefix);
    this.nextSubject = `${hub.apiPrefix}.CONSUMER.MSG.NEXT.${options.stream}.${options.durable}`;
    const maxAckPending = options.info.config.max_ack_pending ?? 0;
    this.batchSize = Math.max(1, Math.min(config.pullBatch, maxAckPending > 0 ? maxAckPending : config.pullBatch));
    this.threshold = Math.floor(this.batchSize / 2);
    const pinned = options.info.config.priority_policy === 'pinned_client';
    const priorityTimeoutMs = (options.info.config.priority_timeout ?? 0) / NS_PER_MS;
    const refreshMs = priorityTimeoutMs > 0 ? pinRefreshMs(priorityTimeoutMs) : 5_000;
    // Pinned: requests end by themselves soon (stop and finish wait for that), within 2 s.
    const expiresMs = pinned ? Math.min(config.pullExpiresMs, 2 * refreshMs, PINNED_EXPIRES_MS) : config.pullExpiresMs;
    const heartbeatMs = Math.min(config.idleHeartbeatMs, Math.floor(expiresMs / 2));
    this.expiresMs = expiresMs;
    this.expiresNs = expiresMs * NS_PER_MS;
    this.heartbeatNs = heartbeatMs * NS_PER_MS;
    this.staleAfterMs = 2 * heartbeatMs + 2_000;
    // What the server has (an existing consumer may have refused the update), not what was asked for.
    this.leaseMs = Math.round((options.info.config.ack_wait ?? config.ackWaitMs * NS_PER_MS) / NS_PER_MS);
    this.pinned = pinned;
    this.pinRefreshMs = refreshMs;
    if (options.info.config.ack_policy === AckPolicy.All) {
      const sender: AckSender = {
        send: (reply, payload) => this.hub.reply(reply, payload),
        schedule: () => this.hub.scheduleFlush(this),
        hooks: hub.hooks,
      };
      this.acks = new CumulativeAcks(sender);
    }
  }

  /** Started and not stopped. */
  get pulling(): boolean {
    return this.sub !== undefined && !this.stopped;
  }

  get durable(): string {
    return this.options.durable;
  }

  get ackPolicy(): 'explicit' | 'all' {
    return this.acks ? 'all' : 'explicit';
  }

  /** For tests and diagnostics. */
  get state(): { requested: number; buffered: number; blocked: boolean; leftovers: number; openPositions: number; pinned: boolean; held: number } {
    return {
      pinned: this.pinId !== undefined,
      held: this.held.size,
      requested: this.requested,
      buffered: this.buffer.length,
      blocked: this.blocked,
      leftovers: this.acks?.leftovers ?? 0,
      openPositions: this.acks?.pending ?? 0,
    };
  }

  /**
   * Cumulative mode: marks what the server still holds unacknowledged from an
   * earlier bus as open before the first pull (see CumulativeAcks).
   */
  async prepare(): Promise<void> {
    if (!this.acks) return;
    const info = this.options.info;
    const floor = info.ack_floor.stream_seq;
    const delivered = info.delivered.stream_seq;
    if (info.num_ack_pending === 0 || delivered <= floor) {
      // Nothing outstanding: acks below the floor are already done.
      this.acks.pretrack(floor, floor, () => false);
      return;
    }
    const exists = await this.existence();
    this.acks.pretrack(floor, delivered, exists);
    this.hub.hooks.count('leftovers_tracked', this.acks.leftovers);
    this.leftoverCheckAt = Date.now() + this.hub.config.ackWaitMs + this.staleAfterMs;
  }

  /** Which stream sequences still exist (first..last minus deleted ones). */
  private async existence(): Promise<(seq: number) => boolean> {
    const si = await this.hub.jsm.streams.info(this.options.stream, { deleted_details: true });
    const first = si.state.first_seq;
    const last = si.state.last_seq;
    const deleted = new Set<number>(si.state.deleted ?? []);
    return (seq) => seq >= first && seq <= last && !deleted.has(seq);
  }

  start(): void {
    this.sub = this.hub.nc.subscribe(this.inbox, { callback: this.onMessage });
    this.hub.add(this);
    this.pull();
  }

  private readonly onMessage = (error: Error | null, msg: Msg): void => {
    if (error) {
      this.hub.hooks.error(error, `pull subscription of "${this.topic}"`);
      return;
    }
    this.activity++;
    const reply = replyBytes(msg);
    if (reply === undefined) {
      this.onStatus(decodeHeaders(msg));
      return;
    }
    if (this.requested > 0) this.requested--;
    const info = parseAckBytes(reply);
    if (info === undefined) {
      this.hub.hooks.count('unexpected_messages');
      return;
    }
    if (this.acks !== undefined) this.checkDeliverySeq(info.deliverySeq);
    const headers = this.headerReader.read(msg);
    if (this.pinned) this.takePin(this.headerReader.skipped ?? takeHeader(headers, PIN_HEADER));
    const delivery = new NatsDelivery(this, this.topic, takeKey(headers), headers, msg.data, info.deliveryCount, info.streamSeq, reply);
    if (this.acks !== undefined && !this.acks.admit(info.streamSeq, reply, delivery)) {
      this.maybePull();
      return;
    }
    if (this.stopped && !this.finishing) {
      delivery.nack(0);
      return;
    }
    if (this.acks === undefined) this.held.add(info.streamSeq);
    this.buffer.push(delivery);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flush);
    }
    if (this.requested <= this.threshold) this.maybePull();
  };

  /**
   * Cumulative mode: the consumer numbers its deliveries (to any member) one by
   * one, so a member alone sees them without gaps (reset after a reconnect or
   * a leadership change, when deliveries in transit may be lost). A gap means
   * another member got deliveries of this consumer, which subscribe refuses
   * but cannot fully rule out (two members starting within one round trip, or
   * one that was disconnected while another started). Reported loudly: ack-alls
   * may already cover that member's messages.
   */
  private checkDeliverySeq(dseq: number): void {
    const last = this.lastDeliverySeq;
    if (dseq > last) this.lastDeliverySeq = dseq;
    if (last === 0 || dseq <= last + 1) return;
    this.hub.hooks.count('deliveries_to_other_members', dseq - last - 1);
    if (this.otherMemberReported) return;
    this.otherMemberReported = true;
    this.hub.hooks.error(
      new BuslineError(
        ErrorCode.Unsupported,
        `another member is consuming ${this.options.durable} of "${this.topic}" (deliveries ${last + 1}..${dseq - 1} went elsewhere) while it acknowledges cumulatively: ` +
          "each member's ack-all covers the other's unhandled messages, which are lost if that member dies. Run one member per group with ackMode 'cumulative', or use 'explicit'.",
        { details: { topic: this.topic, durable: this.options.durable } },
      ),
      'nats consumer',
    );
  }

  private onStatus(status: Status): void {
    const left = Number(status.headers['Nats-Pending-Messages']);
    switch (status.code) {
      case 100:
        return; // idle heartbeat (activity already noted)
      case 404:
      case 408:
        // The request ended (expired) with `left` messages not delivered.
        this.requested = Number.isFinite(left) ? Math.max(0, this.requested - left) : 0;
        this.maybePull();
        return;
      case 409: {
        const d = status.description.toLowerCase();
        if (Number.isFinite(left)) this.requested = Math.max(0, this.requested - left);
        if (d.includes('consumer deleted') || d.includes('consumer is push based')) {
          this.hub.hooks.count('consumer_deleted');
          void this.recover(`the server says: ${status.description}`);
          return;
        }
        if (d.includes('leadership change')) {
          this.requested = 0;
          this.lastDeliverySeq = 0;
          this.maybePull();
          return;
        }
        if (!Number.isFinite(left)) this.requested = 0;
        this.hub.hooks.count('pull_409');
        this.backoff();
        return;
      }
      case 423:
        // "Nats-Pin-Id mismatch": the pin lapsed and another member holds it now.
        this.requested = Number.isFinite(left) ? Math.max(0, this.requested - left) : 0;
        this.lostPin();
        this.maybePull();
        return;
      case 503:
        this.requested = 0;
        void this.recover('no responders (JetStream unavailable or the consumer is gone)');
        return;
      default:
        this.requested = 0;
        this.hub.hooks.error(new BuslineError(ErrorCode.BrokerUnavailable, `pull for "${this.topic}" answered ${status.code} ${status.description}`), 'nats consumer');
        this.backoff();
    }
  }

  private backoff(): void {
    this.failures++;
    this.pauseUntil = Date.now() + Math.min(5_000, 100 * 2 ** Math.min(this.failures, 6));
  }

  private readonly flush = (): void => {
    this.flushQueued = false;
    if (this.blocked || this.buffer.length === 0) return;
    const batch = this.buffer;
    this.buffer = [];
    let result: void | Promise<void>;
    try {
      result = this.sink.deliver(batch);
    } catch (error) {
      this.hub.hooks.error(error instanceof Error ? error : new Error(String(error)), `delivering to the subscription of "${this.topic}"`);
      for (const d of batch) if (!d.isSettled) d.nack(0);
      return;
    }
    if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
      this.blocked = true;
      (result as Promise<void>).then(this.unblock, (error: unknown) => {
        this.hub.hooks.error(error instanceof Error ? error : new Error(String(error)), `delivering to the subscription of "${this.topic}"`);
        this.unblock();
      });
      if (this.acks !== undefined && this.requested === 0) this.maybePull();
    } else if (this.requested <= this.threshold) this.maybePull();
  };

  private readonly unblock = (): void => {
    this.blocked = false;
    if (this.buffer.length > 0) this.flush();
    if (!this.blocked) this.maybePull();
  };

  private maybePull(): void {
    if (this.stopped || this.recovering || !this.hub.isConnected) return;
    if (this.blocked) {
      // Cumulative: keep a request open while blocked, so a second member sees this one (refuseSecondMember).
      // The server holds it back while max_ack_pending is reached, and never has more than that unsettled.
      // It lives at least three ticks and the next is sent at the last tick before it expires: re-pulling
      // only on its 408 left a gap (a round trip, more on a busy event loop) in which this member looked gone.
      const now = Date.now();
      const standingMs = Math.max(this.expiresMs, 3 * TICK_MS);
      const expiring = now - this.lastPullAt >= standingMs - TICK_MS - STANDING_PULL_MARGIN_MS;
      if (this.acks !== undefined && (this.requested === 0 || expiring) && now >= this.pauseUntil) this.send(1, standingMs * NS_PER_MS);
      return;
    }
    if (this.requested > this.threshold) return;
    if (this.pauseUntil > 0) {
      if (Date.now() < this.pauseUntil) return;
      this.pauseUntil = 0;
    }
    this.pull();
  }

  private pull(max = this.batchSize): void {
    const n = Math.min(max, this.batchSize - this.requested);
    if (n <= 0 || this.stopped) return;
    this.send(n, this.expiresNs);
  }

  private send(n: number, expiresNs: number): void {
    let body = `{"batch":${n},"expires":${expiresNs},"idle_heartbeat":${this.heartbeatNs}`;
    if (this.pinned) body += this.pinId === undefined ? `,"group":"${PIN_GROUP}"}` : `,"group":"${PIN_GROUP}","id":"${this.pinId}"}`;
    else body += '}';
    try {
      this.hub.nc.publish(this.nextSubject, body, { reply: this.inbox });
    } catch (error) {
      if (!this.hub.nc.isClosed()) this.hub.hooks.error(error instanceof Error ? error : new Error(String(error)), `pulling "${this.topic}"`);
      return;
    }
    this.lastPullAt = Date.now();
    this.requested += n;
    this.hub.hooks.count('pulls');
  }

  /** The pin the server gave this loop (on each message it delivers to the pinned client). */
  private takePin(pin: string | undefined): void {
    if (pin === undefined) return;
    if (pin !== this.pinId) {
      this.pinId = pin;
      this.hub.hooks.count('pins_taken');
    }
  }

  private lostPin(): void {
    this.pinId = undefined;
    this.hub.hooks.count('pins_lost');
    if (this.held.size === 0) return;
    this.hub.hooks.error(
      new BuslineError(
        ErrorCode.BrokerUnavailable,
        `the pin of consumer ${this.options.durable} of "${this.topic}" lapsed while ${this.held.size} message(s) were in hand: another member may now handle the same keys. ` +
          'A pin lapses when its member sends no pull request for priority_timeout (an event loop blocked that long, or a lost connection).',
        { details: { topic: this.topic, durable: this.options.durable, held: this.held.size } },
      ),
      'nats consumer',
    );
  }

  /** Whether this loop holds the consumer's pin (pinned consumers). */
  get hasPin(): boolean {
    return this.pinId !== undefined;
  }

  /** Resolves once every message handed to the subscription is settled. */
  whenSettled(): Promise<void> {
    return this.held.whenSettled();
  }

  get heldCount(): number {
    return this.held.size;
  }

  /**
   * Gives the pin back (server ≥ 2.11 UNPIN) once everything is settled, so
   * another member can take the partition at once instead of after
   * priority_timeout. Only our own pin: the consumer info is read first, and
   * a pin that moved on is left alone. Held naks and acknowledgements go out
   * (and are processed: flush round trip) before it.
   */
  async unpin(): Promise<boolean> {
    const pin = this.pinId;
    // Disconnected: the pin lapses by itself; waiting for admin requests would only delay close.
    if (!this.pinned || pin === undefined || this.held.size > 0 || this.hub.nc.isClosed() || !this.hub.isConnected) return false;
    try {
      await this.sendHeldNaks();
      await this.hub.nc.flush();
      const info = await this.hub.jsm.consumers.info(this.options.stream, this.options.durable);
      if (pinHolder(info) !== pin) return false;
      await this.hub.jsm.consumers.unpin(this.options.stream, this.options.durable, PIN_GROUP);
      this.pinId = undefined;
      this.hub.hooks.count('pins_released');
      return true;
    } catch (error) {
      if (!this.hub.nc.isClosed()) this.hub.hooks.error(adminError(this.topic, `unpinning consumer ${this.options.durable}`, error), 'nats consumer');
      return false;
    }
  }

  /**
   * Sends the naks held since stop (after `stop` dropped our orphaned pull
   * requests) so the server redelivers them in stream order: it keeps naked
   * messages in a queue, and whenever it finds a queued one and waiting pull
   * requests but none it may serve, it moves that message to the back.
   */
  private async sendHeldNaks(): Promise<void> {
    if (!this.held.hasHeldNaks || this.hub.nc.isClosed()) return;
    this.releaseNaks(); // while disconnected the hub keeps them for after the reconnect
    this.hub.flushReplies();
  }


  /** Checks the consumer exists (re-creating it if it was deleted), then pulls again. */
  private async recover(why: string): Promise<void> {
    if (this.recovering || this.stopped) return;
    this.recovering = true;
    this.requested = 0;
    this.lastDeliverySeq = 0;
    try {
      try {
        await this.hub.jsm.consumers.info(this.options.stream, this.options.durable);
      } catch (error) {
        if (!(error instanceof JetStreamApiError && error.code === CONSUMER_NOT_FOUND)) throw error;
        this.hub.hooks.error(
          new BuslineError(ErrorCode.BrokerUnavailable, `consumer ${this.options.durable} of "${this.topic}" is gone (${why}); re-creating it, which starts the group per its startFrom`),
          'nats consumer',
        );
        await ensureConsumer(this.hub.jsm, this.topic, this.options.stream, this.options.wanted);
      }
      this.failures = 0;
      this.hub.hooks.count('consumer_recovered');
    } catch (error) {
      if (!this.hub.nc.isClosed()) this.hub.hooks.error(adminError(this.topic, 'checking the consumer', error), `recovering the consumer of "${this.topic}" (${why})`);
      this.backoff();
    } finally {
      this.recovering = false;
      this.lastActivity = Date.now();
    }
    this.maybePull();
  }

  /** A delivery was settled by the subscription. */
  settle(delivery: NatsDelivery, kind: number, delayMs: number): void {
    // After close the message may already be with another member: an ack by stream sequence would settle its copy.
    if (this.closed) return;
    const acks = this.acks;
    if (acks === undefined) this.held.release(delivery.seq);
    if (kind === KIND_NAK) {
      if (acks !== undefined && !acks.nacked(delivery.seq, delivery)) return;
      const payload = nakPayload(delayMs);
      // While stopping, our own pull requests are still open: a nak now would have the server hand the
      // message straight back to us. Naks wait until the inbox is gone, then go to the other members.
      if (!this.held.holdNak(delivery.seq, delivery.reply, payload)) this.hub.reply(delivery.reply, payload);
      return;
    }
    if (acks === undefined) {
      this.hub.reply(delivery.reply, kind === KIND_ACK ? ACK : TERM);
      return;
    }
    // Ack-all consumer: a +TERM would acknowledge everything below it too, so a term is a completion.
    acks.complete(delivery.seq, delivery);
  }

  /**
   * `+WPI` for one unsettled delivery: the server restarts its ack wait. The
   * server keys it by stream sequence, so an older delivery's reply subject
   * works too. With AckPolicy all it touches only that message (nats-server
   * `progressUpdate`), so it is safe in cumulative mode. Nothing after close.
   */
  extendLease(delivery: NatsDelivery): void {
    if (this.closed) return;
    this.hub.reply(delivery.reply, WPI);
  }

  flushAcks(): void {
    this.acks?.flush();
  }

  onReconnect(): void {
    if (this.stopped) return;
    this.requested = 0;
    this.lastDeliverySeq = 0;
    this.lastActivity = Date.now();
    this.pauseUntil = 0;
    this.acks?.resend();
    this.maybePull();
  }

  tick(now: number): void {
    if (this.stopped) return;
    if (this.activity !== this.seenActivity) {
      this.seenActivity = this.activity;
      this.lastActivity = now;
    }
    if (this.acks !== undefined && this.acks.leftovers > 0 && now >= this.leftoverCheckAt && !this.recovering) {
      this.leftoverCheckAt = now + Math.max(5_000, this.hub.config.ackWaitMs / 2);
      void this.checkLeftovers();
    }
    if (!this.hub.isConnected || this.recovering) return;
    if (this.pinId !== undefined && now - this.lastPullAt >= this.pinRefreshMs) {
      // Keeps the pin while blocked or idle: a small pull that expires soon.
      this.send(1, 2 * this.pinRefreshMs * NS_PER_MS);
      this.hub.hooks.count('pin_refreshes');
    }
    if (this.requested > 0 && !this.blocked && now - this.lastActivity > this.staleAfterMs) {
      this.hub.hooks.count('heartbeats_missed');
      this.lastActivity = now;
      void this.recover('heartbeats missed');
      return;
    }
    this.maybePull();
  }

  private async checkLeftovers(): Promise<void> {
    try {
      const info = await this.hub.jsm.consumers.info(this.options.stream, this.options.durable);
      const exists = await this.existence();
      const closed = this.acks!.resolveLeftovers(info.ack_floor.stream_seq, exists);
      if (closed > 0) this.hub.hooks.count('leftovers_closed', closed);
    } catch (error) {
      if (!this.hub.nc.isClosed()) this.hub.hooks.error(adminError(this.topic, 'checking unacknowledged messages', error), 'nats consumer');
    }
  }

  /**
   * Stops pulling. Outstanding pull requests die with the inbox: the inbox is
   * drained (UNSUB, then a PING round trip during which messages still arrive),
   * so a message the server sent before it saw the UNSUB is received and handed
   * back instead of waiting out the ack wait. Messages not yet handed to the
   * subscription go back the same way.
   *
   * Naks made from now on are held and sent together at `close` (or `unpin`),
   * in stream order: the server redelivers naked messages in the order the
   * naks arrive, and the subscription gives messages back in whatever order
   * its lanes and backoffs end, after those this loop never handed on.
   */
  async stop(): Promise<void> {
    if (this.stopped) return this.stopping;
    this.stopped = true;
    this.held.startHoldingNaks();
    if (!this.pinned) this.requested = 0;
    const undelivered = this.buffer;
    this.buffer = [];
    for (const d of undelivered) d.nack(0);
    // Pinned: wait for our open requests to end before dropping the inbox (what arrives meanwhile is
    // naked in order): a message the server hands to a request whose inbox just went away is lost
    // until its ack wait, and the next member would handle the key's later messages first.
    return (this.stopping = (this.pinned ? this.requestsEnded() : Promise.resolve()).then(() => this.endPulls()));
  }

  /** Resolves when the pull requests we sent have expired or been filled (bounded by their expiry). */
  private async requestsEnded(): Promise<void> {
    const deadline = Date.now() + this.expiresMs + 500;
    while (this.requested > 0 && Date.now() < deadline && this.hub.isConnected && !this.hub.nc.isClosed()) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /**
   * Stops pulling but hands on everything received instead of giving it back:
   * a partition this member lets go of while its subscription goes on is
   * finished here, not naked (a nak is what can reorder a partition, see
   * sendHeldNaks). The inbox stays until our open pull requests have ended
   * (pinned requests expire within two pin refreshes): a request dropped
   * with its inbox could still be given the consumer's pin, or a message,
   * by the server, and both would then be stuck until they time out.
   */
  async finish(): Promise<void> {
    if (this.stopped) return this.stopping;
    this.stopped = true;
    this.finishing = true;
    this.held.startHoldingNaks();
    this.stopping = this.requestsEnded().then(() => this.endPulls());
    return this.stopping;
  }

  private async endPulls(): Promise<void> {
    const sub = this.sub;
    if (sub === undefined || this.hub.nc.isClosed()) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([drainInbox(this.hub.nc, sub), new Promise<void>((resolve) => (timer = setTimeout(resolve, 5_000)))]);
    clearTimeout(timer);
    if (!sub.isClosed()) {
      try {
        sub.unsubscribe();
      } catch {
        // closed connection
      }
    }
    await this.dropOrphanedRequests();
  }

  /**
   * Our pull requests outlive our inbox on the server until it next looks at
   * them. Meanwhile they do harm: the server may give the consumer's pin to
   * one of them (and the pin then only lapses after priority_timeout), and it
   * rotates its redelivery queue when it finds only requests it cannot serve.
   * After a flush (our UNSUB is processed), a consumer info makes the server
   * drop every request nobody listens to any more.
   */
  private async dropOrphanedRequests(): Promise<void> {
    if (!this.hub.isConnected || this.hub.nc.isClosed()) return;
    try {
      await this.hub.nc.flush();
      await this.hub.jsm.consumers.info(this.options.stream, this.options.durable);
    } catch {
      // The server drops them by itself when they expire (pullExpiresMs).
    }
  }

  /** Sends the naks held since stop in stream order (see InHand.releaseNaks). */
  private releaseNaks(): void {
    const skipped = this.held.releaseNaks((reply, payload) => this.hub.reply(reply, payload));
    if (skipped > 0) this.hub.hooks.count('naks_left_to_ack_wait', skipped);
  }

  /** Flushes pending cumulative acks and releases the consumer (the durable stays on the server). */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.stop();
    await this.sendHeldNaks();
    this.closed = true;
    this.acks?.flush();
    this.hub.remove(this);
  }
}

/** Removes and returns a header (the fallback reader's maps, which are rare: the fast reader skips it while reading). */
function takeHeader(headers: Record<string, string>, name: string): string | undefined {
  const value = headers[name];
  if (value !== undefined) delete headers[name];
  return value;
}
