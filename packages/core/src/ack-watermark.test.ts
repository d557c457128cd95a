import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AckWatermark } from './ack-watermark.js';

describe('AckWatermark', () => {
  it('starts empty', () => {
    const w = new AckWatermark();
    expect(w.watermark).toBeUndefined();
    expect(w.pending).toBe(0);
    expect(w.complete(0)).toBe(false);
  });

  it('advances in order', () => {
    const w = new AckWatermark();
    for (let p = 0; p < 100; p++) w.track(p);
    expect(w.pending).toBe(100);
    for (let p = 0; p < 100; p++) {
      expect(w.complete(p)).toBe(true);
      expect(w.watermark).toBe(p);
      expect(w.pending).toBe(99 - p);
    }
  });

  it('waits for the oldest when completions come out of order', () => {
    const w = new AckWatermark();
    for (const p of [10, 11, 12, 13, 14]) w.track(p);
    expect(w.complete(12)).toBe(false);
    expect(w.complete(14)).toBe(false);
    expect(w.watermark).toBeUndefined();
    expect(w.pending).toBe(3);
    expect(w.complete(10)).toBe(true);
    expect(w.watermark).toBe(10);
    expect(w.complete(11)).toBe(true);
    expect(w.watermark).toBe(12); // 12 was already done
    expect(w.complete(13)).toBe(true);
    expect(w.watermark).toBe(14);
    expect(w.pending).toBe(0);
  });

  it('handles gaps between positions (filtered stream sequences, compacted offsets)', () => {
    const w = new AckWatermark();
    for (const p of [3, 7, 8, 20, 1000, 1001, 50_000]) w.track(p);
    expect(w.complete(5)).toBe(false); // a gap, never tracked
    expect(w.complete(8)).toBe(false);
    expect(w.complete(20)).toBe(false);
    expect(w.complete(3)).toBe(true);
    expect(w.watermark).toBe(3);
    expect(w.complete(7)).toBe(true);
    expect(w.watermark).toBe(20);
    expect(w.complete(50_000)).toBe(false);
    expect(w.complete(1001)).toBe(false);
    expect(w.complete(1000)).toBe(true);
    expect(w.watermark).toBe(50_000);
  });

  it('ignores untracked and repeated completions', () => {
    const w = new AckWatermark();
    w.track(1);
    w.track(2);
    expect(w.complete(2)).toBe(false);
    expect(w.complete(2)).toBe(false);
    expect(w.pending).toBe(1);
    expect(w.complete(99)).toBe(false);
    expect(w.complete(0)).toBe(false);
    expect(w.complete(1)).toBe(true);
    expect(w.complete(1)).toBe(false); // already released below the mark
    expect(w.watermark).toBe(2);
  });

  it('rejects positions that are not increasing, negative or not safe integers', () => {
    const w = new AckWatermark();
    w.track(5);
    expect(() => w.track(5)).toThrow(RangeError);
    expect(() => w.track(4)).toThrow(/increasing/);
    expect(() => w.track(-1)).toThrow(RangeError);
    expect(() => w.track(6.5)).toThrow(RangeError);
    expect(() => w.track(Number.MAX_SAFE_INTEGER + 1)).toThrow(RangeError);
    expect(() => w.track(Number.NaN)).toThrow(RangeError);
    w.complete(5);
    expect(() => w.track(5)).toThrow(RangeError); // released positions still count
    w.track(Number.MAX_SAFE_INTEGER);
    expect(w.complete(Number.MAX_SAFE_INTEGER)).toBe(true);
    expect(w.watermark).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('reset forgets everything and allows any position again', () => {
    const w = new AckWatermark();
    for (let p = 100; p < 5000; p++) w.track(p);
    w.complete(100);
    w.reset();
    expect(w.watermark).toBeUndefined();
    expect(w.pending).toBe(0);
    expect(w.lastTracked).toBeUndefined();
    expect(w.complete(101)).toBe(false);
    w.track(0);
    expect(w.complete(0)).toBe(true);
    expect(w.watermark).toBe(0);
  });

  it('holds many outstanding positions (ring growth, wrap-around)', () => {
    const w = new AckWatermark();
    let next = 0;
    // Keep a sliding window of 300 outstanding, completing the newest first.
    for (let round = 0; round < 20; round++) {
      const batch: number[] = [];
      for (let k = 0; k < 300; k++) {
        w.track(next);
        batch.push(next);
        next += round % 2 === 0 ? 1 : 3; // alternate contiguous and gapped
      }
      for (let k = batch.length - 1; k > 0; k--) expect(w.complete(batch[k]!)).toBe(false);
      expect(w.complete(batch[0]!)).toBe(true);
      expect(w.watermark).toBe(batch[batch.length - 1]);
      expect(w.pending).toBe(0);
    }
  });

  it('always equals the brute-force answer (property)', () => {
    type Op = { kind: 'track' } | { kind: 'complete'; pick: number; any: number };
    const delta = fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 1_000_000 }));
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.constant({ kind: 'track' as const }),
      fc.record({ kind: fc.constant('complete' as const), pick: fc.nat(), any: fc.nat({ max: 10 }) }),
    );
    fc.assert(
      fc.property(fc.nat({ max: 1_000_000_000 }), fc.array(delta, { minLength: 1, maxLength: 200 }), fc.array(op, { maxLength: 600 }), (start, deltas, ops) => {
        const positions: number[] = [];
        let p = start;
        for (const d of deltas) {
          positions.push(p);
          p += d;
        }
        const w = new AckWatermark();
        const tracked: number[] = [];
        const completed = new Set<number>();
        const model = (): number | undefined => {
          let mark: number | undefined;
          for (const t of tracked) {
            if (!completed.has(t)) break;
            mark = t;
          }
          return mark;
        };
        let nextToTrack = 0;
        for (const o of ops) {
          if (o.kind === 'track') {
            if (nextToTrack >= positions.length) continue;
            const position = positions[nextToTrack++]!;
            w.track(position);
            tracked.push(position);
          } else {
            // Mostly a tracked position (complete or not); sometimes an untracked one.
            const position =
              o.any === 0 || tracked.length === 0
                ? positions[o.pick % positions.length]! + (o.pick % 2)
                : tracked[o.pick % tracked.length]!;
            const before = model();
            if (tracked.includes(position)) completed.add(position);
            const after = model();
            expect(w.complete(position)).toBe(after !== before);
          }
          expect(w.watermark).toBe(model());
          expect(w.pending).toBe(tracked.filter((t) => !completed.has(t)).length);
        }
        // Finally complete everything in a random-ish order: the mark reaches the newest.
        for (const t of [...tracked].reverse()) w.complete(t);
        expect(w.pending).toBe(0);
        expect(w.watermark).toBe(tracked.length ? tracked[tracked.length - 1] : undefined);
      }),
      { numRuns: 300 },
    );
  });

  it('random completion order of random increasing positions (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.nat({ max: 5000 }), { minLength: 1, maxLength: 300 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 300, maxLength: 300 }),
        (raw, sortKeys) => {
          const positions = [...raw].sort((a, b) => a - b);
          const w = new AckWatermark();
          for (const p of positions) w.track(p);
          const order = positions.map((p, i) => ({ p, k: sortKeys[i]! })).sort((a, b) => a.k - b.k);
          const done = new Set<number>();
          for (const { p } of order) {
            done.add(p);
            w.complete(p);
            let expected: number | undefined;
            for (const q of positions) {
              if (!done.has(q)) break;
              expected = q;
            }
            expect(w.watermark).toBe(expected);
          }
          expect(w.watermark).toBe(positions[positions.length - 1]);
        },
      ),
      { numRuns: 200 },
    );
  });
});
