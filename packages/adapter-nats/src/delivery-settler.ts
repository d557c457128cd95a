import { ACK, nakPayload, TERM, WPI } from './ack-payloads.js';
import type { ConsumerHub } from './consumer-hub.js';
import type { CumulativeAcks } from './cumulative-acks.js';
import type { InHand } from './in-hand.js';
import { KIND_ACK, KIND_NAK, type NatsDelivery } from './nats-delivery.js';

/**
 * Where the settlements of one pull loop's deliveries go: with explicit acks
 * each is a `+ACK`, `-NAK` or `+TERM` to the delivery's reply subject and
 * leaves what the loop has in hand (InHand); on an ack-all consumer an ack or
 * term completes its position in CumulativeAcks (which sends the ack-alls)
 * and a nak still goes out as `-NAK`. Naks made once the loop stops are held
 * and sent in stream order when its inbox is gone; after close nothing is
 * sent, lease extensions (`+WPI`) included.
 */

/** The settlements of one pull loop (see PullConsumer): the owner of each of its deliveries. */
export class DeliverySettler {
  private closed = false;

  constructor(
    private readonly hub: ConsumerHub,
    /** Handed to the subscription and not settled yet (explicit acks), and the naks held while stopping. */
    private readonly held: InHand,
    /** Ack-all consumers only. */
    private readonly acks: CumulativeAcks | undefined,
  ) {}

  /** Closed: what is settled from now on is not sent. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** After the loop's close: settlements and lease extensions are dropped. */
  close(): void {
    this.closed = true;
  }

  /**
   * Sends the naks held since stop (after `stop` dropped our orphaned pull
   * requests) so the server redelivers them in stream order: it keeps naked
   * messages in a queue, and whenever it finds a queued one and waiting pull
   * requests but none it may serve, it moves that message to the back.
   */
  async sendHeldNaks(): Promise<void> {
    if (!this.held.hasHeldNaks || this.hub.nc.isClosed()) return;
    this.releaseNaks(); // while disconnected the hub keeps them for after the reconnect
    this.hub.flushReplies();
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

  /** Sends the naks held since stop in stream order (see InHand.releaseNaks). */
  private releaseNaks(): void {
    const skipped = this.held.releaseNaks((reply, payload) => this.hub.reply(reply, payload));
    if (skipped > 0) this.hub.hooks.count('naks_left_to_ack_wait', skipped);
  }
}
