import type { DeliveredMessage } from '@busline/core/driver';
import type { DeliverySettler } from './delivery-settler.js';
import { ackTimestampMs } from './wire.js';

/**
 * A message from a durable pull consumer as core sees it: settled at most
 * once, the settlement handed to the DeliverySettler of the pull loop that
 * received it (which knows the ack mode and where the ack goes).
 */

export const KIND_ACK = 0;
export const KIND_NAK = 1;
export const KIND_TERM = 2;

/** One delivery of a JetStream message. */
export class NatsDelivery implements DeliveredMessage {
  private settled = false;

  constructor(
    private readonly owner: DeliverySettler,
    readonly topic: string,
    readonly key: string | undefined,
    readonly headers: Record<string, string>,
    readonly body: Uint8Array,
    readonly deliveryCount: number,
    readonly seq: number,
    /** The ack subject, as bytes. */
    readonly reply: Uint8Array,
  ) {}

  /** The stream sequence: the same for every delivery of the message. */
  get deliveryId(): number {
    return this.seq;
  }

  /** When the stream stored the message, from the ack subject (parsed only when asked). */
  get timestamp(): number | undefined {
    return ackTimestampMs(this.reply);
  }

  extendLease(): void {
    if (!this.settled) this.owner.extendLease(this);
  }

  ack(): void {
    if (this.settled) return;
    this.settled = true;
    this.owner.settle(this, KIND_ACK, 0);
  }

  nack(delayMs: number): void {
    if (this.settled) return;
    this.settled = true;
    this.owner.settle(this, KIND_NAK, delayMs);
  }

  term(): void {
    if (this.settled) return;
    this.settled = true;
    this.owner.settle(this, KIND_TERM, 0);
  }

  get isSettled(): boolean {
    return this.settled;
  }
}
