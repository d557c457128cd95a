import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DurationBudget } from './duration-budget.js';

/** How many of `n` calls in the current second the budget takes. */
function takes(budget: DurationBudget, n: number): number {
  let taken = 0;
  for (let i = 0; i < n; i++) if (budget.take()) taken++;
  return taken;
}

describe('DurationBudget', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => vi.useRealTimers());

  it('below the budget every duration is taken, second after second', () => {
    const budget = new DurationBudget(100);
    for (let second = 0; second < 5; second++) {
      expect(takes(budget, 100)).toBe(100);
      vi.advanceTimersByTime(1_000);
    }
  });

  it('a surge in the first second stops at twice the budget; the next second takes a random share near the budget', () => {
    const budget = new DurationBudget(100);
    expect(takes(budget, 10_000)).toBe(200);
    vi.advanceTimersByTime(1_000);
    // Probability 100 / 10,000 over 10,000 calls: binomial mean 100, sd ~10; 50–150 fails about once in 10^6 runs.
    const next = takes(budget, 10_000);
    expect(next).toBeGreaterThan(50);
    expect(next).toBeLessThan(150);
  });

  it('the share follows the rate back up when traffic slows', () => {
    const budget = new DurationBudget(100);
    takes(budget, 10_000);
    vi.advanceTimersByTime(1_000);
    takes(budget, 50);
    vi.advanceTimersByTime(1_000);
    expect(takes(budget, 50)).toBe(50);
  });

  it('an infinite budget takes everything', () => {
    expect(takes(new DurationBudget(Number.POSITIVE_INFINITY), 100_000)).toBe(100_000);
  });
});
