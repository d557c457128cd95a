import { describe, expect, it } from 'vitest';
import { OrderChecker, type Handling } from '../src/order-checker.js';

/** Handlings at given (start, end) times in ms, as another process would report them. */
function at(member: string, key: string, seq: number, start: number, end: number | undefined, ok = true): Handling {
  return { member, key, seq, start: BigInt(start) * 1_000_000n, ...(end === undefined ? {} : { end: BigInt(end) * 1_000_000n, ok }) };
}

function checker(count: number, handlings: Handling[]): OrderChecker {
  const c = new OrderChecker();
  c.publishedCount('k', count);
  for (const h of handlings) c.record(h);
  return c;
}

describe('OrderChecker', () => {
  it('accepts sequential handlings in order, across members, with a retry and a later redelivery', () => {
    const c = checker(3, [
      at('a', 'k', 0, 0, 1, false),
      at('a', 'k', 0, 2, 3),
      at('b', 'k', 1, 4, 5),
      at('b', 'k', 2, 6, 7),
      at('a', 'k', 1, 8, 9), // at-least-once redelivery after later ones: allowed
    ]);
    const r = c.assertHeld();
    expect(r.repeated).toBe(2);
    expect(c.complete()).toBe(true);
  });

  it('reports two handlings of one key that overlap, on one member or two', () => {
    const r = checker(2, [at('a', 'k', 0, 0, 10), at('b', 'k', 1, 5, 12)]).report();
    expect(r.concurrent).toHaveLength(1);
    expect(r.concurrent[0]).toMatch(/k#1 on b started while k#0 ran on a/);
  });

  it('reports a message first handled before the previous one succeeded, even if that one succeeds later', () => {
    const r = checker(2, [at('a', 'k', 0, 0, 1, false), at('a', 'k', 1, 2, 3), at('b', 'k', 0, 4, 5)]).report();
    expect(r.outOfOrder).toEqual(['k#1 first handled on a before k#0 was handled successfully']);
    expect(r.concurrent).toEqual([]);
  });

  it('reports messages never handled successfully, and handlings of messages never published', () => {
    const r = checker(3, [at('a', 'k', 0, 0, 1), at('a', 'k', 1, 2, 3, false), at('a', 'k', 7, 4, 5)]).report();
    expect(r.missing).toEqual(['k#1', 'k#2']);
    expect(r.unexpected).toEqual(['k#7 on a']);
  });

  it('closes the handlings of a member that died at its death, so a later owner does not overlap them', () => {
    const c = checker(2, [at('a', 'k', 0, 0, 1), at('a', 'k', 1, 2, undefined), at('b', 'k', 1, 10, 11)]);
    expect(c.report().concurrent, 'a never-ended handling overlaps everything after it').toHaveLength(1);
    c.memberDied('a', 5n * 1_000_000n);
    expect(c.report().concurrent).toEqual([]);
    c.assertHeld();
  });

  it('begin() records local handlings with the monotonic clock', async () => {
    const c = new OrderChecker();
    c.publishedOne('k');
    const end = c.begin('a', 'k', 0);
    await new Promise((resolve) => setTimeout(resolve, 2));
    end();
    expect(c.handledCount).toBe(1);
    c.assertHeld();
  });
});
