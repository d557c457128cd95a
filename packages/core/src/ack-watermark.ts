/**
 * AckWatermark: for one ordered source (a Kafka partition's offsets, a
 * JetStream stream's or consumer's sequences) whose messages complete out of
 * order, the highest position below which everything is done — the position a
 * Kafka commit (watermark + 1) or a NATS ack-all may safely cover.
 *
 * Tracked positions that are not yet released live in a ring buffer (positions
 * plus a done flag each), in increasing order. Completing the oldest one
 * releases the completed prefix and advances the mark, so memory is bounded by
 * the span between the oldest incomplete position and the newest tracked one.
 *
 * Cost: `track` is O(1) amortized. `complete` finds its position in O(1) when
 * the tracked positions are contiguous (the usual case: offsets, stream
 * sequences), and by binary search (O(log n) in the positions held) when there
 * are gaps; releasing the prefix is O(1) amortized per position.
 */
export class AckWatermark {
  private positions = new Float64Array(16);
  private done = new Uint8Array(16);
  private mask = 15;
  private head = 0;
  /** Positions held in the ring (tracked and not yet released). */
  private size = 0;
  private incomplete = 0;
  private last = -1;
  private mark: number | undefined = undefined;

  /** Starts tracking `position`; positions must be non-negative safe integers in increasing order (gaps allowed). */
  track(position: number): void {
    if (!Number.isSafeInteger(position) || position < 0) {
      throw new RangeError(`AckWatermark: position must be a non-negative safe integer, got ${String(position)}`);
    }
    if (position <= this.last) {
      throw new RangeError(`AckWatermark: positions must be tracked in increasing order; ${position} after ${this.last}`);
    }
    if (this.size > this.mask) this.grow();
    const i = (this.head + this.size) & this.mask;
    this.positions[i] = position;
    this.done[i] = 0;
    this.size++;
    this.incomplete++;
    this.last = position;
  }

  /**
   * Marks `position` complete. Returns true when the watermark advanced;
   * completing an untracked or already complete position is a no-op returning false.
   */
  complete(position: number): boolean {
    const size = this.size;
    if (size === 0) return false;
    const positions = this.positions;
    const mask = this.mask;
    const head = this.head;
    const first = positions[head]!;
    if (position < first || position > this.last) return false;
    // Contiguous positions: the offset from the oldest is the index. With gaps
    // the index is smaller, so search below that bound.
    let offset = position - first;
    if (offset >= size || positions[(head + offset) & mask] !== position) {
      let lo = 0;
      let hi = Math.min(offset, size - 1);
      offset = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        const p = positions[(head + mid) & mask]!;
        if (p === position) {
          offset = mid;
          break;
        }
        if (p < position) lo = mid + 1;
        else hi = mid - 1;
      }
      if (offset < 0) return false;
    }
    const i = (head + offset) & mask;
    if (this.done[i] === 1) return false;
    this.done[i] = 1;
    this.incomplete--;
    if (offset !== 0) return false;
    // The oldest completed: release the completed prefix.
    const done = this.done;
    let h = head;
    let n = size;
    let mark = position;
    while (n > 0 && done[h] === 1) {
      mark = positions[h]!;
      h = (h + 1) & mask;
      n--;
    }
    this.head = h;
    this.size = n;
    this.mark = mark;
    return true;
  }

  /** Highest tracked position p with every tracked position <= p complete; undefined when nothing is complete yet (or after reset). */
  get watermark(): number | undefined {
    return this.mark;
  }

  /** Tracked and not yet complete. */
  get pending(): number {
    return this.incomplete;
  }

  /** The newest tracked position, or undefined when nothing was tracked since construction or reset. */
  get lastTracked(): number | undefined {
    return this.last < 0 ? undefined : this.last;
  }

  /** Forgets everything (e.g. the partition was revoked); tracking may restart at any position. */
  reset(): void {
    if (this.positions.length > 1024) {
      this.positions = new Float64Array(16);
      this.done = new Uint8Array(16);
      this.mask = 15;
    }
    this.head = 0;
    this.size = 0;
    this.incomplete = 0;
    this.last = -1;
    this.mark = undefined;
  }

  private grow(): void {
    const cap = this.positions.length;
    const positions = new Float64Array(cap * 2);
    const done = new Uint8Array(cap * 2);
    for (let k = 0; k < this.size; k++) {
      const i = (this.head + k) & this.mask;
      positions[k] = this.positions[i]!;
      done[k] = this.done[i]!;
    }
    this.positions = positions;
    this.done = done;
    this.head = 0;
    this.mask = cap * 2 - 1;
  }
}
