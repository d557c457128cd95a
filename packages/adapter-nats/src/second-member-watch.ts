import { BuslineError, ErrorCode, type DriverHooks } from '@busline/core/driver';

/**
 * Cumulative mode: the consumer numbers its deliveries (to any member) one by
 * one, so a member alone sees them without gaps (reset after a reconnect or
 * a leadership change, when deliveries in transit may be lost). A gap means
 * another member got deliveries of this consumer, which subscribe refuses
 * (refuseSecondMember in consumer-admin.ts) but cannot fully rule out (two
 * members starting within one round trip, or one that was disconnected while
 * another started). Reported loudly: ack-alls may already cover that member's
 * messages.
 */

/** Watches the delivery sequences of one cumulative pull loop for deliveries that went to another member. */
export class SecondMemberWatch {
  /** The highest consumer delivery sequence seen since the last reset (0: none). */
  private lastDeliverySeq = 0;
  private otherMemberReported = false;

  constructor(
    private readonly hooks: DriverHooks,
    private readonly topic: string,
    private readonly durable: string,
  ) {}

  /** A delivery with consumer delivery sequence `dseq` arrived. */
  check(dseq: number): void {
    const last = this.lastDeliverySeq;
    if (dseq > last) this.lastDeliverySeq = dseq;
    if (last === 0 || dseq <= last + 1) return;
    this.hooks.count('deliveries_to_other_members', dseq - last - 1);
    if (this.otherMemberReported) return;
    this.otherMemberReported = true;
    this.hooks.error(
      new BuslineError(
        ErrorCode.Unsupported,
        `another member is consuming ${this.durable} of "${this.topic}" (deliveries ${last + 1}..${dseq - 1} went elsewhere) while it acknowledges cumulatively: ` +
          "each member's ack-all covers the other's unhandled messages, which are lost if that member dies. Run one member per group with ackMode 'cumulative', or use 'explicit'.",
        { details: { topic: this.topic, durable: this.durable } },
      ),
      'nats consumer',
    );
  }

  /** Deliveries in transit may have been lost (reconnect, leadership change, recovery): the next one starts afresh. */
  reset(): void {
    this.lastDeliverySeq = 0;
  }
}
