/**
 * Collects what is written during one event-loop turn and hands it over once,
 * after the turn: everything published (or acked) in a turn becomes one
 * buffer and one socket write instead of one write per message.
 */
export class TurnBatch<T> {
  private items: T[] = [];
  private scheduled = false;

  constructor(private readonly write: (items: T[]) => void) {}

  push(item: T): void {
    this.items.push(item);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Forgets what was collected (it will be written some other way). */
  clear(): void {
    this.items = [];
  }

  /** Hands over what was collected now (also run after the turn, where it finds nothing left). */
  readonly flush = (): void => {
    this.scheduled = false;
    const items = this.items;
    this.items = [];
    this.write(items);
  };
}
