import { describe, expect, it } from 'vitest';
import { AsciiTextCache } from '../src/ascii-text-cache.js';

describe('AsciiTextCache', () => {
  it('reuses the text while the bytes spell it, and decodes anew when they do not', () => {
    const cache = new AsciiTextCache();
    const first = cache.text(3, Buffer.from('order.placed'));
    expect(first).toBe('order.placed');
    expect(cache.text(3, Buffer.from('order.placed'))).toBe(first);
    expect(cache.text(3, Buffer.from('order.plaCed'))).toBe('order.plaCed');
    expect(cache.text(3, Buffer.from('order'))).toBe('order');
    expect(cache.text(3, Buffer.from(''))).toBe('');
  });

  it('decodes a range of a larger buffer', () => {
    const cache = new AsciiTextCache();
    const bytes = Buffer.from('xxce_idyy');
    expect(cache.text(0, bytes, 2, 7)).toBe('ce_id');
    expect(cache.text(0, Buffer.from('--ce_id'), 2, 7)).toBe('ce_id');
  });

  it('never mistakes non-ASCII bytes for cached text (U+FFFD and multi-byte characters)', () => {
    const cache = new AsciiTextCache();
    expect(cache.text(1, Buffer.from([0xff, 0x41]))).toBe('\uFFFDA');
    expect(cache.text(1, Buffer.from([0xfe, 0x41]))).toBe('\uFFFDA');
    expect(cache.text(1, Buffer.from('é'))).toBe('é');
    expect(cache.text(1, Buffer.from([0xc3, 0xa8]))).toBe('è');
  });

  it('keeps at most maxSlots slots, and decodes the others right', () => {
    const cache = new AsciiTextCache(2);
    for (let round = 0; round < 2; round++) for (let i = 0; i < 5; i++) expect(cache.text(i, Buffer.from(`v${i}`))).toBe(`v${i}`);
    expect((cache as unknown as { slots: unknown[] }).slots.length).toBe(2);
  });

  it('stops comparing a slot whose text keeps changing, decodes it right meanwhile, and caches it again after the rest', () => {
    const cache = new AsciiTextCache();
    const slot = () => (cache as unknown as { slots: { text?: string; resting: number }[] }).slots[1]!;
    for (let i = 0; i < 9; i++) expect(cache.text(1, Buffer.from(`id-${i}`))).toBe(`id-${i}`);
    expect(slot().resting, 'resting after a run of misses').toBeGreaterThan(0);
    let calls = 0;
    while (slot().resting > 0) {
      expect(cache.text(1, Buffer.from(calls % 2 ? 'same' : 'é'))).toBe(calls % 2 ? 'same' : 'é');
      calls++;
    }
    expect(calls).toBeLessThanOrEqual(256);
    expect(cache.text(1, Buffer.from('same'))).toBe('same');
    expect(slot().text, 'kept again once rested').toBe('same');
    expect(cache.text(1, Buffer.from('samf'))).toBe('samf');
  });
});
