import { describe, expect, it } from 'vitest';
import { Deque } from './deque.js';

describe('Deque', () => {
  it('keeps FIFO order across growth and wrap-around', () => {
    const d = new Deque<number>(4);
    const out: number[] = [];
    let next = 0;
    // Interleave pushes and shifts so the head wraps while the buffer grows.
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 7; i++) d.push(next++);
      for (let i = 0; i < 5; i++) out.push(d.shift()!);
    }
    out.push(...d.drain());
    expect(out).toEqual(Array.from({ length: next }, (_, i) => i));
    expect(d.length).toBe(0);
  });

  it('peeks and shifts undefined when empty, and peek does not remove', () => {
    const d = new Deque<string>();
    expect(d.peek()).toBeUndefined();
    expect(d.shift()).toBeUndefined();
    d.push('a');
    d.push('b');
    expect(d.peek()).toBe('a');
    expect(d.length).toBe(2);
    expect(d.shift()).toBe('a');
    expect(d.peek()).toBe('b');
  });

  it('removeWhere returns the dropped elements and keeps the rest in order', () => {
    const d = new Deque<number>(2);
    d.shift();
    for (let i = 0; i < 10; i++) d.push(i);
    d.shift();
    expect(d.removeWhere((v) => v % 3 === 0)).toEqual([3, 6, 9]);
    expect(d.drain()).toEqual([1, 2, 4, 5, 7, 8]);
  });

  it('stays usable after a burst is drained and its buffer given back', () => {
    const d = new Deque<number>(4);
    for (let i = 0; i < 70_000; i++) d.push(i);
    for (let i = 0; i < 70_000; i++) expect(d.shift()).toBe(i);
    for (let i = 0; i < 9; i++) d.push(i);
    expect(d.drain()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
