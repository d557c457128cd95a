import { describe, expect, it } from 'vitest';
import { CloseDeadline } from './close-deadline.js';

const never = new Promise<void>(() => undefined);
const after = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('CloseDeadline', () => {
  it('waits for a step that ends in time, failed or not, and notes nothing', async () => {
    const deadline = CloseDeadline.in(1_000);
    expect(await deadline.within(after(10), 'quick')).toBe(true);
    expect(await deadline.within(Promise.reject(new Error('refused')), 'failing')).toBe(true);
    expect(deadline.abandoned).toEqual([]);
  });

  it('gives up on a step at the deadline and names it; past the deadline at once', async () => {
    const deadline = CloseDeadline.in(50);
    const started = Date.now();
    expect(await deadline.within(never, 'the final commit')).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(await deadline.within(never, 'leaving the group')).toBe(false);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(deadline.abandoned).toEqual(['the final commit', 'leaving the group']);
  });

  it('stops while excluded work runs: a step waiting meanwhile is not given up on, and the deadline moves by what that work took', async () => {
    const deadline = CloseDeadline.in(50);
    const step = after(250);
    const waiting = deadline.within(step, 'a commit behind the drain');
    await deadline.excluding(after(300));
    expect(await waiting).toBe(true);
    expect(deadline.remainingMs).toBeGreaterThan(0);
    expect(deadline.abandoned).toEqual([]);
  });
});
