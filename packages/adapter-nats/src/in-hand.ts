/**
 * What one pull loop has in hand (explicit acks): the stream sequences it
 * handed to the subscription and that are not settled yet, and, once it
 * stops, the naks it holds back until its inbox is gone (see releaseNaks).
 */
export class InHand {
  private readonly seqs = new Set<number>();
  private waiters: (() => void)[] = [];
  /** Naks made since stop (undefined while running: they go out at once). */
  private naks: { seq: number; reply: Uint8Array; payload: Uint8Array }[] | undefined;

  get size(): number {
    return this.seqs.size;
  }

  add(seq: number): void {
    this.seqs.add(seq);
  }

  /** A message was settled; resolves `whenSettled` once none is left. */
  release(seq: number): void {
    if (!this.seqs.delete(seq) || this.seqs.size > 0 || this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves once every message handed on is settled. */
  whenSettled(): Promise<void> {
    if (this.seqs.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** From now on `holdNak` keeps naks instead of letting them go out. */
  startHoldingNaks(): void {
    this.naks ??= [];
  }

  /** Keeps the nak if naks are held (returns false: send it now). */
  holdNak(seq: number, reply: Uint8Array, payload: Uint8Array): boolean {
    if (this.naks === undefined) return false;
    this.naks.push({ seq, reply, payload });
    return true;
  }

  get hasHeldNaks(): boolean {
    return this.naks !== undefined && this.naks.length > 0;
  }

  /**
   * Hands the held naks to `send`, lowest stream sequence first, and returns
   * how many it left out. A message still unsettled here (a handler that
   * outlived the unsubscribe timeout, and what waits behind it on its key) is
   * redelivered only after its ack wait; a nak for a later message would have
   * that one redelivered first. So naks for messages after the first
   * unsettled one are left out: they are redelivered after their ack wait
   * too, in stream order.
   */
  releaseNaks(send: (reply: Uint8Array, payload: Uint8Array) => void): number {
    const held = this.naks;
    if (held === undefined || held.length === 0) return 0;
    this.naks = [];
    held.sort((a, b) => a.seq - b.seq);
    let floor = Number.POSITIVE_INFINITY;
    for (const seq of this.seqs) if (seq < floor) floor = seq;
    let skipped = 0;
    for (const nak of held) {
      if (nak.seq > floor) skipped++;
      else send(nak.reply, nak.payload);
    }
    return skipped;
  }
}
