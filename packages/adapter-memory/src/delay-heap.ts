/**
 * Nack delays: one heap and one timer per group. The heap of deliveries
 * waiting for their redelivery time, ordered by due time (then arrival).
 */
import type { Delivery } from './delivery.js';

export interface DelayedEntry {
  due: number;
  seq: number;
  delivery: Delivery;
}

export class DelayHeap {
  private readonly items: DelayedEntry[] = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  peek(): DelayedEntry | undefined {
    return this.items[0];
  }

  push(due: number, delivery: Delivery): boolean {
    const items = this.items;
    const entry: DelayedEntry = { due, seq: this.seq++, delivery };
    let i = items.length;
    items.push(entry);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(entry, items[parent]!)) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = entry;
    return i === 0;
  }

  pop(): DelayedEntry | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    let i = 0;
    const n = items.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && before(items[r]!, items[l]!) ? r : l;
      if (!before(items[child]!, last)) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

function before(a: DelayedEntry, b: DelayedEntry): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}
