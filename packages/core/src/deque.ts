/**
 * A growable ring-buffer FIFO: push at the tail, shift and peek at the head,
 * each O(1) without the copying of `Array.prototype.shift`. Core's ordering
 * pool and the adapters' publish and acknowledgement queues share it.
 */
export class Deque<T> {
  private buf: (T | undefined)[];
  private mask: number;
  private head = 0;
  /** How many elements it holds. */
  length = 0;

  /** `capacity` is rounded up to a power of two (at least 4); small per-key queues start small. */
  constructor(private readonly capacity = 16) {
    this.buf = new Array<T | undefined>(roundUp(capacity));
    this.mask = this.buf.length - 1;
  }

  /** Adds `value` at the tail. */
  push(value: T): void {
    if (this.length > this.mask) this.grow();
    this.buf[(this.head + this.length) & this.mask] = value;
    this.length++;
  }

  /** The oldest element, left in place; undefined when empty. */
  peek(): T | undefined {
    return this.length > 0 ? this.buf[this.head] : undefined;
  }

  /** Removes and returns the oldest element; undefined when empty. */
  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const i = this.head;
    const value = this.buf[i];
    this.buf[i] = undefined;
    this.head = (i + 1) & this.mask;
    this.length--;
    if (this.length === 0 && this.buf.length > RELEASE_ABOVE) this.reset();
    return value;
  }

  /** Removes and returns everything, oldest first. */
  drain(): T[] {
    const out: T[] = [];
    while (this.length > 0) out.push(this.shift() as T);
    return out;
  }

  /** Removes and returns every element for which `drop` is true; the rest keep their order. */
  removeWhere(drop: (value: T) => boolean): T[] {
    const removed: T[] = [];
    const kept: T[] = [];
    for (const value of this.drain()) (drop(value) ? removed : kept).push(value);
    for (const value of kept) this.push(value);
    return removed;
  }

  private reset(): void {
    this.buf = new Array<T | undefined>(roundUp(this.capacity));
    this.mask = this.buf.length - 1;
    this.head = 0;
  }

  private grow(): void {
    const old = this.buf;
    const cap = old.length;
    const next = new Array<T | undefined>(cap * 2);
    for (let i = 0; i < this.length; i++) next[i] = old[(this.head + i) & this.mask];
    this.buf = next;
    this.head = 0;
    this.mask = cap * 2 - 1;
  }
}

/**
 * Past this many slots, an emptied buffer is given back: an exceptional burst
 * should not pin its memory. Queues refilled all the time stay below it and
 * keep their buffer (the ordering pool's hold at most twice its default
 * maxPending of 20,000).
 */
const RELEASE_ABOVE = 65_536;

function roundUp(capacity: number): number {
  let cap = 4;
  while (cap < capacity) cap <<= 1;
  return cap;
}
