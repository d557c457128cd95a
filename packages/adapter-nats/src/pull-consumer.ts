import { nanos, type Msg } from '@nats-io/nats-core';
import { AckPolicy, JetStreamApiError, type ConsumerConfig, type ConsumerInfo } from '@nats-io/jetstream';
import { BuslineError, ErrorCode, type ConsumerSpec, type DriverSubscription, type MessageSink } from '@busline/core/driver';
import { CONSUMER_NOT_FOUND, ensureConsumer } from './consumer-admin.js';
import type { ConsumerHub } from './consumer-hub.js';
import { ConsumerPin, PIN_HEADER } from './consumer-pin.js';
import { CumulativeAcks, type AckSender } from './cumulative-acks.js';
import { DeliverySettler } from './delivery-settler.js';
import { decodeHeaders, HeaderReader, type Status } from './header-reader.js';
import { InHand } from './in-hand.js';
import { LeftoverCheck } from './leftover-check.js';
import { NatsDelivery } from './nats-delivery.js';
import { PullRequests } from './pull-requests.js';
import { SecondMemberWatch } from './second-member-watch.js';
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

export interface PullConsumerOptions {
  spec: ConsumerSpec;
  stream: string;
  durable: string;
  /** The consumer config used to (re)create it. */
  wanted: Partial<ConsumerConfig> & { durable_name: string };
  info: ConsumerInfo;
}

/** The one pull loop of (topic, group) on this bus. */
export class PullConsumer implements DriverSubscription {
  private readonly requests: PullRequests;
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
  private recovering = false;
  private readonly acks: CumulativeAcks | undefined;
  /** Cumulative mode: the leftovers of an earlier bus. */
  private readonly leftovers: LeftoverCheck | undefined;
  /** Cumulative mode: deliveries that went to another member. */
  private readonly secondMember: SecondMemberWatch | undefined;
  readonly topic: string;
  /** The consumer's ack_wait (ms): core extends every message it holds longer than a third of it. */
  readonly leaseMs: number;
  /** Pinned consumers (priority policy pinned_client) only: see ConsumerPin. */
  private readonly pin: ConsumerPin | undefined;
  /** Handed to the subscription and not settled yet (explicit acks), and the naks held while stopping. */
  private readonly held = new InHand();
  /** Where its deliveries' settlements go. */
  private readonly settler: DeliverySettler;

  constructor(
    private readonly hub: ConsumerHub,
    private readonly sink: MessageSink,
    private readonly options: PullConsumerOptions,
  ) {
    const config = hub.config;
    const { stream, durable, info } = options;
    this.topic = options.spec.topic;
    this.pin = info.config.priority_policy === 'pinned_client' ? new ConsumerPin(hub, this.held, this.topic, stream, durable, info.config.priority_timeout) : undefined;
    this.requests = new PullRequests(hub, this.topic, stream, durable, info, this.pin);
    // What the server has (an existing consumer may have refused the update), not what was asked for.
    this.leaseMs = Math.round((info.config.ack_wait ?? nanos(config.ackWaitMs)) / nanos(1));
    if (info.config.ack_policy === AckPolicy.All) {
      const sender: AckSender = {
        send: (reply, payload) => this.hub.reply(reply, payload),
        schedule: () => this.hub.scheduleFlush(this),
        hooks: hub.hooks,
      };
      this.acks = new CumulativeAcks(sender);
      this.leftovers = new LeftoverCheck(hub, this.acks, this.topic, stream, durable);
      this.secondMember = new SecondMemberWatch(hub.hooks, this.topic, durable);
    }
    this.settler = new DeliverySettler(hub, this.held, this.acks);
  }

  /** Started and not stopped. */
  get pulling(): boolean {
    return this.requests.isOpen && !this.stopped;
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
      pinned: this.pin?.id !== undefined,
      held: this.held.size,
      requested: this.requests.outstanding,
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
    if (this.leftovers === undefined) return;
    await this.leftovers.prepare(this.options.info, this.requests.staleAfterMs);
  }

  start(): void {
    this.requests.open(this.onMessage);
    this.hub.add(this);
    if (!this.stopped) this.requests.pull();
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
    const requests = this.requests;
    requests.received();
    const info = parseAckBytes(reply);
    if (info === undefined) {
      this.hub.hooks.count('unexpected_messages');
      return;
    }
    if (this.secondMember !== undefined) this.secondMember.check(info.deliverySeq);
    const headers = this.headerReader.read(msg);
    if (this.pin !== undefined) this.pin.take(this.headerReader.skipped ?? takeHeader(headers, PIN_HEADER));
    const delivery = new NatsDelivery(this.settler, this.topic, takeKey(headers), headers, msg.data, info.deliveryCount, info.streamSeq, reply);
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
    if (requests.runningLow) this.maybePull();
  };

  private onStatus(status: Status): void {
    const left = Number(status.headers['Nats-Pending-Messages']);
    switch (status.code) {
      case 100:
        return; // idle heartbeat (activity already noted)
      case 404:
      case 408:
        // The request ended (expired) with `left` messages not delivered.
        this.requests.ended(left);
        this.maybePull();
        return;
      case 409: {
        const d = status.description.toLowerCase();
        if (Number.isFinite(left)) this.requests.ended(left);
        if (d.includes('consumer deleted') || d.includes('consumer is push based')) {
          this.hub.hooks.count('consumer_deleted');
          void this.recover(`the server says: ${status.description}`);
          return;
        }
        if (d.includes('leadership change')) {
          this.requests.clear();
          this.secondMember?.reset();
          this.maybePull();
          return;
        }
        if (!Number.isFinite(left)) this.requests.clear();
        this.hub.hooks.count('pull_409');
        this.requests.backoff();
        return;
      }
      case 423:
        // "Nats-Pin-Id mismatch": the pin lapsed and another member holds it now.
        this.requests.ended(left);
        this.pin?.lost();
        this.maybePull();
        return;
      case 503:
        this.requests.clear();
        void this.recover('no responders (JetStream unavailable or the consumer is gone)');
        return;
      default:
        this.requests.clear();
        this.hub.hooks.error(new BuslineError(ErrorCode.BrokerUnavailable, `pull for "${this.topic}" answered ${status.code} ${status.description}`), 'nats consumer');
        this.requests.backoff();
    }
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
      if (this.acks !== undefined && this.requests.outstanding === 0) this.maybePull();
    } else if (this.requests.runningLow) this.maybePull();
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
      if (this.acks !== undefined) this.requests.keepStanding();
      return;
    }
    this.requests.topUp();
  }

  /** Whether this loop holds the consumer's pin (pinned consumers). */
  get hasPin(): boolean {
    return this.pin?.id !== undefined;
  }

  /** Resolves once every message handed to the subscription is settled. */
  whenSettled(): Promise<void> {
    return this.held.whenSettled();
  }

  get heldCount(): number {
    return this.held.size;
  }

  /** Gives the pin back once everything is settled (see ConsumerPin.release), after the held naks. */
  unpin(): Promise<boolean> {
    if (this.pin === undefined) return Promise.resolve(false);
    return this.pin.release(() => this.settler.sendHeldNaks());
  }

  /** Checks the consumer exists (re-creating it if it was deleted), then pulls again. */
  private async recover(why: string): Promise<void> {
    if (this.recovering || this.stopped) return;
    this.recovering = true;
    this.requests.clear();
    this.secondMember?.reset();
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
      this.requests.recovered();
      this.hub.hooks.count('consumer_recovered');
    } catch (error) {
      if (!this.hub.nc.isClosed()) this.hub.hooks.error(adminError(this.topic, 'checking the consumer', error), `recovering the consumer of "${this.topic}" (${why})`);
      this.requests.backoff();
    } finally {
      this.recovering = false;
      this.lastActivity = Date.now();
    }
    this.maybePull();
  }

  flushAcks(): void {
    this.acks?.flush();
  }

  onReconnect(): void {
    if (this.stopped) return;
    this.requests.clear();
    this.secondMember?.reset();
    this.lastActivity = Date.now();
    this.requests.unpause();
    this.acks?.resend();
    this.maybePull();
  }

  tick(now: number): void {
    if (this.stopped) return;
    if (this.activity !== this.seenActivity) {
      this.seenActivity = this.activity;
      this.lastActivity = now;
    }
    if (this.leftovers !== undefined && !this.recovering) this.leftovers.tick(now);
    if (!this.hub.isConnected || this.recovering) return;
    this.requests.refreshPin(now);
    if (this.requests.outstanding > 0 && !this.blocked && now - this.lastActivity > this.requests.staleAfterMs) {
      this.hub.hooks.count('heartbeats_missed');
      this.lastActivity = now;
      void this.recover('heartbeats missed');
      return;
    }
    this.maybePull();
  }

  /**
   * Stops pulling. Outstanding pull requests die with the inbox: the inbox is
   * drained (UNSUB, then two PING round trips during which messages still
   * arrive, see drainInbox), so a message the server sent before it saw the
   * UNSUB is received and handed back instead of waiting out the ack wait.
   * Messages not yet handed to the subscription go back the same way.
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
    if (this.pin === undefined) this.requests.clear();
    const undelivered = this.buffer;
    this.buffer = [];
    for (const d of undelivered) d.nack(0);
    // Pinned: wait for our open requests to end before dropping the inbox (what arrives meanwhile is
    // naked in order): a message the server hands to a request whose inbox just went away is lost
    // until its ack wait, and the next member would handle the key's later messages first.
    return (this.stopping = (this.pin !== undefined ? this.requests.whenEnded() : Promise.resolve()).then(() => this.requests.end()));
  }

  /**
   * Stops pulling but hands on everything received instead of giving it back:
   * a partition this member lets go of while its subscription goes on is
   * finished here, not naked (a nak is what can reorder a partition, see
   * DeliverySettler.sendHeldNaks). The inbox stays until our open pull requests have ended
   * (pinned requests expire within 2 s, see ConsumerPin.expiresMs): a request dropped
   * with its inbox could still be given the consumer's pin, or a message,
   * by the server, and both would then be stuck until they time out.
   */
  async finish(): Promise<void> {
    if (this.stopped) return this.stopping;
    this.stopped = true;
    this.finishing = true;
    this.held.startHoldingNaks();
    this.stopping = this.requests.whenEnded().then(() => this.requests.end());
    return this.stopping;
  }

  /** Flushes pending cumulative acks and releases the consumer (the durable stays on the server). */
  async close(): Promise<void> {
    if (this.settler.isClosed) return;
    await this.stop();
    await this.settler.sendHeldNaks();
    this.settler.close();
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
