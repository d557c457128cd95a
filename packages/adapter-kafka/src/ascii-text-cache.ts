/**
 * AsciiTextCache: the last text decoded in each of a few numbered slots,
 * reused while the next bytes spell the same text. Fetched records of one
 * topic repeat their header names, in the same order, and many values (type,
 * source, content type), so the slot is the header's position in its record;
 * comparing a few bytes is cheaper than decoding them into a new string,
 * and leaves nothing for the garbage collector. Only ASCII text is kept, so
 * equal bytes mean equal text; the bytes themselves are never retained (they
 * are views of a whole fetch response).
 *
 * A slot whose text keeps changing (an event id, a time) stops being
 * compared for a while: comparing a value that never repeats only adds to
 * its decoding. It is tried again after a rest, in case it starts repeating.
 */
interface Slot {
  text: string | undefined;
  /** Misses in a row. */
  misses: number;
  /** Calls left that decode without comparing or keeping. */
  resting: number;
}

/** Misses in a row after which a slot rests, and for how many calls. */
const MISSES_BEFORE_REST = 8;
const REST_CALLS = 256;

export class AsciiTextCache {
  /** By slot number (an array: cheaper to index than a Map to look up, per header of every record). */
  private readonly slots: Slot[] = [];

  constructor(private readonly maxSlots = 64) {}

  /** `bytes[start, end)` as UTF-8 text, reusing the text last decoded in slot `n` when the bytes match it. */
  text(n: number, bytes: Buffer, start = 0, end = bytes.length): string {
    let slot = this.slots[n];
    if (slot === undefined) {
      if (n >= this.maxSlots) return decode(bytes, start, end);
      slot = { text: undefined, misses: 0, resting: 0 };
      this.slots[n] = slot;
    } else if (slot.resting > 0) {
      slot.resting--;
      return decode(bytes, start, end);
    }
    const last = slot.text;
    if (last !== undefined && last.length === end - start) {
      let i = 0;
      while (i < last.length && last.charCodeAt(i) === bytes[start + i]) i++;
      if (i === last.length) {
        slot.misses = 0;
        return last;
      }
    }
    const text = decode(bytes, start, end);
    slot.text = isAscii(text) ? text : undefined;
    if (last !== undefined && ++slot.misses >= MISSES_BEFORE_REST) {
      slot.misses = 0;
      slot.resting = REST_CALLS;
    }
    return text;
  }
}

function decode(bytes: Buffer, start: number, end: number): string {
  // toString() without arguments takes Node's UTF-8 fast path.
  return start === 0 && end === bytes.length ? bytes.toString() : bytes.toString('utf8', start, end);
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}
