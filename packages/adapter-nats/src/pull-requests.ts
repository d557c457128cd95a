import { createInbox, nanos, type Msg, type Subscription } from '@nats-io/nats-core';
import type { ConsumerInfo } from '@nats-io/jetstream';
import { PIN_GROUP } from './consumer-admin.js';
import { TICK_MS, type ConsumerHub } from './consumer-hub.js';
import type { ConsumerPin } from './consumer-pin.js';
import { drainInbox } from './drain-inbox.js';

/**
 * The request side of one pull loop (see PullConsumer): its inbox, the pull
 * requests it has open there, and their end when the loop stops.
 *
 * A request is `{batch, expires, idle_heartbeat}` (and, on a pinned
 * consumer, the priority group and the pin) to
 * `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>` with the inbox as reply
 * subject. What was asked for and not yet received or expired is counted, so
 * the loop asks for more once half of it has arrived; a refused pull (or a
 * failed recovery) pauses pulling (backoff). Requests outlive the inbox on
 * the server, so stopping waits for them to end (pinned loops) and has the
 * server drop what is left.
 */

/** How long before its expiry a blocked cumulative member's standing pull is overlapped by the next. */
const STANDING_PULL_MARGIN_MS = 250;

/** The inbox of one pull loop and the pull requests it has open there. */
export class PullRequests {
  private sub: Subscription | undefined;
  private readonly inbox: string;
  private readonly nextSubject: string;
  private readonly batchSize: number;
  private readonly threshold: number;
  private readonly expiresMs: number;
  private readonly expiresNs: number;
  private readonly heartbeatNs: number;
  /** No message or status for this long while requests are open: the heartbeats were missed. */
  readonly staleAfterMs: number;
  /** Messages asked for and not yet received or expired. */
  private requested = 0;
  private pauseUntil = 0;
  private failures = 0;
  private lastPullAt = 0;

  constructor(
    private readonly hub: ConsumerHub,
    private readonly topic: string,
    private readonly stream: string,
    private readonly durable: string,
    info: ConsumerInfo,
    /** Pinned consumers: the pin the requests carry. */
    private readonly pin: ConsumerPin | undefined,
  ) {
    const config = hub.config;
    this.inbox = createInbox(config.inboxPrefix);
    this.nextSubject = `${hub.apiPrefix}.CONSUMER.MSG.NEXT.${stream}.${durable}`;
    const maxAckPending = info.config.max_ack_pending ?? 0;
    this.batchSize = Math.max(1, Math.min(config.pullBatch, maxAckPending > 0 ? maxAckPending : config.pullBatch));
    this.threshold = Math.floor(this.batchSize / 2);
    const expiresMs = pin !== undefined ? pin.expiresMs(config.pullExpiresMs) : config.pullExpiresMs;
    const heartbeatMs = Math.min(config.idleHeartbeatMs, Math.floor(expiresMs / 2));
    this.expiresMs = expiresMs;
    this.expiresNs = nanos(expiresMs);
    this.heartbeatNs = nanos(heartbeatMs);
    this.staleAfterMs = 2 * heartbeatMs + 2_000;
  }

  /** Subscribed to the inbox (`open`). */
  get isOpen(): boolean {
    return this.sub !== undefined;
  }

  /** Messages asked for and not yet received or expired. */
  get outstanding(): number {
    return this.requested;
  }

  /** At most half a batch is still to come: time to ask for more. */
  get runningLow(): boolean {
    return this.requested <= this.threshold;
  }

  /** Subscribes to the inbox: messages and status messages go to `onMessage`. */
  open(onMessage: (error: Error | null, msg: Msg) => void): void {
    this.sub = this.hub.nc.subscribe(this.inbox, { callback: onMessage });
  }

  /** A message arrived for one of the requests. */
  received(): void {
    if (this.requested > 0) this.requested--;
  }

  /** A request ended (expired, or refused) with `left` messages not delivered (not a number: all of them). */
  ended(left: number): void {
    this.requested = Number.isFinite(left) ? Math.max(0, this.requested - left) : 0;
  }

  /** The open requests are gone (or their messages will not come): nothing is outstanding. */
  clear(): void {
    this.requested = 0;
  }

  /** Pulling may go on at once (reconnected). */
  unpause(): void {
    this.pauseUntil = 0;
  }

  /** A pull failed: pulling pauses, longer after each failure in a row. */
  backoff(): void {
    this.failures++;
    this.pauseUntil = Date.now() + Math.min(5_000, 100 * 2 ** Math.min(this.failures, 6));
  }

  /** The consumer answered again: the next failure pauses briefly. */
  recovered(): void {
    this.failures = 0;
  }

  /** Asks for more once at most half a batch is still to come, unless paused after a failure. */
  topUp(): void {
    if (this.requested > this.threshold) return;
    if (this.pauseUntil > 0) {
      if (Date.now() < this.pauseUntil) return;
      this.pauseUntil = 0;
    }
    this.pull();
  }

  /**
   * Keeps one request open while the loop is blocked (cumulative members).
   * It lives at least three ticks and the next is sent at the last tick before it expires: re-pulling
   * only on its 408 left a gap (a round trip, more on a busy event loop) in which this member looked gone.
   */
  keepStanding(): void {
    const now = Date.now();
    const standingMs = Math.max(this.expiresMs, 3 * TICK_MS);
    const expiring = now - this.lastPullAt >= standingMs - TICK_MS - STANDING_PULL_MARGIN_MS;
    if ((this.requested === 0 || expiring) && now >= this.pauseUntil) this.send(1, nanos(standingMs));
  }

  /** Pinned: a pull request at least every pin refresh, so the pin does not lapse. */
  refreshPin(now: number): void {
    const pin = this.pin;
    if (pin !== undefined && pin.id !== undefined && now - this.lastPullAt >= pin.refreshMs) {
      // Keeps the pin while blocked or idle: the pin's timeout runs from the latest request, so the
      // request may end before the next refresh; it expires like any pinned request, which stopping waits for.
      this.send(1, this.expiresNs);
      this.hub.hooks.count('pin_refreshes');
    }
  }

  /** Asks for up to `max` more messages, as far as a batch is not already outstanding. */
  pull(max = this.batchSize): void {
    const n = Math.min(max, this.batchSize - this.requested);
    if (n <= 0) return;
    this.send(n, this.expiresNs);
  }

  private send(n: number, expiresNs: number): void {
    let body = `{"batch":${n},"expires":${expiresNs},"idle_heartbeat":${this.heartbeatNs}`;
    const pin = this.pin;
    if (pin !== undefined) body += pin.id === undefined ? `,"group":"${PIN_GROUP}"}` : `,"group":"${PIN_GROUP}","id":"${pin.id}"}`;
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

  /** Resolves when the pull requests we sent have expired or been filled (bounded by their expiry). */
  async whenEnded(): Promise<void> {
    const deadline = Date.now() + this.expiresMs + 500;
    while (this.requested > 0 && this.hub.isConnected && !this.hub.nc.isClosed()) {
      if (Date.now() >= deadline) {
        // Their end went missing (a lost status message): dropping the inbox now leaves them to end().
        this.hub.hooks.count('pull_requests_outlived_stop');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Ends the inbox (drained, see drainInbox), then has the server drop the requests left on it. */
  async end(): Promise<void> {
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
      await this.hub.jsm.consumers.info(this.stream, this.durable);
    } catch {
      // The server drops them by itself when they expire (pullExpiresMs).
    }
  }
}
