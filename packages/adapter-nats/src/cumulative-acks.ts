import { AckWatermark, Deque, type DriverHooks } from '@busline/core/driver';
import { ACK } from './ack-payloads.js';

/**
 * Acknowledgements for a consumer with AckPolicy `all`, where one `+ACK` on a
 * message acknowledges every message of the consumer up to its stream
 * sequence. That is only safe up to the point below which every message the
 * server considers pending was handled, so this keeps core's `AckWatermark`
 * over the stream sequences this bus was given and acknowledges the
 * watermark, in one message, at most once per event-loop turn.
 *
 * How the other settlements interact with an ack-all consumer (server
 * behaviour, checked against nats-server 2.9):
 * - `+TERM` is processed like an ack, and on an ack-all consumer that means
 *   "everything up to here". So `term()` is never sent: the message simply
 *   counts as settled in the watermark and the next ack-all covers it.
 * - `-NAK` (with or without delay) acts on the one message. The position stays
 *   open in the watermark (nothing is acknowledged past it) until the
 *   redelivery arrives and is settled; the redelivery updates the reply
 *   subject used for the ack.
 * - A redelivery of a message that is being handled (ack wait expired) is not
 *   handed out twice; one of a message already settled is not handed out
 *   again, and is acknowledged at once when everything up to it is settled.
 * - Messages the server delivered to an earlier bus on this durable and that
 *   were never acknowledged ("leftovers": the stream sequences between the
 *   consumer's ack floor and its last delivered sequence when this bus
 *   subscribed) are tracked as open before anything else, so no ack-all passes
 *   them before they are redelivered (after the ack wait) and handled. A
 *   leftover the stream no longer holds, or that the server's ack floor has
 *   passed, is closed by `resolveLeftovers`.
 * - Another bus consuming the same (topic, group) at the same time would have
 *   its unsettled messages covered by this bus's ack-all: cumulative acks need
 *   one consuming bus per (topic, group). The driver refuses to subscribe a
 *   second member it can see (`refuseSecondMember` in consumer-admin.ts) and
 *   reports deliveries that went to another member.
 */

const UNSETTLED = 0;
const NACKED = 1;
const LEFTOVER = 2;
const COMPLETE = 3;

interface Position {
  readonly seq: number;
  /** The ack subject of the latest delivery; empty for a leftover not redelivered yet. */
  reply: Uint8Array;
  state: number;
  /** The delivery currently handed out for this position. */
  delivery: object | undefined;
}

/** What a consumer needs to send. */
export interface AckSender {
  /** Publishes an acknowledgement payload to a delivery's reply subject. */
  send(reply: Uint8Array, payload: Uint8Array): void;
  /** Asks for `flush()` soon (coalesced per event-loop turn). */
  schedule(): void;
  readonly hooks: DriverHooks;
}

const NONE = new Uint8Array(0);

/**
 * Acknowledges many JetStream messages with one ack (ack policy `all`) once every message up to a
 * sequence is settled, out-of-order settles included. Used by `ackMode: 'cumulative'`; exported for
 * tests and benchmarks.
 */
export class CumulativeAcks {
  private readonly wm = new AckWatermark();
  /** Tracked positions not yet covered by an ack sent, in sequence order. */
  private readonly positions = new Deque<Position>();
  /** Tracked positions not complete, by sequence. */
  private readonly open = new Map<number, Position>();
  /** Deliveries below everything tracked (before this bus's time): they block every ack-all until settled. */
  private readonly strays = new Map<number, Position>();
  private firstTracked = -1;
  /** Highest sequence covered by an ack-all this bus sent. */
  private acked = 0;
  private leftoverCount = 0;
  private lastSent: Uint8Array = NONE;

  constructor(private readonly sender: AckSender) {}

  /** Leftovers (messages delivered to an earlier bus on this durable and never acknowledged) still open. */
  get leftovers(): number {
    return this.leftoverCount;
  }

  /** Open positions, waiting for redelivery or settlement (for tests and metrics). */
  get pending(): number {
    return this.open.size + this.strays.size;
  }

  /**
   * Marks the consumer's unacknowledged sequences as open leftovers:
   * `floor + 1 .. delivered`, except those `exists` says are gone.
   */
  pretrack(floor: number, delivered: number, exists: (seq: number) => boolean): void {
    this.acked = floor;
    for (let seq = floor + 1; seq <= delivered; seq++) {
      if (!exists(seq)) continue;
      this.track(seq, NONE, LEFTOVER, undefined);
      this.leftoverCount++;
    }
  }

  private track(seq: number, reply: Uint8Array, state: number, delivery: object | undefined): Position {
    this.wm.track(seq);
    if (this.firstTracked < 0) this.firstTracked = seq;
    const p: Position = { seq, reply, state, delivery };
    this.positions.push(p);
    this.open.set(seq, p);
    return p;
  }

  /** A delivery arrived: true to hand it to the subscription, false to drop it (see the class comment). */
  admit(seq: number, reply: Uint8Array, delivery: object): boolean {
    const last = this.wm.lastTracked;
    if (last === undefined || seq > last) {
      this.track(seq, reply, UNSETTLED, delivery);
      return true;
    }
    if (seq < this.firstTracked) {
      if (seq <= this.acked) {
        // Below what was acknowledged already (the server lost or ignored an ack): acknowledge again.
        this.sender.send(reply, ACK);
        return false;
      }
      const stray = this.strays.get(seq);
      if (stray !== undefined && stray.state === UNSETTLED) return false;
      this.strays.set(seq, { seq, reply, state: UNSETTLED, delivery });
      return true;
    }
    const p = this.open.get(seq);
    if (p !== undefined) {
      if (p.state === UNSETTLED) {
        this.sender.hooks.count('redelivered_while_handled');
        return false;
      }
      if (p.state === LEFTOVER) this.leftoverCount--;
      p.state = UNSETTLED;
      p.reply = reply;
      p.delivery = delivery;
      return true;
    }
    // Settled already. Acknowledge now when everything up to it is settled; else the next ack-all covers it.
    const mark = this.wm.watermark;
    if (mark !== undefined && seq <= mark && this.strays.size === 0) {
      this.sender.send(reply, ACK);
      if (seq > this.acked) this.acked = seq;
    }
    this.sender.hooks.count('redelivered_settled');
    return false;
  }

  /** `delivery` was acknowledged or terminated: complete its position. */
  complete(seq: number, delivery: object): void {
    const stray = this.strays.get(seq);
    if (stray !== undefined && stray.delivery === delivery) {
      this.strays.delete(seq);
      let lowest = true;
      for (const other of this.strays.keys()) if (other < seq) lowest = false;
      // Nothing below it is open here: acknowledging it (and what is below) is safe.
      if (lowest) this.sender.send(stray.reply, ACK);
      if (this.strays.size === 0) this.sender.schedule();
      return;
    }
    const p = this.open.get(seq);
    if (p === undefined || p.delivery !== delivery) return;
    p.state = COMPLETE;
    p.delivery = undefined;
    this.open.delete(seq);
    if (this.wm.complete(seq)) this.sender.schedule();
  }

  /** `delivery` was nacked (the caller sends the -NAK): its position stays open until the redelivery is settled. */
  nacked(seq: number, delivery: object): boolean {
    const stray = this.strays.get(seq);
    if (stray !== undefined && stray.delivery === delivery) {
      stray.state = NACKED;
      stray.delivery = undefined;
      return true;
    }
    const p = this.open.get(seq);
    if (p === undefined || p.delivery !== delivery) return false;
    p.state = NACKED;
    p.delivery = undefined;
    return true;
  }

  /** Sends one ack-all for the watermark if it moved past what was acknowledged. */
  flush(): void {
    if (this.strays.size > 0) return;
    const mark = this.wm.watermark;
    if (mark === undefined || mark <= this.acked) return;
    let target: Position | undefined;
    while (this.positions.length > 0 && this.positions.peek()!.seq <= mark) {
      const p = this.positions.shift()!;
      // Leftovers closed without a redelivery have no reply subject; an ack-all further up covers them.
      if (p.reply.length > 0) target = p;
    }
    this.acked = mark;
    if (target === undefined) return;
    this.lastSent = target.reply;
    this.sender.send(target.reply, ACK);
    this.sender.hooks.count('ack_all_sent');
  }

  /** After a reconnect: the last ack-all may have been lost with the socket; send it again. */
  resend(): void {
    if (this.lastSent.length > 0) this.sender.send(this.lastSent, ACK);
  }

  /**
   * Closes leftovers that will never be redelivered: at or below the server's
   * ack floor (acknowledged by someone), or gone from the stream.
   */
  resolveLeftovers(ackFloor: number, exists: (seq: number) => boolean): number {
    let closed = 0;
    for (const p of [...this.open.values()]) {
      if (p.state !== LEFTOVER) continue;
      if (p.seq <= ackFloor || !exists(p.seq)) {
        p.state = COMPLETE;
        this.open.delete(p.seq);
        this.leftoverCount--;
        closed++;
        this.wm.complete(p.seq);
      }
    }
    if (closed > 0) this.sender.schedule();
    return closed;
  }
}
