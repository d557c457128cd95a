/**
 * The attempt mark stored as offset-commit metadata: what is written, what is
 * read back, and that anything else (another client's metadata, garbage, a
 * mark about another offset) is no record. And the ledger's decisions on a
 * real PartitionState: what a crash leaves for the next owner (charged only
 * when the record ran alone), and what a clean stop leaves.
 */
import type { KafkaMessage } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { encodeAttemptMark, parseAttemptMark, type LedgerCommit } from '../src/attempt-ledger.js';
import { PartitionState } from '../src/partition-state.js';

describe('attempt mark metadata', () => {
  it('round-trips', () => {
    const mark = { from: 42, begun: 3, through: 2_041 };
    const text = encodeAttemptMark(mark);
    expect(text).toBe('busline-attempts/1 42 3 2041');
    expect(parseAttemptMark(text, 42)).toEqual(mark);
  });

  it('is no record for foreign, garbage or mismatched metadata, never a throw', () => {
    const foreign: unknown[] = [
      null,
      undefined,
      '',
      'event-id-3',
      '{"begun":3}',
      'busline-attempts/1',
      'busline-attempts/1 42 3',
      'busline-attempts/1 42 3 2041 extra',
      'busline-attempts/2 42 3 2041',
      'busline-attempts/1 -1 3 2041',
      'busline-attempts/1 42 x 2041',
      'busline-attempts/1 42 3 40', // through before from - 1
      'busline-attempts/1 99999999999999999 3 99999999999999999', // not a safe integer
      ' busline-attempts/1 42 3 2041',
      'busline-attempts/1 42 3 2041\n',
      'busline-attempts/1 42 1234567890 2041', // more attempts than the format allows
      '\u0000\uffff',
      42,
      { begun: 3 },
    ];
    for (const metadata of foreign) expect(parseAttemptMark(metadata, 42), String(metadata)).toBeUndefined();
    // A mark about another offset (the group's offset was reset or moved by another client) is not this offset's.
    expect(parseAttemptMark('busline-attempts/1 41 3 2041', 42)).toBeUndefined();
  });
});

function record(offset: number): KafkaMessage {
  return { offset: String(offset), key: null, value: Buffer.from('x'), timestamp: '0', attributes: 0, headers: {} } as KafkaMessage;
}

function partition(committed: number, metadata: unknown, fetched: number[], logEnd = 1_000): PartitionState {
  const state = new PartitionState('t', 0);
  state.ledger.begin(committed, metadata, 10, logEnd);
  state.accept(fetched.map(record));
  return state;
}

/** Delivers `n` records as PartitionFlow.pump does (tracking them); returns their deliveryCounts. */
function deliver(state: PartitionState, n: number): number[] {
  return state.take(n).map((m) => {
    const offset = Number(m.offset);
    state.watermark.track(offset);
    state.tracked = offset;
    state.unsettled++;
    return state.ledger.countFor(offset);
  });
}

function handle(state: PartitionState, offset: number): void {
  state.watermark.complete(offset);
  state.unsettled--;
}

function store(state: PartitionState, c: LedgerCommit | undefined): LedgerCommit {
  expect(c).toBeDefined();
  state.committed = c!.offset;
  state.ledger.stored(c!);
  return c!;
}

/** One record alone, after its step mark is stored (what an isolated consumer does). */
function step(state: PartitionState): { mark: LedgerCommit; counts: number[] } {
  expect(state.ledger.allowance(state, 100, true)).toBe(0);
  const pending = state.ledger.compose(state);
  // Pumped again while the step mark is being committed: still nothing, and it holds the turn.
  expect(state.ledger.allowance(state, 100, true)).toBe(0);
  expect(state.ledger.holdsStep(state)).toBe(true);
  const mark = store(state, pending);
  expect(mark.step).toBe(true);
  expect(state.ledger.allowance(state, 100, true)).toBe(1);
  return { mark, counts: deliver(state, 1) };
}

describe('attempt ledger', () => {
  it('a fresh partition delivers nothing before a mark is stored; the mark covers a window and charges nothing', () => {
    const state = partition(-1, null, [5, 6, 7]);
    expect(state.ledger.allowance(state, 100, false)).toBe(0);
    expect(state.ledger.wanted).toBe(true);
    const c = store(state, state.ledger.compose(state));
    expect(c).toMatchObject({ offset: 5, serves: true, step: false, mark: { from: 5, begun: 0, through: 14 } });
    expect(state.ledger.allowance(state, 100, false)).toBe(3);
    expect(deliver(state, 3)).toEqual([1, 1, 1]);
  });

  it('a partition with no committed offset never commits past its first record while it runs', () => {
    const state = partition(-1, null, [5, 6, 7]);
    state.ledger.allowance(state, 1, false);
    store(state, state.ledger.compose(state));
    deliver(state, 1);
    // Record 5 runs, 6 and 7 wait. A commit now (here one extending the mark) must stay at 5.
    state.ledger.wanted = true;
    expect(state.ledger.compose(state)).toMatchObject({ offset: 5, mark: { from: 5 } });
  });

  it('a crash among many records charges none; the next owner is suspect, and a crash on a step is charged to its record', () => {
    const first = partition(-1, null, [0, 1, 2, 3]);
    first.ledger.allowance(first, 100, false);
    store(first, first.ledger.compose(first));
    deliver(first, 4);
    handle(first, 0);
    // Progress commit while records are in flight: not clean.
    const progress = store(first, first.ledger.compose(first));
    expect(progress.mark).toMatchObject({ from: 1, begun: 0 });
    expect(progress.mark.through).toBeGreaterThanOrEqual(3);

    // The process dies. The next owner reads what was committed; the log ends at 4.
    const next = partition(1, progress.metadata, [1, 2, 3], 4);
    expect(next.ledger.suspect).toBe(true);
    const a = step(next);
    expect(a.mark.mark).toEqual({ from: 1, begun: 1, through: 1 });
    expect(a.counts, 'not charged for the crash among many').toEqual([1]);
    // Alone means alone: nothing more while it runs.
    expect(next.ledger.allowance(next, 100, true)).toBe(0);
    handle(next, 1);
    const b = step(next);
    expect(b.mark.mark).toEqual({ from: 2, begun: 1, through: 2 });

    // It dies on offset 2, running alone: the owner after that charges it.
    const third = partition(2, b.mark.metadata, [2, 3], 4);
    const c = step(third);
    expect(c.counts).toEqual([2]);
    expect(c.mark.mark).toEqual({ from: 2, begun: 2, through: 2 });
    handle(third, 2);
    const d = step(third);
    expect(d.counts).toEqual([1]);
    handle(third, 3);
    // Nothing left to deliver: the turn goes to the other partitions.
    expect(third.ledger.holdsStep(third)).toBe(false);
    // Past the suspect range (the log end at the start): no longer suspect once committed.
    const clean = store(third, third.ledger.compose(third));
    expect(clean.mark).toEqual({ from: 4, begun: 0, through: 3 });
    expect(third.ledger.suspect).toBe(false);
  });

  it('a clean stop (nothing in flight) leaves a clean mark: the next owner is not suspect and counts 1', () => {
    const state = partition(-1, null, [0, 1, 2]);
    state.ledger.allowance(state, 100, false);
    store(state, state.ledger.compose(state));
    deliver(state, 3);
    for (const o of [0, 1, 2]) handle(state, o);
    const final = store(state, state.ledger.compose(state));
    expect(final.mark).toEqual({ from: 3, begun: 0, through: 2 });
    // Nothing new: nothing more to commit.
    expect(state.ledger.compose(state)).toBeUndefined();

    const next = partition(3, final.metadata, [3, 4]);
    expect(next.ledger.suspect).toBe(false);
    next.ledger.allowance(next, 100, false);
    store(next, next.ledger.compose(next));
    expect(deliver(next, next.ledger.allowance(next, 100, false))).toEqual([1, 1]);
  });

  it('a routine commit while idle keeps the window ahead: the next record goes without waiting for a commit; a hand-over then writes it clean', () => {
    const state = partition(-1, null, [0, 1, 2]);
    state.ledger.allowance(state, 100, false);
    store(state, state.ledger.compose(state));
    deliver(state, 3);
    for (const o of [0, 1, 2]) handle(state, o);
    const routine = store(state, state.ledger.compose(state, true));
    expect(routine.mark).toEqual({ from: 3, begun: 0, through: 12 });
    // A record fetched after the routine commit is delivered at once (a clean mark would have held it for a commit).
    state.accept([record(3)]);
    expect(state.ledger.allowance(state, 100, false)).toBe(1);
    deliver(state, 1);
    handle(state, 3);
    // Nothing advanced since: a routine commit has nothing to say; a hand-over writes the mark clean.
    store(state, state.ledger.compose(state, true));
    expect(state.ledger.compose(state, true)).toBeUndefined();
    const final = store(state, state.ledger.compose(state));
    expect(final.mark).toEqual({ from: 4, begun: 0, through: 3 });
  });

  it('records appended after the previous owner stopped are not suspect', () => {
    const state = partition(1, 'busline-attempts/1 1 0 2000', [1], 1);
    expect(state.ledger.suspect).toBe(false);
  });

  it('an owner that delivered nothing leaves the previous mark as it was', () => {
    const state = partition(7, 'busline-attempts/1 7 2 9', []);
    expect(state.ledger.compose(state)).toBeUndefined();
  });
});
