/** A growable ring-buffer FIFO (push at the tail, shift and peek at the head). */
export class Deque<T> {
  private buf: (T | undefined)[] = new Array<T | undefined>(16);
  private mask = 15;
  private head = 0;
  length = 0;

  push(value: T): void {
    if (this.length > this.mask) this.grow();
    this.buf[(this.head + this.length) & this.mask] = value;
    this.length++;
  }

  peek(): T | undefined {
    return this.length > 0 ? this.buf[this.head] : undefined;
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const value = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.length--;
    if (this.length === 0 && this.buf.length > 1024) this.reset();
    return value;
  }

  /** Removes and returns everything, oldest first. */
  drain(): T[] {
    const out: T[] = [];
    while (this.length > 0) out.push(this.shift()!);
    return out;
  }

  private reset(): void {
    this.buf = new Array<T | undefined>(16);
    this.mask = 15;
    this.head = 0;
  }

  private grow(): void {
    const cap = this.buf.length;
    const next = new Array<T | undefined>(cap * 2);
    for (let i = 0; i < this.length; i++) next[i] = this.buf[(this.head + i) & this.mask];
    this.buf = next;
    this.head = 0;
    this.mask = cap * 2 - 1;
  }
}
