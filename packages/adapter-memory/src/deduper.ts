/**
 * Deduplication by event id (the message's `id` as core encoded it, else its
 * `ce-id` header): the Deduper a topic consults on
 * publish when a dedupe window is set.
 */

/** The header whose value identifies an event for deduplication (CloudEvents `id`). */
export const DEDUPE_HEADER = 'ce-id';
/** Each dedupe generation remembers at most this many ids; beyond it the window shrinks rather than memory growing. */
const DEDUPE_GENERATION_LIMIT = 1_048_576;

/**
 * Remembers event ids for a window, in two generations (current and previous)
 * so expiry costs nothing per entry: a generation older than the window is
 * dropped whole.
 */
export class Deduper {
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
  /** Values are stored relative to their generation's start so they stay small integers (no boxed doubles). */
  private currentStart: number;
  private previousStart: number;

  constructor(now: number) {
    this.currentStart = this.previousStart = now;
  }

  /** True when `id` was seen within `windowMs`; otherwise remembers it. */
  seen(id: string, now: number, windowMs: number): boolean {
    if (now - this.currentStart >= windowMs || this.current.size >= DEDUPE_GENERATION_LIMIT) {
      this.previous = this.current;
      this.previousStart = this.currentStart;
      this.current = new Map();
      this.currentStart = now;
    }
    const rel = this.current.get(id);
    if (rel !== undefined) {
      if (now - (this.currentStart + rel) < windowMs) return true;
    } else {
      const old = this.previous.get(id);
      if (old !== undefined && now - (this.previousStart + old) < windowMs) return true;
    }
    this.current.set(id, now - this.currentStart);
    return false;
  }

  /** True when `id` was seen within `windowMs`; remembers nothing. */
  has(id: string, now: number, windowMs: number): boolean {
    const rel = this.current.get(id);
    if (rel !== undefined && now - (this.currentStart + rel) < windowMs) return true;
    const old = this.previous.get(id);
    return old !== undefined && now - (this.previousStart + old) < windowMs;
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }
}
