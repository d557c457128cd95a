import { describe, expect, it, vi } from 'vitest';
import { DeliveryInlet, type HeldMessage, type InletProcessor } from './delivery-inlet.js';
import type { DeliveredMessage } from './driver.js';

interface Fake extends DeliveredMessage {
  settled: string[];
  extended: number;
}

function delivered(deliveryId: string | undefined, deliveryCount = 1, extend = true): Fake {
  const m: Fake = {
    topic: 't',
    key: 'k',
    headers: {},
    body: new Uint8Array(0),
    deliveryCount,
    deliveryId,
    settled: [],
    extended: 0,
    ack: () => m.settled.push('ack'),
    nack: (d) => m.settled.push(`nack:${d}`),
    term: () => m.settled.push('term'),
    ...(extend ? { extendLease: () => void m.extended++ } : {}),
  };
  return m;
}

function processor(accept: (m: HeldMessage) => void | Promise<void> = () => undefined) {
  const held: HeldMessage[] = [];
  const reports: string[] = [];
  const counts: Record<string, number> = {};
  const p: InletProcessor = {
    accept: (m) => {
      held.push(m);
      return accept(m);
    },
    report: (_e, context) => void reports.push(context),
    count: (name, by = 1) => void (counts[name] = (counts[name] ?? 0) + by),
    recalled: () => void (counts.recalls = (counts.recalls ?? 0) + 1),
  };
  return { p, held, reports, counts };
}

describe('DeliveryInlet', () => {
  it('settles each message once: later ack / nack / term calls are no-ops', () => {
    const { p, held } = processor();
    const inlet = new DeliveryInlet(p, { maxInFlight: 10, failureDelayMs: 5 });
    const m = delivered('1');
    inlet.deliver([m]);
    held[0]!.ack();
    held[0]!.nack(0);
    held[0]!.term();
    held[0]!.ack();
    expect(m.settled).toEqual(['ack']);
    expect(inlet.held).toBe(0);
  });

  it('collapses a redelivered copy of a held message: the handler sees it once, the copy is what gets settled', () => {
    const { p, held, counts } = processor();
    const inlet = new DeliveryInlet(p, { maxInFlight: 10, failureDelayMs: 5 });
    const first = delivered('7');
    const copy = delivered('7', 2);
    inlet.deliver([first]);
    inlet.deliver([copy]);
    expect(held).toHaveLength(1);
    expect(counts.redelivery_collapsed).toBe(1);
    held[0]!.ack();
    expect(first.settled).toEqual([]);
    expect(copy.settled).toEqual(['ack']);
    // Settled, the id is free again: a later delivery is a new message to handle.
    inlet.deliver([delivered('7', 3)]);
    expect(held).toHaveLength(2);
  });

  it('without delivery ids nothing is collapsed', () => {
    const { p, held } = processor();
    const inlet = new DeliveryInlet(p, { maxInFlight: 10, failureDelayMs: 5 });
    inlet.deliver([delivered(undefined), delivered(undefined)]);
    expect(held).toHaveLength(2);
  });

  it('extends the lease of messages held longer than a third of the deadline, and stops at settle and close', () => {
    vi.useFakeTimers();
    try {
      const { p, held } = processor();
      const inlet = new DeliveryInlet(p, { maxInFlight: 10, failureDelayMs: 5 });
      const a = delivered('a');
      const b = delivered('b');
      inlet.deliver([a, b]);
      inlet.setLease(3_000);
      vi.advanceTimersByTime(1_100);
      expect([a.extended, b.extended]).toEqual([1, 1]);
      held[0]!.ack();
      vi.advanceTimersByTime(3_000);
      expect(a.extended).toBe(1);
      expect(b.extended).toBeGreaterThanOrEqual(3);
      inlet.close();
      const before = b.extended;
      vi.advanceTimersByTime(10_000);
      expect(b.extended).toBe(before);
    } finally {
      vi.useRealTimers();
    }
  });

  it('holds at most maxInFlight: deliver returns a promise that resolves once a quarter of them are settled', async () => {
    const { p, held } = processor();
    const inlet = new DeliveryInlet(p, { maxInFlight: 8, failureDelayMs: 5 });
    expect(inlet.deliver([1, 2, 3, 4, 5, 6, 7].map((i) => delivered(String(i))))).toBeUndefined();
    const wait = inlet.deliver([delivered('8')]);
    expect(wait).toBeInstanceOf(Promise);
    let resumed = false;
    void wait!.then(() => (resumed = true));
    held[0]!.ack();
    await Promise.resolve();
    expect(resumed, 'one settled: not yet').toBe(false);
    held[1]!.ack();
    await wait;
    expect(resumed, 'two (a quarter) settled').toBe(true);
  });

  it('a processor that throws or rejects: the message goes back to the broker with a delay, the error is reported, the batch goes on', async () => {
    let n = 0;
    const { p, reports } = processor(() => {
      n++;
      if (n === 1) throw new Error('sync');
      if (n === 2) return Promise.reject(new Error('async'));
    });
    const inlet = new DeliveryInlet(p, { maxInFlight: 10, failureDelayMs: 25 });
    const batch = [delivered('1'), delivered('2'), delivered('3')];
    await inlet.deliver(batch);
    expect(batch.map((m) => m.settled)).toEqual([['nack:25'], ['nack:25'], []]);
    expect(reports).toHaveLength(2);
    expect(inlet.held).toBe(1);
  });

  it('a driver whose settle call throws is reported, and the message counts as settled', () => {
    const { p, held, reports } = processor();
    const inlet = new DeliveryInlet(p, { maxInFlight: 10, failureDelayMs: 5 });
    const m = delivered('1');
    m.ack = () => {
      throw new Error('connection gone');
    };
    inlet.deliver([m]);
    held[0]!.ack();
    expect(reports[0]).toMatch(/ack of a message/);
    expect(inlet.held).toBe(0);
  });

  it('recall: messages delivered so far are recalled, ones delivered later are not, and a batch waiting for room is handed back without reaching the processor', async () => {
    let gate: (() => void) | undefined;
    const { p, held, counts } = processor((m) => (m.deliveryId === '2' ? new Promise<void>((r) => (gate = r)) : undefined));
    const inlet = new DeliveryInlet(p, { maxInFlight: 10, failureDelayMs: 5 });
    const batch = [delivered('1'), delivered('2'), delivered('3'), delivered('4')];
    const waiting = inlet.deliver(batch);
    // The processor pushed back on '2': '3' and '4' wait in the inlet.
    expect(held.map((m) => m.deliveryId)).toEqual(['1', '2']);
    inlet.recall();
    expect(counts.recalls).toBe(1);
    expect(held.every((m) => m.recalled)).toBe(true);
    gate!();
    await waiting;
    expect(held.map((m) => m.deliveryId), 'recalled while waiting: never handed on').toEqual(['1', '2']);
    expect(batch[2]!.settled).toEqual(['nack:0']);
    expect(batch[3]!.settled).toEqual(['nack:0']);
    const later = delivered('5');
    inlet.deliver([later]);
    expect(held[2]!.recalled).toBe(false);
    held[0]!.ack();
    held[1]!.nack(0);
    held[2]!.ack();
    expect(inlet.held).toBe(0);
  });
});
