import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HeaderReader } from '../src/header-reader.js';

const block = (lines: [string, string][]): string => `NATS/1.0\r\n${lines.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;

/** What the reader must return: the first value of each name, trimmed. */
function expected(lines: [string, string][]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [n, v] of lines) if (out[n] === undefined) out[n] = v.trim();
  return out;
}

const busline = (id: string, key: string): [string, string][] => [
  ['ce-specversion', '1.0'],
  ['ce-id', id],
  ['ce-type', 'order.paid'],
  ['ce-subject', key],
  ['Nats-Msg-Id', id],
];

describe('HeaderReader', () => {
  it('reads consecutive blocks of one shape, each with its own values', () => {
    const reader = new HeaderReader();
    const seen = [reader.readText(block(busline('a1', 'k1'))), reader.readText(block(busline('a2', 'k2'))), reader.readText(block(busline('a3', 'k3')))];
    expect(seen).toEqual([expected(busline('a1', 'k1')), expected(busline('a2', 'k2')), expected(busline('a3', 'k3'))]);
    // Maps handed out are independent: changing one changes no later read.
    (seen[0] as Record<string, string>)['ce-id'] = 'changed';
    seen[0]!['extra'] = 'x';
    expect(reader.readText(block(busline('a4', 'k4')))).toEqual(expected(busline('a4', 'k4')));
  });

  it('leaves the skip header out of the map, reports its value, and keeps reading the shape in place', () => {
    const reader = new HeaderReader('Nats-Pin-Id');
    const pinned = (id: string, pin: string): [string, string][] => [...busline(id, 'k').slice(0, 2), ['Nats-Pin-Id', pin], ...busline(id, 'k').slice(2)];
    expect(reader.readText(block(pinned('a1', 'p1')))).toEqual(expected(busline('a1', 'k')));
    expect(reader.skipped).toBe('p1');
    const second = reader.readText(block(pinned('a2', 'p2')));
    expect(second).toEqual(expected(busline('a2', 'k')));
    expect(reader.skipped).toBe('p2');
    // A map with the header deleted afterwards would be a dictionary-mode object; this one is built from the shape.
    expect(Object.keys(second)).toEqual(busline('a2', 'k').map(([n]) => n));
    expect(reader.readText(block(busline('a3', 'k')))).toEqual(expected(busline('a3', 'k')));
    expect(reader.skipped, 'a block without it').toBeUndefined();
  });

  it('never carries a value over from the remembered shape when a header is missing, added, renamed or moved', () => {
    const reader = new HeaderReader();
    const full = busline('a1', 'k1');
    const cases: [string, string][][] = [
      full,
      full.filter(([n]) => n !== 'ce-subject'), // one fewer
      full,
      [...full, ['traceparent', '00-1']], // one more
      full.map(([n, v]) => (n === 'ce-type' ? ['ce-kind', v] : [n, v])), // renamed
      [full[1]!, full[0]!, ...full.slice(2)], // moved
      [['ce-id', 'first'], ['ce-id', 'second']], // repeated: the first wins
      [['ce-id', 'first'], ['ce-id', 'second']],
      full,
    ];
    for (const lines of cases) expect(reader.readText(block(lines))).toEqual(expected(lines));
  });

  it('reads the empty block and skips lines without a name', () => {
    const reader = new HeaderReader();
    expect(reader.readText('')).toEqual({});
    expect(reader.readText('NATS/1.0\r\n\r\n')).toEqual({});
    expect(reader.readText('NATS/1.0\r\nno colon here\r\nce-id: 1\r\n: empty name\r\n\r\n')).toEqual({ 'ce-id': '1' });
    expect(reader.readText('NATS/1.0\r\nce-id:   spaced   \r\n\r\n')).toEqual({ 'ce-id': 'spaced' });
  });

  it('agrees with a plain parse on any sequence of blocks (property)', () => {
    const name = fc.constantFrom('ce-id', 'ce-type', 'ce-subject', 'Nats-Msg-Id', 'x-a', 'x-ab');
    const value = fc.stringMatching(/^[ -~]{0,12}$/);
    const blockArb = fc.array(fc.tuple(name, value), { maxLength: 6 });
    fc.assert(
      fc.property(fc.array(blockArb, { minLength: 1, maxLength: 8 }), (blocks) => {
        const reader = new HeaderReader();
        for (const lines of blocks) expect(reader.readText(block(lines))).toEqual(expected(lines));
      }),
      { numRuns: 500 },
    );
  });
});
