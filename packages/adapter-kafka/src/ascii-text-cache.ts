/**
 * AsciiTextCache: the last text decoded under each of a few names, reused
 * while the next bytes spell the same text. Fetched records of one topic
 * repeat most header names and many values (type, source, content type);
 * comparing a few bytes is cheaper than decoding them into a new string,
 * and leaves nothing for the garbage collector. Only ASCII text is kept, so
 * equal bytes mean equal text; the bytes themselves are never retained (they
 * are views of a whole fetch response).
 */
export class AsciiTextCache<K> {
  private readonly texts = new Map<K, string>();

  constructor(private readonly maxEntries = 64) {}

  /** `bytes[start, end)` as UTF-8 text, reusing the text last decoded under `slot` when the bytes match it. */
  text(slot: K, bytes: Buffer, start = 0, end = bytes.length): string {
    const last = this.texts.get(slot);
    if (last !== undefined && last.length === end - start) {
      let i = 0;
      while (i < last.length && last.charCodeAt(i) === bytes[start + i]) i++;
      if (i === last.length) return last;
    }
    // toString() without arguments takes Node's UTF-8 fast path.
    const text = start === 0 && end === bytes.length ? bytes.toString() : bytes.toString('utf8', start, end);
    if (isAscii(text) && (last !== undefined || this.texts.size < this.maxEntries)) this.texts.set(slot, text);
    return text;
  }
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}
