import { afterEach, describe, expect, it, vi } from 'vitest';
import { newEventId } from './event-id.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** The 48-bit millisecond timestamp of a UUIDv7. */
const msOf = (id: string): number => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);

describe('newEventId', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('ids are UUIDv7, unique and increasing within the process, across many refills of the random pool', () => {
    const ids = Array.from({ length: 20_000 }, () => newEventId());
    for (const id of ids) expect(id).toMatch(UUID_V7);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it('carry the time they were made', () => {
    const before = Date.now();
    const id = newEventId();
    expect(msOf(id)).toBeGreaterThanOrEqual(before);
    expect(msOf(id)).toBeLessThanOrEqual(Date.now() + 1);
  });

  it('keep increasing when the clock stands still or goes back', () => {
    const first = newEventId();
    const now = vi.spyOn(Date, 'now').mockReturnValue(msOf(first));
    const still = Array.from({ length: 1000 }, () => newEventId());
    now.mockReturnValue(msOf(first) - 60_000);
    const back = Array.from({ length: 1000 }, () => newEventId());
    const ids = [first, ...still, ...back];
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it('differ in their random bits from one millisecond to the next', () => {
    const now = vi.spyOn(Date, 'now');
    const base = Date.now() + 1_000;
    const tails = new Set<string>();
    for (let i = 0; i < 200; i++) {
      now.mockReturnValue(base + i);
      tails.add(newEventId().slice(14));
    }
    expect(tails.size).toBe(200);
  });
});
