import type { ConsumerInfo } from '@nats-io/jetstream';
import type { ConsumerHub } from './consumer-hub.js';
import type { CumulativeAcks } from './cumulative-acks.js';
import { adminError } from './streams.js';

/**
 * Cumulative mode: the leftovers of an earlier bus (messages the server
 * delivered on this durable and that were never acknowledged, see
 * CumulativeAcks), as the server reports them. Before the first pull, the
 * consumer info's ack floor and last delivered sequence, and the stream's
 * state, say which to track as open; then, on the housekeeping tick while any
 * is left, they are read again and the leftovers the stream no longer holds,
 * or the ack floor has passed, are closed.
 */

/** Finds and closes the leftovers of one cumulative pull loop. */
export class LeftoverCheck {
  private leftoverCheckAt = 0;

  constructor(
    private readonly hub: ConsumerHub,
    private readonly acks: CumulativeAcks,
    private readonly topic: string,
    private readonly stream: string,
    private readonly durable: string,
  ) {}

  /**
   * Marks what the server still holds unacknowledged from an earlier bus as
   * open before the first pull. `staleAfterMs`: the pull loop's, the first
   * check waits for the ack wait and that.
   */
  async prepare(info: ConsumerInfo, staleAfterMs: number): Promise<void> {
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
    this.leftoverCheckAt = Date.now() + this.hub.config.ackWaitMs + staleAfterMs;
  }

  /** The housekeeping tick: while leftovers are open, checks them now and then (not while disconnected: the requests would only time out). */
  tick(now: number): void {
    if (this.acks.leftovers > 0 && now >= this.leftoverCheckAt && this.hub.isConnected) {
      this.leftoverCheckAt = now + Math.max(5_000, this.hub.config.ackWaitMs / 2);
      void this.checkLeftovers();
    }
  }

  /** Which stream sequences still exist (first..last minus deleted ones). */
  private async existence(): Promise<(seq: number) => boolean> {
    const si = await this.hub.jsm.streams.info(this.stream, { deleted_details: true });
    const first = si.state.first_seq;
    const last = si.state.last_seq;
    const deleted = new Set<number>(si.state.deleted ?? []);
    return (seq) => seq >= first && seq <= last && !deleted.has(seq);
  }

  private async checkLeftovers(): Promise<void> {
    try {
      const info = await this.hub.jsm.consumers.info(this.stream, this.durable);
      const exists = await this.existence();
      const closed = this.acks.resolveLeftovers(info.ack_floor.stream_seq, exists);
      if (closed > 0) this.hub.hooks.count('leftovers_closed', closed);
    } catch (error) {
      if (!this.hub.nc.isClosed()) this.hub.hooks.error(adminError(this.topic, 'checking unacknowledged messages', error), 'nats consumer');
    }
  }
}
