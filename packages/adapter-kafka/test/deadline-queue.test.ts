import { afterEach, describe, expect, it, vi } from 'vitest';
import { DeadlineQueue } from '../src/deadline-queue.js';

interface Call {
  done: boolean;
  deadline: number;
}
const call = (timeoutMs: number): Call => ({ done: false, deadline: performance.now() + timeoutMs });

describe('DeadlineQueue', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('holds only the open window: calls that completed are dropped as new ones come, long before their deadline', () => {
    const queue = new DeadlineQueue<Call>(() => undefined);
    const open: Call[] = [];
    for (let i = 0; i < 100_000; i++) {
      const c = call(30_000);
      queue.add(c);
      open.push(c);
      // About 500 calls open at a time, completing in order.
      if (open.length > 500) open.shift()!.done = true;
    }
    // Before, every call of the last 30 s stayed until the timer fired: 100,000 here.
    expect(queue.size).toBeLessThanOrEqual(501 + 1_025);
    queue.clear();
  });

  it('expires each call still open at its deadline, once, and never a completed one', () => {
    vi.useFakeTimers();
    const expired: Call[] = [];
    const queue = new DeadlineQueue<Call>((c) => expired.push(c));
    const stuck = call(1_000);
    const completed = call(1_000);
    queue.add(stuck);
    queue.add(completed);
    completed.done = true;
    const later = call(2_000);
    queue.add(later);
    vi.advanceTimersByTime(1_001);
    expect(expired).toEqual([stuck]);
    vi.advanceTimersByTime(1_000);
    expect(expired).toEqual([stuck, later]);
    vi.advanceTimersByTime(10_000);
    expect(expired).toHaveLength(2);
    expect(queue.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a call stuck at the front keeps later completed ones until it expires, then they go', () => {
    vi.useFakeTimers();
    const queue = new DeadlineQueue<Call>(() => undefined);
    queue.add(call(5_000));
    for (let i = 0; i < 2_000; i++) {
      const c = call(5_000);
      queue.add(c);
      c.done = true;
    }
    expect(queue.size).toBe(2_001);
    vi.advanceTimersByTime(5_001);
    expect(queue.size).toBe(0);
  });
});
